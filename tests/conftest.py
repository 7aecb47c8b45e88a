"""Shared fixtures: state databases on SQLite and PostgreSQL, each test with its own database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from audience_sync.sandbox import SandboxServer, SandboxSettings
from audience_sync.sandbox.settings import Faults
from audience_sync.state import migrate
from audience_sync.state.db import make_engine
from tests.harness import LIST_ID, Harness

PG_ADMIN_URL = os.environ.get(
    "AUDIENCE_SYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

BACKENDS = ["sqlite", "postgresql"]


def _pg_reachable() -> str | None:
    engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except OperationalError as exc:
        return f"PostgreSQL not reachable at {make_url(PG_ADMIN_URL).host}: {exc.orig}"
    finally:
        engine.dispose()


_PG_PROBLEM: str | bool | None = False


def pg_problem() -> str | None:
    global _PG_PROBLEM
    if _PG_PROBLEM is False:
        _PG_PROBLEM = _pg_reachable()
    return _PG_PROBLEM  # type: ignore[return-value]


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


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """Parametrises a test over both state backends."""
    fixture = "sqlite_database_url" if request.param == "sqlite" else "pg_database_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated state database; the test fails if it leaves a connection checked out."""
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    yield engine
    checked_out = engine.pool.checkedout()  # type: ignore[attr-defined]
    engine.dispose()
    assert checked_out == 0, f"{checked_out} connection(s) left checked out"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    settings = SandboxSettings(faults=Faults(import_delay_seconds=0.05))
    with SandboxServer(settings) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    sandbox_server.world.reset()
    sandbox_server.world.add_list(LIST_ID, "Main list")
    return sandbox_server


@pytest.fixture
def harness(tmp_path: Path, sandbox: SandboxServer, database_url: str) -> Iterator[Harness]:
    """Parametrised over SQLite and PostgreSQL through ``database_url``."""
    h = Harness(root=tmp_path, sandbox=sandbox, state_url=database_url)
    yield h
    h.close()


@pytest.fixture
def sqlite_harness(tmp_path: Path, sandbox: SandboxServer) -> Iterator[Harness]:
    h = Harness(root=tmp_path, sandbox=sandbox, state_url=f"sqlite:///{tmp_path}/state.db")
    yield h
    h.close()
