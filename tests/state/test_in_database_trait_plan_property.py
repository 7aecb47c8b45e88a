"""Property (PostgreSQL): a computed trait's in-database plan writes exactly what the DuckDB
trait plan writes, with the same counts and fingerprint, over random confirmed, desired and
parked values and source rows (duplicates that agree once formatted, conflicting ones,
invalid and missing values, messy emails); the rows are read by a query in the state
database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine

from audience_sync.normalize import normalize_email
from audience_sync.plan.engine import EngineSettings
from audience_sync.plan.in_database_traits import TraitQuery, plan_trait_in_database
from audience_sync.plan.traits import TraitSnapshot
from audience_sync.plan.writer import plan_trait_snapshot
from audience_sync.state import ledger
from audience_sync.state.db import make_engine, utcnow
from audience_sync.state.statuses import AudienceKind, RunTrigger
from audience_sync.state.tables import memberships, parked_contacts, run_changes, snapshot_deltas
from audience_sync.traits.values import FieldSpec, format_array
from tests.state.test_plan_property import reset

SPEC = FieldSpec(data_type="Numeric", max_length=255)
EMAILS = ["a@x.com", "b@x.com", "c@x.com", "d@x.com", "e@x.com"]
RAW_EMAILS = [*EMAILS, " A@X.com", "B@x.com\t", "", "not-an-email"]
RAW_VALUES = ["1", "2", "2.0", " 3 ", "x", None]
STATE_VALUES = ["1", "2", "3"]


@dataclass(frozen=True)
class TraitState:
    rows: list[tuple[str, str | None]]
    confirmed: dict[str, str]
    desired: dict[str, str]
    parked: dict[str, tuple[str, bool]]  # email -> (action, parked recently)
    full: bool
    clear_missing: bool


trait_states = st.builds(
    TraitState,
    rows=st.lists(st.tuples(st.sampled_from(RAW_EMAILS), st.sampled_from(RAW_VALUES)), max_size=12),
    confirmed=st.dictionaries(st.sampled_from(EMAILS), st.sampled_from(STATE_VALUES)),
    desired=st.dictionaries(st.sampled_from(EMAILS), st.sampled_from(STATE_VALUES)),
    parked=st.dictionaries(
        st.sampled_from(EMAILS), st.tuples(st.sampled_from(["set", "clear"]), st.booleans())
    ),
    full=st.booleans(),
    clear_missing=st.booleans(),
)


@pytest.fixture
def pg_engine(pg_database_url: str) -> Iterator[Engine]:
    from audience_sync.state import migrate

    engine = make_engine(pg_database_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE source_traits (email text, spend text)"))
    yield engine
    engine.dispose()


def parked_values(state: TraitState, audience_id: int, now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "audience_id": audience_id,
            "email": e,
            "action": action,
            "reason": "NotSubscribed",
            "run_id": 0,
            "parked_at": now if recent else now - timedelta(days=2),
        }
        for e, (action, recent) in state.parked.items()
    ]


def seed(engine: Engine, state: TraitState, now: datetime) -> tuple[int, int, int]:
    with engine.begin() as conn:
        audience_id = ledger.upsert_audience(
            conn, key="t", list_id=1, field_id=2, source="t", kind=AudienceKind.TRAIT
        )
        runs = [ledger.create_run(conn, trigger=RunTrigger.MANUAL) for _ in range(2)]
        rows = [
            {
                "audience_id": audience_id,
                "email": e,
                "value": state.confirmed.get(e),
                "confirmed_run_id": 0 if e in state.confirmed else None,
                "confirmed_at": now if e in state.confirmed else None,
                "desired": state.desired.get(e),
            }
            for e in sorted(set(state.confirmed) | set(state.desired))
        ]
        if rows:
            conn.execute(insert(memberships), rows)
        if state.parked:
            conn.execute(insert(parked_contacts), parked_values(state, audience_id, now))
        conn.execute(text("DELETE FROM source_traits"))
        if state.rows:
            conn.execute(
                text("INSERT INTO source_traits (email, spend) VALUES (:e, :v)"),
                [{"e": e, "v": v} for e, v in state.rows],
            )
    return audience_id, runs[0], runs[1]


def written(engine: Engine, run_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        changes = conn.execute(
            select(
                run_changes.c.email,
                run_changes.c.action,
                run_changes.c.value,
                run_changes.c.status,
                run_changes.c.reason,
            ).where(run_changes.c.run_id == run_id)
        ).all()
        deltas = conn.execute(
            select(snapshot_deltas.c.email, snapshot_deltas.c.desired).where(
                snapshot_deltas.c.run_id == run_id
            )
        ).all()
    return {"changes": set(changes), "deltas": set(deltas)}


def parked_rows(engine: Engine) -> set[tuple[Any, ...]]:
    with engine.connect() as conn:
        return set(conn.execute(select(parked_contacts.c.email, parked_contacts.c.action)).all())


def embedded_snapshot(state: TraitState) -> TraitSnapshot:
    """The rows as the pipeline feeds the DuckDB planner: valid emails, formatted values."""
    kept = [(normalize_email(e)[0], v) for e, v in state.rows]
    kept = [(e, v) for e, v in kept if e is not None]
    snapshot = TraitSnapshot(EngineSettings())
    values, reasons = format_array(SPEC, pa.array([v for _, v in kept], type=pa.string()))
    snapshot.add(pa.array([e for e, _ in kept], type=pa.string()), values, reasons)
    return snapshot


@pytest.mark.slow  # PostgreSQL only, the slowest here: in `make test-slow`, run by CI
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(state=trait_states)
def test_in_database_trait_plan_equals_the_embedded_plan(
    pg_engine: Engine, state: TraitState
) -> None:
    engine = pg_engine
    reset(engine)
    now = utcnow()
    cutoff = now - timedelta(hours=24)
    audience_id, embedded_run, in_db_run = seed(engine, state, now)
    query = TraitQuery(
        query="SELECT email, spend FROM source_traits",
        params={},
        email_column="email",
        value_column="spend",
        trait_key="t",
        scrub=lambda message: message,
    )
    with engine.begin() as conn:
        outcome = plan_trait_in_database(
            conn,
            query,
            SPEC,
            run_id=in_db_run,
            audience_id=audience_id,
            full=state.full,
            clear_missing=state.clear_missing,
            parked_before=cutoff,
        )
    parked_after_in_db = parked_rows(engine)
    with engine.begin() as conn:  # the embedded planner plans the same parked contacts
        conn.execute(parked_contacts.delete())
        if state.parked:
            conn.execute(insert(parked_contacts), parked_values(state, audience_id, now))
    with embedded_snapshot(state) as snapshot:
        counts = plan_trait_snapshot(
            engine,
            snapshot,
            run_id=embedded_run,
            audience_id=audience_id,
            full=state.full,
            clear_missing=state.clear_missing,
            parked_before=cutoff,
        )
    assert written(engine, in_db_run) == written(engine, embedded_run)
    assert parked_after_in_db == parked_rows(engine)
    assert outcome.counts == counts
    assert outcome.rows_read == len(state.rows)
    assert outcome.distinct_values == len({v for _, v in state.rows if v is not None})
