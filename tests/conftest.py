"""Shared fixtures: state databases on SQLite and PostgreSQL, each test with its own database."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import QueuePool

from audience_sync.sandbox import SandboxServer
from tests.harness import LIST_ID, QUICK_IMPORT_SECONDS, Harness
from tests.migrated import migrated_engine

PG_ADMIN_URL = os.environ.get(
    "AUDIENCE_SYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

BACKENDS = ["sqlite", "postgresql"]


@functools.cache
def pg_problem() -> str | None:
    """Why the PostgreSQL server at ``AUDIENCE_SYNC_TEST_PG_URL`` cannot be used, or None.

    The one probe of the suite, asked once per test process."""
    engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except OperationalError as exc:
        return f"PostgreSQL not reachable at {make_url(PG_ADMIN_URL).host}: {exc.orig}"
    finally:
        engine.dispose()


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    problem = pg_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {problem}")
        pytest.skip(problem)
    name = f"as_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_database_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/state.db"


def backend_url(request: pytest.FixtureRequest) -> str:
    """The database of the backend named by the fixture's parameter."""
    fixture = "sqlite_database_url" if request.param == "sqlite" else "pg_database_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """Parametrises a test over both state backends."""
    return backend_url(request)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated state database; the test fails if it leaves a connection checked out."""
    engine = migrated_engine(database_url)
    yield engine
    pool = engine.pool
    assert isinstance(pool, QueuePool), pool
    checked_out = pool.checkedout()
    engine.dispose()
    assert checked_out == 0, f"{checked_out} connection(s) left checked out"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """One sandbox per test process (each xdist worker has its own, on a free port)."""
    with SandboxServer() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """The sandbox reset to its start-up state: no lists, tokens or imports, default faults."""
    sandbox_server.world.reset()
    return sandbox_server


@pytest.fixture
def listrak_account(sandbox: SandboxServer) -> SandboxServer:
    """The sandbox holding the main list ``LIST_ID``, its imports finishing after 50 ms."""
    sandbox.world.add_list(LIST_ID, "Main list")
    sandbox.world.set_faults(import_delay_seconds=QUICK_IMPORT_SECONDS)
    return sandbox


@pytest.fixture
def harness(tmp_path: Path, listrak_account: SandboxServer, database_url: str) -> Iterator[Harness]:
    """Parametrised over SQLite and PostgreSQL through ``database_url``."""
    h = Harness(root=tmp_path, sandbox=listrak_account, state_url=database_url)
    yield h
    h.close()


@pytest.fixture
def sqlite_harness(tmp_path: Path, listrak_account: SandboxServer) -> Iterator[Harness]:
    h = Harness(root=tmp_path, sandbox=listrak_account, state_url=f"sqlite:///{tmp_path}/state.db")
    yield h
    h.close()
