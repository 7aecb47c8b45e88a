"""One sync run, coordinated: each audience is its own unit of work through
resume -> plan -> submit -> await -> confirm, with the ledger between the steps.

A failure in one audience is recorded on it and never touches another's changes; only a
:class:`~audience_sync.errors.StopRunError` (credentials, beta route, run lock, state database)
or a guard ends the whole run. Every step that touches Listrak is preceded by a committed ledger
row, so a run killed at any point is resolved by the next one (see :mod:`.resuming`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from audience_sync import alerts
from audience_sync.checkpoints import checkpoint
from audience_sync.config import AppConfig, AudienceSettings, TraitSettings
from audience_sync.errors import (
    AudienceSyncError,
    GuardError,
    ListrakError,
    StopRunError,
)
from audience_sync.pipeline import submitting
from audience_sync.pipeline.context import AudienceRun, ClientFactory, RunContext
from audience_sync.pipeline.outcomes import abort_audience, fail_audience, finish_audience
from audience_sync.pipeline.planning import Planner, SourcePlanner
from audience_sync.pipeline.polling import ImportPoller
from audience_sync.pipeline.resuming import close_interrupted_runs, resume_audience
from audience_sync.state import changes, ledger
from audience_sync.state.db import make_engine
from audience_sync.state.lock import RunLock
from audience_sync.state.migrate import ensure_current
from audience_sync.state.statuses import AudienceStatus, RunStatus, RunTrigger

logger = logging.getLogger("audience_sync.pipeline")


@dataclass
class RunOutcome:
    run_id: int
    status: RunStatus
    error: str | None = None
    audiences: list[AudienceRun] = field(default_factory=list)


class SyncJob:
    """Runs the job for one configuration. Build it once; call :meth:`run` per run."""

    def __init__(
        self,
        config: AppConfig,
        *,
        client_factory: ClientFactory,
        engine: Engine | None = None,
        show_progress: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.engine = engine or make_engine(config.state_url, schema=config.state_schema)
        self._client_factory = client_factory
        self._show_progress = show_progress
        self._sleep = sleep
        self.last_run_id: int | None = None

    def run(
        self,
        *,
        trigger: RunTrigger = RunTrigger.MANUAL,
        full: bool = False,
        force: bool = False,
        dry_run: bool = False,
        reconcile: bool = False,
    ) -> RunOutcome:
        """``reconcile``: read Listrak's values back first and also send ``off`` to contacts
        that are on in Listrak but not members (see :mod:`audience_sync.state.drift`)."""
        return self._run_with(
            SourcePlanner(reconcile=reconcile, keep_snapshots=not dry_run),
            trigger=RunTrigger.PLAN if dry_run else trigger,
            full=full,
            force=force,
            dry_run=dry_run,
        )

    def _run_with(
        self, planner: Planner, *, trigger: RunTrigger, full: bool, force: bool, dry_run: bool
    ) -> RunOutcome:
        ensure_current(self.engine)
        lease = self.config.settings.sync.lock_lease_seconds
        run_id: int | None = None
        steps: dict[str, float] = {}
        try:
            with RunLock(self.engine, lease_seconds=lease) as lock:
                with self.engine.begin() as conn:
                    run_id = ledger.create_run(conn, trigger=trigger)
                    installation = ledger.installation_id(conn)
                lock.attach_run(run_id)
                self.last_run_id = run_id
                logger.info("run.started", extra={"run_id": run_id, "trigger": trigger})
                ctx = RunContext(
                    config=self.config,
                    engine=self.engine,
                    run_id=run_id,
                    installation_id=installation,
                    client_factory=self._client_factory,
                    lock=lock,
                    show_progress=self._show_progress,
                    sleep=self._sleep,
                )
                run = _Run(ctx, planner)
                steps = run.steps
                try:
                    return run.execute(full=full, force=force, dry_run=dry_run)
                finally:
                    ctx.close()
        finally:
            if run_id is not None:
                alerts.after_run(self.config, self.engine, run_id, steps=steps)


class _Run:
    def __init__(self, ctx: RunContext, planner: Planner) -> None:
        self.ctx = ctx
        self.planner = planner
        self.outcome = RunOutcome(run_id=ctx.run_id, status=RunStatus.RUNNING)
        self.steps: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """How long each step took, for the metrics."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.steps[name] = self.steps.get(name, 0.0) + time.monotonic() - started

    def execute(self, *, full: bool, force: bool, dry_run: bool) -> RunOutcome:
        ctx = self.ctx
        try:
            settings = ctx.config.settings
            units: list[AudienceSettings | TraitSettings] = [*settings.audiences, *settings.traits]
            audiences = [self.planner.register(ctx, unit) for unit in units]
            self.outcome.audiences = audiences
            poller = ImportPoller(ctx)
            if not dry_run:
                with self.step("resume"):
                    for run in audiences:
                        resume_audience(ctx, run, poller)
                    close_interrupted_runs(ctx)
            with self.step("plan"):
                self.planner.before_planning(ctx)
                for run in audiences:
                    if not run.failed and run.waiting_on is None:
                        self.planner.plan(ctx, run, full=full)
            checkpoint("planned")
            tripped = [a for a in audiences if a.verdict is not None and not a.verdict.ok]
            if tripped and not force:
                self._abort(tripped)
            if dry_run:
                return self._finish(RunStatus.PLANNED)
            with self.step("submit"):
                for run in audiences:
                    if run.has_changes and not run.failed:
                        self._submit(run, poller)
            waiting = [a for a in audiences if a.waiting_on is not None and not a.failed]
            with self.step("await"):
                poller.drain(
                    on_progress=lambda: self._plan_when_ready(waiting, poller, full, force)
                )
            with self.step("confirm"):
                for run in audiences:
                    finish_audience(ctx, run)
            return self._finish_by_audiences()
        except GuardError:
            raise  # already recorded as aborted by _abort
        except BaseException as exc:
            # Killed by a signal, the lock or credentials lost, a bug: confirmed state only
            # ever moved for accepted contacts; open imports stay open for the next run.
            message = _describe(exc)
            with ctx.engine.begin() as conn:
                changes.fail_unsent(conn, ctx.run_id, f"run stopped: {message}")
                ledger.finish_run(conn, ctx.run_id, status=RunStatus.FAILED, error=message)
            self.outcome.status, self.outcome.error = RunStatus.FAILED, message
            raise

    def _plan_when_ready(
        self, waiting: list[AudienceRun], poller: ImportPoller, full: bool, force: bool
    ) -> None:
        """An audience that waited for an earlier run's import is planned and sent as soon as
        that import is settled; a guard it trips then aborts it alone (others were sent)."""
        for run in list(waiting):
            if run.failed:
                waiting.remove(run)
                continue
            if poller.open_for(run):
                continue
            waiting.remove(run)
            run.waiting_on = None
            self.planner.plan(self.ctx, run, full=full)
            if run.verdict is not None and not run.verdict.ok and not force:
                abort_audience(self.ctx, run, run.verdict.reason or "guard tripped")
            elif run.has_changes and not run.failed:
                self._submit(run, poller)

    def _submit(self, run: AudienceRun, poller: ImportPoller) -> None:
        try:
            submitting.submit_audience(self.ctx, run, poller)
        except StopRunError:
            raise
        except ListrakError as exc:
            fail_audience(self.ctx, run, str(exc))

    def _finish_by_audiences(self) -> RunOutcome:
        audiences = self.outcome.audiences
        not_synced = [a for a in audiences if a.failed or a.waiting_on is not None]
        if not not_synced:
            return self._finish(RunStatus.SUCCEEDED)
        synced = len(audiences) - len(not_synced)
        reasons = "; ".join(f"{a.key}: {a.error or a.waiting_on}" for a in not_synced)
        return self._finish(
            RunStatus.FAILED,
            f"{synced} of {len(audiences)} audiences synced; not synced: {reasons}",
        )

    def _finish(self, status: RunStatus, error: str | None = None) -> RunOutcome:
        with self.ctx.engine.begin() as conn:
            ledger.finish_run(
                conn, self.ctx.run_id, status=status, error=error, tally=self.ctx.resolved
            )
        self.outcome.status, self.outcome.error = status, error
        logger.info("run.finished", extra={"run_id": self.ctx.run_id, "status": status})
        return self.outcome

    def _abort(self, tripped: list[AudienceRun]) -> None:
        reasons = "; ".join(
            f"{a.key}: {a.verdict.reason}" for a in tripped if a.verdict is not None
        )
        ctx = self.ctx
        with ctx.engine.begin() as conn:
            changes.abort_unsent(conn, ctx.run_id, "guard abort: nothing was sent")
            for run in tripped:
                ledger.set_audience_status(
                    conn,
                    ctx.run_id,
                    run.audience_id,
                    AudienceStatus.ABORTED,
                    error=run.verdict.reason if run.verdict else None,
                )
        self._finish(RunStatus.ABORTED, reasons)
        raise GuardError(
            f"run {ctx.run_id} aborted by a guard, nothing was sent: {reasons} "
            "(use --force to override)"
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AudienceSyncError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"
