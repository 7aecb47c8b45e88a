"""The crash, lock and security suites use the end-to-end fixtures (sandbox, harnesses)."""

from tests.e2e.conftest import harness, sandbox, sandbox_server, sqlite_harness

__all__ = ["harness", "sandbox", "sandbox_server", "sqlite_harness"]
