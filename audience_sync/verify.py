"""``verify``: compare Listrak's actual values with confirmed state and the latest snapshot;
``verify --repair``: a run (trigger ``repair``) whose planned changes are the drift.

Both read Listrak back under the run lock, so no sync can change either side meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from audience_sync import alerts
from audience_sync.config import AppConfig, AudienceSettings, TraitSettings
from audience_sync.guards import check_guards, check_trait_guards
from audience_sync.listrak.client import ListrakClient
from audience_sync.pipeline import AudienceRun, RunOutcome, SyncJob
from audience_sync.pipeline.context import RunContext
from audience_sync.readback import FieldTarget, field_targets, read_back
from audience_sync.state import drift, ledger
from audience_sync.state.diff import PlanCounts
from audience_sync.state.lock import RunLock
from audience_sync.state.migrate import ensure_current
from audience_sync.state.statuses import AudienceKind, ChangeAction, RunTrigger
from audience_sync.state.tables import audiences, run_changes
from audience_sync.traits.values import FieldSpec


@dataclass
class AudienceCheck:
    key: str
    list_id: int
    field_id: int | None
    drift: drift.AudienceDrift | None = None
    note: str | None = None


@dataclass
class VerifyReport:
    audiences: list[AudienceCheck] = field(default_factory=list)
    run: RunOutcome | None = None

    @property
    def drift_total(self) -> int:
        return sum(a.drift.total for a in self.audiences if a.drift is not None)

    @property
    def not_compared(self) -> list[str]:
        """Keys of the audiences that could not be compared (no field id, no snapshot yet)."""
        return [a.key for a in self.audiences if a.drift is None]


def _measure_all(job: SyncJob) -> list[AudienceCheck]:
    checks = []
    units: list[AudienceSettings | TraitSettings] = [
        *job.config.settings.audiences,
        *job.config.settings.traits,
    ]
    with job.engine.connect() as conn:
        for audience in units:
            check = AudienceCheck(audience.key, audience.list_id, audience.profile_field_id)
            checks.append(check)
            if audience.profile_field_id is None:
                check.note = "no profile_field_id; not compared"
                continue
            audience_id = _audience_id(job, audience)
            snapshot_run = drift.latest_snapshot_run(conn, audience_id)
            if snapshot_run is None:
                check.note = "no snapshot yet (run a sync first); not compared"
                continue
            if isinstance(audience, TraitSettings):
                check.drift = drift.measure_trait(conn, audience_id, snapshot_run)
            else:
                check.drift = drift.measure(conn, audience_id, snapshot_run)
    return checks


def _drift_by_audience(checks: list[AudienceCheck]) -> list[tuple[str, int]]:
    return [(c.key, c.drift.total) for c in checks if c.drift is not None]


def _audience_id(job: SyncJob, audience: AudienceSettings | TraitSettings) -> int:
    with job.engine.connect() as conn:
        value = conn.execute(select(audiences.c.id).where(audiences.c.key == audience.key)).scalar()
    assert value is not None, "field_targets registers every audience with a field"
    return int(value)


class VerifyJob(SyncJob):
    """:meth:`verify` measures drift; :meth:`repair` is a run whose changes are the drift,
    planned from the read-back and the latest snapshot instead of from the sources, then
    submitted, awaited and settled like any other run."""

    checks: list[AudienceCheck]

    def verify(self) -> VerifyReport:
        """Read Listrak back and measure drift per audience; sends nothing."""
        ensure_current(self.engine)
        lease = self.config.settings.sync.lock_lease_seconds
        with RunLock(self.engine, lease_seconds=lease), self._client_factory() as client:
            report = VerifyReport(audiences=self._read_and_measure(client))
        alerts.after_verify(self.config, self.engine, _drift_by_audience(report.audiences))
        return report

    def repair(self, *, force: bool = False) -> VerifyReport:
        planner = RepairPlanner(self)
        outcome = self._run_with(
            planner, trigger=RunTrigger.REPAIR, full=False, force=force, dry_run=False
        )
        return VerifyReport(audiences=planner.checks, run=outcome)

    def _read_and_measure(self, client: ListrakClient) -> list[AudienceCheck]:
        targets = field_targets(self.engine, self.config.settings.audiences)
        targets += trait_targets(self.engine, self.config, client)
        read_back(self.engine, client, targets, show_progress=self._show_progress)
        checks = _measure_all(self)
        alerts.record_checks(self.config, self.engine, _drift_by_audience(checks))
        return checks


def trait_targets(engine: Engine, config: AppConfig, client: ListrakClient) -> list[FieldTarget]:
    """The traits that have a profile field, with their state ids; values read back are
    formatted as the planner formats them (a value that does not format stays as read)."""
    from audience_sync.pipeline.planning import configured_or_listrak_spec
    from audience_sync.traits.values import format_value

    targets = []
    for trait in config.settings.traits:
        if trait.profile_field_id is None:
            continue
        spec = configured_or_listrak_spec(config, client, trait)

        def canonical(raw: str, spec: FieldSpec = spec) -> str:
            return format_value(spec, raw).value or raw

        with engine.begin() as conn:
            audience_id = ledger.audience_id(conn, trait.key) or ledger.upsert_audience(
                conn,
                key=trait.key,
                list_id=trait.list_id,
                field_id=trait.profile_field_id,
                source="",
                kind=AudienceKind.TRAIT,
            )
        targets.append(FieldTarget(audience_id, trait.list_id, trait.profile_field_id, canonical))
    return targets


class RepairPlanner:
    """Plans each audience's drift (see :mod:`audience_sync.state.drift`) as its changes."""

    def __init__(self, job: VerifyJob) -> None:
        self._job = job
        self.checks: list[AudienceCheck] = []

    def before_planning(self, ctx: RunContext) -> None:
        self.checks = self._job._read_and_measure(ctx.client)

    def register(self, ctx: RunContext, audience: AudienceSettings | TraitSettings) -> AudienceRun:
        audience_id = 0
        if audience.profile_field_id is not None:
            kind = (
                AudienceKind.TRAIT if isinstance(audience, TraitSettings) else AudienceKind.AUDIENCE
            )
            with ctx.engine.begin() as conn:
                audience_id = ledger.upsert_audience(
                    conn,
                    key=audience.key,
                    list_id=audience.list_id,
                    field_id=audience.profile_field_id,
                    source="repair",
                    kind=kind,
                )
                ledger.start_run_audience(conn, ctx.run_id, audience_id, source="repair")
        return AudienceRun(settings=audience, audience_id=audience_id)

    def plan(self, ctx: RunContext, run: AudienceRun, *, full: bool) -> None:
        check = next(c for c in self.checks if c.key == run.key)
        if check.drift is None:
            return
        found = check.drift
        audience_id = run.audience_id
        run_id = ctx.run_id
        with ctx.engine.begin() as conn:
            ledger.set_audience_source(
                conn, run_id, audience_id, f"repair: snapshot of run {found.snapshot_run}"
            )
            if run.is_trait:
                drift.plan_trait_repair(conn, run_id=run_id, audience_id=audience_id)
            else:
                drift.plan_repair(conn, run_id=run_id, audience_id=audience_id)
            planned: dict[str, int] = dict(
                conn.execute(
                    select(run_changes.c.action, func.count())
                    .where(run_changes.c.run_id == run_id, run_changes.c.audience_id == audience_id)
                    .group_by(run_changes.c.action)
                ).all()
            )
            # A repair run that sends anything acts on the snapshot it compared with: once
            # done, that snapshot is the one later checks name (its desired values stay).
            run.acts_on_snapshot = bool(planned)
            plan = PlanCounts(
                snapshot=found.members,
                confirmed_on_before=found.confirmed_on,
                planned_on=int(planned.get(ChangeAction.ON, 0) + planned.get(ChangeAction.SET, 0)),
                planned_off=int(planned.get(ChangeAction.OFF, 0)),
                parked_on=0,
                parked_off=0,
            )
            run.plan = plan
            if isinstance(run.settings, TraitSettings):
                run.verdict = check_trait_guards(
                    valid=max(found.members, 1),  # a repair restores the snapshot's own values
                    confirmed=found.confirmed_on,
                    changed=plan.planned_on,
                    guards=run.settings.guards,
                )
            else:
                run.verdict = check_guards(
                    plan, ctx.config.guards_for(run.settings), on_in_listrak=found.on_in_listrak
                )
            ledger.record_audience_plan(
                conn,
                run_id,
                audience_id,
                ledger.AudiencePlan(
                    snapshot_count=plan.snapshot,
                    confirmed_on_before=plan.confirmed_on_before,
                    planned_on=plan.planned_on,
                    planned_off=plan.planned_off,
                    unchanged_count=plan.snapshot - plan.planned_on,
                ),
            )


def format_report(report: VerifyReport) -> str:
    lines = []
    for check in report.audiences:
        found = check.drift
        if found is None:
            lines.append(f"{check.key}: {check.note}")
            continue
        verdict = f"drift {found.total}" if found.total else "no drift"
        if found.trait:
            counts = (
                f"values {found.members} (snapshot of run {found.snapshot_run}), "
                f"confirmed values {found.confirmed_on}, values in Listrak {found.on_in_listrak}"
            )
        else:
            counts = (
                f"members {found.members} (snapshot of run {found.snapshot_run}), "
                f"confirmed on {found.confirmed_on}, on in Listrak {found.on_in_listrak}"
            )
        lines.append(
            f"{check.key} (list {check.list_id}, field {check.field_id}): {verdict}; "
            f"{counts}, subscribed contacts read {found.subscribed_read}"
        )
        categories, fixes = (
            (drift.TRAIT_CATEGORIES, drift.TRAIT_FIX)
            if found.trait
            else (drift.CATEGORIES, drift.FIX)
        )
        for name, label in categories.items():
            count = found.counts.get(name, 0)
            if not count:
                continue
            lines.append(f"  {label}: {count} (fix: {fixes[name]})")
            for row in found.samples.get(name, []):
                member = "member" if row.member else "not a member"
                lines.append(
                    f"      {row.email}  Listrak {row.listrak}, confirmed {row.confirmed}, {member}"
                )
    return "\n".join(lines)
