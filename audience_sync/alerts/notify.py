"""After a run, ``verify`` or ``imports abandon``: send the alerts it raises and write the
metrics. Both are optional; with neither configured these do nothing. They never raise: an
alert or a metric that cannot go out is logged (and an alert recorded), the job goes on."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Mapping

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from audience_sync import metrics
from audience_sync.alerts.delivery import Delivery, deliver_all
from audience_sync.alerts.events import DRIFT, IMPORT_ABANDONED, TEST, failing_audiences, run_events
from audience_sync.alerts.facts import DriftFacts, import_facts, run_facts
from audience_sync.alerts.payload import Alert, render
from audience_sync.config import AppConfig
from audience_sync.state.db import utcnow
from audience_sync.state.statuses import DeliveryStatus
from audience_sync.state.tables import alert_deliveries, run_steps, verify_checks

logger = logging.getLogger("audience_sync.alerts")


def enabled(config: AppConfig) -> bool:
    settings = config.settings
    return bool(
        settings.alerts.webhook_urls
        or settings.metrics.textfile is not None
        or settings.metrics.pushgateway is not None
    )


def after_run(
    config: AppConfig, engine: Engine, run_id: int, *, steps: Mapping[str, float]
) -> None:
    if not enabled(config):
        return
    try:
        with engine.begin() as conn:
            facts = run_facts(conn, run_id)
            if facts.trigger == "plan":
                return
            if steps:
                conn.execute(
                    insert(run_steps),
                    [{"run_id": run_id, "step": k, "seconds": v} for k, v in steps.items()],
                )
        settings = config.settings.alerts
        if settings.webhook_urls:
            events = run_events(facts, settings)
            if events:
                alert = Alert(
                    events=events,
                    time=utcnow(),
                    host=socket.gethostname(),
                    run=facts,
                    abandoned=facts.abandoned,
                    drift=facts.drift,
                    failing=failing_audiences(facts, settings.after_failures),
                )
                send(config, engine, alert)
    except Exception as exc:
        logger.error("alerts.not_sent", extra={"run_id": run_id, "error": type(exc).__name__})
    metrics.publish(config, engine)


def record_checks(config: AppConfig, engine: Engine, checks: Iterable[tuple[str, int]]) -> None:
    """What ``verify`` measured, kept for the drift alert and metrics (when either is on)."""
    if not enabled(config):
        return
    now = utcnow()
    rows = [{"checked_at": now, "audience": key, "drift": drift} for key, drift in checks]
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(verify_checks), rows)


def after_verify(config: AppConfig, engine: Engine, checks: Iterable[tuple[str, int]]) -> None:
    if not enabled(config):
        return
    drift = [DriftFacts(key, total) for key, total in checks]
    if config.settings.alerts.webhook_urls and any(d.drift for d in drift):
        alert = Alert(events=[DRIFT], time=utcnow(), host=socket.gethostname(), drift=drift)
        _send_safely(config, engine, alert)
    metrics.publish(config, engine)


def after_abandon(config: AppConfig, engine: Engine, import_row_id: int) -> None:
    if not enabled(config):
        return
    if config.settings.alerts.webhook_urls:
        try:
            with engine.connect() as conn:
                abandoned = [import_facts(conn, import_row_id)]
        except Exception as exc:
            logger.error("alerts.not_sent", extra={"error": type(exc).__name__})
        else:
            alert = Alert(
                events=[IMPORT_ABANDONED],
                time=utcnow(),
                host=socket.gethostname(),
                abandoned=abandoned,
            )
            _send_safely(config, engine, alert)
    metrics.publish(config, engine)


def send_test(config: AppConfig, engine: Engine | None = None) -> list[Delivery]:
    alert = Alert(events=[TEST], time=utcnow(), host=socket.gethostname())
    return send(config, engine, alert)


def send(config: AppConfig, engine: Engine | None, alert: Alert) -> list[Delivery]:
    settings = config.settings.alerts
    body = render(alert, settings.format)
    deliveries = deliver_all(settings.webhook_urls, body, settings)
    if engine is not None:
        _record(engine, alert, deliveries)
    for delivery in deliveries:
        if delivery.status == DeliveryStatus.DELIVERED:
            logger.info(
                "alert.delivered",
                extra={"receiver": delivery.receiver, "events": ",".join(alert.events)},
            )
    return deliveries


def _send_safely(config: AppConfig, engine: Engine, alert: Alert) -> None:
    try:
        send(config, engine, alert)
    except Exception as exc:
        logger.error("alerts.not_sent", extra={"error": type(exc).__name__})


def _record(engine: Engine, alert: Alert, deliveries: list[Delivery]) -> None:
    now = utcnow()
    rows = [
        {
            "created_at": now,
            "run_id": alert.run.run_id if alert.run else None,
            "events": ",".join(alert.events)[:200],
            "receiver": d.receiver[:255],
            "status": d.status,
            "attempts": d.attempts,
            "error": d.error,
        }
        for d in deliveries
    ]
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(alert_deliveries), rows)
