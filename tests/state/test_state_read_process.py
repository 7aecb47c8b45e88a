"""Reading SQLite state in a child process through the ADBC SQLite driver (its own copy of
SQLite): the application's WAL-mode connection goes on writing while and after the child reads,
small reads stay in-process, and a failing child is one line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from audience_sync.errors import StateError
from audience_sync.plan import state_io
from audience_sync.plan.sqlite_process import SqliteProcessRead
from audience_sync.state import ledger, migrate
from audience_sync.state.db import make_engine
from audience_sync.state.tables import memberships
from tests.state.sqlite_writer import read_while_the_app_writes

FLAGGED = pa.schema([pa.field("email", pa.string()), pa.field("flags", pa.int64())])
STATE_SQL = (
    "SELECT email, CASE WHEN value = 'on' THEN 1 ELSE 0 END FROM memberships WHERE audience_id = :a"
)
MEMBERS = 3000


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def add_audience(engine: Engine, key: str, members: int) -> int:
    with engine.begin() as conn:
        audience_id = ledger.upsert_audience(conn, key=key, list_id=1, field_id=2, source="t")
        if members:
            conn.execute(
                insert(memberships),
                [
                    {"audience_id": audience_id, "email": f"{key}{i}@example.com", "value": "on"}
                    for i in range(members)
                ],
            )
    return audience_id


def loaded(duck: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    rows, on = duck.execute("SELECT count(*), sum(flags) FROM state").fetchone() or (0, 0)
    return int(rows), int(on)


def test_the_app_writes_its_wal_database_while_and_after_a_child_reads(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_io, "PROCESS_MIN_ROWS", 1)
    audience_id = add_audience(engine, "a", MEMBERS)
    duck = duckdb.connect()

    def read() -> None:
        state_io.load_query(
            engine, duck, "state", STATE_SQL, {"a": audience_id}, FLAGGED, workdir=tmp_path
        )

    # ... and after the child has gone, the application writes and reads through the same
    # connection.
    counted = read_while_the_app_writes(engine, audience_id, read)
    assert loaded(duck) == (MEMBERS, MEMBERS)  # what was committed when the child read
    assert counted == MEMBERS + 1 + 10 + 1
    assert Path(f"{tmp_path / 'state.db'}-wal").exists()
    assert list(tmp_path.glob("state-*.arrows")) == []


def test_a_child_reads_as_the_in_process_driver_does(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audience_id = add_audience(engine, "a", MEMBERS)
    with engine.begin() as conn:
        conn.execute(
            memberships.update()
            .where(memberships.c.email.in_(["a1@example.com", "a2@example.com"]))
            .values(value="off")
        )
    tables = {}
    for name, threshold in (("in_process", MEMBERS + 1), ("child", MEMBERS)):
        monkeypatch.setattr(state_io, "PROCESS_MIN_ROWS", threshold)
        duck = duckdb.connect()
        pending = state_io.start_load(
            engine, duck, "state", STATE_SQL, {"a": audience_id}, FLAGGED, workdir=tmp_path
        )
        # Only a read of PROCESS_MIN_ROWS rows or more starts a child, which writes a file.
        assert len(list(tmp_path.glob("state-*.arrows"))) == (1 if name == "child" else 0)
        try:
            pending.finish()
        finally:
            pending.close()
        tables[name] = duck.execute("SELECT email, flags FROM state ORDER BY email").fetchall()
    assert tables["child"] == tables["in_process"]
    assert len(tables["child"]) == MEMBERS
    assert sum(flags for _, flags in tables["child"]) == MEMBERS - 2
    assert list(tmp_path.glob("state-*.arrows")) == []


def test_a_failing_child_is_one_line_naming_the_database(
    engine: Engine, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    read = SqliteProcessRead(
        tmp_path / "state.db",
        "SELECT email, secret_column FROM no_such_table WHERE audience_id = ?",
        [41],
        ["email", "flags"],
        workdir=tmp_path,
        database="sqlite:///state.db",
    )
    try:
        with pytest.raises(StateError) as raised:
            read.reader()
    finally:
        read.close()
    assert str(raised.value) == "state database sqlite:///state.db: reading state failed"
    assert capfd.readouterr() == ("", "")
    assert list(tmp_path.glob("state-*.arrows")) == []
