"""The run lock on both backends: one holder at a time, a named holder, stale leases taken over."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from audience_sync.errors import RunInProgressError
from audience_sync.state import ledger
from audience_sync.state.db import utcnow
from audience_sync.state.lock import RunLock
from audience_sync.state.tables import run_lock


def test_second_holder_is_refused_naming_the_run(engine: Engine) -> None:
    with engine.begin() as conn:
        run_id = ledger.create_run(conn, trigger="manual")
    with RunLock(engine) as lock:
        lock.attach_run(run_id)
        with pytest.raises(RunInProgressError) as caught:
            RunLock(engine).__enter__()
    assert f"another run is in progress (run {run_id}, started " in str(caught.value)
    assert caught.value.exit_code == 4
    # released: the next holder gets it
    with RunLock(engine):
        pass


def test_lease_of_a_dead_process_on_this_host_is_taken_over(engine: Engine) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            insert(run_lock).values(
                name="run",
                run_id=None,
                holder_host=socket.gethostname(),
                holder_pid=2**22 + 7,
                token="dead-holder",
                acquired_at=now,
                heartbeat_at=now,
                expires_at=now + timedelta(hours=1),
            )
        )
    with RunLock(engine), engine.connect() as conn:
        holder = conn.execute(select(run_lock.c.holder_pid)).scalar_one()
    assert holder != 2**22 + 7


def test_lease_from_another_host_waits_for_expiry(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        pytest.skip("on PostgreSQL the advisory lock, not the lease, decides")
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            insert(run_lock).values(
                name="run",
                run_id=None,
                holder_host="other-host",
                holder_pid=1,
                token="remote-holder",
                acquired_at=now,
                heartbeat_at=now,
                expires_at=now + timedelta(seconds=90),
            )
        )
    with pytest.raises(RunInProgressError):
        RunLock(engine).__enter__()
    with engine.begin() as conn:
        conn.execute(run_lock.update().values(expires_at=now - timedelta(seconds=1)))
    with RunLock(engine):
        pass


def test_postgres_advisory_lock_blocks_a_second_holder_even_without_a_lease(
    engine: Engine,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    with RunLock(engine):
        with engine.begin() as conn:
            conn.execute(run_lock.delete())
        with pytest.raises(RunInProgressError):
            RunLock(engine).__enter__()


def test_heartbeat_renews_the_lease(engine: Engine) -> None:
    with RunLock(engine, lease_seconds=0.3):
        with engine.connect() as conn:
            first = conn.execute(select(run_lock.c.expires_at)).scalar_one()
        deadline = utcnow() + timedelta(seconds=10)
        renewed = first
        while renewed == first and utcnow() < deadline:
            with engine.connect() as conn:
                renewed = conn.execute(select(run_lock.c.expires_at)).scalar_one()
    assert renewed > first
