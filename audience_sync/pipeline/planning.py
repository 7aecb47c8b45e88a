"""Step 1, per audience: read the source into the embedded planner (DuckDB), diff it against
confirmed state, write the planned changes and desired-value deltas, and judge the plan by the
guards. A source that cannot be read fails only its audience."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from audience_sync.checkpoints import checkpoint
from audience_sync.config import AppConfig, AudienceSettings, TraitSettings
from audience_sync.errors import AudienceSyncError, ListrakError, SourceError, StopRunError
from audience_sync.guards import check_guards, check_trait_guards
from audience_sync.listrak.client import ListrakClient
from audience_sync.pipeline.context import AudienceRun, RunContext
from audience_sync.pipeline.outcomes import fail_audience
from audience_sync.readback import field_targets, read_back
from audience_sync.sources import build_source
from audience_sync.sources.base import MemberSource
from audience_sync.state import drift, ledger
from audience_sync.state.db import utcnow
from audience_sync.state.diff import PlanCounts
from audience_sync.state.statuses import AudienceKind
from audience_sync.state.tables import VALUE_LENGTH
from audience_sync.traits.values import FieldSpec

if TYPE_CHECKING:
    from audience_sync.plan.engine import Counts, EngineSettings, SnapshotPlan
    from audience_sync.plan.traits import TraitCounts, TraitSnapshot
    from audience_sync.sources.trait_sources import TraitSource

logger = logging.getLogger("audience_sync.pipeline")


class Planner(Protocol):
    """Decides each audience's changes: from its source, or from the drift (``verify --repair``)."""

    def before_planning(self, ctx: RunContext) -> None: ...

    def register(
        self, ctx: RunContext, audience: AudienceSettings | TraitSettings
    ) -> AudienceRun: ...

    def plan(self, ctx: RunContext, run: AudienceRun, *, full: bool) -> None: ...


class SourcePlanner:
    """Plans from each audience's member source. ``reconcile`` also turns off contacts that
    are on in Listrak but not members (read back first, see :mod:`audience_sync.state.drift`)."""

    def __init__(self, *, reconcile: bool = False, keep_snapshots: bool = True) -> None:
        self.reconcile = reconcile
        # A dry run's snapshot is never applied, so it is not kept in the snapshot cache.
        self.keep_snapshots = keep_snapshots
        self._sources: dict[str, MemberSource | SourceError] = {}
        self._trait_sources: dict[str, TraitSource | SourceError] = {}

    def before_planning(self, ctx: RunContext) -> None:
        if self.reconcile:
            targets = field_targets(ctx.engine, ctx.config.settings.audiences)
            read_back(ctx.engine, ctx.client, targets, show_progress=ctx.show_progress)

    def register(self, ctx: RunContext, audience: AudienceSettings | TraitSettings) -> AudienceRun:
        if isinstance(audience, TraitSettings):
            return self._register_trait(ctx, audience)
        try:
            source: MemberSource | SourceError = build_source(
                audience.source, base_dir=ctx.config.base_dir, audience_key=audience.key
            )
        except SourceError as exc:
            source = exc
        self._sources[audience.key] = source
        return _start_unit(ctx, audience, source, AudienceKind.AUDIENCE)

    def _register_trait(self, ctx: RunContext, trait: TraitSettings) -> AudienceRun:
        # Imported here: trait sources load pandas and pyarrow, which `--help` never needs.
        from audience_sync.sources.trait_sources import build_trait_source

        try:
            source: TraitSource | SourceError = build_trait_source(
                trait.source, base_dir=ctx.config.base_dir, trait_key=trait.key
            )
        except SourceError as exc:
            source = exc
        self._trait_sources[trait.key] = source
        return _start_unit(ctx, trait, source, AudienceKind.TRAIT)

    def plan(self, ctx: RunContext, run: AudienceRun, *, full: bool) -> None:
        audience = run.settings
        if isinstance(audience, TraitSettings):
            self._plan_trait(ctx, run, audience, full=full)
            return
        if audience.profile_field_id is None:
            fail_audience(ctx, run, "no profile_field_id; run `audience-sync setup` first")
            return
        source = self._sources[audience.key]
        if audience.planner == "in_database":
            self._plan_in_database(ctx, run, source, full=full)
            return
        # Imported here: DuckDB and pyarrow load only when a run plans.
        import duckdb

        from audience_sync.plan.engine import SnapshotPlan, planning_error
        from audience_sync.plan.writer import plan_snapshot

        with planner_workspace(ctx) as settings:
            try:
                with SnapshotPlan(settings) as snapshot:
                    if isinstance(source, SourceError):
                        raise source
                    snapshot.start_state_read(ctx.engine, run.audience_id)
                    rows_read, invalid = read_source(ctx, run, source, snapshot)
                    checkpoint("staged")
                    counts = plan_snapshot(
                        ctx.engine,
                        snapshot,
                        run_id=ctx.run_id,
                        audience_id=run.audience_id,
                        full=full,
                        parked_before=utcnow() - ctx.config.settings.sync.retry_skipped_after,
                        reconcile=self.reconcile,
                    )
                    if self.keep_snapshots:
                        snapshot.keep_snapshot(run.audience_id)
            except SourceError as exc:
                fail_audience(ctx, run, str(exc))
                return
            except duckdb.Error as exc:
                fail_audience(ctx, run, str(planning_error(exc, settings)))
                return
        self._judge_and_record(
            ctx, run, counts, rows_read=rows_read, invalid=invalid, notes=source.notes
        )

    def _plan_in_database(
        self,
        ctx: RunContext,
        run: AudienceRun,
        source: MemberSource | SourceError,
        *,
        full: bool,
    ) -> None:
        """The plan computed inside the state database (``planner = "in_database"``): staged,
        diffed and written to the ledger in one transaction, committed before anything is
        sent."""
        from audience_sync.errors import PlanningError
        from audience_sync.plan.in_database import SourceQuery, plan_in_database
        from audience_sync.sources.sql import SqlSource

        try:
            if isinstance(source, SourceError):
                raise source
            assert isinstance(source, SqlSource), "the config allows only sql sources"
            query = SourceQuery(
                query=source.spec.query,
                params=source.query_values(),
                email_column=source.spec.email_column,
                audience_key=run.key,
                scrub=source.scrub,
            )
            with ctx.engine.begin() as conn:
                outcome = plan_in_database(
                    conn,
                    query,
                    run_id=ctx.run_id,
                    audience_id=run.audience_id,
                    full=full,
                    parked_before=utcnow() - ctx.config.settings.sync.retry_skipped_after,
                    reconcile=self.reconcile,
                    staged=lambda: checkpoint("staged"),
                )
        except (SourceError, PlanningError) as exc:
            fail_audience(ctx, run, str(exc))
            return
        notes = {"rows": outcome.rows_read, "residual": outcome.residual}
        self._judge_and_record(
            ctx,
            run,
            outcome.counts,
            rows_read=outcome.rows_read,
            invalid=outcome.invalid,
            notes=notes,
        )

    def _judge_and_record(
        self,
        ctx: RunContext,
        run: AudienceRun,
        counts: Counts,
        *,
        rows_read: int,
        invalid: dict[str, int],
        notes: dict[str, int],
    ) -> None:
        """Judge an audience's plan by its guards and record its counts on the run."""
        audience = run.settings
        assert isinstance(audience, AudienceSettings)
        with ctx.engine.begin() as conn:
            plan = PlanCounts(
                snapshot=counts.snapshot,
                confirmed_on_before=counts.confirmed_on_before,
                planned_on=counts.planned_on,
                planned_off=counts.planned_off + counts.reconcile_off,
                parked_on=counts.parked_on,
                parked_off=counts.parked_off,
            )
            on_in_listrak = drift.on_in_listrak(conn, run.audience_id) if self.reconcile else None
            run.plan = plan
            run.acts_on_snapshot = True
            run.verdict = check_guards(
                plan, ctx.config.guards_for(audience), on_in_listrak=on_in_listrak
            )
            ledger.record_audience_plan(
                conn,
                ctx.run_id,
                run.audience_id,
                _ledger_plan(
                    plan,
                    rows_read=rows_read,
                    invalid=invalid,
                    notes=notes,
                    fingerprint=counts.fingerprint,
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

    def _plan_trait(
        self, ctx: RunContext, run: AudienceRun, trait: TraitSettings, *, full: bool
    ) -> None:
        if trait.profile_field_id is None:
            fail_audience(ctx, run, "no profile_field_id; run `audience-sync setup` first")
            return
        source = self._trait_sources[trait.key]
        if trait.planner == "in_database":
            self._plan_trait_in_database(ctx, run, trait, source, full=full)
            return
        import duckdb

        from audience_sync.plan.engine import planning_error
        from audience_sync.plan.traits import TraitSnapshot
        from audience_sync.plan.writer import plan_trait_snapshot

        with planner_workspace(ctx) as settings:
            try:
                with TraitSnapshot(settings) as snapshot:
                    if isinstance(source, SourceError):
                        raise source
                    spec = trait_spec(ctx, trait)
                    rows_read, invalid = read_trait_source(ctx, run, source, spec, snapshot)
                    checkpoint("staged")
                    counts = plan_trait_snapshot(
                        ctx.engine,
                        snapshot,
                        run_id=ctx.run_id,
                        audience_id=run.audience_id,
                        full=full,
                        clear_missing=trait.clear_missing,
                        parked_before=utcnow() - ctx.config.settings.sync.retry_skipped_after,
                    )
            except StopRunError:
                raise
            except (SourceError, ListrakError) as exc:
                fail_audience(ctx, run, str(exc))
                return
            except duckdb.Error as exc:
                fail_audience(ctx, run, str(planning_error(exc, settings)))
                return
        self._judge_and_record_trait(
            ctx, run, trait, counts, rows_read=rows_read, invalid=invalid, notes=source.notes
        )

    def _plan_trait_in_database(
        self,
        ctx: RunContext,
        run: AudienceRun,
        trait: TraitSettings,
        source: TraitSource | SourceError,
        *,
        full: bool,
    ) -> None:
        """The trait's plan computed inside the state database (``planner = "in_database"``),
        written to the ledger in one transaction committed before anything is sent."""
        from audience_sync.errors import PlanningError
        from audience_sync.plan.in_database_traits import TraitQuery, plan_trait_in_database
        from audience_sync.sources.trait_sources import SqlTraitSource

        try:
            if isinstance(source, SourceError):
                raise source
            assert isinstance(source, SqlTraitSource), "the config allows only sql sources"
            spec = trait_spec(ctx, trait)
            query = TraitQuery(
                query=source.spec.query,
                params=source.query_values(),
                email_column=source.spec.email_column,
                value_column=source.spec.value_column,
                trait_key=trait.key,
                scrub=source.scrub,
            )
            with ctx.engine.begin() as conn:
                outcome = plan_trait_in_database(
                    conn,
                    query,
                    spec,
                    run_id=ctx.run_id,
                    audience_id=run.audience_id,
                    full=full,
                    clear_missing=trait.clear_missing,
                    parked_before=utcnow() - ctx.config.settings.sync.retry_skipped_after,
                    staged=lambda: checkpoint("staged"),
                )
        except StopRunError:
            raise
        except (SourceError, ListrakError, PlanningError) as exc:
            fail_audience(ctx, run, str(exc))
            return
        notes = {
            "rows": outcome.rows_read,
            "residual": outcome.residual,
            "distinct_values": outcome.distinct_values,
        }
        self._judge_and_record_trait(
            ctx,
            run,
            trait,
            outcome.counts,
            rows_read=outcome.rows_read,
            invalid=outcome.invalid,
            notes=notes,
        )

    def _judge_and_record_trait(
        self,
        ctx: RunContext,
        run: AudienceRun,
        trait: TraitSettings,
        counts: TraitCounts,
        *,
        rows_read: int,
        invalid: dict[str, int],
        notes: dict[str, int],
    ) -> None:
        """Judge a trait's plan by its guards and record its counts on the run."""
        invalid = dict(invalid)
        for reason, count in counts.invalid.items():
            key = f"value:{reason}"
            invalid[key] = invalid.get(key, 0) + count
        plan = PlanCounts(
            snapshot=counts.valid,
            confirmed_on_before=counts.confirmed_before,
            planned_on=counts.planned_set,
            planned_off=counts.planned_clear,
            parked_on=counts.parked_set,
            parked_off=counts.parked_clear,
        )
        run.plan = plan
        run.acts_on_snapshot = True
        run.verdict = check_trait_guards(
            valid=counts.valid,
            confirmed=counts.confirmed_before,
            changed=counts.changed,
            guards=trait.guards,
        )
        with ctx.engine.begin() as conn:
            ledger.record_audience_plan(
                conn,
                ctx.run_id,
                run.audience_id,
                _ledger_plan(
                    plan,
                    rows_read=rows_read,
                    invalid=invalid,
                    notes=notes,
                    fingerprint=counts.fingerprint,
                ),
            )
        logger.info(
            "trait.planned",
            extra={
                "run_id": ctx.run_id,
                "audience": trait.key,
                "values": counts.valid,
                "set": counts.planned_set,
                "clear": counts.planned_clear,
                "invalid": sum(counts.invalid.values()),
            },
        )


def _ledger_plan(
    plan: PlanCounts,
    *,
    rows_read: int,
    invalid: dict[str, int],
    notes: dict[str, int],
    fingerprint: str,
) -> ledger.AudiencePlan:
    """What the run records of an audience's or a trait's plan."""
    return ledger.AudiencePlan(
        rows_read=rows_read,
        invalid_reasons=invalid,
        source_notes=notes,
        snapshot_count=plan.snapshot,
        confirmed_on_before=plan.confirmed_on_before,
        planned_on=plan.planned_on,
        planned_off=plan.planned_off,
        unchanged_count=plan.unchanged,
        parked_count=plan.parked_on + plan.parked_off,
        snapshot_fingerprint=fingerprint,
    )


def trait_spec(ctx: RunContext, trait: TraitSettings) -> FieldSpec:
    """How the trait's values are validated: from the configured ``data_type`` (and
    ``max_length``) when set, so ``plan`` works offline; otherwise from its field in Listrak.
    Values are capped at what the state database holds (255 characters)."""
    configured = _configured_spec(ctx.config, trait)
    if configured is not None:
        return _capped(configured)
    return configured_or_listrak_spec(ctx.config, ctx.client, trait)


def configured_or_listrak_spec(
    config: AppConfig, client: ListrakClient, trait: TraitSettings
) -> FieldSpec:
    """:func:`trait_spec` with an explicit client (``verify``)."""
    return _capped(_configured_spec(config, trait) or _listrak_spec(config, client, trait))


def _configured_spec(config: AppConfig, trait: TraitSettings) -> FieldSpec | None:
    if trait.data_type is None:
        return None
    return FieldSpec(
        data_type=trait.data_type,
        max_length=trait.max_length or 0,
        choices=tuple(trait.choices or ()),
        date_format=config.settings.listrak.date_format,
    )


def _listrak_spec(config: AppConfig, client: ListrakClient, trait: TraitSettings) -> FieldSpec:
    from audience_sync.setup_fields import read_trait_field, trait_field_spec

    found = read_trait_field(config, client, trait)
    if found.problem:
        raise SourceError(f"trait {trait.key!r}: {found.problem}")
    try:
        return trait_field_spec(config, trait, found)
    except AudienceSyncError as exc:
        raise SourceError(str(exc)) from None


def _capped(spec: FieldSpec) -> FieldSpec:
    from dataclasses import replace

    limit = min(spec.max_length, VALUE_LENGTH) if spec.max_length else VALUE_LENGTH
    return replace(spec, max_length=limit)


def read_trait_source(
    ctx: RunContext,
    run: AudienceRun,
    source: TraitSource,
    spec: FieldSpec,
    snapshot: TraitSnapshot,
) -> tuple[int, dict[str, int]]:
    """Normalise every chunk's emails and format its values into the planner; returns (rows
    read, rejected emails by reason). Invalid values are counted per contact by the plan."""
    import pyarrow.compute as pc

    from audience_sync.normalize import normalize_aligned
    from audience_sync.traits.values import format_array

    invalid: dict[str, int] = {}
    rows_read = 0
    chunk_size = ctx.config.settings.sync.chunk_size
    with ctx.bar(f"read {run.key}", "rows") as bar:
        for batch in source.value_batches(chunk_size):
            normalised = normalize_aligned(batch.column("email"))
            for reason, count in normalised.invalid.items():
                invalid[reason] = invalid.get(reason, 0) + count
            keep = normalised.emails.is_valid()
            values, reasons = format_array(spec, batch.column("value"))
            snapshot.add(
                pc.filter(normalised.emails, keep),
                pc.filter(values, keep),
                pc.filter(reasons, keep),
            )
            rows_read += batch.num_rows
            bar.update(batch.num_rows)
    return rows_read, invalid


def _start_unit(
    ctx: RunContext,
    settings: AudienceSettings | TraitSettings,
    source: MemberSource | TraitSource | SourceError,
    kind: AudienceKind,
) -> AudienceRun:
    """Record an audience or trait (and its source, or why it is unusable) on this run."""
    description = (
        f"unusable source: {source}" if isinstance(source, SourceError) else source.describe()
    )
    with ctx.engine.begin() as conn:
        audience_id = ledger.upsert_audience(
            conn,
            key=settings.key,
            list_id=settings.list_id,
            field_id=settings.profile_field_id,
            source=description,
            kind=kind,
        )
        ledger.start_run_audience(conn, ctx.run_id, audience_id, source=description)
    return AudienceRun(settings=settings, audience_id=audience_id)


@contextmanager
def planner_workspace(ctx: RunContext) -> Iterator[EngineSettings]:
    """The planner's settings; without a configured ``temp_directory`` it spills into a
    fresh temporary directory, removed afterwards."""
    from audience_sync.plan.engine import EngineSettings

    configured = ctx.config.settings.planner
    cache = configured.snapshot_cache
    settings = EngineSettings(
        configured.memory_limit,
        threads=configured.threads,
        snapshot_cache=ctx.config.base_dir / cache.expanduser() if cache is not None else None,
    )
    if configured.temp_directory is not None:
        spill = ctx.config.base_dir / configured.temp_directory.expanduser()
        yield replace(settings, temp_directory=spill)
        return
    with tempfile.TemporaryDirectory(prefix="audience-sync-plan-") as spill_dir:
        yield replace(settings, temp_directory=Path(spill_dir))


def read_source(
    ctx: RunContext, run: AudienceRun, source: MemberSource, snapshot: SnapshotPlan
) -> tuple[int, dict[str, int]]:
    """Normalise every chunk the source yields into the planner; returns (rows read, invalid
    by reason). Nothing reaches the state database until the whole snapshot is read."""
    from audience_sync.plan.input import normalised_batches

    invalid: dict[str, int] = {}
    rows_read = 0
    chunk_size = ctx.config.settings.sync.chunk_size
    with ctx.bar(f"read {run.key}", "rows") as bar:
        for emails, rejected, raw_rows in normalised_batches(source, chunk_size):
            snapshot.add(emails)
            for reason, count in rejected.items():
                invalid[reason] = invalid.get(reason, 0) + count
            rows_read += raw_rows
            bar.update(raw_rows)
    return rows_read, invalid
