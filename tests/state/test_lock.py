"""The run lock on both backends: one holder at a time, a named holder, stale leases taken over,
and a holder that lost the lock notices before it sends anything more."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select, text, update
from sqlalchemy.engine import Engine

from audience_sync.errors import AudienceSyncError, LockLostError, RunInProgressError
from audience_sync.state import ledger, migrate
from audience_sync.state.db import as_utc, make_engine, utcnow
from audience_sync.state.lock import (
    ADVISORY_LOCK_KEY,
    DEFAULT_LEASE_SECONDS,
    LeaseHolder,
    RunLock,
    may_take_over,
)
from audience_sync.state.statuses import RunTrigger
from audience_sync.state.tables import run_lock


def test_second_holder_is_refused_naming_the_run(engine: Engine) -> None:
    with engine.begin() as conn:
        run_id = ledger.create_run(conn, trigger=RunTrigger.MANUAL)
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


def test_lease_expiry_is_a_minute_or_two() -> None:
    assert 60 <= DEFAULT_LEASE_SECONDS <= 120


def test_lease_from_another_host_blocks_until_it_expires_on_sqlite(sqlite_engine: Engine) -> None:
    write_lease(sqlite_engine, host="other-host", pid=os.getpid(), expires_at=utcnow() + HOUR)
    with pytest.raises(RunInProgressError, match="another run is in progress"):
        RunLock(sqlite_engine).__enter__()
    assert lease_row(sqlite_engine).token == "other-holder"
    with sqlite_engine.begin() as conn:
        conn.execute(run_lock.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    with RunLock(sqlite_engine):
        taken = lease_row(sqlite_engine)
        assert (taken.holder_pid, taken.token != "other-holder") == (os.getpid(), True)
    assert lease_row(sqlite_engine) is None


def test_lease_row_left_behind_does_not_block_on_postgresql(pg_engine: Engine) -> None:
    """On PostgreSQL the lock is the advisory lock of the holder's session, which ends with
    its process: a lease row naming a holder on another host does not block."""
    write_lease(pg_engine, host="other-host", pid=1, expires_at=utcnow() + HOUR)
    with RunLock(pg_engine):
        assert lease_row(pg_engine).holder_pid == os.getpid()
        with pytest.raises(RunInProgressError):
            RunLock(pg_engine).__enter__()


def test_postgres_advisory_lock_blocks_a_second_holder_even_without_a_lease(
    pg_engine: Engine,
) -> None:
    with RunLock(pg_engine):
        with pg_engine.begin() as conn:
            conn.execute(run_lock.delete())
        with pytest.raises(RunInProgressError):
            RunLock(pg_engine).__enter__()


def test_heartbeat_renews_the_lease(engine: Engine) -> None:
    clock = FakeClock()
    with RunLock(engine, lease_seconds=0.3, clock=clock):
        clock.now += timedelta(minutes=5)
        wait_for(lambda: as_utc(lease_row(engine).heartbeat_at) == clock.now, "a renewed heartbeat")
        assert as_utc(lease_row(engine).expires_at) == clock.now + timedelta(seconds=0.3)


# --- who may take the lease (pure) -----------------------------------------------------------

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("holder", "alive", "expected"),
    [
        # this host, process alive: never, however old its heartbeat
        (LeaseHolder("here", 10, NOW - 1000 * HOUR), True, False),
        (LeaseHolder("here", 10, NOW + HOUR), True, False),
        # this host, process gone: at once
        (LeaseHolder("here", 10, NOW + HOUR), False, True),
        # another host: once expired, whatever a pid of that number does here
        (LeaseHolder("there", 10, NOW + HOUR), True, False),
        (LeaseHolder("there", 10, NOW + HOUR), False, False),
        (LeaseHolder("there", 10, NOW - timedelta(seconds=1)), True, True),
    ],
)
def test_may_take_over(holder: LeaseHolder, alive: bool, expected: bool) -> None:
    asked: list[int] = []

    def probe(pid: int) -> bool:
        asked.append(pid)
        return alive

    assert may_take_over(holder, host="here", now=NOW, alive=probe) is expected
    assert asked == ([10] if holder.host == "here" else [])


# --- takeover rules on SQLite (the lease decides there) --------------------------------------


def write_lease(engine: Engine, *, host: str, pid: int, expires_at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(run_lock).values(
                name="run",
                run_id=None,
                holder_host=host,
                holder_pid=pid,
                token="other-holder",
                acquired_at=expires_at - HOUR,
                heartbeat_at=expires_at - HOUR,
                expires_at=expires_at,
            )
        )


def lease_row(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(run_lock)).first()


@pytest.fixture
def sqlite_engine(sqlite_database_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_database_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(pg_database_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_database_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def test_live_holder_on_this_host_keeps_a_long_expired_lease(sqlite_engine: Engine) -> None:
    # This test process is alive and on this host; its "heartbeat" is a day old.
    write_lease(
        sqlite_engine, host=socket.gethostname(), pid=os.getpid(), expires_at=utcnow() - 24 * HOUR
    )
    with pytest.raises(RunInProgressError, match="another run is in progress"):
        RunLock(sqlite_engine).__enter__()
    assert lease_row(sqlite_engine).token == "other-holder"


# --- ensure_held -------------------------------------------------------------------------------


def test_ensure_held_passes_while_the_lock_is_held(engine: Engine) -> None:
    with RunLock(engine) as lock:
        lock.ensure_held()
        lock.ensure_held()


def test_ensure_held_outside_the_lock_raises() -> None:
    from sqlalchemy import create_engine

    engine = create_engine("sqlite://")
    with pytest.raises(LockLostError, match="does not hold the run lock"):
        RunLock(engine).ensure_held()
    engine.dispose()


def test_holder_whose_lease_was_taken_over_notices(sqlite_engine: Engine) -> None:
    with RunLock(sqlite_engine) as lock:
        with sqlite_engine.begin() as conn:
            conn.execute(
                update(run_lock).values(holder_host="other-host", holder_pid=4242, token="thief")
            )
        with pytest.raises(LockLostError) as caught:
            lock.ensure_held()
    assert str(caught.value) == (
        "the run lock was taken over by another run (host other-host, pid 4242); "
        "this run stopped before sending anything more"
    )
    assert caught.value.exit_code == 1
    assert isinstance(caught.value, AudienceSyncError)
    # leaving the lock does not remove the new holder's lease
    assert lease_row(sqlite_engine).token == "thief"


def test_holder_whose_lease_row_was_removed_notices(sqlite_engine: Engine) -> None:
    with RunLock(sqlite_engine) as lock:
        with sqlite_engine.begin() as conn:
            conn.execute(run_lock.delete())
        with pytest.raises(LockLostError, match="lease was removed by another process"):
            lock.ensure_held()


class FakeClock:
    """The lease's clock, moved by the test: expiry is decided by it, not by the machine's."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


class Events(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def named(self, event: str) -> list[logging.LogRecord]:
        return [r for r in list(self.records) if r.getMessage() == event]


@pytest.fixture
def events() -> Iterator[Events]:
    handler = Events()
    state_logger = logging.getLogger("audience_sync.state")
    state_logger.addHandler(handler)
    old_level = state_logger.level
    state_logger.setLevel(logging.INFO)
    yield handler
    state_logger.removeHandler(handler)
    state_logger.setLevel(old_level)


@pytest.fixture
def quick_busy_engine(sqlite_database_url: str) -> Iterator[Engine]:
    """A SQLite state database whose writers give up after 20 ms instead of 30 s."""
    engine = make_engine(sqlite_database_url)
    migrate.upgrade(engine)
    engine.dispose()

    def short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=20")

    event.listen(engine, "connect", short_busy_timeout)
    yield engine
    engine.dispose()


@contextmanager
def writes_blocked(database_url: str, *, commit: bool = False) -> Iterator[sqlite3.Connection]:
    """Another connection holds SQLite's write lock (readers go on, under WAL); what the test
    writes through it is committed at the end when ``commit`` is set."""
    path = database_url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        yield blocker
        blocker.execute("COMMIT" if commit else "ROLLBACK")
    finally:
        blocker.close()


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def lost(lock: RunLock) -> bool:
    try:
        lock.ensure_held()
    except LockLostError:
        return True
    return False


def test_heartbeat_failure_before_expiry_is_retried(
    quick_busy_engine: Engine, sqlite_database_url: str, events: Events
) -> None:
    clock = FakeClock()
    with RunLock(quick_busy_engine, lease_seconds=0.3, clock=clock) as lock:
        with writes_blocked(sqlite_database_url):
            wait_for(lambda: bool(events.named("lock.heartbeat_failed")), "a failed heartbeat")
        clock.now += timedelta(seconds=0.1)  # still inside the lease
        wait_for(
            lambda: as_utc(lease_row(quick_busy_engine).heartbeat_at) == clock.now,
            "a renewed heartbeat",
        )
        lock.ensure_held()
    assert not events.named("lock.lost")


def test_heartbeat_failing_past_expiry_keeps_a_lease_nobody_took(
    quick_busy_engine: Engine, sqlite_database_url: str, events: Events
) -> None:
    # A long write of this run's own (10M rows, say) can keep the heartbeat out past the
    # lease's end; while the row still carries this token no other run has the lock.
    clock = FakeClock()
    with RunLock(quick_busy_engine, lease_seconds=0.3, clock=clock) as lock:
        with writes_blocked(sqlite_database_url):
            failed_before = len(events.named("lock.heartbeat_failed"))
            clock.now += timedelta(seconds=1)
            wait_for(
                lambda: len(events.named("lock.heartbeat_failed")) > failed_before + 1,
                "heartbeats failing past the lease's end",
            )
        wait_for(
            lambda: bool(events.named("lock.lease_renewed_after_lapse")),
            "the heartbeat to renew the lapsed lease",
        )
        lock.ensure_held()
        assert as_utc(lease_row(quick_busy_engine).expires_at) == clock.now + timedelta(seconds=0.3)
    assert not events.named("lock.lost")
    for record in events.named("lock.heartbeat_failed"):
        assert record.exc_info is None  # no traceback
        text = f"{record.getMessage()} {record.__dict__}"
        assert "UPDATE" not in text
        assert "parameters" not in text
        assert lock._token not in text  # the statement's bound parameter


def test_lapsed_lease_taken_by_another_run_is_lost(
    quick_busy_engine: Engine, sqlite_database_url: str, events: Events
) -> None:
    clock = FakeClock()
    with RunLock(quick_busy_engine, lease_seconds=0.3, clock=clock) as lock:
        with writes_blocked(sqlite_database_url, commit=True) as other_run:
            failed_before = len(events.named("lock.heartbeat_failed"))
            clock.now += timedelta(seconds=1)
            wait_for(
                lambda: len(events.named("lock.heartbeat_failed")) > failed_before + 1,
                "heartbeats failing past the lease's end",
            )
            # a run on another host takes the lapsed lease while this run cannot write
            other_run.execute(
                "UPDATE run_lock SET holder_host = 'other-host', holder_pid = 4242, token = 'thief'"
            )
        wait_for(lambda: bool(events.named("lock.lost")), "the heartbeat to find the row taken")
        with pytest.raises(LockLostError) as caught:
            lock.ensure_held()
    assert str(caught.value) == (
        "the run lock was taken over by another run (host other-host, pid 4242); "
        "this run stopped before sending anything more"
    )
    assert not events.named("lock.lease_renewed_after_lapse")
    assert lease_row(quick_busy_engine).token == "thief"


def test_ensure_held_renews_a_lapsed_lease_before_answering(
    quick_busy_engine: Engine, sqlite_database_url: str, events: Events
) -> None:
    clock = FakeClock()
    # the heartbeat's first beat is 30 s away: only ensure_held can renew within this test
    with RunLock(quick_busy_engine, lease_seconds=90, clock=clock) as lock:
        clock.now += timedelta(seconds=100)
        with writes_blocked(sqlite_database_url), pytest.raises(LockLostError) as caught:
            lock.ensure_held()
        assert str(caught.value) == (
            "the run lock's lease lapsed and could not be renewed (database is locked "
            "(another process holds its write lock)); this run stopped before sending "
            "anything more"
        )
        lock.ensure_held()  # writes work again: renewed, not lost
        assert as_utc(lease_row(quick_busy_engine).expires_at) == clock.now + timedelta(seconds=90)
        assert events.named("lock.lease_renewed_after_lapse")
        lock.ensure_held()  # inside the renewed lease: a plain check
    assert not events.named("lock.lost")


def test_ensure_held_on_postgresql_checks_the_advisory_session(pg_engine: Engine) -> None:
    engine = pg_engine
    with RunLock(engine) as lock:
        lock.ensure_held()
        with engine.begin() as conn:
            holder = conn.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = :key "
                    "AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database())"
                ),
                {"key": ADVISORY_LOCK_KEY},
            ).scalar_one()
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})

        def session_gone() -> bool:
            with engine.connect() as conn:
                return not conn.execute(
                    text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"), {"pid": holder}
                ).first()

        wait_for(session_gone, "the holder's session to end")
        with pytest.raises(LockLostError) as caught:
            lock.ensure_held()
    assert str(caught.value).startswith("the run lock's database session no longer answers (")
    assert str(caught.value).endswith("this run stopped before sending anything more")
    # the lock went with the session: the next run gets it
    with RunLock(engine) as next_lock:
        next_lock.ensure_held()
