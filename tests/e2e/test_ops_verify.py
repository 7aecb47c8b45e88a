"""verify / verify --repair and run --full --reconcile against the sandbox, on both backends."""

from __future__ import annotations

import pytest

from audience_sync.config import Credentials
from audience_sync.errors import GuardError
from audience_sync.listrak.client import ListrakClient
from audience_sync.verify import VerifyJob, VerifyReport, format_report
from tests.harness import CLIENT_ID, CLIENT_SECRET, LIST_ID, Harness

MEMBERS = [f"m{i:02d}@example.com" for i in range(20)]
OUTSIDERS = [f"o{i:02d}@example.com" for i in range(5)]
FIELD = 300


def verify_job(h: Harness) -> VerifyJob:
    config = h.config()
    return VerifyJob(
        config,
        engine=h.engine,
        client_factory=lambda: ListrakClient.build(
            config.settings.listrak, Credentials(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        ),
    )


def synced(h: Harness) -> None:
    h.add_contacts(subscribed=MEMBERS + OUTSIDERS)
    h.add_audience("vip", FIELD, MEMBERS)
    assert h.run().status == "succeeded"


def counts(report: VerifyReport) -> dict[str, int]:
    (check,) = report.audiences
    assert check.drift is not None
    return check.drift.counts


def test_no_drift_after_a_sync(harness: Harness) -> None:
    synced(harness)
    report = verify_job(harness).verify()
    assert report.drift_total == 0
    assert counts(report) == {"on_not_member": 0, "member_not_on": 0, "stale_state": 0}
    assert "vip (list 100, field 300): no drift; members 20" in format_report(report)


def test_verify_reports_drift_made_in_listrak_and_repair_removes_it(harness: Harness) -> None:
    h = harness
    synced(h)
    # Someone edits Listrak by hand: two outsiders on, one member off, one member cleared.
    h.sandbox.world.set_field_values(
        LIST_ID,
        FIELD,
        {OUTSIDERS[0]: "on", OUTSIDERS[1]: "on", MEMBERS[0]: "off", MEMBERS[1]: None},
    )
    imports_before = h.import_count()

    report = verify_job(h).verify()
    assert counts(report) == {"on_not_member": 2, "member_not_on": 2, "stale_state": 0}
    text = format_report(report)
    assert "on in Listrak, not a member: 2 (fix: off)" in text
    assert f"{OUTSIDERS[0]}  Listrak on, confirmed none, not a member" in text
    assert f"{MEMBERS[0]}  Listrak off, confirmed on, member" in text
    assert f"{MEMBERS[1]}  Listrak empty, confirmed on, member" in text
    assert h.import_count() == imports_before, "verify sends nothing"

    repaired = verify_job(h).repair()
    assert repaired.run is not None
    assert repaired.run.status == "succeeded"
    assert h.change_statuses(repaired.run.run_id) == {
        OUTSIDERS[0]: ("off", "confirmed", None),
        OUTSIDERS[1]: ("off", "confirmed", None),
        MEMBERS[0]: ("on", "confirmed", None),
        MEMBERS[1]: ("on", "confirmed", None),
    }
    assert h.members_on("vip") == set(MEMBERS)
    assert verify_job(h).verify().drift_total == 0
    # The repaired state is what the next ordinary run builds on: it sends nothing.
    again = h.run()
    assert h.change_count(again.run_id) == 0


def test_stale_confirmed_state_is_drift_and_repair_reconfirms(harness: Harness) -> None:
    h = harness
    synced(h)
    from sqlalchemy import update

    from audience_sync.state.tables import memberships

    # confirmed state lost; the contact is still a member (desired 'on')
    with h.engine.begin() as conn:
        conn.execute(
            update(memberships)
            .where(memberships.c.email == MEMBERS[5])
            .values(value=None, confirmed_run_id=None, confirmed_at=None)
        )
    report = verify_job(h).verify()
    assert counts(report) == {"on_not_member": 0, "member_not_on": 0, "stale_state": 1}
    verify_job(h).repair()
    assert h.confirmed()[MEMBERS[5]] == "on"
    assert verify_job(h).verify().drift_total == 0


def test_repair_is_guarded_and_sends_nothing_when_it_trips(harness: Harness) -> None:
    h = harness
    synced(h)
    # 6 outsiders on and 5 members cleared: 6 offs against 21 on in Listrak (28.6% > 20%).
    h.add_contacts(subscribed=["x@example.com"])
    h.sandbox.world.set_field_values(LIST_ID, FIELD, {e: "on" for e in OUTSIDERS})
    h.sandbox.world.set_field_values(LIST_ID, FIELD, {"x@example.com": "on"})
    h.sandbox.world.set_field_values(LIST_ID, FIELD, dict.fromkeys(MEMBERS[:5], None))
    imports_before = h.import_count()
    with pytest.raises(GuardError, match=r"vip: 6 of 21 members on in Listrak would be removed"):
        verify_job(h).repair()
    assert h.import_count() == imports_before
    assert h.values("vip")["x@example.com"] == "on"

    forced = verify_job(h).repair(force=True)
    assert forced.run is not None
    assert forced.run.status == "succeeded"
    assert h.members_on("vip") == set(MEMBERS)


def test_audience_never_synced_is_not_compared(harness: Harness) -> None:
    harness.add_contacts(subscribed=MEMBERS)
    harness.add_audience("vip", FIELD, MEMBERS)
    report = verify_job(harness).verify()
    assert report.drift_total == 0
    assert format_report(report) == "vip: no snapshot yet (run a sync first); not compared"


def test_full_reconcile_turns_off_contacts_on_in_listrak_that_are_not_members(
    harness: Harness,
) -> None:
    h = harness
    h.add_contacts(subscribed=MEMBERS + OUTSIDERS)
    h.add_audience("vip", FIELD, MEMBERS)
    # Left over from the hosted destination: outsiders on, and no confirmed state at all.
    h.sandbox.world.set_field_values(LIST_ID, FIELD, {OUTSIDERS[0]: "on", OUTSIDERS[1]: "on"})

    plain = h.run(full=True, trigger="full")
    assert h.values("vip")[OUTSIDERS[0]] == "on", "a full sync alone does not read Listrak"
    assert h.change_count(plain.run_id) == len(MEMBERS)

    reconciled = h.run(full=True, trigger="full", reconcile=True)
    statuses = h.change_statuses(reconciled.run_id)
    assert statuses[OUTSIDERS[0]] == ("off", "confirmed", None)
    assert statuses[OUTSIDERS[1]] == ("off", "confirmed", None)
    assert sum(1 for a, _, _ in statuses.values() if a == "on") == len(MEMBERS)
    assert h.members_on("vip") == set(MEMBERS)
