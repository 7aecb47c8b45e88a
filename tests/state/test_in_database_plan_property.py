"""Property (PostgreSQL): the in-database plan writes exactly what the DuckDB plan writes, with
the same counts and fingerprint, over random confirmed, desired, parked, read-back and
snapshot states; the snapshot is read by a source query in the state database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine

from audience_sync.plan.in_database import SourceQuery, duckdb_fingerprint, plan_in_database
from audience_sync.plan.writer import plan_emails
from audience_sync.state import ledger
from audience_sync.state.db import make_engine, utcnow
from audience_sync.state.statuses import RunTrigger
from audience_sync.state.tables import (
    listrak_values,
    memberships,
    parked_contacts,
    run_changes,
    snapshot_deltas,
)
from tests.state.test_plan_property import State, reset, states


@pytest.fixture
def pg_engine(pg_database_url: str) -> Iterator[Engine]:
    from audience_sync.state import migrate

    engine = make_engine(pg_database_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE source_members (audience text, email text)"))
    yield engine
    engine.dispose()


def source_query(key: str = "a") -> SourceQuery:
    return SourceQuery(
        query="SELECT email FROM source_members WHERE audience = :audience_key",
        params={"audience_key": key},
        email_column="email",
        audience_key=key,
        scrub=lambda message: message,
    )


def seed(engine: Engine, state: State, now: datetime) -> tuple[int, int, int]:
    """The state of ``state``, and two runs (one per planner); returns the ids."""
    with engine.begin() as conn:
        audience_id = ledger.upsert_audience(conn, key="a", list_id=1, field_id=2, source="t")
        runs = [ledger.create_run(conn, trigger=RunTrigger.MANUAL) for _ in range(2)]
        for run_id in runs:
            ledger.start_run_audience(conn, run_id, audience_id, source="t")
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
                    for e, (action, new) in state.parked.items()
                ],
            )
        values = [{"audience_id": audience_id, "email": e, "value": "on"} for e in state.listrak_on]
        if values:
            conn.execute(insert(listrak_values), values)
        conn.execute(text("DELETE FROM source_members"))
        if state.snapshot:
            conn.execute(
                text("INSERT INTO source_members (audience, email) VALUES ('a', :e)"),
                [{"e": e} for e in state.snapshot],
            )
        # Another audience's members: the bound :audience_key keeps them out.
        conn.execute(text("INSERT INTO source_members VALUES ('b', 'other@example.com')"))
    return audience_id, runs[0], runs[1]


def written(engine: Engine, run_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            "changes": set(
                conn.execute(
                    select(run_changes.c.email, run_changes.c.action, run_changes.c.status).where(
                        run_changes.c.run_id == run_id
                    )
                ).all()
            ),
            "deltas": set(
                conn.execute(
                    select(snapshot_deltas.c.email, snapshot_deltas.c.desired).where(
                        snapshot_deltas.c.run_id == run_id
                    )
                ).all()
            ),
        }


def parked_rows(engine: Engine) -> set[tuple[Any, ...]]:
    with engine.connect() as conn:
        return set(conn.execute(select(parked_contacts.c.email, parked_contacts.c.action)).all())


@pytest.mark.slow  # PostgreSQL only, the slowest here: in `make test-slow`, run by CI
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(state=states)
def test_in_database_plan_equals_the_embedded_plan(pg_engine: Engine, state: State) -> None:
    engine = pg_engine
    reset(engine)
    now = utcnow()
    cutoff = now - timedelta(hours=24)
    audience_id, embedded_run, in_db_run = seed(engine, state, now)
    parked_before = parked_rows(engine)

    with engine.begin() as conn:
        outcome = plan_in_database(
            conn,
            source_query(),
            run_id=in_db_run,
            audience_id=audience_id,
            full=state.full,
            parked_before=cutoff,
            reconcile=state.reconcile,
        )
    parked_after_in_db = parked_rows(engine)
    # The embedded planner plans the same state (parked contacts as they were).
    with engine.begin() as conn:
        conn.execute(parked_contacts.delete())
        if parked_before:
            conn.execute(
                insert(parked_contacts),
                [
                    {
                        "audience_id": audience_id,
                        "email": e,
                        "action": a,
                        "reason": "NotSubscribed",
                        "run_id": 0,
                        "parked_at": now if state.parked[e][1] else now - timedelta(days=2),
                    }
                    for e, a in parked_before
                ],
            )
    counts = plan_emails(
        engine,
        state.snapshot,
        run_id=embedded_run,
        audience_id=audience_id,
        full=state.full,
        parked_before=cutoff,
        reconcile=state.reconcile,
    )
    assert written(engine, in_db_run) == written(engine, embedded_run)
    assert parked_after_in_db == parked_rows(engine)
    assert outcome.counts == counts
    assert outcome.rows_read == len(state.snapshot)
    assert outcome.invalid == {}
    assert outcome.residual == 0


def test_the_fingerprint_is_duckdbs_for_known_sets() -> None:
    import hashlib

    import duckdb

    def bits(emails: list[str]) -> str | None:
        if not emails:
            return None
        x = 0
        for e in emails:
            x ^= int(hashlib.md5(e.encode(), usedforsecurity=False).hexdigest(), 16)
        return format(x, "0128b")

    duck = duckdb.connect()
    for emails in ([], ["a@b.co"], ["a@b.co", "x@y.com"], [f"m{i}@example.com" for i in range(50)]):
        expected = duck.execute(
            "SELECT lower(hex(coalesce(bit_xor(md5_number(e)), 0::UHUGEINT))) FROM "
            "(SELECT unnest(CAST(? AS VARCHAR[])) AS e)",
            [emails],
        ).fetchone()
        assert expected is not None
        assert duckdb_fingerprint(bits(emails)) == expected[0]
