"""The DuckDB plan, its writes and confirmation on real SQLite and PostgreSQL databases."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine

from audience_sync.plan.engine import Counts
from audience_sync.plan.writer import plan_emails
from audience_sync.state import ledger
from audience_sync.state.changes import ResultVocabulary, count_by_status
from audience_sync.state.confirm import ImportOutcome
from audience_sync.state.db import utcnow
from audience_sync.state.statuses import RunTrigger
from audience_sync.state.tables import memberships, parked_contacts, run_changes
from tests.state.settling import settle_run

VOCABULARY = ResultVocabulary(accepted=["Updated"], skipped=["NotSubscribed", "NotOnList"])
SNAPSHOTS: dict[int, list[str]] = {}


def new_run(engine: Engine, emails: list[str], audience_key: str = "vip") -> tuple[int, int]:
    with engine.begin() as conn:
        audience_id = ledger.upsert_audience(
            conn, key=audience_key, list_id=1, field_id=2, source="test"
        )
        run_id = ledger.create_run(conn, trigger=RunTrigger.MANUAL)
        ledger.start_run_audience(conn, run_id, audience_id, source="test")
    # read in two batches with a repeat across them
    SNAPSHOTS[run_id] = emails[: len(emails) // 2 + 1] + emails[len(emails) // 2 :]
    return run_id, audience_id


def plan(
    engine: Engine,
    run_id: int,
    audience_id: int,
    *,
    full: bool = False,
    retry_after: timedelta = timedelta(hours=24),
) -> Counts:
    return plan_emails(
        engine,
        SNAPSHOTS.pop(run_id),
        run_id=run_id,
        audience_id=audience_id,
        full=full,
        parked_before=utcnow() - retry_after,
    )


def changes(engine: Engine, run_id: int) -> dict[str, tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(run_changes.c.email, run_changes.c.action, run_changes.c.status).where(
                run_changes.c.run_id == run_id
            )
        )
        return {r.email: (r.action, r.status) for r in rows}


def settle(
    engine: Engine, run_id: int, audience_id: int, results: dict[str, str] | None
) -> ImportOutcome:
    return settle_run(
        engine,
        run_id=run_id,
        audience_id=audience_id,
        vocabulary=VOCABULARY,
        results=None if results is None else results.items(),
    )


def confirmed(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        query = select(memberships.c.email, memberships.c.value).where(
            memberships.c.value.is_not(None)
        )
        return dict(conn.execute(query).all())


def test_first_run_turns_every_member_on(engine: Engine) -> None:
    run_id, audience_id = new_run(engine, ["a@x.com", "b@x.com", "c@x.com"])
    counts = plan(engine, run_id, audience_id)
    assert (counts.snapshot, counts.planned_on, counts.planned_off) == (3, 3, 0)
    assert changes(engine, run_id) == {
        e: ("on", "planned") for e in ["a@x.com", "b@x.com", "c@x.com"]
    }


def test_diff_against_confirmed_state(engine: Engine) -> None:
    run_id, audience_id = new_run(engine, ["a@x.com", "b@x.com"])
    plan(engine, run_id, audience_id)
    settle(engine, run_id, audience_id, None)
    assert confirmed(engine) == {"a@x.com": "on", "b@x.com": "on"}

    run2, _ = new_run(engine, ["b@x.com", "c@x.com"])
    counts = plan(engine, run2, audience_id)
    assert changes(engine, run2) == {"c@x.com": ("on", "planned"), "a@x.com": ("off", "planned")}
    assert counts.unchanged == 1
    settle(engine, run2, audience_id, None)
    assert confirmed(engine) == {"a@x.com": "off", "b@x.com": "on", "c@x.com": "on"}

    run3, _ = new_run(engine, ["b@x.com", "c@x.com"])
    assert plan(engine, run3, audience_id).planned_on == 0
    assert changes(engine, run3) == {}


def test_full_sync_resends_every_member(engine: Engine) -> None:
    run_id, audience_id = new_run(engine, ["a@x.com", "b@x.com"])
    plan(engine, run_id, audience_id)
    settle(engine, run_id, audience_id, None)
    run2, _ = new_run(engine, ["a@x.com", "b@x.com"])
    counts = plan(engine, run2, audience_id, full=True)
    assert counts.planned_on == 2


def test_only_accepted_contacts_are_confirmed_and_skips_are_parked(engine: Engine) -> None:
    run_id, audience_id = new_run(engine, ["ok@x.com", "unsub@x.com", "weird@x.com", "none@x.com"])
    plan(engine, run_id, audience_id)
    settle(
        engine,
        run_id,
        audience_id,
        {
            "ok@x.com": "Updated",
            "unsub@x.com": "NotSubscribed",
            "weird@x.com": "Mystery",
        },
    )
    assert confirmed(engine) == {"ok@x.com": "on"}
    with engine.connect() as conn:
        rows = conn.execute(
            select(run_changes.c.email, run_changes.c.status, run_changes.c.reason)
        ).all()
        parked = dict(conn.execute(select(parked_contacts.c.email, parked_contacts.c.reason)).all())
    assert {r.email: (r.status, r.reason) for r in rows} == {
        "ok@x.com": ("confirmed", None),
        "unsub@x.com": ("skipped", "NotSubscribed"),
        "weird@x.com": ("failed", "unknown import result: Mystery"),
        "none@x.com": ("failed", "Listrak reported no result for this contact"),
    }
    assert parked == {"unsub@x.com": "NotSubscribed"}

    # an unchanged rerun plans the transient failures only, not the parked skip
    run2, _ = new_run(engine, ["ok@x.com", "unsub@x.com", "weird@x.com", "none@x.com"])
    plan(engine, run2, audience_id)
    assert set(changes(engine, run2)) == {"weird@x.com", "none@x.com"}

    # after retry_skipped_after the parked skip is planned again
    run3, _ = new_run(engine, ["ok@x.com", "unsub@x.com", "weird@x.com", "none@x.com"])
    plan(engine, run3, audience_id, retry_after=timedelta(0))
    assert "unsub@x.com" in changes(engine, run3)


def test_an_imports_outcome_counts_what_its_changes_became(engine: Engine) -> None:
    """The outcome comes from the settling statements' row counts: it must equal a count of
    the import's changes by status afterwards."""
    emails = ["ok@x.com", "ok2@x.com", "unsub@x.com", "weird@x.com", "none@x.com"]
    run_id, audience_id = new_run(engine, emails)
    plan(engine, run_id, audience_id)
    outcome = settle(
        engine,
        run_id,
        audience_id,
        {
            "ok@x.com": "Updated",
            "ok2@x.com": "Updated",
            "unsub@x.com": "NotSubscribed",
            "weird@x.com": "Mystery",
        },
    )
    with engine.connect() as conn:
        counted = count_by_status(conn, run_id=run_id)
    assert counted == {"confirmed": 2, "skipped": 1, "failed": 2}
    assert (outcome.confirmed, outcome.skipped, outcome.failed) == (2, 1, 2)
    assert outcome.unknown_results == {"Mystery": 1}

    run2, _ = new_run(engine, [*emails, "new@x.com"])
    plan(engine, run2, audience_id)
    outcome = settle(engine, run2, audience_id, None)  # the summary: every row applied
    with engine.connect() as conn:
        counted = count_by_status(conn, run_id=run2)
    assert counted == {"confirmed": 3}
    assert (outcome.confirmed, outcome.skipped, outcome.failed) == (3, 0, 0)


def test_a_parked_skip_is_dropped_when_the_desired_value_changes(engine: Engine) -> None:
    run_id, audience_id = new_run(engine, ["unsub@x.com", "a@x.com"])
    plan(engine, run_id, audience_id)
    settle(engine, run_id, audience_id, {"unsub@x.com": "NotSubscribed", "a@x.com": "Updated"})
    run2, _ = new_run(engine, ["a@x.com"])  # left the audience: desired value changed
    plan(engine, run2, audience_id)
    with engine.connect() as conn:
        assert conn.execute(select(parked_contacts)).all() == []
    run3, _ = new_run(engine, ["a@x.com", "unsub@x.com"])  # back again: sent again
    plan(engine, run3, audience_id)
    assert changes(engine, run3) == {"unsub@x.com": ("on", "planned")}


def test_audiences_do_not_see_each_other(engine: Engine) -> None:
    run_a, aud_a = new_run(engine, ["a@x.com"], audience_key="one")
    plan(engine, run_a, aud_a)
    settle(engine, run_a, aud_a, None)
    run_b, aud_b = new_run(engine, ["a@x.com"], audience_key="two")
    assert plan(engine, run_b, aud_b).planned_on == 1


def test_a_parked_skip_sent_again_is_forgotten_when_confirmed_and_renewed_when_skipped(
    engine: Engine,
) -> None:
    members = ["a@x.com", "b@x.com", "c@x.com", "d@x.com"]
    run_id, audience_id = new_run(engine, members)
    plan(engine, run_id, audience_id)
    skipped = {"a@x.com": "NotSubscribed", "b@x.com": "NotSubscribed", "c@x.com": "NotOnList"}
    settle(engine, run_id, audience_id, {**skipped, "d@x.com": "Updated"})
    # Another audience's parked skip of the same contact is not this import's to forget.
    other_run, other_audience = new_run(engine, ["a@x.com"], audience_key="other")
    plan(engine, other_run, other_audience)
    settle(engine, other_run, other_audience, {"a@x.com": "NotSubscribed"})

    run2, _ = new_run(engine, members)
    plan(engine, run2, audience_id, retry_after=timedelta(0))
    assert set(changes(engine, run2)) == {"a@x.com", "b@x.com", "c@x.com"}
    settle(engine, run2, audience_id, {"a@x.com": "Updated", "b@x.com": "NotOnList"})
    with engine.connect() as conn:
        parked = {
            (r.audience_id, r.email): (r.reason, r.run_id)
            for r in conn.execute(select(parked_contacts))
        }
    assert parked == {
        (audience_id, "b@x.com"): ("NotOnList", run2),
        # c@x.com failed (no result): its parked skip stays as it was.
        (audience_id, "c@x.com"): ("NotOnList", run_id),
        (other_audience, "a@x.com"): ("NotSubscribed", other_run),
    }
