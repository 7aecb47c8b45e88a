"""``audience-sync setup``: create or verify each audience's CheckBox profile field in Listrak.

Replaces the manual steps of the seed documentation: for an audience without
``profile_field_id`` it finds or creates the profile field group (``[listrak] field_group_name``)
and a CheckBox field named after the audience key; for an audience with an id it checks that
the list and the field exist and that the field is a CheckBox.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tomlkit

from audience_sync.config import AppConfig, AudienceSettings
from audience_sync.errors import ConfigError, FatalListrakError
from audience_sync.listrak.client import ListrakClient
from audience_sync.listrak.models import (
    SegmentationField,
    SegmentationFieldCreate,
    SegmentationFieldGroupCreate,
)

CHECKBOX = "CheckBox"
CHECKBOX_MAX_LENGTH = 3  # the longest CheckBox value, "off"


@dataclass(frozen=True)
class FieldSetup:
    audience: str
    list_id: int
    field_id: int | None
    action: str  # created | found | verified | failed
    problem: str | None = None


def setup_fields(config: AppConfig, client: ListrakClient) -> list[FieldSetup]:
    return [_setup_one(config, client, audience) for audience in config.settings.audiences]


def _setup_one(config: AppConfig, client: ListrakClient, audience: AudienceSettings) -> FieldSetup:
    try:
        client.get_list(audience.list_id)
    except FatalListrakError as exc:
        if exc.status != 404:
            raise
        return _failed(audience, f"Listrak has no list {audience.list_id}")
    fields = _fields_of(client, audience.list_id)
    if audience.profile_field_id is not None:
        field = fields.get(audience.profile_field_id)
        if field is None:
            return _failed(
                audience,
                f"list {audience.list_id} has no profile field {audience.profile_field_id}",
            )
        if field.dataType != CHECKBOX:
            return _failed(
                audience,
                f"profile field {field.segmentationFieldId} is a {field.dataType}, not a CheckBox",
            )
        return FieldSetup(audience.key, audience.list_id, field.segmentationFieldId, "verified")
    group_id = _find_or_create_group(
        client, audience.list_id, config.settings.listrak.field_group_name
    )
    for field in fields.values():
        if (
            field.segmentationFieldGroupId == group_id
            and field.segmentationFieldName == audience.key
        ):
            if field.dataType != CHECKBOX:
                return _failed(audience, f"field {audience.key!r} exists but is a {field.dataType}")
            return FieldSetup(audience.key, audience.list_id, field.segmentationFieldId, "found")
    in_group = [f for f in fields.values() if f.segmentationFieldGroupId == group_id]
    field_id = client.create_field(
        audience.list_id,
        group_id,
        SegmentationFieldCreate(
            segmentationFieldName=audience.key,
            dataType=CHECKBOX,
            maxLength=CHECKBOX_MAX_LENGTH,
            position=len(in_group) + 1,
        ),
    )
    return FieldSetup(audience.key, audience.list_id, field_id, "created")


def _fields_of(client: ListrakClient, list_id: int) -> dict[int, SegmentationField]:
    fields: dict[int, SegmentationField] = {}
    for group in client.field_groups(list_id):
        for field in client.fields(list_id, group.segmentationFieldGroupId):
            fields[field.segmentationFieldId] = field.model_copy(
                update={"segmentationFieldGroupId": group.segmentationFieldGroupId}
            )
    return fields


def _find_or_create_group(client: ListrakClient, list_id: int, name: str) -> int:
    groups = client.field_groups(list_id)
    for group in groups:
        if group.segmentationFieldGroupName == name:
            return group.segmentationFieldGroupId
    return client.create_field_group(
        list_id,
        SegmentationFieldGroupCreate(segmentationFieldGroupName=name, position=len(groups) + 1),
    )


def _failed(audience: AudienceSettings, problem: str) -> FieldSetup:
    return FieldSetup(audience.key, audience.list_id, audience.profile_field_id, "failed", problem)


def write_field_ids(config_path: Path, results: list[FieldSetup]) -> int:
    """Store new field ids in the config file, keeping its comments and layout."""
    document = tomlkit.parse(config_path.read_text(encoding="utf-8"))
    ids = {
        r.audience: r.field_id for r in results if r.field_id is not None and r.action != "failed"
    }
    audiences = document.get("audiences")
    if audiences is None:
        raise ConfigError(f"{config_path} has no [[audiences]]")
    written = 0
    for table in audiences:
        key = table.get("key")
        if key in ids and table.get("profile_field_id") != ids[key]:
            table["profile_field_id"] = ids[key]
            written += 1
    config_path.write_text(tomlkit.dumps(document), encoding="utf-8")
    return written
