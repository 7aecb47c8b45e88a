"""One sync run: lock, resume, read, stage, diff, guard, submit, await, confirm.

Every step that touches Listrak is preceded by a committed ledger row, so a run killed at any
point is resolved by the next one (see :meth:`SyncJob._resume_open_work`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from tqdm import tqdm

from audience_sync.checkpoints import checkpoint
from audience_sync.config import AppConfig, AudienceSettings
from audience_sync.errors import (
    AudienceSyncError,
    AuthenticationError,
    FatalListrakError,
    GuardError,
    PayloadTooLargeError,
    RetriableListrakError,
    SourceError,
)
from audience_sync.guards import GuardVerdict, check_guards
from audience_sync.listrak.client import ListrakClient
from audience_sync.listrak.routes import FieldValuesRoute, ListImportRoute, Part, SubmitRoute
from audience_sync.normalize import normalize_chunk, normalize_email
from audience_sync.readback import field_targets, read_back
from audience_sync.sources import build_source
from audience_sync.state import confirm, drift, ledger, snapshot
from audience_sync.state.db import make_engine, utcnow
from audience_sync.state.lock import RunLock
from audience_sync.state.migrate import ensure_current
from audience_sync.state.tables import listrak_imports, run_changes

logger = logging.getLogger("audience_sync.pipeline")

ClientFactory = Callable[[], ListrakClient]


class ImportStillRunningError(RetriableListrakError):
    """Listrak has not finished an import within ``import_timeout``; the next run collects it."""


@dataclass
class PreparedAudience:
    settings: AudienceSettings
    audience_id: int
    plan: snapshot.PlanCounts | None = None
    error: str | None = None
    verdict: GuardVerdict | None = None

    @property
    def has_changes(self) -> bool:
        return self.plan is not None and (self.plan.planned_on + self.plan.planned_off) > 0


@dataclass
class RunOutcome:
    run_id: int
    status: str
    error: str | None = None
    audiences: list[PreparedAudience] = field(default_factory=list)


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
        self.engine = engine or make_engine(config.state_url)
        self._client_factory = client_factory
        self._client: ListrakClient | None = None
        self._show_progress = show_progress
        self._sleep = sleep
        self.last_run_id: int | None = None
        self._reconcile = False

    # --- entry point --------------------------------------------------------------------

    def run(
        self,
        *,
        trigger: str = "manual",
        full: bool = False,
        force: bool = False,
        dry_run: bool = False,
        reconcile: bool = False,
    ) -> RunOutcome:
        """``reconcile``: read Listrak's values back first and also send ``off`` to contacts
        that are on in Listrak but not members (see :mod:`audience_sync.state.drift`)."""
        ensure_current(self.engine)
        self._reconcile = reconcile
        try:
            with RunLock(self.engine) as lock:
                if not dry_run:
                    self._resume_open_work()
                with self.engine.begin() as conn:
                    run_id = ledger.create_run(conn, trigger="plan" if dry_run else trigger)
                lock.attach_run(run_id)
                self.last_run_id = run_id
                logger.info("run.started", extra={"run_id": run_id, "trigger": trigger})
                return self._run(run_id, full=full, force=force, dry_run=dry_run)
        finally:
            self.close_client()

    def close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _run(self, run_id: int, *, full: bool, force: bool, dry_run: bool) -> RunOutcome:
        outcome = RunOutcome(run_id=run_id, status="running")
        try:
            self._before_prepare(run_id)
            outcome.audiences = [
                self._prepare(run_id, audience, full=full)
                for audience in self.config.settings.audiences
            ]
            checkpoint("planned")
            tripped = [a for a in outcome.audiences if a.verdict and not a.verdict.ok]
            if tripped and not force:
                return self._abort(outcome, tripped)
            if dry_run:
                return self._finish(outcome, "planned")
            for prepared in outcome.audiences:
                if prepared.has_changes:
                    self._submit_and_settle(run_id, prepared)
                elif prepared.plan is not None and not prepared.error:
                    with self.engine.begin() as conn:
                        snapshot.drop_snapshots_before(conn, prepared.audience_id, run_id)
            failed = [a for a in outcome.audiences if a.error]
            return self._finish(
                outcome,
                "failed" if failed else "succeeded",
                "; ".join(f"{a.settings.key}: {a.error}" for a in failed) or None,
            )
        except GuardError:
            raise  # already recorded as aborted by _abort
        except BaseException as exc:
            # Killed by a signal, a fatal Listrak answer, a bug: confirmed state only ever moved
            # for accepted contacts; open imports stay open for the next run to resolve.
            message = _describe(exc)
            with self.engine.begin() as conn:
                confirm.fail_unsent_changes(conn, run_id, f"run failed before submit: {message}")
                ledger.finish_run(conn, run_id, status="failed", error=message)
            outcome.status, outcome.error = "failed", message
            raise

    def _finish(self, outcome: RunOutcome, status: str, error: str | None = None) -> RunOutcome:
        with self.engine.begin() as conn:
            ledger.finish_run(conn, outcome.run_id, status=status, error=error)
        outcome.status, outcome.error = status, error
        logger.info("run.finished", extra={"run_id": outcome.run_id, "status": status})
        return outcome

    def _abort(self, outcome: RunOutcome, tripped: list[PreparedAudience]) -> RunOutcome:
        reasons = "; ".join(
            f"{a.settings.key}: {a.verdict.reason}" for a in tripped if a.verdict is not None
        )
        with self.engine.begin() as conn:
            conn.execute(
                update(run_changes)
                .where(run_changes.c.run_id == outcome.run_id, run_changes.c.status == "planned")
                .values(status="aborted", reason="guard abort: nothing was sent")
            )
            for prepared in tripped:
                ledger.update_run_audience(
                    conn,
                    outcome.run_id,
                    prepared.audience_id,
                    status="aborted",
                    error=prepared.verdict.reason if prepared.verdict else None,
                )
        self._finish(outcome, "aborted", reasons)
        raise GuardError(
            f"run {outcome.run_id} aborted by a guard, nothing was sent: {reasons} "
            "(use --force to override)"
        )

    # --- read, stage, diff, guard -------------------------------------------------------

    def _before_prepare(self, run_id: int) -> None:
        """Under the lock, before any audience is planned: the Listrak read-back, if asked."""
        if self._reconcile:
            targets = field_targets(self.engine, self.config.settings.audiences)
            read_back(self.engine, self.client, targets, show_progress=self._show_progress)

    def _prepare(self, run_id: int, audience: AudienceSettings, *, full: bool) -> PreparedAudience:
        source = build_source(
            audience.source, base_dir=self.config.base_dir, audience_key=audience.key
        )
        with self.engine.begin() as conn:
            audience_id = ledger.upsert_audience(
                conn,
                key=audience.key,
                list_id=audience.list_id,
                field_id=audience.profile_field_id,
                source=source.describe(),
            )
            ledger.start_run_audience(conn, run_id, audience_id, source=source.describe())
        prepared = PreparedAudience(settings=audience, audience_id=audience_id)
        if audience.profile_field_id is None:
            prepared.error = "no profile_field_id; run `audience-sync setup` first"
            return self._audience_failed(run_id, prepared)
        try:
            rows_read, invalid = self._stage(run_id, audience_id, audience, source)
        except SourceError as exc:
            prepared.error = str(exc)
            with self.engine.begin() as conn:
                snapshot.drop_staged(conn, run_id, audience_id)
            return self._audience_failed(run_id, prepared)
        checkpoint("staged")
        cutoff = utcnow() - self.config.settings.sync.retry_skipped_after
        with self.engine.begin() as conn:
            plan = snapshot.plan_changes(
                conn, run_id=run_id, audience_id=audience_id, full=full, parked_before=cutoff
            )
            on_in_listrak = None
            if self._reconcile:
                extra = drift.plan_reconcile_offs(conn, run_id=run_id, audience_id=audience_id)
                plan = dataclasses.replace(plan, planned_off=plan.planned_off + extra)
                on_in_listrak = drift.on_in_listrak(conn, audience_id)
            prepared.plan = plan
            prepared.verdict = check_guards(
                plan, self.config.guards_for(audience), on_in_listrak=on_in_listrak
            )
            ledger.update_run_audience(
                conn,
                run_id,
                audience_id,
                status="planned",
                rows_read=rows_read,
                invalid_count=sum(invalid.values()),
                invalid_reasons=invalid,
                source_notes=source.notes,
                snapshot_count=plan.snapshot,
                confirmed_on_before=plan.confirmed_on_before,
                planned_on=plan.planned_on,
                planned_off=plan.planned_off,
                unchanged_count=plan.unchanged,
                parked_count=plan.parked_on + plan.parked_off,
            )
        logger.info(
            "audience.planned",
            extra={
                "run_id": run_id,
                "audience": audience.key,
                "snapshot": plan.snapshot,
                "on": plan.planned_on,
                "off": plan.planned_off,
                "invalid": sum(invalid.values()),
            },
        )
        return prepared

    def _stage(
        self, run_id: int, audience_id: int, audience: AudienceSettings, source: Any
    ) -> tuple[int, dict[str, int]]:
        invalid: dict[str, int] = {}
        rows_read = 0
        chunk_size = self.config.settings.sync.chunk_size
        # A commit per chunk keeps SQLite's write lock short, so the run lock's heartbeat gets
        # through; rows of a staging cut short belong to a run that never plans them.
        with self.engine.connect() as conn, self._bar(f"read {audience.key}", "rows") as bar:
            for raw in source.chunks(chunk_size):
                chunk = normalize_chunk(raw)
                with conn.begin():
                    snapshot.stage_emails(conn, run_id, audience_id, chunk.emails)
                for reason, count in chunk.invalid.items():
                    invalid[reason] = invalid.get(reason, 0) + count
                rows_read += len(raw)
                bar.update(len(raw))
        return rows_read, invalid

    def _audience_failed(self, run_id: int, prepared: PreparedAudience) -> PreparedAudience:
        logger.error(
            "audience.failed", extra={"audience": prepared.settings.key, "error": prepared.error}
        )
        with self.engine.begin() as conn:
            ledger.update_run_audience(
                conn, run_id, prepared.audience_id, status="failed", error=prepared.error
            )
        return prepared

    # --- submit, await, confirm ----------------------------------------------------------

    @property
    def client(self) -> ListrakClient:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _submit_and_settle(self, run_id: int, prepared: PreparedAudience) -> None:
        audience = prepared.settings
        assert audience.profile_field_id is not None
        try:
            import_rows = self._submit(run_id, prepared)
            with self.engine.begin() as conn:
                ledger.update_run_audience(conn, run_id, prepared.audience_id, status="submitted")
            with self._bar(f"import {audience.key}", "imports") as bar:
                bar.reset(total=len(import_rows))
                for import_row_id in import_rows:
                    self._await_and_settle(import_row_id)
                    bar.update(1)
            with self.engine.begin() as conn:
                ledger.update_run_audience(conn, run_id, prepared.audience_id, status="done")
                snapshot.drop_snapshots_before(conn, prepared.audience_id, run_id)
        except (FatalListrakError, RetriableListrakError) as exc:
            if getattr(exc, "code", None) == "ERROR_INTEGRATION_CANNOT_ACCESS_BETA_ROUTE":
                raise
            prepared.error = str(exc)
            with self.engine.begin() as conn:
                confirm.fail_unsent_changes(conn, run_id, f"not sent: {exc}")
                ledger.update_run_audience(
                    conn, run_id, prepared.audience_id, status="failed", error=str(exc)
                )
            if isinstance(exc, AuthenticationError) or exc.status == 401:
                raise

    def _route(self, run_id: int, audience: AudienceSettings) -> SubmitRoute:
        assert audience.profile_field_id is not None
        settings = self.config.settings.listrak
        route_class = (
            FieldValuesRoute if settings.submit_via == "segmentation_field_api" else ListImportRoute
        )
        return route_class(
            self.client,
            settings,
            run_id=run_id,
            audience_key=audience.key,
            list_id=audience.list_id,
            field_id=audience.profile_field_id,
            sleep=self._sleep,
        )

    def _submit(self, run_id: int, prepared: PreparedAudience) -> list[int]:
        """POST the planned changes in parts; a 404 on a large body (Listrak's size limit)
        halves the part size and goes on with what is left."""
        audience = prepared.settings
        route = self._route(run_id, audience)
        limit = route.initial_limit()
        import_rows: list[int] = []
        next_number = 1
        while True:
            too_large = False
            with self.engine.connect() as reader:
                rows = snapshot.changes_in_order(reader, run_id, prepared.audience_id)
                pairs: Iterator[tuple[str, str]] = ((r.email, r.action) for r in rows)
                for part in route.parts(pairs, limit=limit, first_number=next_number):
                    next_number = part.number + 1
                    import_row_id = self._record_part(run_id, prepared, part, route.name)
                    checkpoint("posting")
                    try:
                        listrak_id = route.post(part)
                    except PayloadTooLargeError:
                        self._release_part(import_row_id, "404: body over Listrak's size limit")
                        if part.row_count <= 1:
                            raise
                        self._check_list_exists(audience)
                        limit = route.smaller_limit(part)
                        too_large = True
                        break
                    except FatalListrakError as exc:
                        # A refused request was not applied; an ambiguous one stays open for the
                        # next run to look up.
                        self._refused_part(import_row_id, exc)
                        raise
                    checkpoint("posted")
                    self._mark_submitted(import_row_id, audience, part, listrak_id)
                    import_rows.append(import_row_id)
            if not too_large:
                return import_rows

    def _check_list_exists(self, audience: AudienceSettings) -> None:
        """Tell a missing list (a real 404) from a body over the size limit (also a 404)."""
        try:
            self.client.get_list(audience.list_id)
        except FatalListrakError as exc:
            if exc.status == 404:
                raise FatalListrakError(
                    f"audience {audience.key!r}: Listrak has no list {audience.list_id}",
                    status=404,
                    code=exc.code,
                ) from None
            raise

    def _record_part(self, run_id: int, prepared: PreparedAudience, part: Part, route: str) -> int:
        audience = prepared.settings
        with self.engine.begin() as conn:
            import_row_id = ledger.record_import(
                conn,
                run_id=run_id,
                audience_id=prepared.audience_id,
                list_id=audience.list_id,
                field_id=audience.profile_field_id,
                part=part.number,
                route=route,
                file_name=part.file_name,
                first_email=part.first_email,
                last_email=part.last_email,
                row_count=part.row_count,
                byte_count=part.byte_count,
            )
            confirm.assign_changes_to_import(
                conn,
                run_id=run_id,
                audience_id=prepared.audience_id,
                import_row_id=import_row_id,
                first_email=part.first_email,
                last_email=part.last_email,
            )
        return import_row_id

    def _refused_part(self, import_row_id: int, exc: FatalListrakError) -> None:
        reason = f"refused by Listrak: {exc}"
        with self.engine.begin() as conn:
            confirm.fail_import_changes(conn, import_row_id, reason)
            ledger.update_import(conn, import_row_id, status="failed", error=reason[:1000])

    def _release_part(self, import_row_id: int, reason: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(run_changes)
                .where(run_changes.c.import_id == import_row_id)
                .values(status="planned", import_id=None)
            )
            ledger.update_import(conn, import_row_id, status="failed", error=reason)

    def _mark_submitted(
        self, import_row_id: int, audience: AudienceSettings, part: Part, listrak_id: str
    ) -> None:
        with self.engine.begin() as conn:
            ledger.update_import(
                conn,
                import_row_id,
                status="submitted",
                listrak_import_id=listrak_id,
                submitted_at=utcnow(),
            )
        logger.info(
            "import.submitted",
            extra={
                "audience": audience.key,
                "file_name": part.file_name,
                "rows": part.row_count,
                "listrak_import_id": listrak_id,
            },
        )

    def _await_and_settle(self, import_row_id: int) -> None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(listrak_imports).where(listrak_imports.c.id == import_row_id))
                .one()
                ._mapping
            )
        settings = self.config.settings.listrak
        vocabulary = settings.vocabulary
        deadline = time.monotonic() + settings.import_timeout.total_seconds()
        listrak_id = str(row["listrak_import_id"])
        list_id = int(row["list_id"])
        warned: set[str] = set()
        known = {*vocabulary.import_success, *vocabulary.import_failure, "Queued", "Processing"}
        while True:
            status = self.client.import_status(list_id, listrak_id)
            value = status.status or ""
            if value and value not in known and value not in warned:
                warned.add(value)
                logger.warning("import.unknown_status", extra={"status": value})
            finished = value in vocabulary.import_success or value in vocabulary.import_failure
            if finished or status.endDate:
                break
            if time.monotonic() > deadline:
                raise ImportStillRunningError(
                    f"import {row['file_name']} still {value or 'pending'} after "
                    f"{settings.import_timeout}; the next run will collect it"
                )
            checkpoint("polling")
            self._sleep(settings.poll_interval_seconds)
        checkpoint("finished")
        if value not in vocabulary.import_success:
            with self.engine.begin() as conn:
                confirm.fail_import_changes(
                    conn, import_row_id, f"import ended with status {value!r}"
                )
                ledger.update_import(
                    conn,
                    import_row_id,
                    status="failed",
                    listrak_status=value,
                    finished_at=utcnow(),
                    error=f"import ended with status {value!r}",
                )
            return
        summary = self.client.import_summary(list_id, listrak_id)
        all_accepted = summary.processedCount == row["row_count"] and summary.rejected_count() == 0
        with self.engine.begin() as conn:
            if not all_accepted:
                confirm.stage_results(
                    conn, import_row_id, self._contact_results(list_id, listrak_id)
                )
            outcome = confirm.settle_import(
                conn,
                import_row_id=import_row_id,
                run_id=int(row["run_id"]),
                audience_id=int(row["audience_id"]),
                vocabulary=confirm.ResultVocabulary(
                    accepted=vocabulary.contact_accepted, skipped=vocabulary.contact_skipped
                ),
                all_accepted=all_accepted,
            )
            ledger.update_import(
                conn,
                import_row_id,
                status="finished",
                listrak_status=value,
                summary=summary.model_dump(),
                finished_at=utcnow(),
            )
        for result, count in outcome.unknown_results.items():
            logger.warning(
                "import.unknown_contact_result",
                extra={"result": result, "contacts": count, "file_name": row["file_name"]},
            )
        logger.info(
            "import.settled",
            extra={
                "file_name": row["file_name"],
                "confirmed": outcome.confirmed,
                "skipped": outcome.skipped,
                "failed": outcome.failed,
            },
        )

    def _contact_results(self, list_id: int, listrak_id: str) -> Iterator[tuple[str, str]]:
        for contact in self.client.import_contacts(list_id, listrak_id):
            email, _ = normalize_email(contact.emailAddress)
            if email is not None:
                yield email, contact.importResult or ""

    # --- resume ---------------------------------------------------------------------------

    def _resume_open_work(self) -> None:
        """Resolve what a killed or failed run left open, before anything new is planned."""
        with self.engine.connect() as conn:
            open_rows = conn.execute(
                select(
                    listrak_imports.c.id,
                    listrak_imports.c.status,
                    listrak_imports.c.list_id,
                    listrak_imports.c.file_name,
                )
                .where(listrak_imports.c.status.in_(("posting", "submitted")))
                .order_by(listrak_imports.c.id)
            ).all()
            running = ledger.unfinished_runs(conn)
        for row in open_rows:
            if row.status == "posting":
                found = self.client.find_import(int(row.list_id), row.file_name)
                if found is None:
                    with self.engine.begin() as conn:
                        confirm.fail_import_changes(conn, row.id, "import never reached Listrak")
                        ledger.update_import(
                            conn, row.id, status="lost", error="not found on Listrak after a crash"
                        )
                    continue
                with self.engine.begin() as conn:
                    ledger.update_import(
                        conn,
                        row.id,
                        status="submitted",
                        listrak_import_id=found,
                        submitted_at=utcnow(),
                    )
            logger.info("resume.import", extra={"file_name": row.file_name})
            self._await_and_settle(int(row.id))
        for run_id in running:
            with self.engine.begin() as conn:
                confirm.fail_unsent_changes(conn, run_id, "run interrupted before submit")
                conn.execute(
                    update(run_changes)
                    .where(run_changes.c.run_id == run_id, run_changes.c.status == "submitted")
                    .values(status="failed", reason="run interrupted")
                )
                ledger.finish_run(
                    conn,
                    run_id,
                    status="interrupted",
                    error="the process stopped mid-run; resolved by a later run",
                )
            logger.warning("resume.interrupted_run", extra={"run_id": run_id})

    # --- helpers ------------------------------------------------------------------------------

    def _bar(self, desc: str, unit: str) -> tqdm[Any]:
        return tqdm(
            desc=desc, unit=unit, unit_scale=True, disable=not self._show_progress, leave=False
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AudienceSyncError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"


__all__ = ["RunOutcome", "SyncJob"]
