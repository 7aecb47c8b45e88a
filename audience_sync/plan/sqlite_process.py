"""A state query on a SQLite file, read by the ADBC SQLite driver in a child process
(:mod:`audience_sync.plan.sqlite_child`) into a temporary Arrow IPC file while the caller goes
on; :meth:`SqliteProcessRead.reader` waits for it and maps the file.

The child's request (SQL, parameters) goes over stdin, never its command line, which carries
only the database's and the output's paths. Its stderr is discarded: a child that fails or
dies is a one-line :class:`~audience_sync.errors.StateError` naming the database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from audience_sync.errors import StateError


class SqliteProcessRead:
    def __init__(
        self,
        path: Path,
        sql: str,
        params: Sequence[Any],
        names: Sequence[str],
        *,
        workdir: Path | None,
        database: str,
    ) -> None:
        self._failed = f"state database {database}: reading state failed"
        handle, out = tempfile.mkstemp(prefix="state-", suffix=".arrows", dir=workdir)
        os.close(handle)
        self._out = Path(out)
        self._child = subprocess.Popen(
            [sys.executable, "-m", "audience_sync.plan.sqlite_child", str(path), out],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        request = {"sql": sql, "params": list(params), "names": list(names)}
        try:
            assert self._child.stdin is not None
            with self._child.stdin:
                self._child.stdin.write(json.dumps(request).encode())
        except OSError:
            self.close()
            raise StateError(self._failed) from None

    def reader(self) -> pa.RecordBatchReader:
        """The rows, once the child has read them all."""
        if self._child.wait() != 0:
            raise StateError(self._failed)
        try:
            return pa.ipc.open_stream(pa.memory_map(str(self._out)))
        except (OSError, pa.ArrowException):
            raise StateError(self._failed) from None

    def close(self) -> None:
        """Stop the child if it still runs and remove its output."""
        if self._child.poll() is None:
            self._child.kill()
        self._child.wait()
        self._out.unlink(missing_ok=True)
