"""The segment_events_sql source: the same rules evaluated by SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    select,
)

from audience_sync.errors import SourceError
from audience_sync.normalize import normalize_chunk
from audience_sync.sources import build_source
from audience_sync.sources.segment_events_sql import SegmentEventsSqlSource
from audience_sync.sources.specs import SegmentEventsSqlSourceSpec
from tests.sources.source_helpers import PgWarehouse, read_all

KEY = "first_time_shopper"
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def row(
    mid: str | None, user: str | None, value: bool | None, minute: int, **extra: Any
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "msg_id": mid,
        "user_id": user,
        "anonymous_id": None,
        "type": "track",
        "event": "Audience Entered" if value else "Audience Exited",
        "audience_key": KEY if value is not None else None,
        "value": value,
        "email": None,
        "timestamp": at(minute),
        "received_at": at(minute),
    }
    return {**base, **extra}


ROWS = [
    row("m2", "u1", False, 20),  # u1 exits after entering (stored first)
    row("m1", "u1", True, 10, email=" Ann@Example.COM "),
    row("m3", "u2", True, 5, type="identify", event=None, email="BOB@example.com"),
    row("m3", "u2", True, 5, type="identify", event=None, email="BOB@example.com"),  # dup
    row("m4", "u3", False, 7, received_at=at(8)),
    row("m5", "u3", True, 7, received_at=at(9)),  # same timestamp, received later: wins
    row("m6", "u3", None, 1, email="carol@example.com", type="identify", event=None),
    row("m7", "u4", True, 3),  # member without any email
    row("m8", None, True, 3, email="ghost@example.com"),  # no profile
    row("m9", "u5", True, 3, audience_key="other", email="e@example.com"),
]


def build_table(url: str, schema: str | None) -> Table:
    metadata = MetaData(schema=schema)
    events = Table(
        "engage_events",
        metadata,
        Column("msg_id", String),
        Column("user_id", String),
        Column("anonymous_id", String),
        Column("type", String),
        Column("event", String),
        Column("audience_key", String),
        Column("value", Boolean),
        Column("email", String),
        Column("timestamp", DateTime(timezone=True)),
        Column("received_at", DateTime(timezone=True)),
    )
    engine = create_engine(url)
    with engine.begin() as db:
        metadata.create_all(db)
        db.execute(insert(events), ROWS)
    engine.dispose()
    return events


def source_for(base_dir: Path, url: str, table: str, key: str = KEY) -> SegmentEventsSqlSource:
    spec = SegmentEventsSqlSourceSpec.model_validate(
        {
            "kind": "segment_events_sql",
            "url": url,
            "table": table,
            "columns": {"message_id": "msg_id"},
        }
    )
    source = build_source(spec, base_dir=base_dir, audience_key=key)
    assert isinstance(source, SegmentEventsSqlSource)
    return source


EXPECTED_NOTES = {
    "membership_events": 8,
    "duplicate_messages": 1,
    "events_without_profile": 1,
    "events_without_timestamp": 0,
    "profiles": 4,
    "profiles_without_email": 1,
}


def test_sqlite_warehouse(tmp_path: Path) -> None:
    build_table(f"sqlite:///{tmp_path / 'dw.db'}", None)
    source = source_for(tmp_path, "sqlite:///dw.db", "engage_events")
    assert sorted(normalize_chunk(read_all(source)).emails) == [
        "bob@example.com",
        "carol@example.com",
    ]
    assert source.notes == EXPECTED_NOTES
    assert source.describe() == "segment_events_sql:sqlite:///dw.db/engage_events"


def test_missing_table_names_the_audience(tmp_path: Path) -> None:
    source = source_for(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}", "nowhere")
    with pytest.raises(SourceError, match=rf"'{KEY}': query against .*nowhere"):
        read_all(source)


def test_table_name_is_validated() -> None:
    with pytest.raises(ValueError, match="table"):
        SegmentEventsSqlSourceSpec.model_validate(
            {"kind": "segment_events_sql", "url": "sqlite://", "table": "t; drop table x"}
        )


@pytest.mark.postgres
class TestPostgres:
    def test_same_result_as_sqlite(self, tmp_path: Path, pg_warehouse: PgWarehouse) -> None:
        build_table(pg_warehouse.url, pg_warehouse.schema)
        source = source_for(tmp_path, pg_warehouse.url, f"{pg_warehouse.schema}.engage_events")
        chunks = list(source.chunks(1))
        assert sorted(normalize_chunk([e for c in chunks for e in c]).emails) == [
            "bob@example.com",
            "carol@example.com",
        ]
        assert [len(c) for c in chunks] == [1, 1]
        assert source.notes == EXPECTED_NOTES

    def test_injection_shaped_key_stays_inert(
        self, tmp_path: Path, pg_warehouse: PgWarehouse
    ) -> None:
        events = build_table(pg_warehouse.url, pg_warehouse.schema)
        crafted = f"x' or '1'='1'; drop table {pg_warehouse.schema}.engage_events; --"
        source = source_for(
            tmp_path, pg_warehouse.url, f"{pg_warehouse.schema}.engage_events", crafted
        )
        assert read_all(source) == []
        engine = create_engine(pg_warehouse.url)
        with engine.connect() as db:
            assert len(db.execute(select(events)).all()) == len(ROWS)
        engine.dispose()
