from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from audience_sync.sandbox import SandboxServer, SandboxSettings
from audience_sync.sandbox.settings import Faults
from tests.harness import LIST_ID, Harness


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
