"""Acceptance: the state database fails in the middle of a run (another session holds a lock).

The user sees one error line naming the state database and the cause; no email address, SQL
statement or bound parameter reaches stdout, stderr, the JSON logs or any stored error.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from audience_sync.checkpoints import WAIT_ENV, WAIT_FILE_ENV
from audience_sync.sandbox import SandboxServer
from audience_sync.state.tables import (
    listrak_imports,
    run_audiences,
    run_changes,
    sync_runs,
)
from tests.crash.helpers import COMMAND_TIMEOUT_SECONDS, run_cli, start_cli
from tests.harness import Harness

MEMBERS = [f"locked.member{i:02d}@example.com" for i in range(12)]
UNMASKED = re.compile(r"[A-Za-z0-9._%+\-]{2,}@example\.com")
POLL_SECONDS = 0.05
SQL_LEAKS = ("[SQL", "[parameters", "INSERT INTO", "UPDATE ", "%(", "Traceback")


@pytest.fixture
def impatient_harness(
    tmp_path: Path, listrak_account: SandboxServer, database_url: str
) -> Iterator[Harness]:
    """The job's state URL gives up on a held lock after 200 ms."""
    if database_url.startswith("sqlite"):
        url = f"{database_url}?timeout=0.2"
    else:
        url = f"{database_url}?options=-c%20lock_timeout%3D200"
    h = Harness(root=tmp_path, sandbox=listrak_account, state_url=url)
    yield h
    h.close()


@contextmanager
def conflicting_lock(h: Harness) -> Iterator[None]:
    """SQLite: a second connection holds the write lock. PostgreSQL: a second session holds an
    exclusive lock on the table the run writes next."""
    url = make_url(h.state_url)
    if url.get_backend_name() == "sqlite":
        holder = sqlite3.connect(str(url.database), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    with h.engine.connect() as conn, conn.begin():
        conn.execute(text("LOCK TABLE listrak_imports IN ACCESS EXCLUSIVE MODE"))
        yield


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + COMMAND_TIMEOUT_SECONDS
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL_SECONDS)


def planned(h: Harness) -> bool:
    with h.engine.connect() as conn:
        return conn.execute(select(run_audiences.c.status)).scalar() == "planned"


def stored_errors(h: Harness) -> list[str]:
    with h.engine.connect() as conn:
        columns = (
            sync_runs.c.error,
            run_audiences.c.error,
            listrak_imports.c.error,
            run_changes.c.reason,
        )
        return [v for column in columns for v in conn.execute(select(column)).scalars() if v]


def assert_nothing_leaks(text_: str, where: str) -> None:
    assert not UNMASKED.search(text_), f"an unmasked address in {where}"
    for leak in SQL_LEAKS:
        assert leak not in text_, f"{leak!r} in {where}"


def test_state_database_locked_mid_run_gives_one_clean_error_line(
    impatient_harness: Harness, tmp_path: Path
) -> None:
    h = impatient_harness
    h.add_contacts(subscribed=MEMBERS)
    h.add_audience("vip", 300, MEMBERS)
    h.write_config()
    h.engine  # noqa: B018 - migrates the state database
    release = tmp_path / "release"
    process = start_cli(
        h,
        "--log-format",
        "json",
        "run",
        env={WAIT_ENV: "planned", WAIT_FILE_ENV: str(release)},
    )
    try:
        wait_until(lambda: planned(h), "the run to plan its audience")
        with conflicting_lock(h):
            release.touch()
            stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 1
    records = [json.loads(line) for line in stderr.splitlines()]  # nothing but JSON
    errors = [r for r in records if r.get("event") == "error"]
    shown = make_url(h.state_url).render_as_string(hide_password=True)
    cause = (
        "database is locked (another process holds its write lock)"
        if h.state_url.startswith("sqlite")
        else "lock timeout (another session holds a conflicting lock)"
    )
    assert errors == [
        {
            "level": "error",
            "event": "error",
            "message": f"state database {shown}: {cause}",
            "exit_code": 1,
        }
    ]
    assert records[-1] == errors[0]
    assert_nothing_leaks(stdout, "stdout")
    assert_nothing_leaks(stderr, "stderr and the JSON logs")
    for value in stored_errors(h):
        assert_nothing_leaks(value, "a stored error")
        assert "\n" not in value

    if h.state_url.startswith("sqlite"):
        # The run could not even record its failure; its process is gone, and status says so.
        history = run_cli(h, "history")
        assert history.returncode == 0
        assert history.stdout.splitlines()[1].endswith("process gone; the next run resolves it")
        status = run_cli(h, "status")
        assert status.returncode == 0
        assert status.stdout.startswith("in progress: none (a stale lock from run 1 on ")
        assert "process gone; the next run takes it over)" in status.stdout.splitlines()[0]
    else:
        # The lock covered one table: the failure was recorded, as one clean line.
        with h.engine.connect() as conn:
            run = conn.execute(select(sync_runs.c.status, sync_runs.c.error)).one()
        assert tuple(run) == ("failed", f"state database {shown}: {cause}")
        assert f"  error: state database {shown}: {cause}" in stdout.splitlines()
