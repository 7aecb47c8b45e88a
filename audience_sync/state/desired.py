"""Desired values: each run's snapshot deltas, and applying them to ``memberships``.

A plan records how its snapshot differs from ``memberships.desired`` (``snapshot_deltas``);
the deltas are applied only when the audience finishes ``done``, so ``desired`` always holds
the newest snapshot a run acted on completely (what ``verify`` compares with), exactly as the
staged snapshot did before. Replaying the applied deltas up to a run gives that run's snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import and_, bindparam, delete, func, not_, select, text, update
from sqlalchemy.engine import Connection

from audience_sync.state.bulk import insert_batches, rows_of
from audience_sync.state.db import analyze
from audience_sync.state.parents import missing_parent, require_audience
from audience_sync.state.statuses import AudienceStatus, ChangeAction
from audience_sync.state.tables import (
    audiences,
    memberships,
    parked_contacts,
    recorded_deltas,
    run_audiences,
    snapshot_deltas,
)

if TYPE_CHECKING:
    import pyarrow as pa

ON = ChangeAction.ON.value


def record_deltas(
    conn: Connection, *, run_id: int, audience_id: int, batches: Iterable[pa.RecordBatch]
) -> int:
    """Record ``(email, desired)`` rows as the run's deltas, in bulk."""
    rows = rows_of(batches, before=(run_id, audience_id))
    return insert_batches(
        conn, recorded_deltas, ["run_id", "audience_id", "email", "desired"], rows
    )


def mark_deltas_are_changes(conn: Connection, *, run_id: int, audience_id: int) -> None:
    """Record that the run's deltas are its planned ``on`` changes (a first run: every member
    new, nothing desired before), which ``snapshot_deltas`` then shows without a copy."""
    marked = conn.execute(
        update(run_audiences)
        .where(run_audiences.c.run_id == run_id, run_audiences.c.audience_id == audience_id)
        .values(deltas_are_changes=True)
    ).rowcount
    if marked != 1:
        raise missing_parent(conn, "deltas", f"run {run_id} of audience {audience_id}")


def desired_on_count(conn: Connection, audience_id: int) -> int:
    query = select(func.count()).where(
        memberships.c.audience_id == audience_id, memberships.c.desired == ON
    )
    return int(conn.execute(query).scalar_one())


def snapshot_run(conn: Connection, audience_id: int) -> int | None:
    """The run whose snapshot ``desired`` holds; None before any run acted on one."""
    value = conn.execute(
        select(audiences.c.snapshot_run_id).where(audiences.c.id == audience_id)
    ).scalar()
    return int(value) if value is not None else None


def apply_deltas(conn: Connection, *, run_id: int, audience_id: int, values: bool = False) -> None:
    """The audience finished ``done`` in ``run_id``: its snapshot becomes the desired state.

    ``values``: a computed trait, whose desired values are any text (NULL: not in the source).
    Also forgets deltas of earlier runs of this audience that never finished (never applied).
    """
    require_audience(conn, audience_id, what="desired memberships")
    params = {"r": run_id, "a": audience_id}
    # How many deltas a run marked as ``deltas_are_changes`` has; None for any other run.
    planned_on_if_marked = conn.execute(
        select(run_audiences.c.planned_on).where(
            run_audiences.c.run_id == run_id,
            run_audiences.c.audience_id == audience_id,
            run_audiences.c.deltas_are_changes,
        )
    ).scalar()
    source = _RECORDED if planned_on_if_marked is None else _PLANNED_ON
    if conn.dialect.name == "postgresql" and snapshot_run(conn, audience_id) is None:
        _merge_first_snapshot(conn, params, source, expected=planned_on_if_marked)
    else:
        _upsert(conn, params, source)
    # A contact neither wanted nor ever confirmed needs no row.
    # (A run whose deltas are its planned ``on`` changes has none that drop a contact.)
    dropped = select(recorded_deltas.c.email).where(
        recorded_deltas.c.run_id == run_id,
        recorded_deltas.c.audience_id == audience_id,
        recorded_deltas.c.desired.is_(None)
        if values
        else recorded_deltas.c.desired.is_distinct_from(ON),
    )
    conn.execute(
        delete(memberships).where(
            memberships.c.audience_id == audience_id,
            memberships.c.value.is_(None),
            memberships.c.email.in_(dropped),
        )
    )
    mark_snapshot_run(conn, run_id=run_id, audience_id=audience_id)
    # PostgreSQL: a first run adds every member at once; drift's probes need fresh statistics.
    analyze(conn, memberships.name)
    done = select(run_audiences.c.run_id).where(
        run_audiences.c.audience_id == audience_id,
        run_audiences.c.status == AudienceStatus.DONE,
    )
    conn.execute(
        delete(recorded_deltas).where(
            recorded_deltas.c.audience_id == audience_id,
            recorded_deltas.c.run_id < run_id,
            not_(recorded_deltas.c.run_id.in_(done)),
        )
    )


# The run's deltas, as ``(email, desired)`` rows of ``d`` in email order: those the plan
# recorded, or its planned ``on`` changes.
_RECORDED = "SELECT email, desired FROM recorded_deltas WHERE run_id = :r AND audience_id = :a"
_PLANNED_ON = (
    f"SELECT email, action AS desired FROM run_changes "
    f"WHERE run_id = :r AND audience_id = :a AND action = '{ON}'"
)


def _upsert(conn: Connection, params: dict[str, int], source: str) -> None:
    """One set-based upsert (SQLite >= 3.24 and PostgreSQL); WHERE true keeps SQLite's parser
    from reading ON CONFLICT as a join constraint."""
    conn.execute(
        text(
            "INSERT INTO memberships (audience_id, email, desired) "
            f"SELECT :a, d.email, d.desired FROM ({source}) d WHERE true "
            "ON CONFLICT (audience_id, email) DO UPDATE SET desired = excluded.desired"
        ),
        params,
    )


def _merge_first_snapshot(
    conn: Connection, params: dict[str, int], source: str, *, expected: int | None
) -> None:
    """The upsert's effect in two statements: an update of the rows that exist, walking both
    primary keys in email order (a merge join), then an insert of the rest (a hash anti-join),
    which is not needed when the update found as many rows as there are deltas (``expected``,
    or counted).

    For an audience's first snapshot on PostgreSQL, whose deltas are every member, the upsert's
    conflict check per row was most of a first run's ``apply_deltas``. Both tables were just
    filled, so their statistics say they are nearly empty and PostgreSQL would probe an index
    per row (a nested loop, no faster than the upsert); a hash join hands the rows to the
    update in hash order (random heap pages, slower still). So the join methods are chosen
    here, for these statements only. SQLite keeps the upsert, which is faster there.
    """
    with _planner_settings(conn, enable_hashjoin="off", enable_nestloop="off", enable_sort="off"):
        updated = conn.execute(
            text(
                f"UPDATE memberships m SET desired = d.desired FROM ({source}) d "
                "WHERE m.audience_id = :a AND d.email = m.email"
            ),
            params,
        ).rowcount
    if expected is None:
        expected = conn.execute(text(f"SELECT count(*) FROM ({source}) d"), params).scalar_one()
    if updated == expected:
        return  # every delta had its row (the usual first run: Listrak accepted every member)
    with _planner_settings(conn, enable_nestloop="off"):
        conn.execute(
            text(
                "INSERT INTO memberships (audience_id, email, desired) "
                f"SELECT :a, d.email, d.desired FROM ({source}) d WHERE NOT EXISTS "
                "(SELECT 1 FROM memberships m WHERE m.audience_id = :a AND m.email = d.email)"
            ),
            params,
        )


@contextmanager
def _planner_settings(conn: Connection, **settings: str) -> Iterator[None]:
    """PostgreSQL planner settings for the statements of the block, restored after it. They
    are local to the transaction, so a failure in the block (which ends it) restores them too."""
    previous = {
        name: conn.execute(text("SELECT current_setting(:name)"), {"name": name}).scalar_one()
        for name in settings
    }
    for name, value in settings.items():
        conn.execute(text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})
    yield
    for name, value in previous.items():
        conn.execute(text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})


def mark_snapshot_run(conn: Connection, *, run_id: int, audience_id: int) -> None:
    conn.execute(
        update(audiences).where(audiences.c.id == audience_id).values(snapshot_run_id=run_id)
    )


def desired_at(conn: Connection, audience_id: int, run_id: int) -> set[str]:
    """The snapshot in force after ``run_id`` (replay of applied deltas); for tests and audits
    of small audiences only: it holds the emails in memory."""
    done = select(run_audiences.c.run_id).where(
        run_audiences.c.audience_id == audience_id,
        run_audiences.c.status == AudienceStatus.DONE,
    )
    rows = conn.execute(
        select(snapshot_deltas.c.email, snapshot_deltas.c.desired)
        .where(
            and_(
                snapshot_deltas.c.audience_id == audience_id,
                snapshot_deltas.c.run_id <= run_id,
                snapshot_deltas.c.run_id.in_(done),
            )
        )
        .order_by(snapshot_deltas.c.run_id)
    )
    members: set[str] = set()
    for email, value in rows:
        if value == ON:
            members.add(email)
        else:
            members.discard(email)
    return members


def unpark(conn: Connection, *, audience_id: int, batches: Iterable[pa.RecordBatch]) -> int:
    """``(email, action)`` parked skips that no longer apply (the contact's desired value
    changed) are forgotten."""
    statement = delete(parked_contacts).where(
        parked_contacts.c.audience_id == audience_id,
        parked_contacts.c.email == bindparam("e"),
        parked_contacts.c.action == bindparam("act"),
    )
    total = 0
    for rows in rows_of(batches):
        conn.execute(statement, [{"e": email, "act": action} for email, action in rows])
        total += len(rows)
    return total
