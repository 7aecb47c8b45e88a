"""``run_changes``, ``memberships`` and ``import_results`` have no foreign keys (migration
0010): every bulk writer checks its run, audience and import once per statement or batch, and
refuses an orphan write with one line."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import pyarrow as pa
import pytest
from sqlalchemy import Table, func, literal, select
from sqlalchemy.engine import Connection, Engine

from audience_sync.errors import StateError
from audience_sync.plan import in_database, in_database_traits
from audience_sync.state import changes, confirm, desired, drift, ledger, migrate
from audience_sync.state.db import make_engine, utcnow
from audience_sync.state.statuses import AudienceKind, RunTrigger
from audience_sync.state.tables import import_results, memberships, recorded_deltas, run_changes
from tests.state.test_state_errors import assert_clean

MISSING = 999_999
VOCABULARY = changes.ResultVocabulary(accepted=["Updated"], skipped=["NotSubscribed"])


def _run_and_audience(
    conn: Connection, *, kind: AudienceKind = AudienceKind.AUDIENCE
) -> tuple[int, int]:
    audience_id = ledger.upsert_audience(
        conn, key=f"a_{kind.value}", list_id=1, field_id=2, source="test", kind=kind
    )
    run_id = ledger.create_run(conn, trigger=RunTrigger.MANUAL)
    ledger.start_run_audience(conn, run_id, audience_id, source="test")
    return run_id, audience_id


def _import(conn: Connection, run_id: int, audience_id: int, name: str = "part-1.csv") -> int:
    return ledger.record_import(
        conn,
        run_id=run_id,
        audience_id=audience_id,
        list_id=1,
        field_id=2,
        part=1,
        route="list_import",
        file_name=name,
        first_email="a@x.com",
        last_email="z@x.com",
        row_count=2,
        byte_count=40,
    )


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _emails() -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array(["a@x.com", "b@x.com"]), pa.array(["on", "on"])], names=["email", "action"]
    )


def _values() -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array(["a@x.com"]), pa.array(["set"]), pa.array(["gold"])],
        names=["email", "action", "value"],
    )


def _invalid() -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array(["a@x.com"]), pa.array(["too long"])], names=["email", "reason"]
    )


PlanWriter = Callable[[Connection, int, int], object]

PLAN_WRITERS: dict[str, PlanWriter] = {
    "plan_batches": lambda conn, r, a: changes.plan_batches(
        conn, run_id=r, audience_id=a, batches=[_emails()]
    ),
    "plan_value_batches": lambda conn, r, a: changes.plan_value_batches(
        conn, run_id=r, audience_id=a, batches=[_values()]
    ),
    "record_invalid_values": lambda conn, r, a: changes.record_invalid_values(
        conn, run_id=r, audience_id=a, batches=[_invalid()]
    ),
    "plan_rows": lambda conn, r, a: changes.plan_rows(
        conn,
        run_id=r,
        audience_id=a,
        rows=cast(
            changes.ChangeRows,
            select(literal("a@x.com").label("email"), literal("on").label("action")),
        ),
    ),
    "plan_trait_repair": lambda conn, r, a: drift.plan_trait_repair(conn, run_id=r, audience_id=a),
}


@pytest.mark.parametrize("writer", sorted(PLAN_WRITERS))
def test_planned_changes_for_a_missing_run_or_audience_are_refused(
    engine: Engine, writer: str
) -> None:
    write = PLAN_WRITERS[writer]
    with engine.begin() as conn:
        run_id, audience_id = _run_and_audience(conn)
    refusals = {
        f"run {MISSING}": (MISSING, audience_id),
        f"audience {MISSING}": (run_id, MISSING),
    }
    for parent, (bad_run, bad_audience) in refusals.items():
        with pytest.raises(StateError) as caught, engine.begin() as conn:
            write(conn, bad_run, bad_audience)
        message = str(caught.value)
        assert message.startswith("state database ")
        what = "planned repairs" if writer == "plan_trait_repair" else "planned changes"
        assert message.endswith(f": refusing to write {what} for {parent}: it is not in the ledger")
        assert_clean(message)
    assert _count(engine, run_changes) == 0
    with engine.begin() as conn:
        write(conn, run_id, audience_id)  # the same write for parents that exist goes through


def test_submitting_changes_to_an_import_not_of_their_run_and_audience_is_refused(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        run_id, audience_id = _run_and_audience(conn)
        other_run, other_audience = _run_and_audience(conn, kind=AudienceKind.TRAIT)
        changes.plan_batches(conn, run_id=run_id, audience_id=audience_id, batches=[_emails()])
        mine = _import(conn, run_id, audience_id)
        of_another_run = _import(conn, other_run, audience_id, "part-2.csv")
        of_another_audience = _import(conn, run_id, other_audience, "part-3.csv")
    for import_row_id in (MISSING, of_another_run, of_another_audience):
        with pytest.raises(StateError) as caught, engine.begin() as conn:
            changes.assign_to_import(
                conn,
                run_id=run_id,
                audience_id=audience_id,
                import_row_id=import_row_id,
                first_email="a@x.com",
                last_email="z@x.com",
            )
        assert str(caught.value).endswith(
            f": refusing to write submitted changes for import {import_row_id} of run {run_id} "
            f"and audience {audience_id}: it is not in the ledger"
        )
    with engine.connect() as conn:
        assert conn.execute(select(run_changes.c.import_id).distinct()).scalars().all() == [None]
    with engine.begin() as conn:
        assert (
            changes.assign_to_import(
                conn,
                run_id=run_id,
                audience_id=audience_id,
                import_row_id=mine,
                first_email="a@x.com",
                last_email="z@x.com",
            )
            == 2
        )


def test_memberships_for_a_missing_audience_are_refused(engine: Engine) -> None:
    with engine.begin() as conn:
        run_id, audience_id = _run_and_audience(conn)
        changes.plan_batches(conn, run_id=run_id, audience_id=audience_id, batches=[_emails()])
        import_row_id = _import(conn, run_id, audience_id)
        changes.assign_to_import(
            conn,
            run_id=run_id,
            audience_id=audience_id,
            import_row_id=import_row_id,
            first_email="a@x.com",
            last_email="z@x.com",
        )
        desired.mark_deltas_are_changes(conn, run_id=run_id, audience_id=audience_id)
        # deltas written under a missing audience's id (recorded_deltas has no key either)
        conn.execute(
            recorded_deltas.insert().values(
                run_id=run_id, audience_id=MISSING, email="a@x.com", desired="on"
            )
        )
    with pytest.raises(StateError) as caught, engine.begin() as conn:
        confirm.settle_import(
            conn,
            import_row_id=import_row_id,
            run_id=run_id,
            audience_id=MISSING,
            vocabulary=VOCABULARY,
            all_accepted=True,
        )
    assert str(caught.value).endswith(
        f": refusing to write confirmed memberships for audience {MISSING}: it is not in the ledger"
    )
    with pytest.raises(StateError) as caught, engine.begin() as conn:
        desired.apply_deltas(conn, run_id=run_id, audience_id=MISSING)
    assert str(caught.value).endswith(
        f": refusing to write desired memberships for audience {MISSING}: it is not in the ledger"
    )
    assert _count(engine, memberships) == 0
    with engine.begin() as conn:
        confirm.settle_import(
            conn,
            import_row_id=import_row_id,
            run_id=run_id,
            audience_id=audience_id,
            vocabulary=VOCABULARY,
            all_accepted=True,
        )
        desired.apply_deltas(conn, run_id=run_id, audience_id=audience_id)
    with engine.connect() as conn:
        rows = conn.execute(
            select(memberships.c.audience_id, memberships.c.email, memberships.c.value)
        ).all()
    assert sorted(tuple(r) for r in rows) == [
        (audience_id, "a@x.com", "on"),
        (audience_id, "b@x.com", "on"),
    ]


def test_contact_results_for_a_missing_import_are_refused(engine: Engine) -> None:
    with pytest.raises(StateError) as caught, engine.begin() as conn:
        confirm.stage_results(conn, MISSING, [("a@x.com", "Updated")])
    assert str(caught.value).endswith(
        f": refusing to write contact results for import {MISSING}: it is not in the ledger"
    )
    assert_clean(str(caught.value))
    assert _count(engine, import_results) == 0
    with engine.begin() as conn:
        run_id, audience_id = _run_and_audience(conn)
        confirm.stage_results(conn, _import(conn, run_id, audience_id), [("a@x.com", "Updated")])
    assert _count(engine, import_results) == 1


def test_the_database_no_longer_refuses_an_orphan_change(engine: Engine) -> None:
    """What migration 0010 gave up, pinned: only the application's checks stand in the way."""
    with engine.begin() as conn:
        conn.execute(
            run_changes.insert().values(
                run_id=MISSING,
                audience_id=MISSING,
                email="a@x.com",
                action="on",
                status="planned",
                import_id=MISSING,
            )
        )
        conn.execute(memberships.insert().values(audience_id=MISSING, email="a@x.com"))
        conn.execute(import_results.insert().values(import_id=MISSING, email="a@x.com", result="x"))
    assert _count(engine, run_changes) == 1
    assert _count(engine, memberships) == 1
    assert _count(engine, import_results) == 1


def test_the_in_database_planners_refuse_a_missing_run_or_audience(pg_database_url: str) -> None:
    engine = make_engine(pg_database_url)
    try:
        migrate.upgrade(engine)
        with engine.begin() as conn:
            run_id, audience_id = _run_and_audience(conn)
        for bad_run, bad_audience in ((MISSING, audience_id), (run_id, MISSING)):
            with (
                pytest.raises(StateError, match="refusing to write planned changes for"),
                engine.begin() as conn,
            ):
                in_database.write_plan(
                    conn,
                    run_id=bad_run,
                    audience_id=bad_audience,
                    full=False,
                    parked_before=utcnow(),
                    reconcile=False,
                )
            with (
                pytest.raises(StateError, match="refusing to write planned changes for"),
                engine.begin() as conn,
            ):
                in_database_traits._write_plan(
                    conn,
                    run_id=bad_run,
                    audience_id=bad_audience,
                    full=False,
                    clear_missing=False,
                    parked_before=utcnow(),
                )
    finally:
        engine.dispose()
