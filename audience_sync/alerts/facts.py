"""What an alert is about, read from the ledger: a finished run, its audiences' failure streaks,
the imports it gave up and the drift `verify` measured. Read-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from audience_sync.report import AudienceSummary, summarize_run
from audience_sync.state.db import as_utc
from audience_sync.state.statuses import AudienceStatus, ImportStatus, RunStatus
from audience_sync.state.tables import (
    audiences,
    listrak_imports,
    run_audiences,
    sync_runs,
    verify_checks,
)

NOT_SYNCED = (AudienceStatus.FAILED, AudienceStatus.WAITING)
STREAK_LOOKBACK = 200


@dataclass(frozen=True)
class AudienceFacts:
    key: str
    status: str
    error: str | None
    # Runs in a row, ending with this one (or the one before), in which the audience was not
    # synced: it failed, waited on an open import, or the whole run failed around it.
    streak: int
    previous_streak: int
    members: int = 0
    turned_on: int = 0
    turned_off: int = 0
    skipped: int = 0
    failed: int = 0
    pending: int = 0


@dataclass(frozen=True)
class ImportFacts:
    id: int
    audience: str
    file_name: str
    reason: str | None


@dataclass(frozen=True)
class DriftFacts:
    audience: str
    drift: int


@dataclass(frozen=True)
class RunFacts:
    run_id: int
    trigger: str
    status: str
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]
    previous_status: str | None
    audiences: list[AudienceFacts] = field(default_factory=list)
    abandoned: list[ImportFacts] = field(default_factory=list)
    drift: list[DriftFacts] = field(default_factory=list)


def run_facts(conn: Connection, run_id: int) -> RunFacts:
    run = conn.execute(select(sync_runs).where(sync_runs.c.id == run_id)).one()
    previous = conn.execute(
        select(sync_runs.c.status)
        .where(sync_runs.c.id < run_id, sync_runs.c.trigger != "plan")
        .order_by(sync_runs.c.id.desc())
        .limit(1)
    ).scalar()
    summary = {a.key: a for a in summarize_run(conn.engine, run_id).audiences}
    started = as_utc(run.started_at)
    return RunFacts(
        run_id=run_id,
        trigger=run.trigger,
        status=run.status,
        error=run.error,
        started_at=started,
        finished_at=as_utc(run.finished_at) if run.finished_at else None,
        counts={
            "planned": run.planned_count,
            "confirmed": run.confirmed_count,
            "skipped": run.skipped_count,
            "failed": run.failed_count,
        },
        previous_status=previous,
        audiences=_audience_facts(conn, run_id, summary),
        abandoned=abandoned_by_run(conn, run_id),
        drift=drift_since(conn, started) if run.trigger == "repair" else [],
    )


def _audience_facts(
    conn: Connection, run_id: int, summary: dict[str, AudienceSummary]
) -> list[AudienceFacts]:
    rows = conn.execute(
        select(audiences.c.id, audiences.c.key, run_audiences.c.status, run_audiences.c.error)
        .join(run_audiences, run_audiences.c.audience_id == audiences.c.id)
        .where(run_audiences.c.run_id == run_id)
        .order_by(audiences.c.key)
    ).all()
    found = []
    for row in rows:
        history = not_synced_history(conn, row.id, run_id)
        counts = summary.get(row.key)
        found.append(
            AudienceFacts(
                key=row.key,
                status=row.status,
                error=row.error,
                streak=leading_true(history),
                previous_streak=leading_true(history[1:]),
                members=counts.snapshot if counts else 0,
                turned_on=counts.turned_on if counts else 0,
                turned_off=counts.turned_off if counts else 0,
                skipped=sum(counts.skipped.values()) if counts else 0,
                failed=sum(counts.failed.values()) if counts else 0,
                pending=counts.pending if counts else 0,
            )
        )
    return found


def not_synced_history(conn: Connection, audience_id: int, run_id: int) -> list[bool]:
    """Newest first: for each finished run of this audience up to ``run_id``, not synced?"""
    rows = conn.execute(
        select(sync_runs.c.status, run_audiences.c.status.label("audience_status"))
        .join(run_audiences, run_audiences.c.run_id == sync_runs.c.id)
        .where(
            run_audiences.c.audience_id == audience_id,
            sync_runs.c.id <= run_id,
            sync_runs.c.trigger != "plan",
            sync_runs.c.status != RunStatus.RUNNING,
        )
        .order_by(sync_runs.c.id.desc())
        .limit(STREAK_LOOKBACK)
    ).all()
    return [not_synced(r.status, r.audience_status) for r in rows]


def not_synced(run_status: str, audience_status: str) -> bool:
    if audience_status in NOT_SYNCED:
        return True
    return (
        run_status in (RunStatus.FAILED, RunStatus.INTERRUPTED)
        and audience_status != AudienceStatus.DONE
    )


def leading_true(values: list[bool]) -> int:
    count = 0
    for value in values:
        if not value:
            break
        count += 1
    return count


def abandoned_by_run(conn: Connection, run_id: int) -> list[ImportFacts]:
    rows = conn.execute(
        select(
            listrak_imports.c.id,
            audiences.c.key,
            listrak_imports.c.file_name,
            listrak_imports.c.error,
        )
        .join(audiences, audiences.c.id == listrak_imports.c.audience_id)
        .where(
            listrak_imports.c.resolved_run_id == run_id,
            listrak_imports.c.status == ImportStatus.ABANDONED,
        )
        .order_by(listrak_imports.c.id)
    ).all()
    return [ImportFacts(r.id, r.key, r.file_name, r.error) for r in rows]


def import_facts(conn: Connection, import_row_id: int) -> ImportFacts:
    row = conn.execute(
        select(
            listrak_imports.c.id,
            audiences.c.key,
            listrak_imports.c.file_name,
            listrak_imports.c.error,
        )
        .join(audiences, audiences.c.id == listrak_imports.c.audience_id)
        .where(listrak_imports.c.id == import_row_id)
    ).one()
    return ImportFacts(row.id, row.key, row.file_name, row.error)


def drift_since(conn: Connection, since: datetime) -> list[DriftFacts]:
    rows = conn.execute(
        select(verify_checks.c.audience, verify_checks.c.drift)
        .where(verify_checks.c.checked_at >= since)
        .order_by(verify_checks.c.id)
    ).all()
    latest = {r.audience: int(r.drift) for r in rows}
    return [DriftFacts(key, drift) for key, drift in sorted(latest.items())]
