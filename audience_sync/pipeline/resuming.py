"""Before an audience is planned: resolve what earlier runs left open for it, inside this run
and recorded on this run (``listrak_imports.resolved_run_id``), one audience at a time.

- An import whose POST answer never came (``posting``) is looked up by its file name; not found
  means it never reached Listrak (``lost``).
- An import Listrak answers 404 for (list deleted, access lost, import purged) and that no
  look-up by name finds is ``lost``.
- A finished import is settled; one unfinished after ``abandon_after`` is ``abandoned``.
  Lost and abandoned imports' changes fail, so this run's plan sends them again.
- One still running: the audience waits, and the import is awaited with this run's own
  imports; once it settles the audience is planned and sent in this run (so no contact is in
  two imports at once). Still running at ``import_timeout``: the audience fails this run.
A Listrak error here fails only this audience.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from audience_sync.errors import FatalListrakError, ListrakError, StopRunError
from audience_sync.pipeline.context import AudienceRun, RunContext
from audience_sync.pipeline.outcomes import fail_audience, wait_for_open_import
from audience_sync.pipeline.polling import ImportPoller
from audience_sync.pipeline.settling import (
    give_up_import,
    import_row,
    is_finished,
    settle_finished_import,
)
from audience_sync.state import changes, ledger
from audience_sync.state.db import as_utc, utcnow
from audience_sync.state.statuses import ImportStatus, RunStatus

logger = logging.getLogger("audience_sync.pipeline")


def resume_audience(ctx: RunContext, run: AudienceRun, poller: ImportPoller) -> None:
    with ctx.engine.connect() as conn:
        open_ids = ledger.open_imports_of(conn, run.audience_id, before_run=ctx.run_id)
    still_running: list[str] = []
    for import_row_id in open_ids:
        try:
            waiting = _resolve(ctx, import_row(ctx, import_row_id))
        except StopRunError:
            raise
        except ListrakError as exc:
            fail_audience(ctx, run, f"could not resolve an earlier import: {exc}")
            return
        if waiting is not None:
            still_running.append(waiting)
            poller.watch(import_row_id, run)
    if still_running:
        wait_for_open_import(ctx, run, "; ".join(still_running))


def close_interrupted_runs(ctx: RunContext) -> None:
    """Runs that never finished (their process died): changes they never sent, or sent in an
    import that is no longer open, fail; the runs are marked ``interrupted``."""
    with ctx.engine.connect() as conn:
        running = [r for r in ledger.unfinished_runs(conn) if r != ctx.run_id]
    for run_id in running:
        with ctx.engine.begin() as conn:
            changes.fail_interrupted(conn, run_id)
            ledger.finish_run(
                conn,
                run_id,
                status=RunStatus.INTERRUPTED,
                error="the process stopped mid-run; resolved by a later run",
            )
        logger.warning("resume.interrupted_run", extra={"run_id": run_id})


def _resolve(ctx: RunContext, row: Mapping[str, Any]) -> str | None:
    """Resolve one open import; returns why the audience must wait, or None when resolved."""
    logger.info("resume.import", extra={"file_name": row["file_name"]})
    if row["status"] == ImportStatus.POSTING or row["listrak_import_id"] is None:
        if not _found_by_name(ctx, row):
            give_up_import(ctx, row, status=ImportStatus.LOST, reason="never reached Listrak")
            return None
        row = import_row(ctx, int(row["id"]))
    list_id = int(row["list_id"])
    try:
        status = ctx.client.import_status(list_id, str(row["listrak_import_id"]))
    except FatalListrakError as exc:
        if exc.status != 404 or isinstance(exc, StopRunError):
            raise
        if row["found_by_name"] or not _found_by_name(ctx, row):
            give_up_import(
                ctx, row, status=ImportStatus.LOST, reason=f"Listrak no longer knows it ({exc})"
            )
            return None
        row = import_row(ctx, int(row["id"]))
        status = ctx.client.import_status(list_id, str(row["listrak_import_id"]))
    value = status.status or ""
    if is_finished(ctx, value, status.endDate):
        settle_finished_import(ctx, row, value)
        return None
    age = utcnow() - as_utc(row["created_at"])
    abandon_after = ctx.config.settings.listrak.abandon_after
    if age >= abandon_after:
        give_up_import(
            ctx,
            row,
            status=ImportStatus.ABANDONED,
            reason=f"still {value or 'pending'} at Listrak after {abandon_after}; sent again",
        )
        return None
    return f"import {row['file_name']} of run {row['run_id']} is still {value or 'pending'}"


def _found_by_name(ctx: RunContext, row: Mapping[str, Any]) -> bool:
    """Look the import up by its file name; record its id when found (only imports created
    after its ledger row count)."""
    found = ctx.client.find_import(
        int(row["list_id"]), str(row["file_name"]), not_before=as_utc(row["created_at"])
    )
    if found is None:
        return False
    with ctx.engine.begin() as conn:
        ledger.update_import(
            conn,
            int(row["id"]),
            status=ImportStatus.SUBMITTED,
            listrak_import_id=found,
            found_by_name=True,
            submitted_at=utcnow(),
        )
    return True
