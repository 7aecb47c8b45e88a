"""Configuration models of the member sources (the ``source = {...}`` table of an audience)."""

from __future__ import annotations

import codecs
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from audience_sync.urls import check_source_url

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_$]*$"
_TABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$"

ParamValue = str | int | float | bool
SourceUrl = Annotated[str, Field(min_length=1), AfterValidator(check_source_url)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsvSourceSpec(_Spec):
    """CSV file(s): a path or glob relative to the config file; ``.gz`` is read transparently."""

    kind: Literal["csv"]
    path: str = Field(min_length=1)
    email_column: str = Field(default="email", min_length=1)
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(
                "unknown encoding; expected a Python codec name such as 'utf-8' or 'latin-1'"
            ) from None
        return value


class ParquetSourceSpec(_Spec):
    """Parquet file(s): a path or glob; compression inside the file (gzip, snappy, zstd...)."""

    kind: Literal["parquet"]
    path: str = Field(min_length=1)
    email_column: str = Field(default="email", min_length=1)


class SqlSourceSpec(_Spec):
    """A query against any SQLAlchemy URL returning one row per member.

    ``url`` may contain ``${ENV_VAR}`` references, substituted verbatim from the environment
    when the source is read. ``:audience_key`` and every name in ``params`` are bound
    parameters of ``query``, never formatted into its text.
    """

    kind: Literal["sql"]
    url: SourceUrl
    query: str = Field(min_length=1)
    email_column: str = Field(default="email", min_length=1)
    params: dict[str, ParamValue] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _param_names(cls, params: dict[str, ParamValue]) -> dict[str, ParamValue]:
        for name in params:
            if name == "audience_key":
                raise ValueError("'audience_key' is always bound to the audience's key")
            if not _is_identifier(name):
                raise ValueError(f"parameter name {name!r} is not an identifier")
        return params


class SegmentEventsSourceSpec(_Spec):
    """JSON-lines archives of Segment messages (gzipped or not), one path or glob."""

    kind: Literal["segment_events"]
    path: str = Field(min_length=1)


class EventColumns(_Spec):
    """Column names of a flattened Segment events table (one row per message and audience)."""

    message_id: str = Field(default="message_id", pattern=_IDENTIFIER)
    user_id: str = Field(default="user_id", pattern=_IDENTIFIER)
    anonymous_id: str = Field(default="anonymous_id", pattern=_IDENTIFIER)
    type: str = Field(default="type", pattern=_IDENTIFIER)
    event: str = Field(default="event", pattern=_IDENTIFIER)
    audience_key: str = Field(default="audience_key", pattern=_IDENTIFIER)
    value: str = Field(default="value", pattern=_IDENTIFIER)
    email: str = Field(default="email", pattern=_IDENTIFIER)
    timestamp: str = Field(default="timestamp", pattern=_IDENTIFIER)
    received_at: str = Field(default="received_at", pattern=_IDENTIFIER)


class SegmentEventsSqlSourceSpec(_Spec):
    """The segment_events rules applied by the warehouse to a flattened table of events."""

    kind: Literal["segment_events_sql"]
    url: SourceUrl
    table: str = Field(pattern=_TABLE_NAME)
    columns: EventColumns = EventColumns()


def _is_identifier(name: str) -> bool:
    return name.isidentifier() and name.isascii()


SourceSpec = Annotated[
    CsvSourceSpec
    | ParquetSourceSpec
    | SqlSourceSpec
    | SegmentEventsSourceSpec
    | SegmentEventsSqlSourceSpec,
    Field(discriminator="kind"),
]


# --- computed traits: the same sources, plus where each member's value is -----------------------


class CsvTraitSourceSpec(CsvSourceSpec):
    """A CSV source of a trait: ``value_column`` holds each member's value."""

    value_column: str = Field(min_length=1)


class ParquetTraitSourceSpec(ParquetSourceSpec):
    """A Parquet source of a trait: ``value_column`` holds each member's value."""

    value_column: str = Field(min_length=1)


class SqlTraitSourceSpec(SqlSourceSpec):
    """A query of a trait: one row per member, ``value_column`` holding the value."""

    value_column: str = Field(default="value", min_length=1)


class SegmentEventsTraitSourceSpec(SegmentEventsSourceSpec):
    """Segment archives: each profile's latest Identify ``traits.<trait>`` (default: the key)."""

    trait: str | None = Field(default=None, min_length=1)


TraitSourceSpec = Annotated[
    CsvTraitSourceSpec | ParquetTraitSourceSpec | SqlTraitSourceSpec | SegmentEventsTraitSourceSpec,
    Field(discriminator="kind"),
]
