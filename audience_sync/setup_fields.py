"""``audience-sync setup``: create or verify each audience's CheckBox profile field in Listrak.

Replaces the manual steps of the seed documentation: for an audience without
``profile_field_id`` it finds or creates the profile field group (``[listrak] field_group_name``)
and a CheckBox field named after the audience key; for an audience with an id it checks that
the list and the field exist and that the field is a CheckBox.

Traits (``[[traits]]``) get the same treatment with their own type: a trait without
``profile_field_id`` gets a field of its ``data_type`` (Text, Numeric or Date; a RadioButton
cannot be created, Listrak's API has no way to set its choices) named after the trait key, in
the group ``[listrak] trait_field_group_name`` (default "Engage Traits"); a trait with an id has
its field read and checked. Either way the result carries the field's data type and maxLength,
which decide how values are validated and formatted (:func:`trait_field_spec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tomlkit

from audience_sync.config import AppConfig, AudienceSettings, TraitSettings
from audience_sync.errors import ConfigError, FatalListrakError
from audience_sync.listrak.client import ListrakClient
from audience_sync.listrak.models import (
    SegmentationField,
    SegmentationFieldCreate,
    SegmentationFieldGroupCreate,
)
from audience_sync.traits.values import TRAIT_DATA_TYPES, FieldSpec

CHECKBOX = "CheckBox"
CHECKBOX_MAX_LENGTH = 3  # the longest CheckBox value, "off"
# maxLength of a field setup creates for a trait without max_length: room for any sensible
# text, any canonical decimal, and a date in any configured format
TRAIT_MAX_LENGTH = {"Text": 255, "Numeric": 50, "Date": 20}


@dataclass(frozen=True)
class FieldSetup:
    audience: str
    list_id: int
    field_id: int | None
    action: str  # created | found | verified | failed
    problem: str | None = None
    kind: str = "audience"  # audience | trait
    data_type: str | None = None
    max_length: int | None = None

    @property
    def key(self) -> str:
        return self.audience


def setup_fields(config: AppConfig, client: ListrakClient) -> list[FieldSetup]:
    """One result per audience, then one per trait, in config order."""
    audiences = [_setup_one(config, client, audience) for audience in config.settings.audiences]
    traits = [_setup_trait(config, client, trait) for trait in config.settings.traits]
    return audiences + traits


def trait_field_spec(config: AppConfig, trait: TraitSettings, result: FieldSetup) -> FieldSpec:
    """How the values of ``trait`` are validated, from its field as ``setup`` read it."""
    if result.data_type is None:
        raise ConfigError(f"trait {trait.key!r}: the type of its profile field is not known")
    return FieldSpec(
        data_type=result.data_type,
        max_length=result.max_length or 0,
        choices=tuple(trait.choices or ()),
        date_format=config.settings.listrak.date_format,
    )


def read_trait_field(config: AppConfig, client: ListrakClient, trait: TraitSettings) -> FieldSetup:
    """Read and check the field of a trait that has its ``profile_field_id`` (never creates)."""
    assert trait.profile_field_id is not None, "planning fails a trait without a field id"
    return _setup_trait(config, client, trait)


def _setup_trait(config: AppConfig, client: ListrakClient, trait: TraitSettings) -> FieldSetup:
    def failed(problem: str) -> FieldSetup:
        return FieldSetup(
            trait.key, trait.list_id, trait.profile_field_id, "failed", problem, kind="trait"
        )

    def done(field: SegmentationField, action: str) -> FieldSetup:
        if field.dataType not in TRAIT_DATA_TYPES:
            return failed(
                f"profile field {field.segmentationFieldId} is a {field.dataType}; a trait "
                f"needs one of {', '.join(TRAIT_DATA_TYPES)}"
            )
        if trait.data_type is not None and field.dataType != trait.data_type:
            return failed(
                f"profile field {field.segmentationFieldId} is a {field.dataType}, "
                f"not a {trait.data_type}"
            )
        return FieldSetup(
            trait.key,
            trait.list_id,
            field.segmentationFieldId,
            action,
            kind="trait",
            data_type=field.dataType,
            max_length=field.maxLength,
        )

    try:
        client.get_list(trait.list_id)
    except FatalListrakError as exc:
        if exc.status != 404:
            raise
        return failed(f"Listrak has no list {trait.list_id}")
    fields = _fields_of(client, trait.list_id)
    if trait.profile_field_id is not None:
        field = fields.get(trait.profile_field_id)
        if field is None:
            return failed(f"list {trait.list_id} has no profile field {trait.profile_field_id}")
        return done(field, "verified")
    data_type = trait.data_type
    if data_type is None or data_type == "RadioButton":  # refused by the config already
        return failed("setup creates only Text, Numeric and Date fields")
    group_id = _find_or_create_group(
        client, trait.list_id, config.settings.listrak.trait_field_group_name
    )
    for field in fields.values():
        if field.segmentationFieldGroupId == group_id and field.segmentationFieldName == trait.key:
            return done(field, "found")
    in_group = [f for f in fields.values() if f.segmentationFieldGroupId == group_id]
    max_length = trait.max_length or TRAIT_MAX_LENGTH[data_type]
    field_id = client.create_field(
        trait.list_id,
        group_id,
        SegmentationFieldCreate(
            segmentationFieldName=trait.key,
            dataType=data_type,
            maxLength=max_length,
            position=len(in_group) + 1,
        ),
    )
    return FieldSetup(
        trait.key,
        trait.list_id,
        field_id,
        "created",
        kind="trait",
        data_type=data_type,
        max_length=max_length,
    )


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
    written = 0
    for kind, section in (("audience", "audiences"), ("trait", "traits")):
        ids = {
            r.audience: r.field_id
            for r in results
            if r.kind == kind and r.field_id is not None and r.action != "failed"
        }
        tables = document.get(section)
        if tables is None:
            if section == "audiences":
                raise ConfigError(f"{config_path} has no [[audiences]]")
            continue
        for table in tables:
            key = table.get("key")
            if key in ids and table.get("profile_field_id") != ids[key]:
                table["profile_field_id"] = ids[key]
                written += 1
    config_path.write_text(tomlkit.dumps(document), encoding="utf-8")
    return written
