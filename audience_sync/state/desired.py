"""Desired values: each run's snapshot deltas, and applying them to ``memberships``.

A plan records how its snapshot differs from ``memberships.desired`` (``snapshot_deltas``);
the deltas are applied only when the audience finishes ``done``, so ``desired`` always holds
the newest snapshot a run acted on completely (what ``verify`` compares with), exactly as the
staged snapshot did before. Replaying the applied deltas up to a run gives that run's snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import and_, bindparam, delete, func, insert, not_, select, text, update
from sqlalchemy.engine import Connection

from audience_sync.state.bulk import insert_batches, rows_of
from audience_sync.state.db import analyze
from audience_sync.state.parents import require_audience
from audience_sync.state.statuses import AudienceStatus, ChangeAction
from audience_sync.state.tables import (
    audiences,
    memberships,
    parked_contacts,
    run_audiences,
    run_changes,
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
        conn, snapshot_deltas, ["run_id", "audience_id", "email", "desired"], rows
    )


def record_planned_on_as_deltas(conn: Connection, *, run_id: int, audience_id: int) -> int:
    """Record the run's planned ``on`` changes as its deltas, inside the database: what a plan
    records when its deltas are exactly those (a first run: every member new, none confirmed)."""
    result = conn.execute(
        insert(snapshot_deltas).from_select(
            ["run_id", "audience_id", "email", "desired"],
            select(
                run_changes.c.run_id,
                run_changes.c.audience_id,
                run_changes.c.email,
                run_changes.c.action,
            ).where(
                run_changes.c.run_id == run_id,
                run_changes.c.audience_id == audience_id,
                run_changes.c.action == ON,
            ),
        )
    )
    return int(result.rowcount)


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
    if conn.dialect.name == "postgresql" and snapshot_run(conn, audience_id) is None:
        _merge_first_snapshot(conn, params)
    else:
        # One set-based upsert (SQLite >= 3.24 and PostgreSQL); WHERE true keeps SQLite's
        # parser from reading ON CONFLICT as a join constraint.
        conn.execute(
            text(
                "INSERT INTO memberships (audience_id, email, desired) "
                "SELECT audience_id, email, desired FROM snapshot_deltas "
                "WHERE run_id = :r AND audience_id = :a AND true "
                "ON CONFLICT (audience_id, email) DO UPDATE SET desired = excluded.desired"
            ),
            params,
        )
    # A contact neither wanted nor ever confirmed needs no row.
    dropped = select(snapshot_deltas.c.email).where(
        snapshot_deltas.c.run_id == run_id,
        snapshot_deltas.c.audience_id == audience_id,
        snapshot_deltas.c.desired.is_(None)
        if values
        else snapshot_deltas.c.desired.is_distinct_from(ON),
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
        delete(snapshot_deltas).where(
            snapshot_deltas.c.audience_id == audience_id,
            snapshot_deltas.c.run_id < run_id,
            not_(snapshot_deltas.c.run_id.in_(done)),
        )
    )


def _merge_first_snapshot(conn: Connection, params: dict[str, int]) -> None:
    """The upsert's effect in two statements that walk both primary keys in email order: an
    update of the rows that exist, then an insert of the rest.

    For an audience's first snapshot on PostgreSQL, whose deltas are every member: the
    upsert's conflict check per row cost 44-53 s at 10M members, the merge join ~25 s. The
    hash join PostgreSQL prefers would hand the rows to the update in hash order, which at
    that size cost more than the upsert (random heap pages), so it is switched off for these
    two statements only. SQLite keeps the upsert, which is faster there.
    """
    previous = conn.execute(text("SELECT current_setting('enable_hashjoin')")).scalar_one()
    conn.execute(text("SELECT set_config('enable_hashjoin', 'off', true)"))
    conn.execute(
        text(
            "UPDATE memberships m SET desired = d.desired FROM snapshot_deltas d "
            "WHERE m.audience_id = :a AND d.run_id = :r AND d.audience_id = :a "
            "AND d.email = m.email"
        ),
        params,
    )
    conn.execute(
        text(
            "INSERT INTO memberships (audience_id, email, desired) "
            "SELECT d.audience_id, d.email, d.desired FROM snapshot_deltas d "
            "WHERE d.run_id = :r AND d.audience_id = :a AND NOT EXISTS "
            "(SELECT 1 FROM memberships m WHERE m.audience_id = :a AND m.email = d.email)"
        ),
        params,
    )
    conn.execute(
        text("SELECT set_config('enable_hashjoin', :previous, true)"), {"previous": previous}
    )


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
