"""Turning import requests into rows, and applying one row to a contact the way Listrak does."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime

from audience_sync.listrak.models import ContactSegmentationFieldValues, ImportFile

from .problems import ApiError, invalid_parameter, malformed_body
from .records import (
    SUBSCRIBED,
    UNSUBSCRIBED,
    ContactRecord,
    FieldRecord,
    ImportOptions,
    ImportRow,
)

UPDATED = "Updated"
NOT_SUBSCRIBED = "NotSubscribed"
NOT_ON_LIST = "NotOnList"
INVALID_EMAIL = "InvalidEmail"
BANNED = "Banned"
SUPPRESSED = "Suppressed"
INVALID_VALUE = "InvalidValue"
SUBSCRIBED_RESULT = "Subscribed"
ALREADY_SUBSCRIBED = "AlreadySubscribed"
UNSUBSCRIBED_RESULT = "Unsubscribed"
ALREADY_UNSUBSCRIBED = "AlreadyUnsubscribed"

CHECKBOX_VALUES = ("on", "off")
# Listrak's contract names no date format for profile field values; the sandbox accepts the two
# a client may be configured with ([listrak] date_format): ISO 8601 (the default) and US dates.
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y")
_NUMERIC = re.compile(r"-?\d+(?:\.\d+)?")
_EMAIL = re.compile(r"^[^@\s\"(),:;<>\[\]\\]+@[^@\s.][^@\s]*\.[^@\s.]{2,}$")


def is_valid_email(email: str) -> bool:
    return bool(_EMAIL.match(email)) and ".." not in email and len(email) <= 254


def value_problem(field: FieldRecord, value: str) -> str | None:
    """Why ``value`` cannot be stored in ``field``, or ``None`` when it can.

    CheckBox takes ``on``/``off``; Numeric a plain decimal (``-12.5``, no exponent); Date a
    calendar date in one of :data:`DATE_FORMATS`; RadioButton one of its choices when it has
    any. Every type is held to the field's ``maxLength`` (0: no limit); nothing is truncated.
    """
    if field.data_type == "CheckBox" and value not in CHECKBOX_VALUES:
        return f"CheckBox field {field.field_id} accepts only 'on' or 'off'"
    if field.data_type == "Numeric" and not _NUMERIC.fullmatch(value):
        return f"Numeric field {field.field_id} accepts only a decimal number"
    if field.data_type == "Date" and not _is_date(value):
        return f"Date field {field.field_id} accepts only a date (YYYY-MM-DD or MM/DD/YYYY)"
    if field.data_type == "RadioButton" and field.choices and value not in field.choices:
        return f"RadioButton field {field.field_id} accepts only one of its choices"
    if field.max_length > 0 and len(value) > field.max_length:
        return f"value for field {field.field_id} is longer than {field.max_length}"
    return None


def _is_date(value: str) -> bool:
    for date_format in DATE_FORMATS:
        try:
            datetime.strptime(value, date_format)
        except ValueError:
            continue
        return True
    return False


def rows_from_file(body: ImportFile, fields: Mapping[int, FieldRecord]) -> list[ImportRow]:
    """Decode the base64 file of an ImportFile body into rows, per its mappings."""
    email_columns = [m.fileColumn for m in body.fileMappings if m.fileColumnType == "Email"]
    if len(email_columns) != 1:
        raise invalid_parameter("fileMappings must map exactly one column of type Email.")
    field_columns: list[tuple[int, int, str | None]] = []
    for mapping in body.fileMappings:
        if mapping.fileColumnType != "SegmentationField":
            continue
        if mapping.segmentationFieldId is None:
            raise invalid_parameter("fileMappings: segmentationFieldId is required.")
        if mapping.segmentationFieldId not in fields:
            raise invalid_parameter(
                f"fileMappings: segmentationFieldId {mapping.segmentationFieldId} is not a "
                "profile field of this list."
            )
        field_columns.append(
            (mapping.fileColumn, mapping.segmentationFieldId, mapping.defaultValue)
        )
    if len(body.fileDelimiter) != 1:
        raise invalid_parameter("fileDelimiter must be a single character.")
    if body.textQualifier is not None and len(body.textQualifier) > 1:
        raise invalid_parameter("textQualifier must be a single character.")
    records = _parse_csv(_decode(body.fileStream), body.fileDelimiter, body.textQualifier)
    if body.hasColumnNames:
        records = records[1:]
    email_column = email_columns[0]
    rows = []
    for record in records:
        if not any(cell.strip() for cell in record):
            continue
        values: dict[int, str | None] = {}
        for column, field_id, default in field_columns:
            cell = record[column].strip() if column < len(record) else ""
            values[field_id] = cell or default or None
        email = record[email_column].strip() if email_column < len(record) else ""
        rows.append(ImportRow(email=email, values=values))
    return rows


def rows_from_json(
    contacts: Sequence[ContactSegmentationFieldValues], fields: Mapping[int, FieldRecord]
) -> list[ImportRow]:
    """Rows of the JSON profile-field route; any unusable value rejects the whole request."""
    rows = []
    for index, contact in enumerate(contacts):
        values: dict[int, str | None] = {}
        for item in contact.segmentationFieldValues:
            field = fields.get(item.segmentationFieldId)
            where = f"[{index}].segmentationFieldValues"
            if field is None:
                raise invalid_parameter(
                    f"{where}: segmentationFieldId {item.segmentationFieldId} is not a profile "
                    "field of this list."
                )
            problem = value_problem(field, item.value)
            if problem:
                raise invalid_parameter(f"{where}: {problem}.")
            values[item.segmentationFieldId] = item.value
        rows.append(ImportRow(email=contact.emailAddress.strip(), values=values))
    return rows


def _decode(file_stream: str) -> str:
    try:
        raw = base64.b64decode(file_stream, validate=True)
        return raw.decode("utf-8-sig")
    except (binascii.Error, ValueError) as exc:
        raise malformed_body("fileStream is not base64 of a UTF-8 text file.") from exc


def _parse_csv(text: str, delimiter: str, qualifier: str | None) -> list[list[str]]:
    if qualifier:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter, quotechar=qualifier)
    else:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter, quoting=csv.QUOTE_NONE)
    try:
        return list(reader)
    except csv.Error as exc:
        raise ApiError(400, "ERROR_INVALID_PARAMETER", "fileStream is not a valid file.") from exc


def apply_row(
    row: ImportRow,
    contact: ContactRecord | None,
    fields: Mapping[int, FieldRecord],
    options: ImportOptions,
) -> tuple[str, ContactRecord | None]:
    """Apply one row; return its importResult and the contact (new, changed or unchanged)."""
    email = row.email.lower()
    if not is_valid_email(email):
        return INVALID_EMAIL, contact
    if contact is not None and contact.banned:
        return BANNED, contact
    if contact is not None and contact.suppressed:
        return SUPPRESSED, contact
    if options.import_type == "RemoveSubscribers":
        return _remove(contact)
    invalid = any(v is not None and value_problem(fields[f], v) for f, v in row.values.items())
    if options.import_type == "UpdateSubscribers":
        if contact is None:
            return NOT_ON_LIST, None
        if contact.subscription_state != SUBSCRIBED and not options.include_unsubscribed:
            return NOT_SUBSCRIBED, contact
        if invalid:
            return INVALID_VALUE, contact
        _set_values(contact, row.values, options.segmentation_import_type)
        return UPDATED, contact
    # AddSubscribers / AddSubscribersAndSegmentationData
    if invalid:
        return INVALID_VALUE, contact
    if contact is None:
        contact = ContactRecord(email=email)
        _set_values(contact, row.values, options.segmentation_import_type)
        return SUBSCRIBED_RESULT, contact
    if contact.subscription_state != SUBSCRIBED:
        return NOT_SUBSCRIBED, contact
    _set_values(contact, row.values, options.segmentation_import_type)
    return ALREADY_SUBSCRIBED, contact


def _remove(contact: ContactRecord | None) -> tuple[str, ContactRecord | None]:
    if contact is None:
        return NOT_ON_LIST, None
    if contact.subscription_state == UNSUBSCRIBED:
        return ALREADY_UNSUBSCRIBED, contact
    contact.subscription_state = UNSUBSCRIBED
    return UNSUBSCRIBED_RESULT, contact


def _set_values(contact: ContactRecord, values: Mapping[int, str | None], mode: str) -> None:
    """``Update`` sets the values given, ``Append`` fills only empty fields and ``Overwrite``
    also clears the fields whose cell is blank."""
    for field_id, value in values.items():
        if value is None:
            if mode == "Overwrite":
                contact.values.pop(field_id, None)
        elif mode != "Append" or field_id not in contact.values:
            contact.values[field_id] = value


def summarize(results: Sequence[str]) -> dict[str, int]:
    """ListImportSummary counts for the per-row results of a completed import."""
    counts = Counter(results)
    return {
        "alreadySubscribedCount": counts[ALREADY_SUBSCRIBED],
        "alreadyUnsubscribedCount": counts[ALREADY_UNSUBSCRIBED],
        "bannedCount": counts[BANNED],
        "invalidEmailCount": counts[INVALID_EMAIL],
        "previouslyUnsubscribedCount": counts[NOT_SUBSCRIBED],
        "processedCount": len(results),
        "skippedCount": counts[NOT_ON_LIST] + counts[NOT_SUBSCRIBED] + counts[INVALID_VALUE],
        "subscribedCount": counts[SUBSCRIBED_RESULT],
        "suppressedCount": counts[SUPPRESSED],
        "unsubscribedCount": counts[UNSUBSCRIBED_RESULT],
    }
