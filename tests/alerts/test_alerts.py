"""Alerts over real HTTP to a receiver on 127.0.0.1, after real runs against the sandbox, on
both state backends: one alert per event in each format, retried, bounded, and masked."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from audience_sync import alerts
from audience_sync.config import Credentials
from audience_sync.errors import GuardError
from audience_sync.listrak.client import ListrakClient
from audience_sync.scheduler import ScheduledRun
from audience_sync.state.db import as_utc, utcnow
from audience_sync.state.tables import alert_deliveries, listrak_imports, run_steps, sync_runs
from audience_sync.verify import VerifyJob
from tests.alerts.receivers import Receiver, receiver, silent_receiver
from tests.conftest import backend_url
from tests.crash.helpers import run_cli
from tests.harness import CLIENT_ID, CLIENT_SECRET, LIST_ID, Harness


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Both backends; PostgreSQL's cases run in `make test-slow`, which keeps `make test`
    under four minutes. CI runs both."""
    return backend_url(request)


MEMBERS = [f"m{i:02d}@example.com" for i in range(10)]
FORMATS = ("slack", "json")
JSON_FIELDS = {
    "schema",
    "events",
    "time",
    "host",
    "run_id",
    "trigger",
    "status",
    "error",
    "counts",
    "audiences",
    "failing_audiences",
    "abandoned_imports",
    "drift",
    "text",
}
DEADLINE_SECONDS = 30.0


def configure(h: Harness, url: str, fmt: str, **extra: Any) -> None:
    settings = {"format": fmt, "timeout_seconds": 10, **extra}
    lines = ["[alerts]", f"webhook_urls = [{json.dumps(url)}]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    h.extra_toml = "\n".join(lines)


def two_audiences(h: Harness) -> None:
    h.add_contacts(subscribed=MEMBERS)
    h.add_audience("vip", 300, MEMBERS)
    h.add_audience("other", 301, MEMBERS[:3])


def only_alert(hook: Receiver) -> Any:
    (body,) = hook.accepted()
    return body


def check_format(body: Any, fmt: str, *expected_text: str) -> dict[str, Any]:
    if fmt == "slack":
        assert set(body) == {"text"}
        text = body["text"]
    else:
        assert set(body) == JSON_FIELDS
        assert body["schema"] == "audience_sync.alert/1"
        text = body["text"]
    for part in expected_text:
        assert part in text
    return dict(body)


def deliveries(h: Harness) -> list[tuple[str, str, int, str | None]]:
    with h.engine.connect() as conn:
        rows = conn.execute(select(alert_deliveries).order_by(alert_deliveries.c.id)).all()
    return [(r.events, r.status, r.attempts, r.error) for r in rows]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failing_audience_sends_one_alert(harness: Harness, fmt: str) -> None:
    h = harness
    two_audiences(h)
    h.audiences["other"] = 999  # a field Listrak does not have: only this audience fails
    with receiver() as hook:
        configure(h, hook.url, fmt)
        outcome = h.run()
    assert outcome.status == "failed"
    body = check_format(
        only_alert(hook), fmt, f"run {outcome.run_id} (manual): failed", "the run partly failed"
    )
    assert "not synced: other" in body["text"]
    if fmt == "json":
        assert body["events"] == ["run_partly_failed"]
        assert (body["run_id"], body["trigger"], body["status"]) == (
            outcome.run_id,
            "manual",
            "failed",
        )
        assert body["error"].startswith("1 of 2 audiences synced; not synced: other:")
        assert body["failing_audiences"] == ["other"]
        by_key = {a["key"]: a for a in body["audiences"]}
        assert by_key["vip"]["status"] == "done"
        assert by_key["vip"]["turned_on"] == 10
        assert by_key["vip"]["members"] == 10
        assert by_key["other"]["status"] == "failed"
        assert by_key["other"]["failed_runs_in_a_row"] == 1
        assert body["counts"]["confirmed"] == 10
    assert deliveries(h) == [("run_partly_failed", "delivered", 1, None)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_guard_abort_sends_one_alert(harness: Harness, fmt: str) -> None:
    h = harness
    two_audiences(h)
    assert h.run().status == "succeeded"
    h.set_members("vip", MEMBERS[:5])
    with receiver() as hook:
        configure(h, hook.url, fmt)
        with pytest.raises(GuardError):
            h.run()
    body = check_format(only_alert(hook), fmt, "run 2 (manual): aborted", "a guard aborted")
    assert "5 of 10 confirmed members would be removed" in body["text"]
    if fmt == "json":
        assert body["events"] == ["guard_abort"]
        assert body["status"] == "aborted"
        assert {a["key"]: a["status"] for a in body["audiences"]}["vip"] == "aborted"


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_import_abandoned_by_a_run_sends_one_alert(harness: Harness, fmt: str) -> None:
    h = harness
    two_audiences(h)
    h.listrak_settings["import_timeout"] = "1s"
    h.listrak_settings["abandon_after"] = "1h"
    h.sandbox.world.set_faults(stall_imports_named="_run1_vip_")
    assert h.run().status == "failed"
    h.listrak_settings["abandon_after"] = "1s"
    poll_until(lambda: oldest_import_age(h) > timedelta(seconds=1))
    with receiver() as hook:
        configure(h, hook.url, fmt)
        outcome = h.run()
    assert outcome.status == "succeeded", outcome.error
    body = check_format(only_alert(hook), fmt, "an import stuck at Listrak was abandoned")
    assert "_run1_vip_" in body["text"]
    if fmt == "json":
        assert body["events"] == ["import_abandoned"]
        (item,) = body["abandoned_imports"]
        assert item["audience"] == "vip"
        assert "_run1_vip_" in item["file_name"]
        assert "sent again" in item["reason"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_imports_abandon_sends_one_alert(harness: Harness, fmt: str) -> None:
    h = harness
    two_audiences(h)
    h.listrak_settings["import_timeout"] = "1s"
    h.sandbox.world.set_faults(stall_imports_named="_run1_vip_")
    assert h.run().status == "failed"
    with h.engine.connect() as conn:
        import_id = conn.execute(
            select(listrak_imports.c.id).where(listrak_imports.c.file_name.contains("_run1_vip_"))
        ).scalar_one()
    with receiver() as hook:
        configure(h, hook.url, fmt)
        given_up = run_cli(h, "imports", "abandon", str(import_id))
    assert given_up.returncode == 0, given_up.stderr
    body = check_format(only_alert(hook), fmt, f"abandoned import {import_id} (vip, ")
    if fmt == "json":
        assert body["events"] == ["import_abandoned"]
        assert body["abandoned_imports"][0]["id"] == import_id
        assert "abandoned by an operator" in body["abandoned_imports"][0]["reason"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_verify_finding_drift_sends_one_alert(harness: Harness, fmt: str) -> None:
    h = harness
    two_audiences(h)
    assert h.run().status == "succeeded"
    h.sandbox.world.set_field_values(LIST_ID, 300, {MEMBERS[0]: "off", MEMBERS[1]: "off"})
    with receiver() as hook:
        configure(h, hook.url, fmt)
        assert verify_job(h).verify().drift_total == 2
    body = check_format(only_alert(hook), fmt, "verify found drift", "drift in vip: 2 contact(s)")
    if fmt == "json":
        assert body["events"] == ["drift"]
        assert body["run_id"] is None
        assert {d["audience"]: d["contacts"] for d in body["drift"]} == {"vip": 2, "other": 0}


def test_verify_without_drift_sends_nothing(harness: Harness) -> None:
    h = harness
    two_audiences(h)
    assert h.run().status == "succeeded"
    with receiver() as hook:
        configure(h, hook.url, "json")
        assert verify_job(h).verify().drift_total == 0
    assert hook.requests == []


def test_a_receiver_answering_500_then_200_gets_the_alert_once(harness: Harness) -> None:
    h = harness
    two_audiences(h)
    h.audiences["other"] = 999
    with receiver(500) as hook:
        configure(h, hook.url, "json")
        assert h.run().status == "failed"
    assert hook.answered == [500, 200]
    assert len(hook.accepted()) == 1
    assert deliveries(h) == [("run_partly_failed", "delivered", 2, None)]


def test_a_receiver_that_never_answers_delays_by_at_most_the_timeout(harness: Harness) -> None:
    h = harness
    two_audiences(h)
    h.audiences["other"] = 999
    timeout = 1.0
    with silent_receiver() as url:
        configure(h, url, "json", timeout_seconds=timeout)
        outcome = h.run()
        assert outcome.status == "failed"
        started = time.monotonic()
        alerts.after_run(h.config(), h.engine, outcome.run_id, steps={})
        elapsed = time.monotonic() - started
    # Without the bound this would wait for an answer that never comes; the bound is generous
    # so a slow machine cannot fail it, and far below any real hang.
    assert elapsed < timeout + 10
    recorded = deliveries(h)
    assert len(recorded) == 2
    for events, status, _attempts, error in recorded:
        assert (events, status) == ("run_partly_failed", "failed")
        assert error is not None
        assert "given up" in error or "Timeout" in error


def test_no_secret_token_or_email_reaches_a_payload(harness: Harness) -> None:
    h = harness
    two_audiences(h)
    h.audiences["other"] = 999
    secret_error = (
        "boom for ann.secret@example.org: Authorization: Bearer tok-3f9a8b7c6d "
        "client_secret=hunter2-secret at postgresql://bob:pa55word@db.internal/x"
    )
    for fmt in FORMATS:
        with receiver() as hook:
            configure(h, hook.url, fmt)
            outcome = h.run()
            with h.engine.begin() as conn:
                conn.execute(
                    update(sync_runs)
                    .where(sync_runs.c.id == outcome.run_id)
                    .values(error=secret_error)
                )
            alerts.after_run(h.config(), h.engine, outcome.run_id, steps={})
        sent = [r.body.decode() for r in hook.requests]
        assert len(sent) == 2
        for body in sent:
            for leaked in ("ann.secret@", "tok-3f9a8b7c6d", "hunter2-secret", "pa55word"):
                assert leaked not in body
        assert "[redacted]" in sent[1]


def test_alerts_test_command_sends_a_test_message(harness: Harness) -> None:
    h = harness
    two_audiences(h)
    with receiver() as hook:
        configure(h, hook.url, "slack")
        result = run_cli(h, "alerts", "test")
    assert result.returncode == 0, result.stderr
    port = hook.url.split(":")[2].split("/")[0]
    assert result.stdout.strip() == f"http://127.0.0.1:{port}: delivered"
    assert "SECRET-PATH" not in result.stdout + result.stderr
    assert "test alert from audience-sync" in only_alert(hook)["text"]


def test_alerts_test_command_fails_when_a_receiver_fails(harness: Harness) -> None:
    h = harness
    two_audiences(h)
    with receiver(404) as hook:
        configure(h, hook.url, "slack")
        result = run_cli(h, "alerts", "test")
    assert result.returncode == 1
    assert "FAILED: receiver answered 404" in result.stderr
    assert "SECRET-PATH" not in result.stdout + result.stderr


def test_with_nothing_configured_nothing_changes(harness: Harness) -> None:
    h = harness
    two_audiences(h)
    h.audiences["other"] = 999
    assert h.run().status == "failed"
    with h.engine.connect() as conn:
        assert conn.execute(select(alert_deliveries)).all() == []
        assert conn.execute(select(run_steps)).all() == []


def verify_job(h: Harness) -> VerifyJob:
    config = h.config()
    return VerifyJob(
        config,
        engine=h.engine,
        client_factory=lambda: ListrakClient.build(
            config.settings.listrak, Credentials(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        ),
    )


def oldest_import_age(h: Harness) -> timedelta:
    with h.engine.connect() as conn:
        created = conn.execute(
            select(listrak_imports.c.created_at).order_by(listrak_imports.c.id).limit(1)
        ).scalar_one()
    return utcnow() - as_utc(created)


def poll_until(condition: Any) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_scheduled_run_alerts_and_a_recovery_is_told(harness: Harness) -> None:
    h = harness
    two_audiences(h)
    h.audiences["other"] = 999
    with receiver() as hook:
        configure(h, hook.url, "json", on_recovery=True)
        ScheduledRun(h.job())()
        h.audiences["other"] = 301
        ScheduledRun(h.job())()
    failed, back = hook.accepted()
    assert (failed["trigger"], failed["events"]) == ("scheduled", ["run_partly_failed"])
    assert (back["trigger"], back["status"], back["events"]) == (
        "scheduled",
        "succeeded",
        ["recovered"],
    )


def test_verify_repair_alerts_the_drift_it_repairs(harness: Harness) -> None:
    h = harness
    two_audiences(h)
    assert h.run().status == "succeeded"
    h.sandbox.world.set_field_values(LIST_ID, 301, {MEMBERS[0]: "off"})
    with receiver() as hook:
        configure(h, hook.url, "json")
        report = verify_job(h).repair()
    assert report.run is not None
    assert report.run.status == "succeeded"
    body = only_alert(hook)
    assert (body["run_id"], body["trigger"], body["events"]) == (
        report.run.run_id,
        "repair",
        ["drift"],
    )
    assert {d["audience"]: d["contacts"] for d in body["drift"]} == {"vip": 0, "other": 1}
