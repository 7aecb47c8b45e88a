"""`audience-sync schedule` as a process: runs on time, skips on the lock, stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from audience_sync.scheduler import ScheduledRun
from audience_sync.state.db import as_utc
from audience_sync.state.lock import RunLock
from audience_sync.state.tables import listrak_imports, scheduler_state, sync_runs
from tests.harness import CLIENT_ID, CLIENT_SECRET, Harness

MEMBERS = [f"s{i:02d}@example.com" for i in range(8)]
CREDENTIALS = {"LISTRAK_CLIENT_ID": CLIENT_ID, "LISTRAK_CLIENT_SECRET": CLIENT_SECRET}


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def runs(h: Harness) -> list[tuple[int, str, str]]:
    with h.engine.connect() as conn:
        rows = conn.execute(select(sync_runs.c.id, sync_runs.c.trigger, sync_runs.c.status))
        return [(r.id, r.trigger, r.status) for r in rows]


def test_sigterm_mid_run_lets_the_run_finish_then_exits_0(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    h.add_contacts(subscribed=MEMBERS)
    h.add_audience("vip", 300, MEMBERS)
    h.extra_toml = '[schedule]\nevery = "6h"\nmisfire_grace = "30m"'
    config = str(h.write_config())
    h.engine  # noqa: B018 - migrate
    h.sandbox.world.set_faults(import_delay_seconds=1.5)
    process = subprocess.Popen(
        [sys.executable, "-m", "audience_sync", "--config", config, "schedule", "--run-now"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **CREDENTIALS},
    )
    try:

        def import_in_flight() -> bool:
            with h.engine.connect() as conn:
                return (
                    conn.execute(
                        select(listrak_imports.c.id).where(listrak_imports.c.status == "submitted")
                    ).first()
                    is not None
                )

        wait_for(import_in_flight, "the scheduled run to submit its import")
        with h.engine.connect() as conn:
            state = conn.execute(select(scheduler_state)).one()
        assert state.pid == process.pid
        assert state.schedule == "every 6:00:00"
        assert as_utc(state.next_run_at) - as_utc(state.started_at) > timedelta(hours=5)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert runs(h) == [(1, "scheduled", "succeeded")], "the run in progress was finished"
    assert h.members_on("vip") == set(MEMBERS)
    assert "schedule.stopping" in err
    assert "schedule.stopped" in err
    with h.engine.connect() as conn:
        assert conn.execute(select(scheduler_state)).first() is None


def test_scheduled_run_skips_while_a_manual_run_holds_the_lock(
    sqlite_harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = sqlite_harness
    h.add_contacts(subscribed=MEMBERS)
    h.add_audience("vip", 300, MEMBERS)
    job = h.job()
    with RunLock(h.engine), caplog.at_level("INFO", logger="audience_sync.scheduler"):
        ScheduledRun(job)()  # returns: the scheduler lives on
    assert runs(h) == []
    assert h.import_count() == 0
    (skipped,) = [r for r in caplog.records if r.getMessage() == "schedule.skipped"]
    assert str(skipped.__dict__["reason"]).startswith("another run is in progress")
    ScheduledRun(job)()
    assert runs(h) == [(1, "scheduled", "succeeded")]
