"""Members decided from JSON-lines archives of Segment messages (gzipped or not, globbed).

Deciding membership needs every event of a profile, and an audience can have millions of
profiles, so the messages are not gathered in Python: each file is streamed line by line, each
message flattened (:func:`~audience_sync.sources.segment_rules.flatten_message`) and inserted in
chunks into a temporary SQLite file, where the SQL of
:mod:`~audience_sync.sources.segment_events_sql` picks the latest event per profile and dedupes
messageIds. The temporary directory is removed when reading ends, however it ends.

A glob matching no file, an unreadable or corrupt file and a line that is not a JSON object
raise :class:`SourceError`; no member at all is left to the pipeline's empty-snapshot guard.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from audience_sync.errors import SourceError
from audience_sync.sources.base import SourceBase
from audience_sync.sources.files import resolve_paths
from audience_sync.sources.read_errors import reading, shown_path
from audience_sync.sources.segment_events_sql import events_table, stream_members
from audience_sync.sources.segment_rules import flatten_message
from audience_sync.sources.specs import EventColumns, SegmentEventsSourceSpec
from audience_sync.sources.sql import error_line

_GZIP_MAGIC = b"\x1f\x8b"
_TABLE = "events"
_CREATE_TABLE = f"""
CREATE TABLE {_TABLE} (
    message_id TEXT, user_id TEXT, anonymous_id TEXT, type TEXT, event TEXT,
    audience_key TEXT, value INTEGER, email TEXT, timestamp INTEGER, received_at INTEGER
)"""
_INSERT = f"INSERT INTO {_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def open_text(path: Path) -> IO[str]:
    """A text handle on ``path``, gunzipping when the file starts with the gzip magic bytes."""
    with path.open("rb") as probe:
        compressed = probe.read(2) == _GZIP_MAGIC
    if compressed:
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def read_messages(path: Path, audience_key: str, base_dir: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; blank lines are skipped, anything else fails.

    A line that is not a JSON object is a :class:`SourceError` naming it; failures of the
    read itself (a truncated gzip, bad bytes) are left to the caller's ``reading`` boundary.
    """
    shown = shown_path(path, base_dir)
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield _parse_line(line, shown, number, audience_key)


def _parse_line(line: str, shown: str, number: int, audience_key: str) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"audience {audience_key!r}: {shown} line {number} is not valid JSON: {exc.msg}"
        ) from None
    except RecursionError:
        raise SourceError(
            f"audience {audience_key!r}: {shown} line {number} is JSON nested too deeply"
        ) from None
    if not isinstance(message, dict):
        raise SourceError(f"audience {audience_key!r}: {shown} line {number} is not an object")
    return message


def _load(
    connection: Connection, paths: list[Path], audience_key: str, chunk_size: int, base_dir: Path
) -> dict[str, int]:
    """Flatten every message of ``paths`` into the events table; count files and messages."""
    connection.exec_driver_sql(_CREATE_TABLE)
    messages = 0
    batch: list[tuple[Any, ...]] = []
    for path in paths:
        with reading(path, base_dir=base_dir, audience_key=audience_key):
            for message in read_messages(path, audience_key, base_dir):
                messages += 1
                row = flatten_message(message, audience_key)
                if row is not None:
                    batch.append(row.as_row())
                if len(batch) >= chunk_size:
                    connection.exec_driver_sql(_INSERT, batch)
                    batch = []
    if batch:
        connection.exec_driver_sql(_INSERT, batch)
    connection.commit()
    return {"files": len(paths), "events": messages}


def scratch_engine(directory: Path) -> Engine:
    """A SQLite database in ``directory`` for sorting events: scratch space, so no journal and
    no fsync."""
    engine = create_engine(f"sqlite:///{directory / 'events.db'}")
    event.listen(engine, "connect", _fast_sqlite)
    return engine


def _fast_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=OFF")
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


class SegmentEventsSource(SourceBase[SegmentEventsSourceSpec]):
    """Members of one audience decided from archived Identify/Track messages.

    ``notes`` after reading: ``files``, ``events`` (messages read), ``membership_events``,
    ``duplicate_messages``, ``events_without_profile``, ``events_without_timestamp``,
    ``profiles`` (profiles with a membership event) and ``profiles_without_email`` (members
    that could not be reported because none of their events carried an email).
    """

    def describe(self) -> str:
        return f"segment_events:{self._spec.path}"

    def _read(self, chunk_size: int) -> Iterator[list[str | None]]:
        paths = resolve_paths(self._spec.path, self._base_dir, self._audience_key)
        with tempfile.TemporaryDirectory(prefix="audience-sync-events-") as scratch:
            engine = scratch_engine(Path(scratch))
            try:
                with engine.connect() as connection:
                    self._notes.update(
                        _load(connection, paths, self._audience_key, chunk_size, self._base_dir)
                    )
                    columns = EventColumns()
                    yield from stream_members(
                        connection,
                        events_table(_TABLE, columns),
                        columns,
                        self._audience_key,
                        chunk_size,
                        self._notes,
                    )
            except SQLAlchemyError as exc:
                raise SourceError(
                    f"audience {self._audience_key!r}: sorting the events failed: {error_line(exc)}"
                ) from exc
            finally:
                engine.dispose()
