"""The run lock: two runs never overlap, across processes and machines.

PostgreSQL: a session-level advisory lock held on one dedicated connection for the whole run;
it is released by the server when that session ends (including when the process is killed).
Other databases (SQLite): a lease row naming its holder's host and pid, renewed by a heartbeat
thread. A holder on this host whose process is gone is taken over at once; a lease from another
host is taken over once it has expired (``lease_seconds`` after its last heartbeat).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from datetime import datetime, timedelta
from types import TracebackType

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from audience_sync.errors import RunInProgressError, StateError
from audience_sync.state.db import as_utc, utcnow
from audience_sync.state.tables import run_lock, sync_runs

logger = logging.getLogger("audience_sync.state")

LOCK_NAME = "run"
ADVISORY_LOCK_KEY = 0x41554453  # "AUDS"
DEFAULT_LEASE_SECONDS = 90.0


class RunLock:
    """Context manager holding the run lock; ``attach_run`` records which run holds it."""

    def __init__(self, engine: Engine, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self._engine = engine
        self._lease = timedelta(seconds=lease_seconds)
        self._token = secrets.token_hex(16)
        self._host = socket.gethostname()
        self._pid = os.getpid()
        self._pg_connection: Connection | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    # --- public ---------------------------------------------------------------------------

    def __enter__(self) -> RunLock:
        advisory = self._engine.dialect.name == "postgresql"
        if advisory:
            self._acquire_advisory()
        try:
            # Holding the advisory lock proves no other run lives: its lease row is then stale.
            self._acquire_lease(authoritative=advisory)
        except BaseException:
            self._release_advisory()
            raise
        self._heartbeat = threading.Thread(
            target=self._beat, name="audience-sync-lock-heartbeat", daemon=True
        )
        self._heartbeat.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=10)
        with self._engine.begin() as conn:
            conn.execute(
                delete(run_lock).where(
                    run_lock.c.name == LOCK_NAME, run_lock.c.token == self._token
                )
            )
        self._release_advisory()

    def attach_run(self, run_id: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(run_lock)
                .where(run_lock.c.name == LOCK_NAME, run_lock.c.token == self._token)
                .values(run_id=run_id)
            )

    # --- PostgreSQL -----------------------------------------------------------------------

    def _acquire_advisory(self) -> None:
        conn = self._engine.connect()
        got = conn.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
        ).scalar_one()
        conn.commit()
        if not got:
            conn.close()
            raise self._busy_error()
        self._pg_connection = conn

    def _release_advisory(self) -> None:
        if self._pg_connection is None:
            return
        try:
            self._pg_connection.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY}
            )
            self._pg_connection.commit()
        finally:
            self._pg_connection.close()
            self._pg_connection = None

    # --- lease row ------------------------------------------------------------------------

    def _acquire_lease(self, *, authoritative: bool) -> None:
        now = utcnow()
        values = {
            "name": LOCK_NAME,
            "run_id": None,
            "holder_host": self._host,
            "holder_pid": self._pid,
            "token": self._token,
            "acquired_at": now,
            "heartbeat_at": now,
            "expires_at": now + self._lease,
        }
        with self._engine.begin() as conn:
            current = conn.execute(select(run_lock).where(run_lock.c.name == LOCK_NAME)).first()
            if current is None:
                try:
                    conn.execute(insert(run_lock).values(**values))
                    return
                except IntegrityError:
                    raise self._busy_error() from None
            if not authoritative and not self._is_stale(current._mapping, now):
                raise self._busy_error(current._mapping)
            taken = conn.execute(
                update(run_lock)
                .where(run_lock.c.name == LOCK_NAME, run_lock.c.token == current.token)
                .values(**values)
            ).rowcount
            if taken != 1:
                raise self._busy_error()
            logger.warning(
                "lock.taken_over",
                extra={"previous_host": current.holder_host, "previous_pid": current.holder_pid},
            )

    def _is_stale(self, row: object, now: datetime) -> bool:
        mapping = dict(row)  # type: ignore[call-overload]
        if mapping["holder_host"] == self._host and not process_alive(mapping["holder_pid"]):
            return True
        return as_utc(mapping["expires_at"]) < now

    def _beat(self) -> None:
        interval = self._lease.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                now = utcnow()
                with self._engine.begin() as conn:
                    conn.execute(
                        update(run_lock)
                        .where(run_lock.c.name == LOCK_NAME, run_lock.c.token == self._token)
                        .values(heartbeat_at=now, expires_at=now + self._lease)
                    )
            except Exception as exc:
                error = str(exc) if isinstance(exc, StateError) else type(exc).__name__
                logger.warning("lock.heartbeat_failed", extra={"error": error})
                logger.debug("lock.heartbeat_failed.traceback", exc_info=exc)

    def _busy_error(self, lease: object | None = None) -> RunInProgressError:
        run_id = None
        started: datetime | None = None
        with self._engine.connect() as conn:
            if lease is None:
                row = conn.execute(select(run_lock).where(run_lock.c.name == LOCK_NAME)).first()
                lease = row._mapping if row is not None else None
            if lease is not None:
                mapping = dict(lease)  # type: ignore[call-overload]
                run_id = mapping["run_id"]
                started = as_utc(mapping["acquired_at"])
                if run_id is not None:
                    run_started = conn.execute(
                        select(sync_runs.c.started_at).where(sync_runs.c.id == run_id)
                    ).scalar()
                    started = as_utc(run_started) if run_started else started
        run_text = f"run {run_id}" if run_id is not None else "run starting"
        when = started.strftime("%Y-%m-%d %H:%M:%S UTC") if started else "just now"
        return RunInProgressError(f"another run is in progress ({run_text}, started {when})")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
