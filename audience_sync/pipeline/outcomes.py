"""How one audience's unit of work ends, recorded on that audience only."""

from __future__ import annotations

import logging

from audience_sync.pipeline.context import AudienceRun, RunContext
from audience_sync.state import changes, desired, ledger
from audience_sync.state.statuses import AudienceStatus

logger = logging.getLogger("audience_sync.pipeline")


def fail_audience(ctx: RunContext, run: AudienceRun, message: str) -> None:
    """The audience failed: its unsent changes are failed (planned again by the next run);
    what it already posted stays open and is still confirmed as Listrak finishes it."""
    if run.error is None:
        run.error = message
    logger.error("audience.failed", extra={"audience": run.key, "error": message})
    with ctx.engine.begin() as conn:
        changes.fail_unsent(conn, ctx.run_id, f"not sent: {message}", audience_id=run.audience_id)
        ledger.set_audience_status(
            conn, ctx.run_id, run.audience_id, AudienceStatus.FAILED, error=run.error
        )


def wait_for_open_import(ctx: RunContext, run: AudienceRun, message: str) -> None:
    """An import of an earlier run is still running at Listrak: plan this audience only once
    it is settled, so no contact is in two imports at once."""
    run.waiting_on = message
    logger.warning("audience.waiting", extra={"audience": run.key, "reason": message})
    with ctx.engine.begin() as conn:
        ledger.set_audience_status(
            conn, ctx.run_id, run.audience_id, AudienceStatus.WAITING, error=message
        )


def finish_audience(ctx: RunContext, run: AudienceRun) -> None:
    """After every import of the run is settled (or given up on): ``done`` only when every
    planned change was confirmed or skipped by Listrak."""
    if run.failed or run.waiting_on is not None or run.plan is None:
        return
    with ctx.engine.connect() as conn:
        unresolved = changes.unresolved(conn, ctx.run_id, run.audience_id, ctx.resolved)
    if unresolved:
        total = sum(unresolved.values())
        fail_audience(ctx, run, f"{total} change(s) not confirmed by Listrak (see `show`)")
        return
    with ctx.engine.begin() as conn:
        ledger.set_audience_status(conn, ctx.run_id, run.audience_id, AudienceStatus.DONE)
        if run.acts_on_snapshot:
            desired.apply_deltas(
                conn, run_id=ctx.run_id, audience_id=run.audience_id, values=run.is_trait
            )


def abort_audience(ctx: RunContext, run: AudienceRun, reason: str) -> None:
    """A guard tripped for an audience planned late (after its earlier import settled, when
    other audiences were already sent): only this audience is aborted, nothing sent for it."""
    run.error = f"guard: {reason}"
    logger.error("audience.aborted", extra={"audience": run.key, "reason": reason})
    with ctx.engine.begin() as conn:
        changes.abort_unsent(
            conn, ctx.run_id, "guard abort: nothing was sent", audience_id=run.audience_id
        )
        ledger.set_audience_status(
            conn, ctx.run_id, run.audience_id, AudienceStatus.ABORTED, error=run.error
        )
