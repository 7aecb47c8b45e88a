"""Reading PostgreSQL state on a thread of its own: the read goes on while the caller uses the
same DuckDB database, gives what a read done at once gives, and a failing read is one line
when the caller finishes it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pytest
from sqlalchemy import insert, text
from sqlalchemy.engine import Engine

from audience_sync.errors import StateError
from audience_sync.plan import state_io
from audience_sync.state import ledger
from audience_sync.state.tables import memberships
from tests.migrated import migrated_engine

FLAGGED = pa.schema([pa.field("email", pa.string()), pa.field("flags", pa.int64())])
STATE_SQL = (
    "SELECT email, CASE WHEN value = 'on' THEN 1 ELSE 0 END FROM memberships WHERE audience_id = :a"
)
MEMBERS = 5000

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(pg_database_url: str) -> Iterator[Engine]:
    engine = migrated_engine(pg_database_url)
    yield engine
    engine.dispose()


def add_audience(engine: Engine, members: int) -> int:
    with engine.begin() as conn:
        audience_id = ledger.upsert_audience(conn, key="a", list_id=1, field_id=2, source="t")
        conn.execute(
            insert(memberships),
            [
                {
                    "audience_id": audience_id,
                    "email": f"m{i}@example.com",
                    "value": "on" if i % 3 else "off",
                }
                for i in range(members)
            ],
        )
    return audience_id


def rows(duck: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    return [(e, int(f)) for e, f in duck.execute("SELECT * FROM state ORDER BY email").fetchall()]


def test_the_read_goes_on_while_the_caller_uses_duckdb(engine: Engine) -> None:
    audience_id = add_audience(engine, MEMBERS)
    at_once = duckdb.connect()
    state_io.load_query(engine, at_once, "state", STATE_SQL, {"a": audience_id}, FLAGGED)
    duck = duckdb.connect()
    # Another session holds memberships locked: the read cannot get a row until it lets go,
    # so start_load returns, and the caller works, while the read still waits.
    with engine.connect() as blocker:
        blocker.begin()
        blocker.execute(text("LOCK TABLE memberships IN ACCESS EXCLUSIVE MODE"))
        pending = state_io.start_load(engine, duck, "state", STATE_SQL, {"a": audience_id}, FLAGGED)
        try:
            duck.execute("CREATE TABLE raw (email VARCHAR)")
            duck.execute("INSERT INTO raw SELECT 'x' || i || '@x.com' FROM range(100000) t(i)")
            duck.execute("CREATE TABLE s AS SELECT DISTINCT email FROM raw")
            duck.execute("DROP TABLE raw")
            assert duck.execute("SELECT count(*) FROM state").fetchone() == (0,)
            blocker.rollback()
            # Done on its own, before the caller asks for it.
            deadline = time.monotonic() + 60
            while duck.execute("SELECT count(*) FROM state").fetchone() != (MEMBERS,):
                assert time.monotonic() < deadline, "the read did not go on by itself"
                time.sleep(0.05)
            pending.finish()
        finally:
            pending.close()
    assert rows(duck) == rows(at_once)
    assert len(rows(duck)) == MEMBERS
    assert sum(flags for _, flags in rows(duck)) == MEMBERS - len(range(0, MEMBERS, 3))
    assert duck.execute("SELECT count(*) FROM s").fetchone() == (100000,)


def test_a_failing_read_is_one_line_when_finished(engine: Engine) -> None:
    duck = duckdb.connect()
    pending = state_io.start_load(
        engine,
        duck,
        "state",
        "SELECT email, secret_column FROM no_such_table WHERE audience_id = :a",
        {"a": 987654321},
        FLAGGED,
    )
    try:
        with pytest.raises(StateError) as raised:
            pending.finish()
    finally:
        pending.close()
    message = str(raised.value)
    assert message.endswith(": reading state failed")
    assert "no_such_table" not in message
    assert "987654321" not in message
    assert raised.value.__cause__ is None


def test_a_read_the_caller_gives_up_on_is_closed_without_an_error(engine: Engine) -> None:
    audience_id = add_audience(engine, MEMBERS)
    duck = duckdb.connect()
    pending = state_io.start_load(engine, duck, "state", STATE_SQL, {"a": audience_id}, FLAGGED)
    pending.close()
    duck.close()
