"""Property: applying a run's deltas to ``memberships`` gives the same rows whichever way the
database does it (PostgreSQL merges an audience's first snapshot, everything else upserts),
over random memberships, deltas, audience kinds and earlier snapshots."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Engine

from audience_sync.state import changes, desired, ledger
from audience_sync.state.db import utcnow
from audience_sync.state.statuses import RunTrigger
from audience_sync.state.tables import (
    audiences,
    memberships,
    recorded_deltas,
    run_audiences,
    snapshot_deltas,
)
from tests.conftest import backend_url
from tests.state.test_plan_property import reset

EMAILS = [f"p{i}@example.com" for i in range(10)]
VALUES = ["on", "off", "gold", None]
email = st.sampled_from(EMAILS)
value = st.sampled_from(VALUES)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest) -> str:
    return backend_url(request)


@dataclass(frozen=True)
class Case:
    rows: dict[str, tuple[str | None, str | None]]  # email -> (value, desired)
    deltas: dict[str, str | None]
    first_snapshot: bool  # no snapshot applied before: PostgreSQL merges
    values: bool  # a computed trait
    # The deltas are the run's planned ``on`` changes (run_audiences.deltas_are_changes),
    # written as changes, not as recorded deltas.
    from_changes: bool = False


def _from_changes(case: Case) -> Case:
    return replace(case, deltas=dict.fromkeys(case.deltas, "on"), values=False, from_changes=True)


cases = st.builds(
    Case,
    rows=st.dictionaries(email, st.tuples(value, value)),
    deltas=st.dictionaries(email, value),
    first_snapshot=st.booleans(),
    values=st.booleans(),
) | st.builds(
    Case,
    rows=st.dictionaries(email, st.tuples(value, value)),
    deltas=st.dictionaries(email, value),
    first_snapshot=st.booleans(),
    values=st.just(False),
).map(_from_changes)


def expected_rows(case: Case) -> dict[str, tuple[str | None, str | None]]:
    rows = dict(case.rows)
    for e, wanted in case.deltas.items():
        rows[e] = (rows.get(e, (None, None))[0], wanted)
    unwanted = {
        e
        for e, wanted in case.deltas.items()
        if (wanted is None if case.values else wanted != "on")
    }
    return {e: r for e, r in rows.items() if not (e in unwanted and r[0] is None)}


def apply_case(engine: Engine, case: Case) -> dict[str, tuple[str | None, str | None]]:
    reset(engine)
    with engine.begin() as conn:
        audience_id = ledger.upsert_audience(conn, key="a", list_id=1, field_id=2, source="t")
        earlier = ledger.create_run(conn, trigger=RunTrigger.MANUAL)
        run_id = ledger.create_run(conn, trigger=RunTrigger.MANUAL)
        if not case.first_snapshot:
            conn.execute(
                update(audiences)
                .where(audiences.c.id == audience_id)
                .values(snapshot_run_id=earlier)
            )
        if case.rows:
            conn.execute(
                insert(memberships),
                [
                    {
                        "audience_id": audience_id,
                        "email": e,
                        "value": v,
                        "confirmed_run_id": None if v is None else earlier,
                        "confirmed_at": None if v is None else utcnow(),
                        "desired": d,
                    }
                    for e, (v, d) in case.rows.items()
                ],
            )
        ledger.start_run_audience(conn, run_id, audience_id, source="t")
        if case.from_changes:
            changes.plan_batches(
                conn,
                run_id=run_id,
                audience_id=audience_id,
                batches=[
                    pa.record_batch(
                        [pa.array(sorted(case.deltas)), pa.array(["on"] * len(case.deltas))],
                        names=["email", "action"],
                    )
                ],
            )
            conn.execute(
                update(run_audiences)
                .where(run_audiences.c.run_id == run_id)
                .values(planned_on=len(case.deltas))
            )
            desired.mark_deltas_are_changes(conn, run_id=run_id, audience_id=audience_id)
        elif case.deltas:
            conn.execute(
                insert(recorded_deltas),
                [
                    {"run_id": run_id, "audience_id": audience_id, "email": e, "desired": d}
                    for e, d in case.deltas.items()
                ],
            )
        desired.apply_deltas(conn, run_id=run_id, audience_id=audience_id, values=case.values)
        if conn.dialect.name == "postgresql":
            # The merge's planner settings end with it, not with the transaction.
            for setting in ("enable_hashjoin", "enable_nestloop", "enable_sort"):
                assert conn.execute(text(f"SHOW {setting}")).scalar_one() == "on"
    with engine.connect() as conn:
        assert desired.snapshot_run(conn, audience_id) == run_id
        # The view shows the run's deltas however they were written.
        shown = conn.execute(
            select(snapshot_deltas.c.email, snapshot_deltas.c.desired).where(
                snapshot_deltas.c.run_id == run_id
            )
        ).all()
        assert dict(shown) == case.deltas
        return {
            e: (v, d)
            for e, v, d in conn.execute(
                select(memberships.c.email, memberships.c.value, memberships.c.desired)
            )
        }


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=cases)
def test_applied_deltas_equal_the_reference(engine: Engine, case: Case) -> None:
    assert apply_case(engine, case) == expected_rows(case)


@pytest.mark.parametrize("from_changes", [False, True])
def test_a_first_snapshot_keeps_confirmed_rows_and_adds_the_unconfirmed(
    engine: Engine, from_changes: bool
) -> None:
    """The case the merge is for, spelled out: members confirmed by the first run get their
    desired value on their row; members Listrak skipped get a row of their own; a confirmed
    contact that is no member is left alone."""
    case = Case(
        rows={EMAILS[0]: ("on", None), EMAILS[1]: ("on", None), EMAILS[2]: ("off", None)},
        deltas={EMAILS[0]: "on", EMAILS[1]: "on", EMAILS[3]: "on"},
        first_snapshot=True,
        values=False,
        from_changes=from_changes,
    )
    assert apply_case(engine, case) == {
        EMAILS[0]: ("on", "on"),
        EMAILS[1]: ("on", "on"),
        EMAILS[2]: ("off", None),
        EMAILS[3]: (None, "on"),
    }


@pytest.mark.parametrize("from_changes", [False, True])
def test_a_first_snapshot_whose_members_all_have_rows_inserts_none(
    engine: Engine, from_changes: bool
) -> None:
    """Every member confirmed (the usual first run): the update finds every delta's row."""
    case = Case(
        rows={EMAILS[0]: ("on", None), EMAILS[1]: ("on", None)},
        deltas={EMAILS[0]: "on", EMAILS[1]: "on"},
        first_snapshot=True,
        values=False,
        from_changes=from_changes,
    )
    assert apply_case(engine, case) == {EMAILS[0]: ("on", "on"), EMAILS[1]: ("on", "on")}
