"""The run lock: two runs never overlap, across processes and machines.

PostgreSQL: a session-level advisory lock held on one dedicated connection for the whole run;
it is released by the server when that session ends (including when the process is killed).
Other databases (SQLite): a lease row naming its holder's host, pid and token, renewed by a
heartbeat thread (see :func:`may_take_over` for when another run may take it).

A holder calls :meth:`RunLock.ensure_held` before each effect it must not share with another run
(every POST to Listrak); it raises :class:`LockLostError` once the lock is no longer this run's.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from audience_sync.errors import LockLostError, RunInProgressError, StateError
from audience_sync.state.db import as_utc, utcnow
from audience_sync.state.schema import engine_schema, lock_scope
from audience_sync.state.tables import run_lock, sync_runs

logger = logging.getLogger("audience_sync.state")

LOCK_NAME = "run"
ADVISORY_LOCK_KEY = 0x41554453  # "AUDS"
DEFAULT_LEASE_SECONDS = 90.0
STOPPED = "this run stopped before sending anything more"


@dataclass(frozen=True)
class LeaseHolder:
    host: str
    pid: int
    expires_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> LeaseHolder:
        return cls(
            host=str(row["holder_host"]),
            pid=int(row["holder_pid"]),
            expires_at=as_utc(row["expires_at"]),
        )


def may_take_over(
    holder: LeaseHolder, *, host: str, now: datetime, alive: Callable[[int], bool]
) -> bool:
    """Whether a run on ``host`` may take the lease ``holder`` has.

    A holder on this host is asked directly: the lease is taken at once when its process is
    gone and never while it lives, however old its heartbeat (a stopped or paused process
    still holds it). A holder on another host cannot be asked, so its lease is taken once it
    has expired.
    """
    if holder.host == host:
        return not alive(holder.pid)
    return holder.expires_at < now


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Context manager holding the run lock; ``attach_run`` records which run holds it."""

    def __init__(
        self,
        engine: Engine,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self._engine = engine
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)
        self._token = secrets.token_hex(16)
        self._host = socket.gethostname()
        self._pid = os.getpid()
        self._advisory = engine.dialect.name == "postgresql"
        self._pg_connection: Connection | None = None
        self._advisory_sql, self._advisory_keys = _advisory_key(engine_schema(engine))
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._lost: str | None = None  # set once the row is another's, read by ensure_held
        self._renewing = threading.Lock()  # the heartbeat and ensure_held both renew
        self._expires_at: datetime | None = None  # the end of the lease this run last wrote

    # --- public ---------------------------------------------------------------------------

    def __enter__(self) -> RunLock:
        if self._advisory:
            self._acquire_advisory()
        try:
            # Holding the advisory lock proves no other run lives: its lease row is then stale.
            self._expires_at = self._acquire_lease(authoritative=self._advisory)
        except BaseException:
            self._release_advisory()
            raise
        self._heartbeat = threading.Thread(
            target=self._beat,
            name="audience-sync-lock-heartbeat",
            daemon=True,
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
            self._heartbeat = None
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

    def ensure_held(self) -> None:
        """Raise :class:`LockLostError` unless this run still holds the lock.

        PostgreSQL: the advisory lock's connection still answers. SQLite: the lease row still
        carries this holder's token; a lease that lapsed (the heartbeat could not write, say
        while a long write held the database) is renewed here first, so the effect that follows
        runs inside a live lease.
        """
        if self._heartbeat is None:
            raise LockLostError(f"this run does not hold the run lock; {STOPPED}")
        if self._lost is not None:
            raise LockLostError(self._lost)
        if self._advisory:
            self._check_advisory_connection()
            return
        if self._lapsed():
            self._renew_before_effect()
            return
        try:
            with self._engine.connect() as conn:
                row = conn.execute(
                    select(run_lock.c.token, run_lock.c.holder_host, run_lock.c.holder_pid).where(
                        run_lock.c.name == LOCK_NAME
                    )
                ).first()
        except (SQLAlchemyError, StateError) as exc:
            raise LockLostError(
                f"the run lock could not be checked ({describe_db_error(exc)}); {STOPPED}"
            ) from None
        if row is None or row.token != self._token:
            raise LockLostError(_lost_message(row))

    # --- PostgreSQL -----------------------------------------------------------------------

    def _acquire_advisory(self) -> None:
        conn = self._engine.connect()
        got = conn.execute(
            text(f"SELECT pg_try_advisory_lock({self._advisory_sql})"), self._advisory_keys
        ).scalar_one()
        conn.commit()
        if not got:
            conn.close()
            raise self._busy_error()
        self._pg_connection = conn

    def _check_advisory_connection(self) -> None:
        conn = self._pg_connection
        assert conn is not None, "entered with the advisory lock"
        try:
            conn.execute(text("SELECT 1"))
            conn.commit()
        except (SQLAlchemyError, StateError) as exc:
            raise LockLostError(
                "the run lock's database session no longer answers "
                f"({describe_db_error(exc)}); {STOPPED}"
            ) from None

    def _release_advisory(self) -> None:
        if self._pg_connection is None:
            return
        try:
            self._pg_connection.execute(
                text(f"SELECT pg_advisory_unlock({self._advisory_sql})"), self._advisory_keys
            )
            self._pg_connection.commit()
        except SQLAlchemyError as exc:
            # A session that is gone has released its advisory locks with it.
            logger.warning("lock.release_failed", extra={"error": describe_db_error(exc)})
        finally:
            self._pg_connection.close()
            self._pg_connection = None

    # --- lease row ------------------------------------------------------------------------

    def _acquire_lease(self, *, authoritative: bool) -> datetime:
        now = self._clock()
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
                    return now + self._lease
                except IntegrityError:
                    raise self._busy_error() from None
            holder = LeaseHolder.from_row(current._mapping)
            if not authoritative and not may_take_over(
                holder, host=self._host, now=now, alive=process_alive
            ):
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
                extra={"previous_host": holder.host, "previous_pid": holder.pid},
            )
        return now + self._lease

    def _beat(self) -> None:
        """Renew the lease every third of its length until stopped.

        A failed renewal is retried on the next beat, also past the lease's end: a lapsed lease
        is lost only when another run took the row (or removed it), which the renewal that
        finally gets through finds out. With the advisory lock deciding (PostgreSQL) the row
        only names the holder, so no loss is recorded there.
        """
        interval = self._lease.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                loss = self._renew()
            except Exception as exc:
                logger.warning(
                    "lock.heartbeat_failed",
                    extra={"error": describe_db_error(exc), "lapsed": self._lapsed()},
                )
                continue
            if loss is not None and not self._advisory:
                self._record_loss(loss)
                return

    def _lapsed(self) -> bool:
        return self._expires_at is None or self._clock() >= self._expires_at

    def _renew(self) -> str | None:
        """Extend the lease if its row still carries this token; otherwise say why it does not.

        Database errors are raised to the caller.
        """
        with self._renewing:
            now = self._clock()
            with self._engine.begin() as conn:
                renewed = conn.execute(
                    update(run_lock)
                    .where(run_lock.c.name == LOCK_NAME, run_lock.c.token == self._token)
                    .values(heartbeat_at=now, expires_at=now + self._lease)
                ).rowcount
                if renewed != 1:
                    current = conn.execute(
                        select(run_lock.c.holder_host, run_lock.c.holder_pid).where(
                            run_lock.c.name == LOCK_NAME
                        )
                    ).first()
                    return _lost_message(current)
            lapsed = self._expires_at is not None and now >= self._expires_at
            self._expires_at = now + self._lease
        if lapsed and not self._advisory:
            logger.warning("lock.lease_renewed_after_lapse")
        return None

    def _renew_before_effect(self) -> None:
        try:
            loss = self._renew()
        except (SQLAlchemyError, StateError) as exc:
            raise LockLostError(
                "the run lock's lease lapsed and could not be renewed "
                f"({describe_db_error(exc)}); {STOPPED}"
            ) from None
        if loss is not None:
            self._record_loss(loss)
            raise LockLostError(loss)

    def _record_loss(self, message: str) -> None:
        self._lost = message
        logger.error("lock.lost", extra={"reason": message})

    def _busy_error(self, lease: RowMapping | None = None) -> RunInProgressError:
        run_id = None
        started: datetime | None = None
        with self._engine.connect() as conn:
            if lease is None:
                row = conn.execute(select(run_lock).where(run_lock.c.name == LOCK_NAME)).first()
                lease = row._mapping if row is not None else None
            if lease is not None:
                run_id = lease["run_id"]
                started = as_utc(lease["acquired_at"])
                if run_id is not None:
                    run_started = conn.execute(
                        select(sync_runs.c.started_at).where(sync_runs.c.id == run_id)
                    ).scalar()
                    started = as_utc(run_started) if run_started else started
        run_text = f"run {run_id}" if run_id is not None else "run starting"
        when = started.strftime("%Y-%m-%d %H:%M:%S UTC") if started else "just now"
        return RunInProgressError(f"another run is in progress ({run_text}, started {when})")


def _advisory_key(schema: str | None) -> tuple[str, dict[str, int]]:
    """The advisory lock's arguments: the one key of the default location (as every earlier
    version took it), or that key and the state schema's scope (a separate key space)."""
    if schema is None:
        return ":key", {"key": ADVISORY_LOCK_KEY}
    return "CAST(:key AS integer), CAST(:scope AS integer)", {
        "key": ADVISORY_LOCK_KEY,
        "scope": lock_scope(schema),
    }


def _lost_message(current: Any | None) -> str:
    """Why the lease row no longer names this holder; ``current`` is the row there now."""
    if current is None:
        return f"the run lock's lease was removed by another process; {STOPPED}"
    return (
        "the run lock was taken over by another run "
        f"(host {current.holder_host}, pid {current.holder_pid}); {STOPPED}"
    )


def describe_db_error(exc: BaseException) -> str:
    """The driver's error class and the first line of its message; never SQL or parameters
    (SQLAlchemy's own message echoes both), and only the class of anything else."""
    if isinstance(exc, StateError):
        return exc.cause
    if not isinstance(exc, DBAPIError) or exc.orig is None:
        return type(exc).__name__
    first = str(exc.orig).strip().splitlines()
    name = type(exc.orig).__name__
    return f"{name}: {first[0][:200]}" if first else name
