"""Which events a run raises: pure, from facts built here."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from audience_sync.alerts.events import run_events
from audience_sync.alerts.facts import AudienceFacts, ImportFacts, RunFacts, leading_true
from audience_sync.alerts.payload import Alert, mask, render
from audience_sync.config import AlertSettings, parse_settings
from audience_sync.errors import ConfigError

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
AUDIENCE = {"key": "a", "list_id": 1, "source": {"kind": "csv", "path": "a.csv"}}


def audience(key: str, status: str, streak: int = 0, previous: int = 0) -> AudienceFacts:
    return AudienceFacts(key, status, None, streak=streak, previous_streak=previous)


def run(
    status: str, *audiences: AudienceFacts, previous: str | None = None, **extra: Any
) -> RunFacts:
    return RunFacts(
        run_id=7,
        trigger="scheduled",
        status=status,
        error=None,
        started_at=NOW,
        finished_at=NOW,
        counts={},
        previous_status=previous,
        audiences=list(audiences),
        **extra,
    )


def settings(**values: Any) -> AlertSettings:
    return AlertSettings(webhook_urls=["https://hooks.example.com/x"], **values)


def test_a_successful_run_raises_nothing() -> None:
    assert run_events(run("succeeded", audience("a", "done")), settings()) == []


def test_failed_whole_or_part() -> None:
    partly = run("failed", audience("a", "done"), audience("b", "failed", streak=1))
    assert run_events(partly, settings()) == ["run_partly_failed"]
    whole = run("failed", audience("a", "failed", streak=1), audience("b", "waiting", streak=1))
    assert run_events(whole, settings()) == ["run_failed"]
    before_any_audience = run("failed")
    assert run_events(before_any_audience, settings()) == ["run_failed"]


def test_after_failures_waits_for_that_many_runs_in_a_row() -> None:
    second = run("failed", audience("a", "done"), audience("b", "failed", streak=2))
    third = run("failed", audience("a", "done"), audience("b", "failed", streak=3))
    assert run_events(second, settings(after_failures=3)) == []
    assert run_events(third, settings(after_failures=3)) == [
        "run_partly_failed",
        "audience_failing",
    ]


def test_guard_abort_and_abandoned_imports() -> None:
    assert run_events(run("aborted", audience("a", "aborted")), settings()) == ["guard_abort"]
    abandoned = run(
        "succeeded", audience("a", "done"), abandoned=[ImportFacts(3, "a", "f.csv", "stuck")]
    )
    assert run_events(abandoned, settings()) == ["import_abandoned"]


def test_recovery_only_when_asked_and_only_after_an_alert() -> None:
    back = run("succeeded", audience("a", "done", streak=0, previous=2))
    assert run_events(back, settings()) == []
    assert run_events(back, settings(on_recovery=True)) == ["recovered"]
    assert run_events(back, settings(on_recovery=True, after_failures=3)) == []
    after_abort = run("succeeded", audience("a", "done"), previous="aborted")
    assert run_events(after_abort, settings(on_recovery=True)) == ["recovered"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [([], 0), ([False, True], 0), ([True, True, False, True], 2), ([True], 1)],
)
def test_leading_true(values: list[bool], expected: int) -> None:
    assert leading_true(values) == expected


@pytest.mark.parametrize("fmt", ["slack", "json"])
def test_payloads_mask_emails_tokens_secrets_and_url_passwords(fmt: str) -> None:
    leaky = "ann@example.org Bearer abc.def-123 client_secret=s3cr3t postgresql://u:pw9@h/db"
    facts = run(
        "failed",
        AudienceFacts("a", "failed", leaky, streak=1, previous_streak=0),
        abandoned=[ImportFacts(1, "a", "f.csv", leaky)],
    )
    facts = RunFacts(**{**facts.__dict__, "error": leaky})
    body = render(Alert(["run_failed"], NOW, "host", run=facts, failing=["a"]), fmt).decode()
    for secret in ("ann@", "abc.def-123", "s3cr3t", "pw9"):
        assert secret not in body
    assert "[redacted]" in json.loads(body)["text"]


def test_mask_keeps_the_url_but_not_its_password() -> None:
    assert mask("https://user:pw@host/p") == "https://user:***@host/p"


def test_slack_text_escapes_what_slack_would_read_as_markup() -> None:
    facts = RunFacts(**{**run("failed").__dict__, "error": "<!channel> a & b"})
    body = json.loads(render(Alert(["run_failed"], NOW, "host", run=facts), "slack"))
    assert "error: &lt;!channel&gt; a &amp; b" in body["text"]


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ({"webhook_urls": ["http://hooks.example.com/services/T0/SECRETPATH"]}, "use https://"),
        ({"webhook_urls": ["hooks.example.com/services/T0/SECRETPATH"]}, "http(s) URL"),
        ({"format": "xml"}, "alerts.format"),
        ({"after_failures": 0}, "alerts.after_failures"),
    ],
)
def test_bad_alert_settings_are_config_errors_without_the_webhook_path(
    alerts: dict[str, Any], message: str
) -> None:
    raw = {"alerts": alerts, "audiences": [AUDIENCE]}
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    assert message in str(caught.value)
    assert "SECRETPATH" not in str(caught.value)


def test_metrics_settings() -> None:
    settings = parse_settings(
        {"metrics": {"pushgateway": "http://gw:9091/"}, "audiences": [AUDIENCE]}
    )
    assert settings.metrics.pushgateway == "http://gw:9091"
    with pytest.raises(ConfigError, match=r"metrics\.pushgateway"):
        parse_settings({"metrics": {"pushgateway": "gw:9091"}, "audiences": [AUDIENCE]})
