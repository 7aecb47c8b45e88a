"""Imports posted to Listrak and not yet resolved: list them, or give one up.

Giving an import up (``abandoned``) fails its changes, so the next run plans and sends them
again; the audience it held back syncs again from that run on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from audience_sync.errors import (
    ListrakError,
    NoSuchOpenImportError,
    StopRunError,
)
from audience_sync.listrak.client import ListrakClient
from audience_sync.state import ledger, ledger_queries
from audience_sync.state.db import as_utc, utcnow
from audience_sync.state.lock import RunLock
from audience_sync.state.migrate import ensure_current
from audience_sync.state.statuses import ImportStatus


@dataclass(frozen=True)
class OpenImport:
    id: int
    audience: str
    run_id: int
    file_name: str
    status: str
    created_at: datetime
    list_id: int
    listrak_import_id: str | None
    listrak_status: str | None = None

    def age(self, now: datetime) -> timedelta:
        return now - self.created_at


def list_open(engine: Engine) -> list[OpenImport]:
    ensure_current(engine)
    with engine.connect() as conn:
        rows = conn.execute(ledger_queries.open_imports()).all()
    return [
        OpenImport(
            id=r.import_id,
            audience=r.audience,
            run_id=r.run_id,
            file_name=r.file_name,
            status=r.status,
            created_at=as_utc(r.created_at),
            list_id=int(r.list_id),
            listrak_import_id=r.listrak_import_id,
        )
        for r in rows
    ]


def with_listrak_status(
    found: list[OpenImport], client_factory: Callable[[], ListrakClient]
) -> list[OpenImport]:
    """Each import's status as Listrak tells it now (``unknown: ...`` when it cannot)."""
    if not found:
        return found
    with client_factory() as client:
        return [_ask(client, item) for item in found]


def abandon(engine: Engine, import_row_id: int, *, lease_seconds: float) -> OpenImport:
    """Give up one open import, under the run lock so no run is resolving it meanwhile."""
    ensure_current(engine)
    with RunLock(engine, lease_seconds=lease_seconds):
        match = next((i for i in list_open(engine) if i.id == import_row_id), None)
        if match is None:
            raise NoSuchOpenImportError(
                f"there is no open import {import_row_id} (see `audience-sync imports`)"
            )
        reason = f"abandoned by an operator at {utcnow():%Y-%m-%d %H:%M UTC}; sent again"
        with engine.begin() as conn:
            ledger.give_up_import(
                conn,
                import_row_id,
                status=ImportStatus.ABANDONED,
                reason=reason,
                finished_at=utcnow(),
            )
    return match


def format_open(found: list[OpenImport], *, now: datetime) -> str:
    if not found:
        return "no open imports"
    lines = [f"{'id':>6}  {'audience':<20} {'run':>5}  {'age':>8}  {'listrak':<12} file"]
    for item in found:
        age = _age(item.age(now))
        listrak = item.listrak_status or item.status
        lines.append(
            f"{item.id:>6}  {item.audience:<20} {item.run_id:>5}  {age:>8}  {listrak:<12} "
            f"{item.file_name}"
        )
    return "\n".join(lines)


def _ask(client: ListrakClient, item: OpenImport) -> OpenImport:
    if item.listrak_import_id is None:
        return replace(item, listrak_status="answer lost")
    try:
        status = client.import_status(item.list_id, item.listrak_import_id)
    except StopRunError:
        raise
    except ListrakError as exc:
        return replace(item, listrak_status=f"unknown ({exc.status or 'unreachable'})")
    return replace(item, listrak_status=status.status or "pending")


def _age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
