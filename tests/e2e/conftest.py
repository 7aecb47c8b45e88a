from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from audience_sync.sandbox import SandboxServer
from tests.harness import Harness


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
