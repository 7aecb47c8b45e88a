"""A run fed by each kind of source ends with Listrak holding the expected membership."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Boolean, Column, DateTime, MetaData, String, Table, create_engine, insert

from tests.harness import Harness

KEY = "first_time_shopper"
CONTACTS = [f"shopper{i}@example.com" for i in range(6)]
# As sources deliver them: mixed case and stray blanks, normalised by the job.
RAW = {e: (f"  {e.upper()} " if i % 2 else e) for i, e in enumerate(CONTACTS)}
FIRST = CONTACTS[:5]
SECOND = CONTACTS[1:]  # shopper0 left, shopper5 joined
T0 = datetime(2026, 11, 1, tzinfo=UTC)

Writer = Callable[[Harness, int], str]  # (harness, round 1|2) -> the source's inline TOML


def members_of(round_: int) -> list[str]:
    return FIRST if round_ == 1 else SECOND


def write_csv(h: Harness, round_: int) -> str:
    h.set_members(KEY, [RAW[e] for e in members_of(round_)])
    return f'{{ kind = "csv", path = "members/{KEY}.csv" }}'


def write_parquet(h: Harness, round_: int) -> str:
    table = pa.table({"Email": [RAW[e] for e in members_of(round_)]})
    pq.write_table(table, h.root / "members.parquet", compression="gzip")
    return '{ kind = "parquet", path = "members.parquet", email_column = "Email" }'


def _warehouse(h: Harness) -> tuple[str, Path]:
    path = h.root / "warehouse.db"
    return f"sqlite:///{path}", path


def write_sql(h: Harness, round_: int) -> str:
    url, path = _warehouse(h)
    path.unlink(missing_ok=True)
    traits = Table(
        "audience_traits",
        MetaData(),
        Column("email", String),
        Column("audience_key", String),
        Column("member", Boolean),
    )
    engine = create_engine(url)
    with engine.begin() as conn:
        traits.create(conn)
        rows = [
            {"email": RAW[e], "audience_key": KEY, "member": e in members_of(round_)}
            for e in CONTACTS
        ]
        rows.append({"email": "other@example.com", "audience_key": "other", "member": True})
        conn.execute(insert(traits), rows)
    engine.dispose()
    query = (
        "select email from audience_traits where audience_key = :audience_key and member = :member"
    )
    return f'{{ kind = "sql", url = "{url}", params = {{ member = true }}, query = "{query}" }}'


def _events(round_: int) -> list[dict[str, Any]]:
    """Engage's messages so far: every entry, then (round 2) one exit and one late entry,
    delivered out of order and with a duplicate."""
    events: list[dict[str, Any]] = [
        {
            "type": "track",
            "messageId": f"enter-{i}",
            "userId": f"u{i}",
            "event": "Audience Entered",
            "properties": {"audience_key": KEY, KEY: True},
            "context": {"traits": {"email": RAW[e]}},
            "timestamp": (T0 + timedelta(minutes=i)).isoformat(),
        }
        for i, e in enumerate(FIRST)
    ]
    if round_ == 2:
        events.insert(
            0,
            {
                "type": "track",
                "messageId": "exit-0",
                "userId": "u0",
                "event": "Audience Exited",
                "properties": {"audience_key": KEY, KEY: False},
                "context": {"traits": {"email": RAW[CONTACTS[0]]}},
                "timestamp": (T0 + timedelta(days=1)).isoformat(),
            },
        )
        events.append(
            {
                "type": "identify",
                "messageId": "join-5",
                "userId": "u5",
                "traits": {"email": RAW[CONTACTS[5]], KEY: True},
                "timestamp": (T0 + timedelta(days=1)).isoformat(),
            }
        )
        events.append(events[-1])  # delivered twice
    return events


def write_segment_events(h: Harness, round_: int) -> str:
    folder = h.root / "archive"
    folder.mkdir(exist_ok=True)
    lines = "".join(json.dumps(e) + "\n" for e in _events(round_))
    with gzip.open(folder / "engage.jsonl.gz", "wt", encoding="utf-8") as out:
        out.write(lines)
    return '{ kind = "segment_events", path = "archive/*.jsonl.gz" }'


def write_segment_events_sql(h: Harness, round_: int) -> str:
    url, path = _warehouse(h)
    path.unlink(missing_ok=True)
    table = Table(
        "engage_events",
        MetaData(),
        *(
            Column(n, String)
            for n in (
                "message_id",
                "user_id",
                "anonymous_id",
                "type",
                "event",
                "audience_key",
                "email",
            )
        ),
        Column("value", Boolean),
        Column("timestamp", DateTime(timezone=True)),
        Column("received_at", DateTime(timezone=True)),
    )
    rows = []
    for e in _events(round_):
        props = e.get("properties") or {}
        traits = e.get("traits") or {}
        context = e.get("context") or {}
        stamp = datetime.fromisoformat(str(e["timestamp"]))
        rows.append(
            {
                "message_id": e["messageId"],
                "user_id": e["userId"],
                "anonymous_id": None,
                "type": e["type"],
                "event": e.get("event"),
                "audience_key": KEY,
                "value": props.get(KEY, traits.get(KEY)),
                "email": traits.get("email") or context.get("traits", {}).get("email"),
                "timestamp": stamp,
                "received_at": stamp,
            }
        )
    engine = create_engine(url)
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(insert(table), rows)
    engine.dispose()
    return f'{{ kind = "segment_events_sql", url = "{url}", table = "engage_events" }}'


WRITERS: dict[str, Writer] = {
    "csv": write_csv,
    "parquet": write_parquet,
    "sql": write_sql,
    "segment_events": write_segment_events,
    "segment_events_sql": write_segment_events_sql,
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_a_run_fed_by_each_kind_reaches_the_expected_membership(
    sqlite_harness: Harness, kind: str
) -> None:
    h = sqlite_harness
    h.add_contacts(subscribed=CONTACTS)
    h.add_audience(KEY, 200, [])
    writer = WRITERS[kind]

    h.sources[KEY] = writer(h, 1)
    assert h.run().status == "succeeded"
    assert h.members_on(KEY) == set(FIRST)

    h.sources[KEY] = writer(h, 2)
    second = h.run()
    assert second.status == "succeeded"
    assert h.members_on(KEY) == set(SECOND)
    assert h.values(KEY)[CONTACTS[0]] == "off"
    assert {e: a for e, (a, _, _) in h.change_statuses(second.run_id).items()} == {
        CONTACTS[0]: "off",
        CONTACTS[5]: "on",
    }


def test_a_source_failing_midway_writes_nothing_and_sends_nothing(sqlite_harness: Harness) -> None:
    from sqlalchemy import func, select

    from audience_sync.state.tables import memberships, run_changes, snapshot_deltas

    h = sqlite_harness
    h.add_contacts(subscribed=CONTACTS)
    h.add_audience(KEY, 200, [])
    h.listrak_settings["retry_attempts"] = 1
    h.extra_toml = "[sync]\nchunk_size = 2"
    folder = h.root / "archive"
    folder.mkdir()
    good = "".join(json.dumps(e) + "\n" for e in _events(1))
    (folder / "a.jsonl").write_text(good, encoding="utf-8")
    (folder / "b.jsonl").write_text("{not json\n", encoding="utf-8")
    h.sources[KEY] = '{ kind = "segment_events", path = "archive/*.jsonl" }'
    outcome = h.run()
    assert outcome.status == "failed"
    assert KEY in (outcome.error or "")
    with h.engine.connect() as conn:
        for table in (run_changes, snapshot_deltas, memberships):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0
    assert h.import_count() == 0
