"""Prometheus metrics of the ledger, written after every run: a textfile for node_exporter's
textfile collector (replaced atomically) and/or a push to a Pushgateway.

Every value is read from the state database, so any process (a run, ``schedule``, ``verify``,
``imports abandon``) writes the same complete set. The README lists the metrics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from audience_sync.alerts.delivery import receiver_label
from audience_sync.alerts.facts import leading_true, not_synced_history
from audience_sync.config import AppConfig
from audience_sync.report import AudienceSummary, summarize_run
from audience_sync.state import ledger_queries
from audience_sync.state.db import as_utc, utcnow
from audience_sync.state.statuses import OPEN_IMPORT_STATUSES
from audience_sync.state.tables import (
    listrak_imports,
    run_steps,
    sync_runs,
    verify_checks,
)

logger = logging.getLogger("audience_sync.metrics")

PREFIX = "audience_sync"
RUN_STATUSES = ("succeeded", "failed", "aborted", "interrupted")
AUDIENCE_STATUSES = ("done", "failed", "waiting", "aborted", "planned", "submitted", "reading")
RESULTS = ("turned_on", "turned_off", "skipped", "failed", "pending")


@dataclass
class _Gauges:
    registry: CollectorRegistry

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", doc, labels, registry=self.registry)


def collect(config: AppConfig, engine: Engine) -> CollectorRegistry:
    registry = CollectorRegistry()
    gauges = _Gauges(registry)
    with engine.connect() as conn:
        _last_run(conn, gauges)
        _per_audience(conn, gauges, [a.key for a in config.settings.audiences])
        _open_imports(conn, gauges)
        _verify(conn, gauges)
    return registry


def publish(config: AppConfig, engine: Engine) -> None:
    """Never raises: a metrics target that cannot be written is logged, the run goes on."""
    settings = config.settings.metrics
    textfile = config.metrics_textfile
    if textfile is None and settings.pushgateway is None:
        return
    try:
        registry = collect(config, engine)
    except Exception as exc:
        logger.error("metrics.not_collected", extra={"error": type(exc).__name__})
        return
    if textfile is not None:
        try:
            textfile.parent.mkdir(parents=True, exist_ok=True)
            write_to_textfile(str(textfile), registry)
        except OSError as exc:
            logger.error(
                "metrics.textfile_not_written",
                extra={"path": str(textfile), "error": type(exc).__name__},
            )
    if settings.pushgateway is not None:
        try:
            push_to_gateway(
                settings.pushgateway,
                job=settings.job,
                registry=registry,
                timeout=settings.timeout_seconds,
            )
        except Exception as exc:
            logger.error(
                "metrics.not_pushed",
                extra={
                    "pushgateway": receiver_label(settings.pushgateway),
                    "error": type(exc).__name__,
                },
            )


def _last_run(conn: Connection, gauges: _Gauges) -> None:
    run = conn.execute(
        select(sync_runs)
        .where(sync_runs.c.trigger != "plan", sync_runs.c.finished_at.is_not(None))
        .order_by(sync_runs.c.id.desc())
        .limit(1)
    ).first()
    if run is None:
        return
    timestamp = gauges.gauge(
        "last_run_timestamp_seconds", "When the last run (not a plan) finished, Unix time."
    )
    duration = gauges.gauge("last_run_duration_seconds", "How long the last run took.")
    status = gauges.gauge(
        "last_run_status",
        "1 for the status the last run ended with, 0 for the others.",
        ("status",),
    )
    steps = gauges.gauge(
        "last_run_step_duration_seconds", "How long each step of the last run took.", ("step",)
    )
    finished = as_utc(run.finished_at)
    timestamp.set(finished.timestamp())
    duration.set((finished - as_utc(run.started_at)).total_seconds())
    for name in RUN_STATUSES:
        status.labels(status=name).set(1 if run.status == name else 0)
    for step, seconds in conn.execute(
        select(run_steps.c.step, run_steps.c.seconds).where(run_steps.c.run_id == run.id)
    ):
        steps.labels(step=step).set(seconds)


def _per_audience(conn: Connection, gauges: _Gauges, keys: list[str]) -> None:
    label = ("audience",)
    timestamp = gauges.gauge(
        "audience_last_run_timestamp_seconds",
        "When the last run of the audience finished, Unix time.",
        label,
    )
    status = gauges.gauge(
        "audience_last_run_status",
        "1 for the audience's status in its last run, 0 for the others.",
        ("audience", "status"),
    )
    in_a_row = gauges.gauge(
        "audience_failed_runs_in_a_row", "Runs in a row the audience was not synced.", label
    )
    members = gauges.gauge(
        "audience_members", "Members read from the source in the audience's last run.", label
    )
    confirmed = gauges.gauge(
        "audience_confirmed_on", "Contacts Listrak confirmed 'on' for the audience.", label
    )
    contacts = gauges.gauge(
        "audience_last_run_contacts",
        "Contacts of the audience's last run by result: turned_on, turned_off, skipped, "
        "failed, pending.",
        ("audience", "result"),
    )
    summaries: dict[int, dict[str, AudienceSummary]] = {}
    for key in keys:
        audience_id = conn.execute(ledger_queries.audience_id(key)).scalar()
        if audience_id is None:
            continue
        confirmed.labels(audience=key).set(
            conn.execute(ledger_queries.confirmed_on_count(audience_id)).scalar_one()
        )
        last = conn.execute(
            ledger_queries.last_run_of_audience(audience_id, finished_only=True)
        ).first()
        if last is None:
            continue
        timestamp.labels(audience=key).set(as_utc(last.finished_at).timestamp())
        for name in AUDIENCE_STATUSES:
            status.labels(audience=key, status=name).set(1 if last.audience_status == name else 0)
        in_a_row.labels(audience=key).set(
            leading_true(not_synced_history(conn, audience_id, last.id))
        )
        if last.id not in summaries:
            summaries[last.id] = {a.key: a for a in summarize_run(conn.engine, last.id).audiences}
        summary = summaries[last.id].get(key)
        if summary is None:
            continue
        members.labels(audience=key).set(summary.snapshot)
        values = {
            "turned_on": summary.turned_on,
            "turned_off": summary.turned_off,
            "skipped": sum(summary.skipped.values()),
            "failed": sum(summary.failed.values()),
            "pending": summary.pending,
        }
        for result in RESULTS:
            contacts.labels(audience=key, result=result).set(values[result])


def _open_imports(conn: Connection, gauges: _Gauges) -> None:
    count = gauges.gauge("open_imports", "Imports posted to Listrak and not yet resolved.")
    oldest = gauges.gauge(
        "oldest_open_import_age_seconds", "Age of the oldest open import (0 when none)."
    )
    number, first = conn.execute(
        select(func.count(), func.min(listrak_imports.c.created_at)).where(
            listrak_imports.c.status.in_(OPEN_IMPORT_STATUSES)
        )
    ).one()
    count.set(number)
    oldest.set((utcnow() - as_utc(first)).total_seconds() if first is not None else 0)


def _verify(conn: Connection, gauges: _Gauges) -> None:
    latest = conn.execute(select(func.max(verify_checks.c.checked_at))).scalar()
    if latest is None:
        return
    timestamp = gauges.gauge("verify_last_timestamp_seconds", "When verify last ran, Unix time.")
    found = gauges.gauge("verify_drift_found", "1 when the last verify found any drift.")
    per_audience = gauges.gauge(
        "verify_drift_contacts", "Contacts in drift per audience at the last verify.", ("audience",)
    )
    rows = conn.execute(
        select(verify_checks.c.audience, verify_checks.c.drift).where(
            verify_checks.c.checked_at == latest
        )
    ).all()
    timestamp.set(as_utc(latest).timestamp())
    found.set(1 if any(r.drift for r in rows) else 0)
    for row in rows:
        per_audience.labels(audience=row.audience).set(row.drift)
