"""The run ledger: audiences, runs, per-audience run records and import rows.

Every ``error`` written here goes through :func:`audience_sync.redaction.one_line` first.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from audience_sync.errors import ConfigError, StateError
from audience_sync.redaction import one_line_or_none
from audience_sync.state import changes
from audience_sync.state.db import utcnow
from audience_sync.state.statuses import (
    OPEN_IMPORT_STATUSES,
    AudienceKind,
    AudienceStatus,
    ChangeStatus,
    ImportStatus,
    RunStatus,
    RunTrigger,
)
from audience_sync.state.tables import (
    audiences,
    installation,
    listrak_imports,
    run_audiences,
    sync_runs,
)


def installation_id(conn: Connection) -> str:
    """This state database's id, made by ``db upgrade`` (part of every import file name)."""
    value = conn.execute(select(installation.c.id).order_by(installation.c.created_at)).scalar()
    if value is None:
        raise StateError(
            "the state database has no installation id; run `audience-sync db upgrade`"
        )
    return str(value)


def open_imports_of(conn: Connection, audience_id: int, *, before_run: int) -> list[int]:
    """Imports of earlier runs for one audience that were posted (or about to be) but never
    resolved, oldest first."""
    rows = conn.execute(
        select(listrak_imports.c.id)
        .where(
            listrak_imports.c.audience_id == audience_id,
            listrak_imports.c.run_id < before_run,
            listrak_imports.c.status.in_(OPEN_IMPORT_STATUSES),
        )
        .order_by(listrak_imports.c.id)
    )
    return [int(r) for r in rows.scalars()]


def audience_id(conn: Connection, key: str) -> int | None:
    value = conn.execute(select(audiences.c.id).where(audiences.c.key == key)).scalar()
    return int(value) if value is not None else None


def upsert_audience(
    conn: Connection,
    *,
    key: str,
    list_id: int,
    field_id: int | None,
    source: str,
    kind: AudienceKind = AudienceKind.AUDIENCE,
) -> int:
    """The unit of work's row (audience or computed trait). A key already used by the other
    kind is refused (the run stops before sending anything): its confirmed values mean
    something else (CheckBox on/off, or a trait's values)."""
    now = utcnow()
    found = conn.execute(
        select(audiences.c.id, audiences.c.kind).where(audiences.c.key == key)
    ).first()
    existing = found[0] if found is not None else None
    if found is not None and found[1] != kind:
        raise ConfigError(
            f"{key!r} was synced as {'an' if found[1] == 'audience' else 'a'} {found[1]} "
            f"before; a {kind} needs a key of its own"
        )
    values = {
        "list_id": list_id,
        "profile_field_id": field_id,
        "source_description": source,
        "updated_at": now,
        "kind": kind.value,
    }
    if existing is not None:
        conn.execute(update(audiences).where(audiences.c.id == existing).values(**values))
        return int(existing)
    result = conn.execute(insert(audiences).values(key=key, created_at=now, **values))
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def create_run(conn: Connection, *, trigger: RunTrigger) -> int:
    result = conn.execute(
        insert(sync_runs).values(
            trigger=trigger,
            status=RunStatus.RUNNING,
            started_at=utcnow(),
            host=socket.gethostname(),
            pid=os.getpid(),
        )
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def finish_run(
    conn: Connection,
    run_id: int,
    *,
    status: RunStatus,
    error: str | None = None,
    tally: changes.ResolvedTally | None = None,
) -> None:
    """The run's outcome and its changes counted by status (from ``tally``, what the run
    settled, when that accounts for every change)."""
    counts = changes.count_by_status_of_run(conn, run_id, tally)
    conn.execute(
        update(sync_runs)
        .where(sync_runs.c.id == run_id)
        .values(
            status=status,
            finished_at=utcnow(),
            error=one_line_or_none(error),
            planned_count=sum(counts.values()),
            confirmed_count=counts.get(ChangeStatus.CONFIRMED, 0),
            skipped_count=counts.get(ChangeStatus.SKIPPED, 0),
            failed_count=counts.get(ChangeStatus.FAILED, 0),
        )
    )


def unfinished_runs(conn: Connection) -> list[int]:
    rows = conn.execute(
        select(sync_runs.c.id)
        .where(sync_runs.c.status == RunStatus.RUNNING)
        .order_by(sync_runs.c.id)
    )
    return [int(r) for r in rows.scalars()]


def start_run_audience(conn: Connection, run_id: int, audience_id: int, *, source: str) -> None:
    conn.execute(
        insert(run_audiences).values(
            run_id=run_id,
            audience_id=audience_id,
            status=AudienceStatus.READING,
            source_description=source,
        )
    )


@dataclass(frozen=True)
class AudiencePlan:
    """What planning one audience found, recorded on its run record (status ``planned``)."""

    snapshot_count: int
    confirmed_on_before: int
    planned_on: int
    planned_off: int
    unchanged_count: int
    parked_count: int = 0
    snapshot_fingerprint: str | None = None
    rows_read: int = 0
    invalid_reasons: Mapping[str, int] = field(default_factory=dict)
    source_notes: Mapping[str, int] = field(default_factory=dict)


def record_audience_plan(
    conn: Connection, run_id: int, audience_id: int, plan: AudiencePlan
) -> None:
    _update_run_audience(
        conn,
        run_id,
        audience_id,
        {
            "status": AudienceStatus.PLANNED,
            "rows_read": plan.rows_read,
            "invalid_count": sum(plan.invalid_reasons.values()),
            "invalid_reasons": json.dumps(dict(plan.invalid_reasons), sort_keys=True),
            "source_notes": json.dumps(dict(plan.source_notes), sort_keys=True),
            "snapshot_count": plan.snapshot_count,
            "confirmed_on_before": plan.confirmed_on_before,
            "planned_on": plan.planned_on,
            "planned_off": plan.planned_off,
            "unchanged_count": plan.unchanged_count,
            "parked_count": plan.parked_count,
            "snapshot_fingerprint": plan.snapshot_fingerprint,
        },
    )


def set_audience_status(
    conn: Connection,
    run_id: int,
    audience_id: int,
    status: AudienceStatus,
    *,
    error: str | None = None,
) -> None:
    """Move one audience's run record to ``status``; ``error``, when given, says why."""
    values: dict[str, object] = {"status": status}
    if error is not None:
        values["error"] = one_line_or_none(error)
    _update_run_audience(conn, run_id, audience_id, values)


def set_audience_source(conn: Connection, run_id: int, audience_id: int, description: str) -> None:
    _update_run_audience(conn, run_id, audience_id, {"source_description": description})


def _update_run_audience(
    conn: Connection, run_id: int, audience_id: int, values: Mapping[str, object]
) -> None:
    conn.execute(
        update(run_audiences)
        .where(run_audiences.c.run_id == run_id, run_audiences.c.audience_id == audience_id)
        .values(**values)
    )


def record_import(
    conn: Connection,
    *,
    run_id: int,
    audience_id: int,
    list_id: int,
    field_id: int,
    part: int,
    route: str,
    file_name: str,
    first_email: str,
    last_email: str,
    row_count: int,
    byte_count: int,
) -> int:
    """The ledger row of one import part, ``posting``, committed before its POST."""
    result = conn.execute(
        insert(listrak_imports).values(
            status=ImportStatus.POSTING,
            created_at=utcnow(),
            run_id=run_id,
            audience_id=audience_id,
            list_id=list_id,
            field_id=field_id,
            part=part,
            route=route,
            file_name=file_name,
            first_email=first_email,
            last_email=last_email,
            row_count=row_count,
            byte_count=byte_count,
        )
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def update_import(
    conn: Connection,
    import_row_id: int,
    *,
    status: ImportStatus,
    error: str | None = None,
    listrak_import_id: str | None = None,
    listrak_status: str | None = None,
    summary: Mapping[str, Any] | None = None,
    submitted_at: datetime | None = None,
    finished_at: datetime | None = None,
    resolved_run_id: int | None = None,
    found_by_name: bool | None = None,
) -> None:
    """Move an import to ``status``; every other value is written only when given."""
    given: dict[str, object | None] = {
        "error": one_line_or_none(error),
        "listrak_import_id": listrak_import_id,
        "listrak_status": listrak_status,
        "summary": None if summary is None else json.dumps(summary, sort_keys=True),
        "submitted_at": submitted_at,
        "finished_at": finished_at,
        "resolved_run_id": resolved_run_id,
        "found_by_name": found_by_name,
    }
    values = {"status": status, **{k: v for k, v in given.items() if v is not None}}
    conn.execute(
        update(listrak_imports).where(listrak_imports.c.id == import_row_id).values(**values)
    )


def open_imports(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """Imports of a run that were posted (or about to be) but not yet resolved."""
    rows = conn.execute(
        select(listrak_imports)
        .where(
            listrak_imports.c.run_id == run_id,
            listrak_imports.c.status.in_(OPEN_IMPORT_STATUSES),
        )
        .order_by(listrak_imports.c.id)
    )
    return [dict(r._mapping) for r in rows]


def give_up_import(
    conn: Connection,
    import_row_id: int,
    *,
    status: ImportStatus,
    reason: str,
    finished_at: datetime | None = None,
    resolved_run_id: int | None = None,
) -> None:
    """An import ``lost`` or ``abandoned`` (by a run or an operator): its unresolved changes
    fail, so the next plan sends them again, and the import ends in ``status`` with ``reason``
    as its error."""
    changes.fail_import(conn, import_row_id, reason)
    update_import(
        conn,
        import_row_id,
        status=status,
        error=reason,
        finished_at=finished_at,
        resolved_run_id=resolved_run_id,
    )
