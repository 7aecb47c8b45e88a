"""Pure: turn planned changes into Listrak import files (CSV bytes, mappings, names, parts)."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from audience_sync.listrak.models import (
    ContactSegmentationFieldValue,
    ContactSegmentationFieldValues,
    ImportFile,
    ImportFileMapping,
)

if TYPE_CHECKING:
    import pyarrow as pa

EMAIL_HEADER = "EmailAddress"
DELIMITER = ","
TEXT_QUALIFIER = '"'


@dataclass(frozen=True)
class ImportPart:
    """One import file's worth of ``(email, value)`` rows, in email order."""

    part: int
    body: bytes
    first_email: str
    last_email: str
    row_count: int
    blanks: int = 0  # rows with a blank value (a trait's clear)


def import_file_name(
    installation_id: str, run_id: int, audience_key: str, field_id: int, part: int
) -> str:
    """Deterministic, so a resumed run can find an import whose POST answer was lost; the
    installation id keeps names unique when run ids restart (a recreated state database, or
    two deployments sharing one Listrak account)."""
    return (
        f"audience-sync_{installation_id}_run{run_id}_{audience_key}_field{field_id}_part{part}.csv"
    )


def split_into_parts(
    rows: Iterable[tuple[str, str]], *, column_name: str, max_bytes: int
) -> Iterator[ImportPart]:
    """Write rows as CSV (with a header), starting a new part before ``max_bytes`` is exceeded."""
    header = _csv_line((EMAIL_HEADER, column_name))
    part = 1
    buffer = io.BytesIO()
    first = last = ""
    count = blanks = 0
    for email, value in rows:
        line = _csv_line((email, value))
        if count and buffer.tell() + len(line) > max_bytes:
            yield ImportPart(part, buffer.getvalue(), first, last, count, blanks)
            part += 1
            buffer = io.BytesIO()
            count = blanks = 0
        if count == 0:
            buffer.write(header)
            first = email
        buffer.write(line)
        last = email
        count += 1
        blanks += not value
    if count:
        yield ImportPart(part, buffer.getvalue(), first, last, count, blanks)


def split_batches_into_parts(
    batches: Iterable[pa.RecordBatch], *, column_name: str, max_bytes: int
) -> Iterator[ImportPart]:
    """:func:`split_into_parts` of Arrow batches of ``(email, value)`` strings, the same bytes
    and parts: the lines are built and measured column-wise, and a part's body is a slice of
    the lines' buffer; only rows that need quoting (or have a blank value) are written one by
    one."""
    import numpy as np
    import pyarrow.compute as pc

    header = _csv_line((EMAIL_HEADER, column_name))
    part = 1
    pieces: list[bytes] = []
    size = 0  # bytes of the part being filled, header included; 0 before its first row
    first = last = ""
    count = blanks = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        emails, values = batch.column(0), batch.column(1)
        lines = _csv_lines(emails, values)
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[: len(lines) + 1]
        data = lines.buffers()[2]
        blank_before = np.concatenate(
            ([0], np.cumsum(pc.equal(values, "").to_numpy(zero_copy_only=False)))
        )
        start = 0
        while start < len(lines):
            if count == 0:
                size = len(header)
            # The rows that still fit: line ends measured from this part's first row.
            room = max_bytes - size + int(offsets[start])
            end = int(np.searchsorted(offsets[start + 1 :], room, side="right")) + start
            if count == 0:
                end = max(end, start + 1)  # a part holds at least one row
            if end > start:
                if count == 0:
                    pieces.append(header)
                    first = emails[start].as_py()
                pieces.append(data[int(offsets[start]) : int(offsets[end])].to_pybytes())
                size += int(offsets[end] - offsets[start])
                count += end - start
                blanks += int(blank_before[end] - blank_before[start])
                last = emails[end - 1].as_py()
                start = end
            if start < len(lines):
                yield ImportPart(part, b"".join(pieces), first, last, count, blanks)
                part += 1
                pieces, count, blanks = [], 0, 0
    if count:
        yield ImportPart(part, b"".join(pieces), first, last, count, blanks)


def _csv_lines(emails: pa.Array, values: pa.Array) -> pa.Array:
    """Each row's CSV line, as :func:`_csv_line` writes it, as one unsliced string array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    quoted = pc.or_(
        pc.match_substring_regex(emails, r'[,"\r\n]|^$'),
        pc.match_substring_regex(values, r'[,"\r\n]|^$'),
    )
    lines = pc.binary_join_element_wise(
        pc.binary_join_element_wise(emails, values, ","), pa.scalar("\r\n"), ""
    )
    if pc.any(quoted).as_py():
        rows = pc.indices_nonzero(quoted).to_pylist()
        written = [_csv_line((emails[i].as_py(), values[i].as_py())).decode("utf-8") for i in rows]
        lines = pc.replace_with_mask(lines, quoted, pa.array(written, type=pa.string()))
    return pa.concat_arrays([lines]) if lines.offset else lines


def build_import_file(
    part: ImportPart, *, file_name: str, field_id: int, segmentation_import_type: str = "Update"
) -> ImportFile:
    """An ``UpdateSubscribers`` import: it updates contacts already on the list, never adds.
    ``Overwrite`` (a trait's part with clears): a blank cell clears the mapped field."""
    return ImportFile(
        fileName=file_name,
        fileDelimiter=DELIMITER,
        textQualifier=TEXT_QUALIFIER,
        hasColumnNames=True,
        fileStream=base64.b64encode(part.body).decode("ascii"),
        fileMappings=[
            ImportFileMapping(fileColumn=0, fileColumnType="Email"),
            ImportFileMapping(
                fileColumn=1, fileColumnType="SegmentationField", segmentationFieldId=field_id
            ),
        ],
        importType="UpdateSubscribers",
        segmentationImportType=segmentation_import_type,
        suppressEmailNotifications=True,
        triggerJourney=False,
        includeUnsubscribed=False,
    )


def field_value_batch(
    rows: Iterable[tuple[str, str]], *, field_id: int
) -> list[ContactSegmentationFieldValues]:
    """The JSON body of ``POST /List/{id}/Contact/SegmentationField`` for some rows."""
    return [
        ContactSegmentationFieldValues(
            emailAddress=email,
            segmentationFieldValues=[
                ContactSegmentationFieldValue(segmentationFieldId=field_id, value=value)
            ],
        )
        for email, value in rows
    ]


_NEEDS_QUOTING = frozenset(DELIMITER + TEXT_QUALIFIER + "\r\n")


def _csv_line(values: tuple[str, str]) -> bytes:
    if all(v and _NEEDS_QUOTING.isdisjoint(v) for v in values):
        # What csv.writer writes for cells it would not quote, without building one per row.
        return (DELIMITER.join(values) + "\r\n").encode("utf-8")
    out = io.StringIO()
    csv.writer(out, delimiter=DELIMITER, quotechar=TEXT_QUALIFIER, lineterminator="\r\n").writerow(
        values
    )
    return out.getvalue().encode("utf-8")
