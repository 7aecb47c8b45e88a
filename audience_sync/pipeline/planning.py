"""Step 1, per audience: read the source, stage the snapshot, diff it against confirmed state,
and judge the plan by the guards. A source that cannot be read fails only its audience."""

from __future__ import annotations

import dataclasses
import logging
from typing import Protocol

from audience_sync.checkpoints import checkpoint
from audience_sync.config import AudienceSettings
from audience_sync.errors import SourceError
from audience_sync.guards import check_guards
from audience_sync.normalize import normalize_chunk
from audience_sync.pipeline.context import AudienceRun, RunContext
from audience_sync.pipeline.outcomes import fail_audience
from audience_sync.readback import field_targets, read_back
from audience_sync.sources import build_source
from audience_sync.sources.base import MemberSource
from audience_sync.state import diff, drift, ledger, staging
from audience_sync.state.db import utcnow

logger = logging.getLogger("audience_sync.pipeline")


class Planner(Protocol):
    """Decides each audience's changes: from its source, or from the drift (``verify --repair``)."""

    def before_planning(self, ctx: RunContext) -> None: ...

    def register(self, ctx: RunContext, audience: AudienceSettings) -> AudienceRun: ...

    def plan(self, ctx: RunContext, run: AudienceRun, *, full: bool) -> None: ...


class SourcePlanner:
    """Plans from each audience's member source. ``reconcile`` also turns off contacts that
    are on in Listrak but not members (read back first, see :mod:`audience_sync.state.drift`)."""

    def __init__(self, *, reconcile: bool = False) -> None:
        self.reconcile = reconcile
        self._sources: dict[str, MemberSource | SourceError] = {}

    def before_planning(self, ctx: RunContext) -> None:
        if self.reconcile:
            targets = field_targets(ctx.engine, ctx.config.settings.audiences)
            read_back(ctx.engine, ctx.client, targets, show_progress=ctx.show_progress)

    def register(self, ctx: RunContext, audience: AudienceSettings) -> AudienceRun:
        try:
            source: MemberSource | SourceError = build_source(
                audience.source, base_dir=ctx.config.base_dir, audience_key=audience.key
            )
        except SourceError as exc:
            source = exc
        self._sources[audience.key] = source
        description = (
            f"unusable source: {source}" if isinstance(source, SourceError) else source.describe()
        )
        with ctx.engine.begin() as conn:
            audience_id = ledger.upsert_audience(
                conn,
                key=audience.key,
                list_id=audience.list_id,
                field_id=audience.profile_field_id,
                source=description,
            )
            ledger.start_run_audience(conn, ctx.run_id, audience_id, source=description)
        return AudienceRun(settings=audience, audience_id=audience_id)

    def plan(self, ctx: RunContext, run: AudienceRun, *, full: bool) -> None:
        audience = run.settings
        if audience.profile_field_id is None:
            fail_audience(ctx, run, "no profile_field_id; run `audience-sync setup` first")
            return
        source = self._sources[audience.key]
        try:
            if isinstance(source, SourceError):
                raise source
            rows_read, invalid = stage_source(ctx, run, source)
        except SourceError as exc:
            with ctx.engine.begin() as conn:
                staging.drop_staged(conn, ctx.run_id, run.audience_id)
            fail_audience(ctx, run, str(exc))
            return
        checkpoint("staged")
        cutoff = utcnow() - ctx.config.settings.sync.retry_skipped_after
        with ctx.engine.begin() as conn:
            plan = diff.plan_changes(
                conn,
                run_id=ctx.run_id,
                audience_id=run.audience_id,
                full=full,
                parked_before=cutoff,
            )
            on_in_listrak = None
            if self.reconcile:
                extra = drift.plan_reconcile_offs(
                    conn, run_id=ctx.run_id, audience_id=run.audience_id
                )
                plan = dataclasses.replace(plan, planned_off=plan.planned_off + extra)
                on_in_listrak = drift.on_in_listrak(conn, run.audience_id)
            run.plan = plan
            run.verdict = check_guards(
                plan, ctx.config.guards_for(audience), on_in_listrak=on_in_listrak
            )
            ledger.record_audience_plan(
                conn,
                ctx.run_id,
                run.audience_id,
                ledger.AudiencePlan(
                    rows_read=rows_read,
                    invalid_reasons=invalid,
                    source_notes=source.notes,
                    snapshot_count=plan.snapshot,
                    confirmed_on_before=plan.confirmed_on_before,
                    planned_on=plan.planned_on,
                    planned_off=plan.planned_off,
                    unchanged_count=plan.unchanged,
                    parked_count=plan.parked_on + plan.parked_off,
                ),
            )
        logger.info(
            "audience.planned",
            extra={
                "run_id": ctx.run_id,
                "audience": audience.key,
                "snapshot": plan.snapshot,
                "on": plan.planned_on,
                "off": plan.planned_off,
                "invalid": sum(invalid.values()),
            },
        )


def stage_source(
    ctx: RunContext, run: AudienceRun, source: MemberSource
) -> tuple[int, dict[str, int]]:
    """Normalise and stage every chunk the source yields; returns (rows read, invalid by reason).

    A commit per chunk keeps SQLite's write lock short, so the run lock's heartbeat gets
    through; rows of a staging cut short belong to a run that never plans them.
    """
    invalid: dict[str, int] = {}
    rows_read = 0
    chunk_size = ctx.config.settings.sync.chunk_size
    with ctx.engine.connect() as conn, ctx.bar(f"read {run.key}", "rows") as bar:
        for raw in source.chunks(chunk_size):
            chunk = normalize_chunk(raw)
            with conn.begin():
                staging.stage_emails(conn, ctx.run_id, run.audience_id, chunk.emails)
            for reason, count in chunk.invalid.items():
                invalid[reason] = invalid.get(reason, 0) + count
            rows_read += len(raw)
            bar.update(len(raw))
    return rows_read, invalid
