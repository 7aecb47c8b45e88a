"""Twin audiences or traits, one planned by the embedded planner and one inside PostgreSQL, read
from the same source: what a run wrote for each, to compare, and a count of the rows each
statement returned (the in-database planner must fetch no member row)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from audience_sync.state.tables import (
    audiences,
    memberships,
    parked_contacts,
    run_audiences,
    run_changes,
    snapshot_deltas,
)
from tests.harness import Harness

# At most this many rows from any statement: counts and the like, never member rows.
HANDFUL = 10
COUNT_COLUMNS = [
    run_audiences.c.status,
    run_audiences.c.rows_read,
    run_audiences.c.invalid_count,
    run_audiences.c.invalid_reasons,
    run_audiences.c.snapshot_count,
    run_audiences.c.snapshot_fingerprint,
    run_audiences.c.confirmed_on_before,
    run_audiences.c.planned_on,
    run_audiences.c.planned_off,
    run_audiences.c.unchanged_count,
    run_audiences.c.parked_count,
    run_audiences.c.error,
]


def outcome_of(h: Harness, run_id: int, key: str) -> dict[str, Any]:
    """Everything a run wrote for one audience or trait, without its id."""
    with h.engine.connect() as conn:
        aid = conn.execute(select(audiences.c.id).where(audiences.c.key == key)).scalar_one()
        changes = conn.execute(
            select(
                run_changes.c.email,
                run_changes.c.action,
                run_changes.c.value,
                run_changes.c.status,
                run_changes.c.reason,
            ).where(run_changes.c.run_id == run_id, run_changes.c.audience_id == aid)
        ).all()
        deltas = conn.execute(
            select(snapshot_deltas.c.email, snapshot_deltas.c.desired).where(
                snapshot_deltas.c.run_id == run_id, snapshot_deltas.c.audience_id == aid
            )
        ).all()
        members = conn.execute(
            select(memberships.c.email, memberships.c.value, memberships.c.desired).where(
                memberships.c.audience_id == aid
            )
        ).all()
        parked = conn.execute(
            select(
                parked_contacts.c.email, parked_contacts.c.action, parked_contacts.c.reason
            ).where(parked_contacts.c.audience_id == aid)
        ).all()
        counts = (
            conn.execute(
                select(*COUNT_COLUMNS).where(
                    run_audiences.c.run_id == run_id, run_audiences.c.audience_id == aid
                )
            )
            .one()
            ._asdict()
        )
    counts["invalid_reasons"] = json.loads(counts["invalid_reasons"])
    return {
        "changes": {tuple(r) for r in changes},
        "deltas": {tuple(r) for r in deltas},
        "members": {tuple(r) for r in members},
        "parked": {tuple(r) for r in parked},
        "counts": counts,
    }


def assert_twins_agree(h: Harness, run_id: int, keys: Iterable[str]) -> dict[str, Any]:
    """The embedded twin's outcome equals the in-database one's (keys in that order)."""
    embedded, in_db = (outcome_of(h, run_id, key) for key in keys)
    assert in_db == embedded
    return in_db


def rows_returned(engine: Engine) -> tuple[list[int], Any]:
    """Rows returned by each row-returning statement sent through ``engine`` from now on, and
    the listener to remove afterwards."""
    counts: list[int] = []

    def count(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool
    ) -> None:
        if cursor.description is not None:
            counts.append(cursor.rowcount)

    event.listen(engine, "after_cursor_execute", count)
    return counts, count
