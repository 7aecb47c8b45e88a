"""Reading an audience's SQLite state packed by SQLite (one text per column and chunk) on a
thread: it gives the rows a plain read gives, chunk after chunk in key order, fails rather
than split a key wrongly, and leaves the application's WAL database usable."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from audience_sync.errors import StateError
from audience_sync.plan import state_io
from audience_sync.plan.sqlite_packed import PackedReadError, packed_batches
from audience_sync.state import ledger, migrate
from audience_sync.state.db import make_engine
from audience_sync.state.tables import memberships
from tests.state.sqlite_writer import read_while_the_app_writes

FLAGGED = pa.schema([pa.field("email", pa.string()), pa.field("flags", pa.int64())])
STATE_SQL = (
    "SELECT email, CASE WHEN value = 'on' THEN 1 ELSE 0 END "
    "+ CASE WHEN desired = 'on' THEN 2 ELSE 0 END FROM memberships WHERE audience_id = :a "
    "AND (value = 'on' OR desired = 'on')"
)
POSITIONAL_SQL = STATE_SQL.replace(":a", "?")
MEMBERS = 50
# Addresses as the state holds them: ASCII, and Unicode local parts (several bytes a character).
LOCAL_PARTS = ("m", "zoë", "ü.x", "名")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def add_audience(engine: Engine, key: str, members: int) -> int:
    """``members`` rows: value and desired cycle through on, off and none, so the flags take
    every value 0-3 and some rows fall outside the query."""
    states = ("on", "off", None)
    with engine.begin() as conn:
        audience_id = ledger.upsert_audience(conn, key=key, list_id=1, field_id=2, source="t")
        if members:
            conn.execute(
                insert(memberships),
                [
                    {
                        "audience_id": audience_id,
                        "email": f"{LOCAL_PARTS[i % len(LOCAL_PARTS)]}{i}@{key}.example.com",
                        "value": states[i % 3],
                        "desired": states[(i // 3) % 3],
                    }
                    for i in range(members)
                ],
            )
    return audience_id


def plain_rows(path: Path, audience_id: int) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(f"{POSITIONAL_SQL} ORDER BY email", (audience_id,)).fetchall()
    return [(email, int(flags)) for email, flags in rows]


@pytest.mark.parametrize("chunk_rows", [4, 29, 1000])
def test_packed_chunks_give_the_plain_reads_rows_in_key_order(
    engine: Engine, tmp_path: Path, chunk_rows: int
) -> None:
    audience_id = add_audience(engine, "a", MEMBERS)
    add_audience(engine, "b", 20)  # another audience's rows stay out
    path = tmp_path / "state.db"
    expected = plain_rows(path, audience_id)
    # 29 rows: a chunk of 29 is full, and the read asks once more to find nothing after it.
    assert len(expected) == 29
    assert {flags for _, flags in expected} == {1, 2, 3}
    batches = list(
        packed_batches(path, POSITIONAL_SQL, [audience_id], FLAGGED, chunk_rows=chunk_rows)
    )
    assert [len(b) for b in batches][:-1] == [chunk_rows] * (len(batches) - 1)
    assert all(b.schema == FLAGGED for b in batches)
    got = [(r["email"], r["flags"]) for b in batches for r in b.to_pylist()]
    assert got == expected


def test_no_rows_is_no_batches(engine: Engine, tmp_path: Path) -> None:
    audience_id = add_audience(engine, "a", 0)
    assert list(packed_batches(tmp_path / "state.db", POSITIONAL_SQL, [audience_id], FLAGGED)) == []


@pytest.mark.parametrize(
    ("email", "flags"),
    [("line\nbreak@example.com", 1), ("ok@example.com", 12), ("ok@example.com", -1)],
)
def test_a_key_or_digit_that_does_not_pack_fails_the_read(
    tmp_path: Path, email: str, flags: int
) -> None:
    path = tmp_path / "raw.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (email TEXT PRIMARY KEY, flags INTEGER)")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?)", [("a@example.com", 1), (email, flags), ("z@x.com", 2)]
        )
    with pytest.raises(PackedReadError):
        list(packed_batches(path, "SELECT email, flags FROM t", [], FLAGGED))


def test_a_keyed_load_reads_on_a_thread_and_the_app_goes_on_writing(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audience_id = add_audience(engine, "a", MEMBERS)
    committed = plain_rows(tmp_path / "state.db", audience_id)
    monkeypatch.setattr("audience_sync.plan.sqlite_packed.CHUNK_ROWS", 8)
    duck = duckdb.connect()

    def read() -> None:
        state_io.load_query(
            engine, duck, "state", STATE_SQL, {"a": audience_id}, FLAGGED, keyed=True
        )

    counted = read_while_the_app_writes(engine, audience_id, read)
    loaded = duck.execute("SELECT email, flags FROM state ORDER BY email").fetchall()
    # What was committed when the thread read: not the application's uncommitted row.
    assert loaded == committed
    assert ("late@example.com", 1) in plain_rows(tmp_path / "state.db", audience_id)
    assert counted == MEMBERS + 1 + 10 + 1


def test_a_failing_keyed_load_is_one_line_naming_the_database(
    engine: Engine, capfd: pytest.CaptureFixture[str]
) -> None:
    pending = state_io.start_load(
        engine,
        duckdb.connect(),
        "state",
        "SELECT email, secret_column FROM no_such_table WHERE audience_id = :a",
        {"a": 41},
        FLAGGED,
        keyed=True,
    )
    try:
        with pytest.raises(StateError) as raised:
            pending.finish()
    finally:
        pending.close()
    assert str(raised.value).endswith("state.db: reading state failed")
    assert "secret_column" not in str(raised.value)
    assert capfd.readouterr() == ("", "")
