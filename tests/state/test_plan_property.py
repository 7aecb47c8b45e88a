"""Property: the DuckDB plan, read from and written to a real state database, equals a pure-Python
reference of the diff rules over random confirmed, desired, parked, read-back and snapshot
states (full sync or not, reconcile or not)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from audience_sync.plan.engine import Counts, EngineSettings, SnapshotPlan
from audience_sync.plan.writer import deltas_are_planned_on, plan_snapshot
from audience_sync.state import ledger
from audience_sync.state.db import utcnow
from audience_sync.state.statuses import RunTrigger
from audience_sync.state.tables import (
    audiences,
    listrak_values,
    memberships,
    metadata,
    parked_contacts,
    run_audiences,
    run_changes,
    snapshot_deltas,
)
from tests.conftest import backend_url

EMAILS = [f"p{i}@example.com" for i in range(12)]
email = st.sampled_from(EMAILS)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Both backends; PostgreSQL's cases (the slowest here) run in `make test-slow`,
    which keeps `make test` under four minutes. CI runs both."""
    return backend_url(request)


@dataclass(frozen=True)
class State:
    confirmed: dict[str, str]
    desired: dict[str, str | None]
    parked: dict[str, tuple[str, bool]]  # email -> (action, recent)
    listrak_on: set[str]
    snapshot: list[str]  # as read: repeats across batches are allowed
    full: bool
    reconcile: bool
    dedupe_partition_rows: int  # small values deduplicate the snapshot by hash partition
    cached: bool = False  # the desired set is read from the snapshot cache


states = st.builds(
    State,
    confirmed=st.dictionaries(email, st.sampled_from(["on", "off"])),
    desired=st.dictionaries(email, st.sampled_from(["on", "off", None])),
    parked=st.dictionaries(email, st.tuples(st.sampled_from(["on", "off"]), st.booleans())),
    listrak_on=st.sets(email),
    snapshot=st.lists(email, max_size=20),
    full=st.booleans(),
    reconcile=st.booleans(),
    dedupe_partition_rows=st.sampled_from([10_000_000, 1, 3]),
    cached=st.booleans(),
)


def reference(state: State) -> dict[str, Any]:
    confirmed, desired_, parked = state.confirmed, state.desired, state.parked
    listrak_on, snapshot, full = state.listrak_on, set(state.snapshot), state.full

    unparked = {e for e, (action, _) in parked.items() if (action == "on") != (e in snapshot)}
    still_parked = {e: p for e, p in parked.items() if e not in unparked}
    recent = {
        a: {e for e, (act, new) in still_parked.items() if new and act == a} for a in ("on", "off")
    }
    confirmed_on = {e for e, v in confirmed.items() if v == "on"}
    if full:
        turn_on = set(snapshot)
        turn_off = confirmed_on - snapshot
    else:
        turn_on = snapshot - confirmed_on - recent["on"]
        turn_off = confirmed_on - snapshot - recent["off"]
    planned = {e: "on" for e in turn_on} | {e: "off" for e in turn_off}
    if state.reconcile:
        planned |= {e: "off" for e in listrak_on - snapshot - turn_off}
    desired_on = {e for e, v in desired_.items() if v == "on"}
    deltas = {e: "on" for e in snapshot - desired_on} | {e: "off" for e in desired_on - snapshot}
    return {
        "planned": planned,
        "deltas": deltas,
        "parked": set(still_parked),
        "snapshot": len(snapshot),
        "parked_on": 0 if full else len(recent["on"]),
        "parked_off": 0 if full else len(recent["off"]),
    }


def reset(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table.name != "run_lock":
                conn.execute(delete(table))


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(state=states)
def test_duckdb_plan_equals_the_reference(engine: Engine, tmp_path: Path, state: State) -> None:
    plan_and_compare(engine, state, cache=tmp_path / "cache")


FIRST_RUN = State(
    confirmed={},
    desired={},
    parked={},
    listrak_on=set(),
    snapshot=EMAILS[:5] + EMAILS[2:4],
    full=False,
    reconcile=False,
    dedupe_partition_rows=10_000_000,
)


@pytest.mark.parametrize(
    ("state", "deltas_from_changes"),
    [
        (FIRST_RUN, True),
        # --full plans every member on, whatever was confirmed: still the deltas if nothing
        # was desired.
        (replace(FIRST_RUN, confirmed={EMAILS[0]: "on", EMAILS[9]: "off"}, full=True), True),
        # Nothing desired, but a member parked recently is not planned: it is still a delta.
        (replace(FIRST_RUN, parked={EMAILS[1]: ("on", True)}), False),
        # Nothing desired, but a member confirmed on is not planned: it is still a delta.
        (replace(FIRST_RUN, confirmed={EMAILS[1]: "on"}), False),
        # Every member planned, but a desired member left: an off delta.
        (replace(FIRST_RUN, desired={EMAILS[9]: "on"}), False),
        # A desired member still in the snapshot is no delta.
        (replace(FIRST_RUN, desired={EMAILS[1]: "on"}), False),
        (replace(FIRST_RUN, snapshot=[]), True),
    ],
)
def test_deltas_come_from_the_planned_changes_only_when_they_are_the_same(
    engine: Engine, state: State, deltas_from_changes: bool
) -> None:
    counts = plan_and_compare(engine, state)
    assert deltas_are_planned_on(counts) is deltas_from_changes


def plan_and_compare(engine: Engine, state: State, *, cache: Path | None = None) -> Counts:
    reset(engine)
    now = utcnow()
    confirmed, desired_, parked = state.confirmed, state.desired, state.parked
    with engine.begin() as conn:
        audience_id = ledger.upsert_audience(conn, key="a", list_id=1, field_id=2, source="t")
        run_id = ledger.create_run(conn, trigger=RunTrigger.MANUAL)
        ledger.start_run_audience(conn, run_id, audience_id, source="t")
        rows = [
            {
                "audience_id": audience_id,
                "email": e,
                "value": confirmed.get(e),
                "confirmed_run_id": 0 if e in confirmed else None,
                "confirmed_at": now if e in confirmed else None,
                "desired": desired_.get(e),
            }
            for e in sorted(set(confirmed) | set(desired_))
        ]
        if rows:
            conn.execute(insert(memberships), rows)
        if parked:
            conn.execute(
                insert(parked_contacts),
                [
                    {
                        "audience_id": audience_id,
                        "email": e,
                        "action": action,
                        "reason": "NotSubscribed",
                        "run_id": 0,
                        "parked_at": now if new else now - timedelta(days=2),
                    }
                    for e, (action, new) in parked.items()
                ],
            )
        values = [{"audience_id": audience_id, "email": e, "value": "on"} for e in state.listrak_on]
        values += [{"audience_id": audience_id, "email": EMAILS[0], "value": "off"}]
        conn.execute(insert(listrak_values), values)

    settings = EngineSettings(dedupe_partition_rows=state.dedupe_partition_rows)
    if state.cached:
        assert cache is not None
        settings = replace(settings, snapshot_cache=cache)
        desired_on = {e for e, v in desired_.items() if v == "on"}
        cache_as_applied(engine, cache, audience_id, desired_on)
    with SnapshotPlan(settings) as snapshot:
        snapshot.add(pa.array(state.snapshot, type=pa.string()))
        counts = plan_snapshot(
            engine,
            snapshot,
            run_id=run_id,
            audience_id=audience_id,
            full=state.full,
            parked_before=now - timedelta(hours=24),
            reconcile=state.reconcile,
        )
        assert snapshot.desired_from_cache is state.cached
    expected = reference(state)
    with engine.connect() as conn:
        planned = dict(
            conn.execute(
                select(run_changes.c.email, run_changes.c.action).where(
                    run_changes.c.run_id == run_id, run_changes.c.status == "planned"
                )
            ).all()
        )
        deltas = dict(
            conn.execute(
                select(snapshot_deltas.c.email, snapshot_deltas.c.desired).where(
                    snapshot_deltas.c.run_id == run_id
                )
            ).all()
        )
        still_parked = set(conn.execute(select(parked_contacts.c.email)).scalars())
    assert planned == expected["planned"]
    assert deltas == expected["deltas"]
    assert still_parked == expected["parked"]
    assert counts.snapshot == expected["snapshot"]
    assert (counts.parked_on, counts.parked_off) == (expected["parked_on"], expected["parked_off"])
    assert counts.planned_on + counts.planned_off + counts.reconcile_off == len(planned)
    return counts


def cache_as_applied(engine: Engine, cache: Path, audience_id: int, members: set[str]) -> None:
    """Keep ``members`` in the snapshot cache as the snapshot of an earlier run, and record
    that run as the one whose snapshot ``desired`` holds."""
    with SnapshotPlan(EngineSettings(snapshot_cache=cache)) as earlier:
        earlier.add(pa.array(sorted(members), type=pa.string()))
        size, fingerprint = earlier.size_and_fingerprint()
        earlier.keep_snapshot(audience_id)
    with engine.begin() as conn:
        earlier_run = ledger.create_run(conn, trigger=RunTrigger.MANUAL)
        ledger.start_run_audience(conn, earlier_run, audience_id, source="t")
        conn.execute(
            update(run_audiences)
            .where(run_audiences.c.run_id == earlier_run)
            .values(snapshot_count=size, snapshot_fingerprint=fingerprint)
        )
        conn.execute(
            update(audiences)
            .where(audiences.c.id == audience_id)
            .values(snapshot_run_id=earlier_run)
        )


def test_partitioned_deduplication_keeps_the_snapshot_and_its_fingerprint() -> None:
    emails = [f"m{i % 37}@example.com" for i in range(200)]

    def distinct_and_fingerprint(partition_rows: int) -> tuple[list[str], str]:
        with SnapshotPlan(EngineSettings(dedupe_partition_rows=partition_rows)) as snapshot:
            snapshot.add(pa.array(emails, type=pa.string()))
            snapshot.duck.execute("CREATE TABLE state (email VARCHAR, flags BIGINT)")
            snapshot.duck.execute("CREATE TABLE parked (email VARCHAR, action VARCHAR, recent INT)")
            counts = snapshot.compute(full=False)
            on = sorted(e for b in snapshot.changes() for e in b.column("email").to_pylist())
            return on, counts.fingerprint

    whole = distinct_and_fingerprint(10_000_000)
    assert len(whole[0]) == 37
    assert distinct_and_fingerprint(7) == whole
    assert distinct_and_fingerprint(1) == whole
