"""The run lock between real processes: two runs never overlap, a run killed while holding the
lock does not block the next, a stopped holder keeps it, and a holder that lost it stops before
it sends anything more. The lock's rules in one process are tested in tests/state/test_lock.py."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from audience_sync.checkpoints import WAIT_ENV, WAIT_FILE_ENV
from audience_sync.state.db import as_utc, utcnow
from audience_sync.state.lock import LOCK_NAME
from audience_sync.state.tables import listrak_imports, run_lock, sync_runs
from tests.crash.helpers import (
    COMMAND_TIMEOUT_SECONDS,
    duplicate_sends,
    run_cli,
    start_cli,
    wait_for_killed_lock_holder,
)
from tests.harness import LIST_ID, Harness

MEMBERS = [f"m{i}@example.com" for i in range(20)]
POLL_SECONDS = 0.05


@pytest.fixture
def ready(harness: Harness) -> Harness:
    harness.add_contacts(subscribed=MEMBERS)
    harness.add_audience("vip", 300, MEMBERS)
    harness.engine  # noqa: B018 - migrates the state database
    return harness


def wait_until(
    predicate: Callable[[], bool], what: str, timeout: float = COMMAND_TIMEOUT_SECONDS
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL_SECONDS)


def lease(engine: Engine) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(run_lock).where(run_lock.c.name == LOCK_NAME)).first()
    return dict(row._mapping) if row is not None else None


def held_lease(engine: Engine) -> dict[str, Any]:
    current = lease(engine)
    assert current is not None, "nobody holds the lease"
    return current


def holding(engine: Engine, pid: int) -> bool:
    current = lease(engine)
    return current is not None and current["holder_pid"] == pid and current["run_id"] is not None


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[str]]]:
    """Runs a test starts; any still alive when it ends (a failed test) are killed."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


def held_run(
    h: Harness, release: Path, spawned: list[subprocess.Popen[str]]
) -> subprocess.Popen[str]:
    """A run that holds the lock, waiting after planning until ``release`` exists."""
    holder = start_cli(h, "--quiet", "run", env={WAIT_ENV: "planned", WAIT_FILE_ENV: str(release)})
    spawned.append(holder)
    wait_until(lambda: holding(h.engine, holder.pid) or holder.poll() is not None, "the lock")
    assert holder.poll() is None, holder.communicate()
    return holder


def test_two_runs_started_together_one_runs_the_other_exits_4(
    ready: Harness, tmp_path: Path, spawned: list[subprocess.Popen[str]]
) -> None:
    release = tmp_path / "release"
    env = {WAIT_ENV: "planned", WAIT_FILE_ENV: str(release)}
    runs = [start_cli(ready, "--quiet", "run", env=env) for _ in range(2)]
    spawned.extend(runs)
    wait_until(lambda: any(p.poll() is not None for p in runs), "one run to give up")
    loser = next(p for p in runs if p.returncode is not None)
    winner = next(p for p in runs if p is not loser)
    _, err = loser.communicate()
    assert loser.returncode == 4, err
    assert "another run is in progress (" in err
    release.touch()
    _, err = winner.communicate(timeout=COMMAND_TIMEOUT_SECONDS)
    assert winner.returncode == 0, err
    assert ready.members_on("vip") == set(MEMBERS)
    assert lease(ready.engine) is None


def test_lock_holder_killed_with_sigkill_frees_the_lock(
    ready: Harness, tmp_path: Path, spawned: list[subprocess.Popen[str]]
) -> None:
    holder = held_run(ready, tmp_path / "never", spawned)
    busy = run_cli(ready, "--quiet", "run")
    assert busy.returncode == 4, busy.stderr

    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=COMMAND_TIMEOUT_SECONDS)
    wait_for_killed_lock_holder(ready)
    after = run_cli(ready, "--quiet", "run")
    assert after.returncode == 0, after.stderr
    assert "lock.taken_over" in after.stderr
    assert ready.members_on("vip") == set(MEMBERS)
    with ready.engine.connect() as conn:
        statuses = list(conn.execute(select(sync_runs.c.status).order_by(sync_runs.c.id)).scalars())
    assert statuses == ["interrupted", "succeeded"]


# --- a stopped holder keeps the lease; a holder that lost it stops (SQLite) -------------------

SHORT_LEASE_SECONDS = 1


@pytest.fixture
def two_audiences(sqlite_harness: Harness) -> Harness:
    """Two audiences of one import part each, and a lease of a second."""
    h = sqlite_harness
    h.add_contacts(subscribed=MEMBERS)
    h.add_audience("vip", 300, MEMBERS)
    h.add_audience("lapsed", 301, MEMBERS[:10])
    h.extra_toml = f"[sync]\nlock_lease_seconds = {SHORT_LEASE_SECONDS}"
    h.engine  # noqa: B018 - migrates the state database
    return h


def posting_run(
    h: Harness, release: Path, spawned: list[subprocess.Popen[str]]
) -> subprocess.Popen[str]:
    """A run that has posted its first import and then waits until ``release`` exists."""
    holder = start_cli(h, "--quiet", "run", env={WAIT_ENV: "posted", WAIT_FILE_ENV: str(release)})
    spawned.append(holder)
    wait_until(lambda: h.import_count() == 1 or holder.poll() is not None, "the first POST")
    assert holder.poll() is None, holder.communicate()
    return holder


def writable(h: Harness) -> bool:
    """Whether SQLite's write lock is free right now (without waiting for it)."""
    conn = sqlite3.connect(h.state_url.removeprefix("sqlite:///"), timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def stop_outside_a_write(h: Harness, process: subprocess.Popen[str]) -> None:
    """SIGSTOP ``process`` at a moment it holds no SQLite write lock: a stop that caught its
    heartbeat mid-write would block every other writer, so it is undone and tried again."""
    deadline = time.monotonic() + COMMAND_TIMEOUT_SECONDS
    watched = psutil.Process(process.pid)
    while True:
        process.send_signal(signal.SIGSTOP)
        wait_until(lambda: watched.status() == psutil.STATUS_STOPPED, "the process to stop")
        if writable(h):
            return
        process.send_signal(signal.SIGCONT)
        if time.monotonic() > deadline:
            raise AssertionError("the stopped run always held the write lock")


def sent_file_names(h: Harness) -> list[str]:
    return sorted(str(r.file_name) for r in h.sandbox.world.imports(LIST_ID))


def run_statuses(h: Harness) -> list[tuple[str, str | None]]:
    with h.engine.connect() as conn:
        return [
            (r.status, r.error)
            for r in conn.execute(
                select(sync_runs.c.status, sync_runs.c.error).order_by(sync_runs.c.id)
            )
        ]


def test_stopped_holder_past_its_lease_keeps_the_lock_on_sqlite(
    two_audiences: Harness, tmp_path: Path, spawned: list[subprocess.Popen[str]]
) -> None:
    """Ctrl-Z on a manual run, a paused VM: the holder lives on this host, so its lease is not
    taken however old its heartbeat, and the same import is never posted by two runs."""
    h = two_audiences
    release = tmp_path / "release"
    holder = posting_run(h, release, spawned)
    stop_outside_a_write(h, holder)
    wait_until(
        lambda: as_utc(held_lease(h.engine)["expires_at"]) < utcnow(),
        "the stopped holder's lease to expire",
    )

    second = run_cli(h, "--quiet", "run")
    assert second.returncode == 4, second.stderr
    assert "error: another run is in progress (run 1, started " in second.stderr
    assert held_lease(h.engine)["holder_pid"] == holder.pid

    release.touch()
    holder.send_signal(signal.SIGCONT)
    _, err = holder.communicate(timeout=COMMAND_TIMEOUT_SECONDS)
    assert holder.returncode == 0, err
    assert "lock.lost" not in err

    assert run_statuses(h) == [("succeeded", None)]
    assert h.members_on("vip") == set(MEMBERS)
    assert h.members_on("lapsed") == set(MEMBERS[:10])
    with h.engine.connect() as conn:
        parts = conn.execute(
            select(
                listrak_imports.c.audience_id, listrak_imports.c.part, listrak_imports.c.file_name
            )
        ).all()
    # exactly one import per audience and part, each posted once
    assert sorted((r.audience_id, r.part) for r in parts) == [(1, 1), (2, 1)]
    assert sent_file_names(h) == sorted(r.file_name for r in parts)
    assert duplicate_sends(h) == []
    assert lease(h.engine) is None


def test_holder_whose_lease_was_taken_stops_before_its_next_post_on_sqlite(
    two_audiences: Harness, tmp_path: Path, spawned: list[subprocess.Popen[str]]
) -> None:
    h = two_audiences
    release = tmp_path / "release"
    holder = posting_run(h, release, spawned)
    before_theft = sent_file_names(h)
    with h.engine.begin() as conn:
        conn.execute(
            update(run_lock).values(holder_host="other-host", holder_pid=4242, token="thief")
        )
    release.touch()
    _, err = holder.communicate(timeout=COMMAND_TIMEOUT_SECONDS)

    message = (
        "the run lock was taken over by another run (host other-host, pid 4242); "
        "this run stopped before sending anything more"
    )
    assert holder.returncode == 1, err
    assert f"error: {message}" in err
    assert "Traceback" not in err
    assert sent_file_names(h) == before_theft  # nothing was posted after the theft
    assert len(before_theft) == 1
    assert run_statuses(h) == [("failed", message)]
    assert h.members_on("lapsed") == set()
    # the new holder's lease is left alone
    assert held_lease(h.engine)["token"] == "thief"
