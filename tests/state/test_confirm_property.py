"""Property: confirming a run advances exactly the accepted part of the desired state, and
reruns plan exactly what is still owed (transient failures; skips only once they may retry)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from audience_sync.plan.writer import plan_emails
from audience_sync.state import changes, ledger
from audience_sync.state.db import utcnow
from audience_sync.state.statuses import RunTrigger
from audience_sync.state.tables import memberships, run_changes
from tests.conftest import backend_url
from tests.state.settling import settle_run
from tests.state.test_plan_property import reset


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Both backends; PostgreSQL's cases (the slowest here) run in `make test-slow`,
    which keeps `make test` under four minutes. CI runs both."""
    return backend_url(request)


EMAILS = [f"p{i}@example.com" for i in range(10)]
VOCABULARY = changes.ResultVocabulary(accepted=["Updated"], skipped=["NotSubscribed"])
OUTCOME_RESULT = {"accepted": "Updated", "skipped": "NotSubscribed", "unknown": "Mystery"}

confirmed_states = st.dictionaries(st.sampled_from(EMAILS), st.sampled_from(["on", "off"]))
snapshots = st.sets(st.sampled_from(EMAILS))
outcomes = st.dictionaries(
    st.sampled_from(EMAILS), st.sampled_from(["accepted", "skipped", "unknown", "missing"])
)


SNAPSHOTS: dict[int, set[str]] = {}


def new_run(engine: Engine, audience_id: int, members: set[str]) -> int:
    with engine.begin() as conn:
        run_id = ledger.create_run(conn, trigger=RunTrigger.MANUAL)
        ledger.start_run_audience(conn, run_id, audience_id, source="test")
    SNAPSHOTS[run_id] = members
    return run_id


def planned(
    engine: Engine, run_id: int, audience_id: int, retry_after: timedelta
) -> dict[str, str]:
    plan_emails(
        engine,
        sorted(SNAPSHOTS.pop(run_id)),
        run_id=run_id,
        audience_id=audience_id,
        full=False,
        parked_before=utcnow() - retry_after,
    )
    with engine.connect() as conn:
        rows = conn.execute(
            select(run_changes.c.email, run_changes.c.action).where(run_changes.c.run_id == run_id)
        )
        return dict(rows.all())


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(confirmed=confirmed_states, members=snapshots, results=outcomes)
def test_confirm_and_rerun(
    engine: Engine, confirmed: dict[str, str], members: set[str], results: dict[str, str]
) -> None:
    reset(engine)
    with engine.begin() as conn:
        audience_id = ledger.upsert_audience(conn, key="a", list_id=1, field_id=2, source="t")
        if confirmed:
            conn.execute(
                insert(memberships),
                [
                    {
                        "audience_id": audience_id,
                        "email": e,
                        "value": v,
                        "confirmed_run_id": 0,
                        "confirmed_at": utcnow(),
                    }
                    for e, v in confirmed.items()
                ],
            )
    desired = {e: "on" for e in members} | {
        e: "off" for e, v in confirmed.items() if v == "on" and e not in members
    }
    owed = {e: v for e, v in desired.items() if confirmed.get(e) != v}

    run1 = new_run(engine, audience_id, members)
    assert planned(engine, run1, audience_id, timedelta(hours=24)) == owed

    outcome = {e: results.get(e, "accepted") for e in owed}
    settle_run(
        engine,
        run_id=run1,
        audience_id=audience_id,
        vocabulary=VOCABULARY,
        results=[(e, OUTCOME_RESULT[o]) for e, o in outcome.items() if o != "missing"],
    )
    with engine.connect() as conn:
        after = dict(conn.execute(select(memberships.c.email, memberships.c.value)).all())

    accepted = {e for e, o in outcome.items() if o == "accepted"}
    assert after == confirmed | {e: desired[e] for e in accepted}

    transient = {e for e, o in outcome.items() if o in ("unknown", "missing")}
    skipped = {e for e, o in outcome.items() if o == "skipped"}
    run2 = new_run(engine, audience_id, members)
    assert planned(engine, run2, audience_id, timedelta(hours=24)) == {
        e: owed[e] for e in transient
    }
    run3 = new_run(engine, audience_id, members)
    assert planned(engine, run3, audience_id, timedelta(0)) == {
        e: owed[e] for e in transient | skipped
    }
