"""What operators read: ``status``, ``history`` and ``show RUN``.

The ledger is asked through :mod:`audience_sync.state.ledger_queries` (the read model the
report and the analysis API share); this module adds what only a live operator view needs
(the scheduler, the run lock, whether a ``running`` run's process still lives) and the text.
"""

from __future__ import annotations

import csv
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import Select, select
from sqlalchemy.engine import Connection, Engine

from audience_sync.redaction import one_line
from audience_sync.state import ledger_queries
from audience_sync.state.db import as_utc, utcnow
from audience_sync.state.lock import process_alive
from audience_sync.state.statuses import RunStatus
from audience_sync.state.tables import run_lock, scheduler_state

GONE = "interrupted (process gone)"
CSV_COLUMNS = ("run_id", "audience", "email", "action", "status", "reason")

ChangeRow = tuple[int, str, str, str, str, str]


@dataclass(frozen=True)
class AudienceStatus:
    key: str
    last_run: int | None
    last_trigger: str | None
    last_run_status: str | None
    last_audience_status: str | None
    last_time: datetime | None
    confirmed_on: int
    pending: int
    skipped: int


@dataclass(frozen=True)
class SchedulerInfo:
    schedule: str
    next_run_at: datetime | None
    host: str
    pid: int
    alive: bool | None  # None: on another host, cannot tell


@dataclass(frozen=True)
class Status:
    audiences: list[AudienceStatus]
    scheduler: SchedulerInfo | None
    running: str | None


def status(engine: Engine, audience_keys: Sequence[str]) -> Status:
    with engine.connect() as conn:
        rows = [_audience_status(conn, key) for key in audience_keys]
        return Status(rows, _scheduler(conn), _running(conn))


def _audience_status(conn: Connection, key: str) -> AudienceStatus:
    audience_id = conn.execute(ledger_queries.audience_id(key)).scalar()
    if audience_id is None:
        return AudienceStatus(key, None, None, None, None, None, 0, 0, 0)
    last = conn.execute(ledger_queries.last_run_of_audience(audience_id)).first()
    confirmed = _count(conn, ledger_queries.confirmed_on_count(audience_id))
    skipped = _count(conn, ledger_queries.parked_count(audience_id))
    pending = 0
    if last is not None:
        pending = _count(conn, ledger_queries.unresolved_count(last.id, audience_id))
    return AudienceStatus(
        key=key,
        last_run=last.id if last else None,
        last_trigger=last.trigger if last else None,
        last_run_status=_live_status(conn, last.status, last.host, last.pid) if last else None,
        last_audience_status=last.audience_status if last else None,
        last_time=as_utc(last.finished_at or last.started_at) if last else None,
        confirmed_on=confirmed,
        pending=pending,
        skipped=skipped,
    )


def _count(conn: Connection, query: Select[Any]) -> int:
    return int(conn.execute(query).scalar_one())


def _scheduler(conn: Connection) -> SchedulerInfo | None:
    row = conn.execute(select(scheduler_state)).first()
    if row is None:
        return None
    alive: bool | None = None
    if row.host == socket.gethostname():
        alive = process_alive(int(row.pid))
    next_run = as_utc(row.next_run_at) if row.next_run_at else None
    return SchedulerInfo(row.schedule, next_run, row.host, int(row.pid), alive)


def _running(conn: Connection) -> str | None:
    row = conn.execute(select(run_lock)).first()
    if row is None:
        return None
    what = f"run {row.run_id}" if row.run_id is not None else "a run or verify"
    held = f"{what} on {row.holder_host} (pid {row.holder_pid}) since {_time(row.acquired_at)}"
    if not lease_alive(row.holder_host, row.holder_pid, row.expires_at):
        return f"none (a stale lock from {held}: process gone; the next run takes it over)"
    return held


def lease_alive(host: str, pid: int, expires_at: datetime | None) -> bool:
    """As the run lock judges a holder: on this host, by its process; elsewhere, by its lease."""
    if host == socket.gethostname():
        return process_alive(int(pid))
    return expires_at is not None and as_utc(expires_at) >= utcnow()


def run_alive(conn: Connection, host: str | None, pid: int | None) -> bool:
    """Whether the process of a ``running`` run still lives (the lock's rules)."""
    if host is not None and pid is not None and host == socket.gethostname():
        return process_alive(int(pid))
    lock = conn.execute(select(run_lock)).first()
    return lock is not None and lease_alive(lock.holder_host, lock.holder_pid, lock.expires_at)


def _live_status(conn: Connection, status: str, host: str | None, pid: int | None) -> str:
    if status == RunStatus.RUNNING and not run_alive(conn, host, pid):
        return GONE
    return status


def format_status(state: Status, *, schedule_configured: str) -> str:
    lines = []
    if state.running:
        lines.append(f"in progress: {state.running}")
    info = state.scheduler
    if info is None or info.alive is False:
        note = "the scheduler is not running; `audience-sync schedule` starts it"
        if schedule_configured == "none":
            note = "no schedule configured"
        lines.append(f"next scheduled run: none ({note})")
    else:
        lines.append(
            f"next scheduled run: {_time(info.next_run_at)} ({info.schedule}; scheduler pid "
            f"{info.pid} on {info.host})"
        )
    for a in state.audiences:
        if a.last_run is None:
            lines.append(f"{a.key}: never run")
            continue
        lines.append(
            f"{a.key}: last run {a.last_run} ({a.last_trigger}) {a.last_run_status} at "
            f"{_time(a.last_time)}, audience {a.last_audience_status}; confirmed on "
            f"{a.confirmed_on}, pending {a.pending}, skipped (parked) {a.skipped}"
        )
    return "\n".join(lines)


def history(engine: Engine, *, limit: int) -> list[dict[str, object]]:
    """The newest runs (the columns of :func:`ledger_queries.runs`); ``resolved`` counts, by
    outcome, the imports of earlier runs each run resolved (``lost``, ``abandoned``,
    ``finished``, ``failed``); a ``running`` run whose process is gone reads as interrupted."""
    with engine.connect() as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(ledger_queries.runs(newest=limit, with_process=True))
        ]
        for run in rows:
            host, pid = run["host"], run["pid"]
            live = _live_status(
                conn,
                str(run["status"]),
                str(host) if host is not None else None,
                int(str(pid)) if pid is not None else None,
            )
            if live == GONE:
                run["status"] = "interrupted"
                run["error"] = "process gone; the next run resolves it"
        resolved: dict[int, dict[str, int]] = {}
        if rows:
            oldest = min(int(str(r["run_id"])) for r in rows)
            for run_id, status, count in conn.execute(
                ledger_queries.resolved_imports(since_run=oldest)
            ):
                resolved.setdefault(int(run_id), {})[str(status)] = int(count)
    for row in rows:
        row["resolved"] = resolved.get(int(str(row["run_id"])), {})
    return rows


def _resolved_note(resolved: object) -> str:
    if not isinstance(resolved, dict) or not resolved:
        return ""
    total = sum(resolved.values())
    parts = ", ".join(f"{count} {status}" for status, count in sorted(resolved.items()))
    noun = "import" if total == 1 else "imports"
    return f"resolved {total} earlier {noun}: {parts}"


def format_history(runs: list[dict[str, object]]) -> str:
    if not runs:
        return "no runs yet"
    lines = [
        f"{'run':>5}  {'trigger':<9} {'status':<11} {'started (UTC)':<19} {'took':>8} "
        f"{'planned':>8} {'confirmed':>9} {'skipped':>8} {'failed':>7}  error"
    ]
    for r in runs:
        started = r["started_at"]
        finished = r["finished_at"]
        took = ""
        if isinstance(started, datetime) and isinstance(finished, datetime):
            took = _duration((as_utc(finished) - as_utc(started)).total_seconds())
        error = one_line(str(r["error"] or ""))
        note = _resolved_note(r.get("resolved"))
        lines.append(
            f"{r['run_id']:>5}  {r['trigger']!s:<9} {r['status']!s:<11} {_time(started):<19} "
            f"{took:>8} {r['planned']:>8} {r['confirmed']:>9} "
            f"{r['skipped']:>8} {r['failed']:>7}  "
            + (error[:80] + "..." if len(error) > 80 else error)
            + (f" [{note}]" if note else "")
        )
    return "\n".join(lines)


def run_exists(engine: Engine, run_id: int) -> bool:
    with engine.connect() as conn:
        found = conn.execute(ledger_queries.run_exists(run_id)).scalar()
    return found is not None


def changes(
    engine: Engine,
    run_id: int,
    *,
    audience: str | None = None,
    action: str | None = None,
    status: str | None = None,
    limit: int | None = None,
) -> Iterator[ChangeRow]:
    """Stream a run's changes in (audience, email) order, filtered."""
    query = ledger_queries.changes(run_id=run_id, audience=audience, action=action, status=status)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=10_000).execute(query)
        for row in result:
            yield (row.run_id, row.audience, row.email, row.action, row.status, row.reason or "")


def write_csv(rows: Iterator[ChangeRow], out: TextIO) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count


def format_changes(rows: Iterator[ChangeRow]) -> Iterator[str]:
    for _run, key, email, action, status, reason in rows:
        yield f"  {key:<24} {email:<40} {action:<3} {status:<9} {one_line(reason)}".rstrip()


def _time(value: object) -> str:
    if not isinstance(value, datetime):
        return "-"
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
