"""The metrics textfile and the Pushgateway push, checked against the ledger after real runs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from audience_sync.state.db import as_utc
from audience_sync.state.tables import memberships, run_steps, sync_runs
from tests.alerts.receivers import receiver
from tests.alerts.test_alerts import MEMBERS, verify_job
from tests.harness import LIST_ID, Harness

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(f"audience_sync_{name}", tuple(sorted(labels.items())))]


def test_textfile_matches_the_ledger_after_a_run(harness: Harness) -> None:
    h = harness
    h.add_contacts(subscribed=MEMBERS)
    h.add_audience("vip", 300, MEMBERS)
    h.add_audience("other", 301, MEMBERS[:3])
    h.extra_toml = '[metrics]\ntextfile = "metrics/audience_sync.prom"'
    assert h.run().status == "succeeded"
    h.set_members("vip", MEMBERS[1:])
    h.set_members("other", MEMBERS[:4])
    h.audiences["other"] = 999  # a field Listrak does not have: not synced for the first time
    outcome = h.run()
    assert outcome.status == "failed"

    textfile = h.root / "metrics" / "audience_sync.prom"
    found = samples(textfile.read_text(encoding="utf-8"))
    with h.engine.connect() as conn:
        run = conn.execute(select(sync_runs).where(sync_runs.c.id == outcome.run_id)).one()
        steps = dict(
            conn.execute(
                select(run_steps.c.step, run_steps.c.seconds).where(
                    run_steps.c.run_id == outcome.run_id
                )
            ).all()
        )
        confirmed_on = conn.execute(
            select(func.count()).select_from(memberships).where(memberships.c.value == "on")
        ).scalar_one()
    assert value(found, "last_run_status", status="failed") == 1
    assert value(found, "last_run_status", status="succeeded") == 0
    assert value(found, "last_run_timestamp_seconds") == as_utc(run.finished_at).timestamp()
    assert set(steps) == {"resume", "plan", "submit", "await", "confirm"}
    for step, seconds in steps.items():
        assert value(found, "last_run_step_duration_seconds", step=step) == seconds
    assert value(found, "audience_members", audience="vip") == 9
    assert value(found, "audience_last_run_contacts", audience="vip", result="turned_off") == 1
    assert value(found, "audience_last_run_contacts", audience="vip", result="turned_on") == 0
    assert value(found, "audience_last_run_status", audience="vip", status="done") == 1
    assert value(found, "audience_last_run_status", audience="other", status="failed") == 1
    assert value(found, "audience_failed_runs_in_a_row", audience="other") == 1
    assert value(found, "audience_failed_runs_in_a_row", audience="vip") == 0
    assert (
        value(found, "audience_confirmed_on", audience="vip")
        + value(found, "audience_confirmed_on", audience="other")
        == confirmed_on
    )
    assert value(found, "open_imports") == 0
    assert value(found, "oldest_open_import_age_seconds") == 0
    assert not any(name.endswith("verify_drift_found") for name, _ in found)
    assert not list(textfile.parent.glob("*.tmp*")), "written atomically, no leftovers"


def test_verify_drift_in_the_metrics_and_pushgateway_gets_the_same(harness: Harness) -> None:
    h = harness
    h.add_contacts(subscribed=MEMBERS)
    h.add_audience("vip", 300, MEMBERS)
    assert h.run().status == "succeeded"
    h.sandbox.world.set_field_values(LIST_ID, 300, {MEMBERS[0]: "off"})
    with receiver(path="") as gateway:
        h.extra_toml = (
            f'[metrics]\ntextfile = "audience_sync.prom"\npushgateway = "{gateway.url}"\n'
            'job = "audience_sync_test"'
        )
        assert verify_job(h).verify().drift_total == 1
    (pushed,) = gateway.requests
    assert (pushed.method, pushed.path) == ("PUT", "/metrics/job/audience_sync_test")
    written = samples((h.root / "audience_sync.prom").read_text(encoding="utf-8"))
    assert samples(pushed.body.decode()) == written
    assert value(written, "verify_drift_found") == 1
    assert value(written, "verify_drift_contacts", audience="vip") == 1
    assert value(written, "last_run_status", status="succeeded") == 1


def test_a_metrics_target_that_cannot_be_written_never_fails_the_run(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    h.add_contacts(subscribed=MEMBERS)
    h.add_audience("vip", 300, MEMBERS)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    h.extra_toml = (
        f'[metrics]\ntextfile = "{blocker}/m.prom"\npushgateway = "http://127.0.0.1:9"\n'
        "timeout_seconds = 2"
    )
    with caplog.at_level(logging.ERROR, logger="audience_sync.metrics"):
        assert h.run().status == "succeeded"
    events = [r.getMessage() for r in caplog.records if r.name == "audience_sync.metrics"]
    assert events == ["metrics.textfile_not_written", "metrics.not_pushed"]
