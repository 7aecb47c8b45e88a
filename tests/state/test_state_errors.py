"""State database failures leave the engine as one-line StateErrors; stored errors are redacted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError

from audience_sync.errors import StateError
from audience_sync.state import ledger, migrate
from audience_sync.state.db import make_engine, utcnow
from audience_sync.state.statuses import ImportStatus, RunStatus, RunTrigger
from audience_sync.state.tables import listrak_imports, run_lock, sync_runs

LEAKY = (
    "(psycopg.errors.LockNotAvailable) canceling statement\n"
    "[SQL: INSERT INTO x (email) VALUES (%(email)s)]\n"
    "[parameters: {'email': 'carol@example.com'}]"
)


def assert_clean(message: str) -> None:
    assert "\n" not in message
    assert "@example" not in message
    assert "[SQL" not in message
    assert "parameters" not in message
    assert "INSERT" not in message


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    path = tmp_path / "state.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


def insert_import(engine: Engine) -> None:
    with engine.begin() as conn:
        run_id = ledger.create_run(conn, trigger=RunTrigger.MANUAL)
        audience_id = ledger.upsert_audience(
            conn, key="vip", list_id=1, field_id=1, source="csv members.csv"
        )
        ledger.record_import(
            conn,
            run_id=run_id,
            audience_id=audience_id,
            list_id=1,
            field_id=1,
            part=1,
            route="list_import",
            file_name="f.csv",
            first_email="alice@example.com",
            last_email="zed@example.com",
            row_count=2,
            byte_count=10,
        )


def test_locked_sqlite_database_is_one_line_without_sql(sqlite_path: Path) -> None:
    holder = sqlite3.connect(sqlite_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    engine = make_engine(f"sqlite:///{sqlite_path}?timeout=0.05")
    try:
        with pytest.raises(StateError) as caught:
            insert_import(engine)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()
    assert str(caught.value) == (
        f"state database sqlite:///{sqlite_path}?timeout=0.05: "
        "database is locked (another process holds its write lock)"
    )


def test_full_sqlite_database_says_disk_full(sqlite_path: Path) -> None:
    engine = make_engine(f"sqlite:///{sqlite_path}")
    try:
        with engine.begin() as conn:
            pages = conn.execute(text("PRAGMA page_count")).scalar_one()
            conn.execute(text(f"PRAGMA max_page_count={int(pages) + 1}"))
            with pytest.raises(StateError) as caught:
                conn.execute(
                    insert(sync_runs).values(
                        trigger="manual", status="running", started_at=utcnow(), error="x" * 100_000
                    )
                )
    finally:
        engine.dispose()
    assert str(caught.value) == f"state database sqlite:///{sqlite_path}: disk full"


def test_read_only_sqlite_database_says_read_only(sqlite_path: Path) -> None:
    url = f"sqlite:///file:{sqlite_path}?mode=ro&uri=true"
    engine = make_engine(url)
    try:
        with pytest.raises(StateError) as caught:
            insert_import(engine)
    finally:
        engine.dispose()
    shown = make_url(url).render_as_string(hide_password=True)
    assert str(caught.value) == (
        f"state database {shown}: read-only (the file or its directory cannot be written)"
    )


def test_missing_directory_is_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nowhere/state.db"
    engine = make_engine(url)
    with pytest.raises(StateError) as caught:
        migrate.upgrade(engine)
    engine.dispose()
    assert str(caught.value) == (
        f"state database {url}: directory {tmp_path}/nowhere does not exist"
    )


def test_refused_postgresql_connection_hides_the_password(pg_database_url: str) -> None:
    url = make_url(pg_database_url).set(port=1, password="hunter2")
    engine = make_engine(url.render_as_string(hide_password=False))
    with pytest.raises(StateError) as caught:
        migrate.upgrade(engine)
    engine.dispose()
    shown = url.render_as_string(hide_password=True)
    assert str(caught.value) == f"state database {shown}: connection refused"
    assert "hunter2" not in str(caught.value)


def test_postgresql_lock_timeout_is_one_line_without_sql(pg_database_url: str) -> None:
    engine = make_engine(f"{pg_database_url}?options=-c%20lock_timeout%3D100")
    migrate.upgrade(engine)
    holder = make_engine(pg_database_url)
    try:
        with holder.begin() as conn:
            conn.execute(text("LOCK TABLE listrak_imports IN ACCESS EXCLUSIVE MODE"))
            with pytest.raises(StateError) as caught:
                insert_import(engine)
    finally:
        holder.dispose()
        engine.dispose()
    message = str(caught.value)
    assert message.endswith(": lock timeout (another session holds a conflicting lock)")
    assert message.startswith("state database postgresql+psycopg://postgres@127.0.0.1")
    assert_clean(message)


def test_integrity_errors_pass_through_for_the_lock_and_staging(engine: Engine) -> None:
    now = utcnow()
    row = {
        "name": "run",
        "holder_host": "h",
        "holder_pid": 1,
        "token": "t",
        "acquired_at": now,
        "heartbeat_at": now,
        "expires_at": now,
    }
    with engine.begin() as conn:
        conn.execute(insert(run_lock).values(**row))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(run_lock).values(**row))


def test_every_stored_error_is_redacted_and_one_line(engine: Engine) -> None:
    insert_import(engine)
    with engine.begin() as conn:
        run_id = int(conn.execute(select(sync_runs.c.id)).scalar_one())
        import_id = int(conn.execute(select(listrak_imports.c.id)).scalar_one())
        ledger.update_import(conn, import_id, status=ImportStatus.FAILED, error=LEAKY)
        ledger.finish_run(conn, run_id, status=RunStatus.FAILED, error=LEAKY)
    with engine.connect() as conn:
        stored = [
            conn.execute(select(sync_runs.c.error)).scalar_one(),
            conn.execute(select(listrak_imports.c.error)).scalar_one(),
        ]
    assert stored == ["(psycopg.errors.LockNotAvailable) canceling statement [SQL not shown]"] * 2
