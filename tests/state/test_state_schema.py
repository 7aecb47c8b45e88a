"""State tables in a dedicated PostgreSQL schema (``[state] schema``): the migrations put them
there, every connection finds them through its search path, and two installations in one
database, each in its own schema, do not see or wait for each other."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc_pg
import duckdb
import pyarrow as pa
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner, Result
from sqlalchemy import insert, text
from sqlalchemy.engine import Engine, make_url

from audience_sync import analysis
from audience_sync.cli import main
from audience_sync.errors import ConfigError, RunInProgressError, StateError
from audience_sync.plan.state_io import libpq_uri, load_query
from audience_sync.sandbox import SandboxServer
from audience_sync.state import migrate
from audience_sync.state.db import make_engine, utcnow
from audience_sync.state.lock import RunLock
from audience_sync.state.schema import lock_scope
from audience_sync.state.tables import audiences, metadata
from tests.harness import CLIENT_ID, CLIENT_SECRET, Harness

SCHEMA = "audience_sync"
STATE_TABLES = set(metadata.tables) | {"alembic_version", "snapshot_deltas"}  # and the view
CREDENTIALS = {"LISTRAK_CLIENT_ID": CLIENT_ID, "LISTRAK_CLIENT_SECRET": CLIENT_SECRET}
MEMBERS = [f"member{i:02d}@example.com" for i in range(12)]


def tables_in(engine: Engine, schema: str) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": schema},
        )
        return {str(row[0]) for row in rows}


def columns_of(engine: Engine, schema: str, table: str) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = :s AND table_name = :t"
            ),
            {"s": schema, "t": table},
        )
        return {str(row[0]) for row in rows}


@pytest.fixture
def schema_engine(pg_database_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_database_url, schema=SCHEMA)
    yield engine
    engine.dispose()


@pytest.fixture
def plain_engine(pg_database_url: str) -> Iterator[Engine]:
    """An engine on the same database without a state schema: it sees what public holds."""
    engine = make_engine(pg_database_url)
    yield engine
    engine.dispose()


# --- migrations -----------------------------------------------------------------------------


def test_migrating_into_a_schema_creates_it_with_every_table_and_leaves_public_empty(
    schema_engine: Engine, plain_engine: Engine
) -> None:
    migrate.upgrade(schema_engine)
    assert tables_in(plain_engine, SCHEMA) == STATE_TABLES
    assert tables_in(plain_engine, "public") == set()
    assert migrate.current_revision(schema_engine) == migrate.head_revision()
    migrate.ensure_current(schema_engine)
    # The default location holds nothing: it is an empty database there.
    assert migrate.current_revision(plain_engine) is None


def test_a_pre_created_schema_is_used_as_it_is(schema_engine: Engine, plain_engine: Engine) -> None:
    with plain_engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
    migrate.upgrade(schema_engine)
    assert tables_in(plain_engine, SCHEMA) == STATE_TABLES


def test_a_role_without_create_on_the_database_migrates_into_the_schema_it_owns(
    pg_database_url: str, plain_engine: Engine
) -> None:
    role = f"as_job_{uuid.uuid4().hex[:8]}"
    database = make_url(pg_database_url).database
    with plain_engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'REVOKE CREATE ON DATABASE "{database}" FROM PUBLIC'))
        conn.execute(text(f'CREATE SCHEMA "{SCHEMA}" AUTHORIZATION "{role}"'))
    job_url = make_url(pg_database_url).set(username=role).render_as_string(hide_password=False)
    job_engine = make_engine(job_url, schema=SCHEMA)
    try:
        migrate.upgrade(job_engine)
        migrate.ensure_current(job_engine)
        assert tables_in(plain_engine, SCHEMA) == STATE_TABLES
    finally:
        job_engine.dispose()
        with plain_engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


def test_migrations_in_a_schema_match_the_metadata(schema_engine: Engine) -> None:
    migrate.upgrade(schema_engine)
    with schema_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_downgrade_and_upgrade_stay_in_the_schema(
    schema_engine: Engine, plain_engine: Engine
) -> None:
    migrate.upgrade(schema_engine)
    head = migrate.head_revision()

    migrate.downgrade(schema_engine, "0006")
    assert migrate.current_revision(schema_engine) == "0006"
    assert "kind" not in columns_of(plain_engine, SCHEMA, "audiences")  # what 0007 added

    migrate.downgrade(schema_engine, "base")
    assert migrate.current_revision(schema_engine) is None
    assert tables_in(plain_engine, SCHEMA) <= {"alembic_version"}

    migrate.upgrade(schema_engine)
    assert migrate.current_revision(schema_engine) == head
    assert tables_in(plain_engine, SCHEMA) == STATE_TABLES
    assert "kind" in columns_of(plain_engine, SCHEMA, "audiences")
    assert tables_in(plain_engine, "public") == set()


def test_without_a_schema_the_tables_stay_in_public(plain_engine: Engine) -> None:
    migrate.upgrade(plain_engine)
    assert tables_in(plain_engine, "public") == STATE_TABLES
    migrate.upgrade(plain_engine)  # an existing install upgrades in place
    assert migrate.current_revision(plain_engine) == migrate.head_revision()


def test_setting_a_schema_on_an_existing_install_refuses_to_run_and_says_why(
    schema_engine: Engine, plain_engine: Engine
) -> None:
    migrate.upgrade(plain_engine)
    with pytest.raises(StateError) as caught:
        migrate.ensure_current(schema_engine)
    assert "an empty database" in str(caught.value)
    assert "state tables exist in schema public" in str(caught.value)
    assert migrate.state_elsewhere(schema_engine) == ["public"]


# --- every connection's search path ----------------------------------------------------------


def test_state_connections_search_the_schema_first_then_public(
    schema_engine: Engine, plain_engine: Engine
) -> None:
    migrate.upgrade(schema_engine)
    with plain_engine.begin() as conn:
        conn.execute(text("CREATE TABLE customers (email text)"))
        conn.execute(text("INSERT INTO customers VALUES ('a@example.com')"))
    with schema_engine.connect() as conn:
        assert conn.execute(text("SELECT current_schema()")).scalar_one() == SCHEMA
        assert conn.execute(text("SELECT count(*) FROM customers")).scalar_one() == 1
        conn.rollback()  # the path is the session's, not the transaction's
        assert conn.execute(text("SELECT count(*) FROM memberships")).scalar_one() == 0


def test_the_url_s_own_libpq_options_are_kept(pg_database_url: str) -> None:
    engine = make_engine(f"{pg_database_url}?options=-c%20lock_timeout%3D1234", schema=SCHEMA)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW lock_timeout")).scalar_one() == "1234ms"
            path = conn.execute(text("SHOW search_path")).scalar_one()
        assert path == f'{SCHEMA},"$user",public'
    finally:
        engine.dispose()


def test_the_adbc_state_read_honours_the_schema(
    schema_engine: Engine, plain_engine: Engine
) -> None:
    # The same table in both places, different rows: the read must pick the schema's.
    migrate.upgrade(plain_engine)
    migrate.upgrade(schema_engine)
    now = utcnow()
    for engine, name in ((plain_engine, "public-only"), (schema_engine, "schema-only")):
        with engine.begin() as conn:
            conn.execute(
                insert(audiences).values(
                    key=name, list_id=1, source_description="", created_at=now, updated_at=now
                )
            )
    with adbc_pg.connect(libpq_uri(schema_engine.url, SCHEMA)) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        assert cursor.fetchone() == (SCHEMA,)

    duck = duckdb.connect()
    load_query(
        schema_engine,
        duck,
        "keys",
        "SELECT key FROM audiences WHERE list_id = :list_id",
        {"list_id": 1},
        pa.schema([pa.field("key", pa.string())]),
    )
    assert duck.execute("SELECT key FROM keys").fetchall() == [("schema-only",)]


# --- whole runs ------------------------------------------------------------------------------


def schema_harness(root: Path, sandbox: SandboxServer, url: str, schema: str) -> Harness:
    root.mkdir(exist_ok=True)
    return Harness(root=root, sandbox=sandbox, state_url=url, state_schema=schema)


def invoke(h: Harness, *args: str) -> Result:
    return CliRunner().invoke(
        main, ["--config", str(h.root / "audience-sync.toml"), *args], env=CREDENTIALS
    )


def test_a_run_in_a_schema_and_status_history_verify_analysis_read_it(
    tmp_path: Path, listrak_account: SandboxServer, pg_database_url: str, plain_engine: Engine
) -> None:
    h = schema_harness(tmp_path / "job", listrak_account, pg_database_url, SCHEMA)
    try:
        h.add_contacts(subscribed=MEMBERS)
        h.add_audience("vip", 200, MEMBERS)
        h.write_config()
        upgraded = invoke(h, "db", "upgrade")
        assert upgraded.exit_code == 0, upgraded.output
        assert tables_in(plain_engine, SCHEMA) == STATE_TABLES

        ran = invoke(h, "run")
        assert ran.exit_code == 0, ran.output
        assert h.members_on("vip") == set(MEMBERS)
        assert h.confirmed() == dict.fromkeys(MEMBERS, "on")
        assert tables_in(plain_engine, "public") == set()

        status = invoke(h, "status")
        assert status.exit_code == 0, status.output
        assert "succeeded" in status.output
        history = invoke(h, "history")
        assert history.exit_code == 0, history.output
        assert "succeeded" in history.output
        verified = invoke(h, "verify")
        assert verified.exit_code == 0, verified.output
        ledger = analysis.open(h.root / "audience-sync.toml")
        try:
            assert ledger.audiences() == ["vip"]
        finally:
            ledger.close()
    finally:
        h.close()


def test_upgrading_into_a_new_schema_notes_the_state_left_in_public(
    tmp_path: Path, listrak_account: SandboxServer, pg_database_url: str, plain_engine: Engine
) -> None:
    migrate.upgrade(plain_engine)
    h = schema_harness(tmp_path / "job", listrak_account, pg_database_url, SCHEMA)
    try:
        h.add_audience("vip", 200, MEMBERS)
        h.write_config()
        refused = invoke(h, "status")
        assert refused.exit_code == StateError.exit_code
        assert len(refused.stderr.splitlines()) == 1
        assert "state tables exist in schema public" in refused.stderr

        upgraded = invoke(h, "db", "upgrade")
        assert upgraded.exit_code == 0, upgraded.output
        assert upgraded.stderr == (
            "note: this installation starts empty; state tables also exist in schema public "
            "(changing [state] schema does not move them)\n"
        )
        again = invoke(h, "db", "upgrade")
        assert again.stderr == ""  # said once, when the schema was new
    finally:
        h.close()


def test_two_installations_in_one_database_are_independent(
    tmp_path: Path, listrak_account: SandboxServer, pg_database_url: str
) -> None:
    first = schema_harness(tmp_path / "first", listrak_account, pg_database_url, "sync_one")
    second = schema_harness(tmp_path / "second", listrak_account, pg_database_url, "sync_two")
    try:
        first.add_contacts(subscribed=MEMBERS)
        first.add_audience("vip", 200, MEMBERS[:4])
        second.add_audience("lapsed", 201, MEMBERS[4:])

        with RunLock(first.engine):
            # The other installation's run lock is its own...
            assert second.run().status == "succeeded"
            # ...while this one's is held.
            with pytest.raises(RunInProgressError):
                RunLock(first.engine).__enter__()
        assert first.run().status == "succeeded"

        assert first.confirmed() == dict.fromkeys(MEMBERS[:4], "on")
        assert second.confirmed() == dict.fromkeys(MEMBERS[4:], "on")
        with first.engine.connect() as conn:
            keys = conn.execute(text("SELECT key FROM audiences")).scalars().all()
        assert keys == ["vip"]
    finally:
        first.close()
        second.close()


def test_an_engine_in_a_schema_on_sqlite_is_refused(tmp_path: Path) -> None:
    """The config refuses it first; code that builds an engine itself is stopped too."""
    with pytest.raises(ConfigError, match="has no schemas"):
        make_engine(f"sqlite:///{tmp_path}/state.db", schema=SCHEMA)
    assert not (tmp_path / "state.db").exists()


def test_the_lock_scope_is_a_stable_signed_32_bit_key() -> None:
    assert lock_scope("audience_sync") == lock_scope("audience_sync")
    assert lock_scope("sync_one") != lock_scope("sync_two")
    assert all(-(2**31) <= lock_scope(name) < 2**31 for name in ("a", "zz_top", "x" * 63))
