"""Trait sources: each member's email and trait value, read as Arrow record batches.

A :class:`TraitSource` is the trait counterpart of a
:class:`~audience_sync.sources.base.MemberSource`: ``value_batches(chunk_size)`` yields
``pa.RecordBatch`` es of at most ``chunk_size`` rows with two columns, ``email`` (string, null
where a row has none) and ``value`` (null where a member has no value):

- CSV (``value_column``): both columns read as strings, exactly as written (``412.50`` stays
  ``412.50``; formatting is :mod:`audience_sync.traits.values`' job).
- Parquet (``value_column``): ``value`` keeps the file's type (double, date32, timestamp,
  string...); dictionary columns are decoded.
- Segment event archives (``trait``, default the trait key): per profile (``userId``, else
  ``anonymousId``) the latest Identify whose ``traits`` has the trait, ordered by
  ``timestamp`` (``receivedAt`` breaks ties and stands in for a missing timestamp, then
  ``messageId``); messages without any time are ignored. ``value`` is a string: text as is,
  numbers and booleans as JSON (``412.5``, ``true``), ``null`` stays null; objects and lists
  as JSON text. The email is the winning message's, else that of the profile's latest message
  carrying one (the places of :func:`~audience_sync.sources.segment_rules.message_email`).
  Profiles are sorted in a temporary SQLite file, as the audience reader does.
- SQL (``value_column``, default ``value``): the query's email and value columns, streamed
  through SQLAlchemy with the helpers of :mod:`audience_sync.sources.sql` (``${VAR}`` URLs,
  masked credentials); ``:trait_key`` (and ``:audience_key``, the same key) and ``params`` are
  bound. ``value`` keeps the driver's type (numbers, dates, text); a column mixing types becomes
  text.

A member appearing twice in a file source keeps every row: deduplication after normalising
emails belongs to the planner. Errors are :class:`SourceError` naming the trait.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from audience_sync.errors import SourceError
from audience_sync.sources.base import SourceBase, SpecT
from audience_sync.sources.csv_columns import CsvLayout, csv_batches
from audience_sync.sources.files import resolve_paths
from audience_sync.sources.read_errors import reading, shown_path
from audience_sync.sources.segment_events import read_messages, scratch_engine
from audience_sync.sources.segment_rules import _text, message_email, parse_timestamp
from audience_sync.sources.specs import (
    CsvTraitSourceSpec,
    ParquetTraitSourceSpec,
    SegmentEventsTraitSourceSpec,
    SqlTraitSourceSpec,
)
from audience_sync.sources.sql import describe_url, error_line, open_stream, warehouse_connection

EMAIL = "email"
VALUE = "value"


class TraitSource(Protocol):
    """A complete snapshot of one trait: ``(email, value)`` rows in record batches."""

    def value_batches(self, chunk_size: int) -> Iterator[pa.RecordBatch]: ...

    @property
    def notes(self) -> dict[str, int]: ...

    def describe(self) -> str: ...


TraitSourceSpec = (
    CsvTraitSourceSpec | ParquetTraitSourceSpec | SqlTraitSourceSpec | SegmentEventsTraitSourceSpec
)


def build_trait_source(spec: TraitSourceSpec, *, base_dir: Path, trait_key: str) -> TraitSource:
    """The reader for a trait's ``source``; relative paths resolve against ``base_dir``."""
    if isinstance(spec, CsvTraitSourceSpec):
        return CsvTraitSource(spec, base_dir=base_dir, audience_key=trait_key)
    if isinstance(spec, ParquetTraitSourceSpec):
        return ParquetTraitSource(spec, base_dir=base_dir, audience_key=trait_key)
    if isinstance(spec, SegmentEventsTraitSourceSpec):
        return SegmentEventsTraitSource(spec, base_dir=base_dir, audience_key=trait_key)
    return SqlTraitSource(spec, base_dir=base_dir, audience_key=trait_key)


def _record_batch(emails: pa.Array, values: pa.Array) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([emails, values], names=[EMAIL, VALUE])


def _slices(batch: pa.RecordBatch, size: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, batch.num_rows, size):
        yield batch.slice(start, size)


def _decoded(column: pa.Array) -> pa.Array:
    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


class _TraitSourceBase(SourceBase[SpecT]):
    def value_batches(self, chunk_size: int) -> Iterator[pa.RecordBatch]:
        """``(email, value)`` batches of at most ``chunk_size`` rows; errors as :meth:`chunks`."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        try:
            for batch in self._guarded(self._read_values(chunk_size)):
                yield from _slices(batch, chunk_size)
        except SourceError as exc:
            # the shared readers name an "audience"; here it is a trait
            prefix = f"audience {self._audience_key!r}:"
            message = str(exc)
            if not message.startswith(prefix):
                raise
            raise SourceError(f"trait {self._audience_key!r}:{message[len(prefix) :]}") from None

    def _read_values(self, chunk_size: int) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError

    def _missing_columns(self, path: Path, columns: list[str], wanted: list[str]) -> None:
        absent = [c for c in wanted if c not in columns]
        if absent:
            raise SourceError(
                f"trait {self._audience_key!r}: {shown_path(path, self._base_dir)} has no "
                f"column {absent[0]!r} (columns: {', '.join(columns) or 'none'})"
            )


class CsvTraitSource(_TraitSourceBase[CsvTraitSourceSpec]):
    """The email and value columns of CSV files, both as strings."""

    def describe(self) -> str:
        return f"csv:{self._spec.path}"

    def _read_values(self, chunk_size: int) -> Iterator[pa.RecordBatch]:
        paths = resolve_paths(self._spec.path, self._base_dir, self._audience_key)
        self._notes["files"] = len(paths)
        layout = CsvLayout(
            delimiter=self._spec.delimiter,
            encoding=self._spec.encoding,
            owner=f"trait {self._audience_key!r}",
            base_dir=self._base_dir,
            blank_is_null=True,
        )
        columns = [self._spec.email_column, self._spec.value_column]
        for path in paths:
            with reading(path, base_dir=self._base_dir, audience_key=self._audience_key):
                for batch in csv_batches(path, layout, columns, chunk_size):
                    yield _record_batch(batch.column(0), batch.column(1))


class ParquetTraitSource(_TraitSourceBase[ParquetTraitSourceSpec]):
    """The email (strings) and value (any type) columns of Parquet files."""

    def describe(self) -> str:
        return f"parquet:{self._spec.path}"

    def _read_values(self, chunk_size: int) -> Iterator[pa.RecordBatch]:
        paths = resolve_paths(self._spec.path, self._base_dir, self._audience_key)
        self._notes["files"] = len(paths)
        email, value = self._spec.email_column, self._spec.value_column
        for path in paths:
            with reading(path, base_dir=self._base_dir, audience_key=self._audience_key):
                parquet = pq.ParquetFile(path)
                schema = parquet.schema_arrow
                self._missing_columns(path, list(schema.names), [email, value])
                email_type = schema.field(email).type
                if pa.types.is_dictionary(email_type):
                    email_type = email_type.value_type
                if not (pa.types.is_string(email_type) or pa.types.is_large_string(email_type)):
                    raise SourceError(
                        f"trait {self._audience_key!r}: column {email!r} of "
                        f"{shown_path(path, self._base_dir)} holds {email_type}, not strings"
                    )
                for batch in parquet.iter_batches(batch_size=chunk_size, columns=[email, value]):
                    yield _record_batch(
                        _decoded(batch.column(email)), _decoded(batch.column(value))
                    )


def values_array(values: list[Any]) -> pa.Array:
    """The values with the type Arrow infers; a mix of types (or none it knows) as text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


class SqlTraitSource(_TraitSourceBase[SqlTraitSourceSpec]):
    """Runs the trait's query and yields its email and value columns, ``chunk_size`` rows at a
    time. ``notes``: ``rows``."""

    def describe(self) -> str:
        return f"sql:{describe_url(self._spec.url)}"

    @property
    def spec(self) -> SqlTraitSourceSpec:
        return self._spec

    def query_values(self) -> dict[str, Any]:
        """The values of the query's bound parameters it uses: ``:audience_key``,
        ``:trait_key`` and the configured params."""
        wanted = set(text(self._spec.query).compile().params)
        bound: dict[str, Any] = {
            "audience_key": self._audience_key,
            "trait_key": self._audience_key,
            **self._spec.params,
        }
        return {k: v for k, v in bound.items() if k in wanted}

    def scrub(self, message: str) -> str:
        """``message`` with the URL's substituted values, its password and the configured
        parameter values masked."""
        from audience_sync.sources.sql import interpolate_env

        resolved = interpolate_env(
            self._spec.url, self._environ, self._audience_key, masked=self._param_texts()
        )
        return resolved.scrub(message)

    def _param_texts(self) -> list[str]:
        """The configured parameters as a database error could quote them."""
        return [str(value) for value in self._spec.params.values()]

    def _read_values(self, chunk_size: int) -> Iterator[pa.RecordBatch]:
        statement = text(self._spec.query).bindparams(**self.query_values())
        self._notes["rows"] = 0
        with (
            warehouse_connection(
                self._spec.url,
                base_dir=self._base_dir,
                audience_key=self._audience_key,
                environ=self._environ,
                masked=self._param_texts(),
            ) as (connection, _),
            open_stream(connection, statement, chunk_size) as result,
        ):
            keys = list(result.keys())
            email, value = self._spec.email_column, self._spec.value_column
            absent = [c for c in (email, value) if c not in keys]
            if absent:
                raise SourceError(
                    f"trait {self._audience_key!r}: the query returns no column {absent[0]!r} "
                    f"(columns: {', '.join(keys) or 'none'})"
                )
            email_at, value_at = keys.index(email), keys.index(value)
            for rows in result.partitions(chunk_size):
                self._notes["rows"] += len(rows)
                emails = [None if r[email_at] is None else str(r[email_at]) for r in rows]
                yield _record_batch(
                    pa.array(emails, type=pa.string()), values_array([r[value_at] for r in rows])
                )


_TABLE = "trait_events"
_CREATE = f"""
CREATE TABLE {_TABLE} (
    profile TEXT NOT NULL, message_id TEXT, order_time INTEGER, received_at INTEGER,
    has_trait INTEGER NOT NULL, value TEXT, email TEXT
)"""
_INSERT = f"INSERT INTO {_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)"
# per profile: the latest message stating the trait, and the latest one carrying an email
_DECIDE = f"""
WITH ranked AS (
    SELECT profile, value, email, has_trait,
        ROW_NUMBER() OVER (
            PARTITION BY profile, has_trait
            ORDER BY order_time DESC, received_at IS NULL, received_at DESC,
                     message_id IS NULL, message_id DESC
        ) AS n_trait,
        ROW_NUMBER() OVER (
            PARTITION BY profile, email IS NULL
            ORDER BY order_time DESC, received_at IS NULL, received_at DESC,
                     message_id IS NULL, message_id DESC, email DESC
        ) AS n_email
    FROM {_TABLE}
    WHERE order_time IS NOT NULL
)
SELECT w.profile, w.value, COALESCE(w.email, e.email) AS email
FROM ranked AS w
LEFT JOIN ranked AS e ON e.profile = w.profile AND e.email IS NOT NULL AND e.n_email = 1
WHERE w.has_trait = 1 AND w.n_trait = 1
ORDER BY w.profile
"""


def trait_value(message: Mapping[str, Any], trait: str) -> tuple[bool, str | None]:
    """``(states_it, value)``: whether an Identify sets ``traits[trait]``, and its value as text."""
    if message.get("type") != "identify":
        return False, None
    traits = message.get("traits")
    if not isinstance(traits, Mapping) or trait not in traits:
        return False, None
    value = traits[trait]
    if value is None:
        return True, None
    if isinstance(value, str):
        return True, value
    return True, json.dumps(value, ensure_ascii=False, sort_keys=True)


class SegmentEventsTraitSource(_TraitSourceBase[SegmentEventsTraitSourceSpec]):
    """Each profile's latest Identify ``traits.<trait>`` from archived Segment messages.

    ``notes``: ``files``, ``events``, ``trait_events``, ``events_without_profile``,
    ``profiles`` (with the trait) and ``profiles_without_email`` (left out: nobody to send to).
    """

    @property
    def trait(self) -> str:
        return self._spec.trait or self._audience_key

    def describe(self) -> str:
        return f"segment_events:{self._spec.path}"

    def _read_values(self, chunk_size: int) -> Iterator[pa.RecordBatch]:
        paths = resolve_paths(self._spec.path, self._base_dir, self._audience_key)
        with tempfile.TemporaryDirectory(prefix="audience-sync-traits-") as scratch:
            engine = scratch_engine(Path(scratch))
            try:
                with engine.connect() as connection:
                    connection.exec_driver_sql(_CREATE)
                    self._load(connection, paths, chunk_size)
                    rows = connection.exec_driver_sql(_DECIDE)
                    yield from self._decided(rows, chunk_size)
            except SQLAlchemyError as exc:
                raise SourceError(
                    f"trait {self._audience_key!r}: sorting the events failed: {error_line(exc)}"
                ) from exc
            finally:
                engine.dispose()

    def _load(self, connection: Any, paths: list[Path], chunk_size: int) -> None:
        counts = {"files": len(paths), "events": 0, "trait_events": 0, "events_without_profile": 0}
        batch: list[tuple[Any, ...]] = []
        for path in paths:
            with reading(path, base_dir=self._base_dir, audience_key=self._audience_key):
                for message in read_messages(path, self._audience_key, self._base_dir):
                    counts["events"] += 1
                    states, value = trait_value(message, self.trait)
                    email = message_email(message)
                    if not states and email is None:
                        continue
                    profile = _text(message.get("userId")) or _text(message.get("anonymousId"))
                    if profile is None:
                        counts["events_without_profile"] += 1
                        continue
                    counts["trait_events"] += states
                    timestamp = parse_timestamp(message.get("timestamp"))
                    received = parse_timestamp(message.get("receivedAt"))
                    batch.append(
                        (
                            profile,
                            _text(message.get("messageId")),
                            timestamp if timestamp is not None else received,
                            received,
                            int(states),
                            value,
                            email,
                        )
                    )
                    if len(batch) >= chunk_size:
                        connection.exec_driver_sql(_INSERT, batch)
                        batch = []
        if batch:
            connection.exec_driver_sql(_INSERT, batch)
        connection.commit()
        self._notes.update(counts)

    def _decided(self, rows: Any, chunk_size: int) -> Iterator[pa.RecordBatch]:
        profiles = without_email = 0
        emails: list[str] = []
        values: list[str | None] = []
        for _profile, value, email in rows:
            profiles += 1
            if email is None:
                without_email += 1
                continue
            emails.append(email)
            values.append(value)
            if len(emails) >= chunk_size:
                yield _record_batch(pa.array(emails, pa.string()), pa.array(values, pa.string()))
                emails, values = [], []
        if emails:
            yield _record_batch(pa.array(emails, pa.string()), pa.array(values, pa.string()))
        self._notes["profiles"] = profiles
        self._notes["profiles_without_email"] = without_email
