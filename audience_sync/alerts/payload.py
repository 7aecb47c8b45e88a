"""The alert bodies: ``json`` (a versioned object, documented in the README) and ``slack``
(Slack/Mattermost incoming-webhook JSON with a readable ``text``). Pure.

Every string is masked like the logs (emails, bearer tokens, secrets) and URL passwords are
removed, whatever the ledger holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from audience_sync.alerts.events import (
    AUDIENCE_FAILING,
    DRIFT,
    GUARD_ABORT,
    IMPORT_ABANDONED,
    RECOVERED,
    RUN_FAILED,
    RUN_PARTLY_FAILED,
    TEST,
)
from audience_sync.alerts.facts import DriftFacts, ImportFacts, RunFacts
from audience_sync.redaction import redact

SCHEMA = "audience_sync.alert/1"

HEADLINES = {
    GUARD_ABORT: "a guard aborted the run; nothing was sent",
    RUN_FAILED: "the run failed",
    RUN_PARTLY_FAILED: "the run partly failed",
    AUDIENCE_FAILING: "an audience keeps failing",
    IMPORT_ABANDONED: "an import stuck at Listrak was abandoned",
    DRIFT: "verify found drift between Listrak and the confirmed state",
    RECOVERED: "recovered: every audience synced again",
    TEST: "test alert from audience-sync",
}


def mask(text: str) -> str:
    """The one redaction every output goes through (emails, URL passwords, secrets)."""
    return redact(text)


@dataclass(frozen=True)
class Alert:
    events: list[str]
    time: datetime
    host: str
    run: RunFacts | None = None
    abandoned: list[ImportFacts] = field(default_factory=list)
    drift: list[DriftFacts] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)


def to_object(alert: Alert) -> dict[str, Any]:
    run = alert.run
    body: dict[str, Any] = {
        "schema": SCHEMA,
        "events": alert.events,
        "time": alert.time.isoformat(),
        "host": alert.host,
        "run_id": run.run_id if run else None,
        "trigger": run.trigger if run else None,
        "status": run.status if run else None,
        "error": run.error if run else None,
        "counts": run.counts if run else {},
        "audiences": [
            {
                "key": a.key,
                "status": a.status,
                "error": a.error,
                "failed_runs_in_a_row": a.streak,
                "members": a.members,
                "turned_on": a.turned_on,
                "turned_off": a.turned_off,
                "skipped": a.skipped,
                "failed": a.failed,
                "pending": a.pending,
            }
            for a in (run.audiences if run else [])
        ],
        "failing_audiences": alert.failing,
        "abandoned_imports": [
            {"id": i.id, "audience": i.audience, "file_name": i.file_name, "reason": i.reason}
            for i in alert.abandoned
        ],
        "drift": [{"audience": d.audience, "contacts": d.drift} for d in alert.drift],
    }
    body["text"] = text(alert)
    masked = _masked(body)
    assert isinstance(masked, dict)
    return masked


def text(alert: Alert) -> str:
    run = alert.run
    headline = "; ".join(HEADLINES[e] for e in alert.events)
    subject = f"run {run.run_id} ({run.trigger}): {run.status}" if run else "audience-sync"
    lines = [f"audience-sync on {alert.host}: {subject}: {headline}"]
    if run is not None and run.error:
        lines.append(f"error: {run.error}")
    if alert.failing:
        lines.append(f"not synced: {', '.join(alert.failing)}")
    for item in alert.abandoned:
        lines.append(f"abandoned import {item.id} ({item.audience}, {item.file_name})")
    for found in alert.drift:
        if found.drift:
            lines.append(f"drift in {found.audience}: {found.drift} contact(s)")
    return "\n".join(lines)


def render(alert: Alert, fmt: str) -> bytes:
    body = to_object(alert)
    if fmt == "slack":
        body = {"text": slack_escape(body["text"])}
    return json.dumps(body, sort_keys=True).encode("utf-8")


def slack_escape(value: str) -> str:
    """Slack reads ``<...>`` as links and mentions; these three must be escaped."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value
