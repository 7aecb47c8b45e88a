"""The whole path over real HTTP against the sandbox: read, diff, import, await, confirm."""

from __future__ import annotations

from tests.harness import Harness

SUBSCRIBED = [f"member{i:03d}@example.com" for i in range(40)]
UNSUBSCRIBED = "gone@example.com"


def setup_first_time_shoppers(h: Harness) -> None:
    h.add_contacts(subscribed=SUBSCRIBED, unsubscribed=[UNSUBSCRIBED])
    h.add_audience("first_time_shopper", 200, [*SUBSCRIBED, UNSUBSCRIBED])


def test_first_run_turns_every_subscribed_member_on(harness: Harness) -> None:
    setup_first_time_shoppers(harness)
    outcome = harness.run()
    assert outcome.status == "succeeded"
    assert harness.members_on("first_time_shopper") == set(SUBSCRIBED)
    assert harness.confirmed() == {email: "on" for email in SUBSCRIBED}


def test_second_identical_run_sends_no_import(harness: Harness) -> None:
    setup_first_time_shoppers(harness)
    harness.run()
    imports_after_first = harness.import_count()
    assert imports_after_first == 1

    second = harness.run()
    assert second.status == "succeeded"
    assert harness.import_count() == imports_after_first
    assert harness.change_count(second.run_id) == 0


def test_member_removed_from_the_source_is_turned_off(harness: Harness) -> None:
    setup_first_time_shoppers(harness)
    harness.run()
    leaver = SUBSCRIBED[0]
    harness.set_members("first_time_shopper", SUBSCRIBED[1:])

    second = harness.run()
    assert harness.values("first_time_shopper")[leaver] == "off"
    assert harness.members_on("first_time_shopper") == set(SUBSCRIBED[1:])
    assert harness.change_statuses(second.run_id) == {leaver: ("off", "confirmed", None)}
    assert harness.confirmed()[leaver] == "off"


def test_unsubscribed_member_is_skipped_with_reason_never_confirmed_nor_resent(
    harness: Harness,
) -> None:
    setup_first_time_shoppers(harness)
    first = harness.run()
    assert harness.change_statuses(first.run_id)[UNSUBSCRIBED] == (
        "on",
        "skipped",
        "NotSubscribed",
    )
    assert UNSUBSCRIBED not in harness.confirmed()
    assert UNSUBSCRIBED not in harness.values("first_time_shopper")

    second = harness.run()
    assert UNSUBSCRIBED not in harness.change_statuses(second.run_id)
    assert harness.import_count() == 1


def test_member_unknown_to_listrak_is_never_subscribed(harness: Harness) -> None:
    harness.add_contacts(subscribed=SUBSCRIBED)
    harness.add_audience("first_time_shopper", 200, [*SUBSCRIBED, "stranger@example.com"])
    outcome = harness.run()
    assert harness.change_statuses(outcome.run_id)["stranger@example.com"][1:] == (
        "skipped",
        "NotOnList",
    )
    emails_on_list = {c.email for c in harness.sandbox.world.contacts(100)}
    assert "stranger@example.com" not in emails_on_list


def test_each_run_writes_only_its_changes_and_the_snapshot_is_replayable(
    harness: Harness,
) -> None:
    from sqlalchemy import func, select

    from audience_sync.state import desired
    from audience_sync.state.tables import memberships, run_audiences, snapshot_deltas

    setup_first_time_shoppers(harness)
    first = harness.run()
    last = harness.run()  # unchanged: nothing sent, no deltas, but this snapshot is the newest
    with harness.engine.connect() as conn:
        audience_id = conn.execute(select(func.max(memberships.c.audience_id))).scalar_one()
        members = set(
            conn.execute(select(memberships.c.email).where(memberships.c.desired == "on")).scalars()
        )
        per_run: dict[int, int] = dict(
            conn.execute(
                select(snapshot_deltas.c.run_id, func.count()).group_by(snapshot_deltas.c.run_id)
            ).all()
        )
        fingerprints = (
            conn.execute(
                select(run_audiences.c.snapshot_fingerprint).order_by(run_audiences.c.run_id)
            )
            .scalars()
            .all()
        )
        assert desired.snapshot_run(conn, audience_id) == last.run_id
        assert desired.desired_at(conn, audience_id, first.run_id) == members
        assert desired.desired_at(conn, audience_id, last.run_id) == members
    assert per_run == {first.run_id: len(members)}
    assert len(fingerprints) == 2
    assert fingerprints[0] == fingerprints[1] is not None
