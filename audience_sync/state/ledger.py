"""The run ledger: audiences, runs, per-audience run records and import rows.

Every ``error`` written here goes through :func:`audience_sync.redaction.one_line` first.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from audience_sync.errors import StateError
from audience_sync.redaction import one_line_or_none
from audience_sync.state.db import utcnow
from audience_sync.state.tables import (
    audiences,
    installation,
    listrak_imports,
    run_audiences,
    run_changes,
    sync_runs,
)

RUN_UNFINISHED = "running"
RUN_FINAL_STATUSES = ("succeeded", "failed", "aborted", "planned", "interrupted")
OPEN_IMPORT_STATUSES = ("posting", "submitted")


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


def upsert_audience(
    conn: Connection, *, key: str, list_id: int, field_id: int | None, source: str
) -> int:
    now = utcnow()
    existing = conn.execute(select(audiences.c.id).where(audiences.c.key == key)).scalar()
    values = {
        "list_id": list_id,
        "profile_field_id": field_id,
        "source_description": source,
        "updated_at": now,
    }
    if existing is not None:
        conn.execute(update(audiences).where(audiences.c.id == existing).values(**values))
        return int(existing)
    result = conn.execute(insert(audiences).values(key=key, created_at=now, **values))
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def create_run(conn: Connection, *, trigger: str) -> int:
    result = conn.execute(
        insert(sync_runs).values(
            trigger=trigger,
            status=RUN_UNFINISHED,
            started_at=utcnow(),
            host=socket.gethostname(),
            pid=os.getpid(),
        )
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def finish_run(conn: Connection, run_id: int, *, status: str, error: str | None = None) -> None:
    counts: dict[str, int] = dict(
        conn.execute(
            select(run_changes.c.status, func.count())
            .where(run_changes.c.run_id == run_id)
            .group_by(run_changes.c.status)
        ).all()
    )
    conn.execute(
        update(sync_runs)
        .where(sync_runs.c.id == run_id)
        .values(
            status=status,
            finished_at=utcnow(),
            error=one_line_or_none(error),
            planned_count=sum(counts.values()),
            confirmed_count=counts.get("confirmed", 0),
            skipped_count=counts.get("skipped", 0),
            failed_count=counts.get("failed", 0),
        )
    )


def unfinished_runs(conn: Connection) -> list[int]:
    rows = conn.execute(
        select(sync_runs.c.id).where(sync_runs.c.status == RUN_UNFINISHED).order_by(sync_runs.c.id)
    )
    return [int(r) for r in rows.scalars()]


def start_run_audience(conn: Connection, run_id: int, audience_id: int, *, source: str) -> None:
    conn.execute(
        insert(run_audiences).values(
            run_id=run_id, audience_id=audience_id, status="reading", source_description=source
        )
    )


def update_run_audience(conn: Connection, run_id: int, audience_id: int, **values: Any) -> None:
    _redact_error(values)
    for key in ("invalid_reasons", "source_notes"):
        if key in values and not isinstance(values[key], str):
            values[key] = json.dumps(values[key], sort_keys=True)
    conn.execute(
        update(run_audiences)
        .where(run_audiences.c.run_id == run_id, run_audiences.c.audience_id == audience_id)
        .values(**values)
    )


def record_import(conn: Connection, **values: Any) -> int:
    _redact_error(values)
    result = conn.execute(
        insert(listrak_imports).values(status="posting", created_at=utcnow(), **values)
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def update_import(conn: Connection, import_row_id: int, **values: Any) -> None:
    _redact_error(values)
    if "summary" in values and isinstance(values["summary"], Mapping):
        values["summary"] = json.dumps(values["summary"], sort_keys=True)
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


def _redact_error(values: dict[str, Any]) -> None:
    if isinstance(values.get("error"), str):
        values["error"] = one_line_or_none(values["error"])
