"""Records as Listrak's JSON shapes (the Swagger definitions' property names)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .records import ContactRecord, FieldRecord, GroupRecord, ImportRecord, ListRecord


def timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def list_json(record: ListRecord) -> dict[str, Any]:
    return {
        "listId": record.list_id,
        "listName": record.name,
        "bounceHandling": "Standard",
        "bounceUnsubscribeCount": 3,
        "createDate": timestamp(record.created),
        "enableDoubleOptIn": False,
    }


def group_json(group: GroupRecord) -> dict[str, Any]:
    return {
        "segmentationFieldGroupId": group.group_id,
        "segmentationFieldGroupName": group.name,
        "position": group.position,
    }


def field_json(field: FieldRecord) -> dict[str, Any]:
    return {
        "segmentationFieldId": field.field_id,
        "segmentationFieldName": field.name,
        "segmentationFieldGroupId": field.group_id,
        "dataType": field.data_type,
        "maxLength": field.max_length,
        "position": field.position,
    }


def contact_json(contact: ContactRecord, fields: Mapping[int, FieldRecord]) -> dict[str, Any]:
    """A Contact with one value per requested field (``""`` when the contact has none)."""
    digest = hashlib.sha256(contact.email.encode("utf-8")).hexdigest()
    return {
        "emailAddress": contact.email,
        "emailKey": digest[:32],
        "universalEmailKey": digest,
        "subscriptionState": contact.subscription_state,
        "subscribeDate": timestamp(contact.subscribed),
        "segmentationFieldValues": [
            {
                "segmentationFieldGroupId": field.group_id,
                "segmentationFieldId": field_id,
                "value": contact.values.get(field_id, ""),
            }
            for field_id, field in fields.items()
        ],
    }


def import_json(record: ImportRecord) -> dict[str, Any]:
    return {
        "importFileId": record.import_id,
        "importFileName": record.file_name,
        "importDate": timestamp(record.created),
    }


def import_contacts_json(record: ImportRecord, results: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"emailAddress": row.email, "importResult": result}
        for row, result in zip(record.rows, results, strict=True)
    ]
