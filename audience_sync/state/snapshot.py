"""Staging a snapshot in chunks and diffing it against confirmed state, all in the database.

The diff for one audience, as set operations:
  on  = in the snapshot and not confirmed ``on``
  off = confirmed ``on`` and not in the snapshot
minus contacts parked by an earlier skip for the same action (unless the skip is older than
``retry_skipped_after``). A full sync ignores confirmed state and parking for ``on``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, exists, func, insert, literal, not_, or_, select
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Exists

from audience_sync.state.db import analyze
from audience_sync.state.tables import (
    memberships,
    parked_contacts,
    run_changes,
    snapshot_members,
)


@dataclass(frozen=True)
class PlanCounts:
    snapshot: int
    confirmed_on_before: int
    planned_on: int
    planned_off: int
    parked_on: int
    parked_off: int

    @property
    def unchanged(self) -> int:
        return self.snapshot - self.planned_on - self.parked_on


def stage_emails(conn: Connection, run_id: int, audience_id: int, emails: Sequence[str]) -> None:
    """Bulk-insert one chunk of normalised emails (COPY on PostgreSQL, executemany elsewhere)."""
    if not emails:
        return
    if conn.dialect.name == "postgresql":
        _copy_postgres(conn, run_id, audience_id, emails)
        return
    if conn.dialect.name == "sqlite":
        _insert_sqlite(conn, run_id, audience_id, emails)
        return
    conn.execute(
        insert(snapshot_members),
        [{"run_id": run_id, "audience_id": audience_id, "email": e} for e in emails],
    )


def _insert_sqlite(conn: Connection, run_id: int, audience_id: int, emails: Sequence[str]) -> None:
    # Straight to the driver (no per-row dicts), in index order so the B-tree inserts stay
    # local: 1M members staged in ~5 s instead of ~10 s.
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(
            "INSERT INTO snapshot_members (run_id, audience_id, email) VALUES (?, ?, ?)",
            [(run_id, audience_id, email) for email in sorted(emails)],
        )
    finally:
        cursor.close()


def _copy_postgres(conn: Connection, run_id: int, audience_id: int, emails: Sequence[str]) -> None:
    raw = conn.connection.driver_connection
    with (
        raw.cursor() as cursor,  # type: ignore[union-attr]
        cursor.copy("COPY snapshot_members (run_id, audience_id, email) FROM STDIN") as copy,
    ):
        for email in emails:
            copy.write_row((run_id, audience_id, email))


def snapshot_query(run_id: int, audience_id: int) -> Select[tuple[str]]:
    return (
        select(snapshot_members.c.email)
        .where(snapshot_members.c.run_id == run_id, snapshot_members.c.audience_id == audience_id)
        .distinct()
    )


def snapshot_size(conn: Connection, run_id: int, audience_id: int) -> int:
    query = select(func.count(func.distinct(snapshot_members.c.email))).where(
        snapshot_members.c.run_id == run_id, snapshot_members.c.audience_id == audience_id
    )
    return int(conn.execute(query).scalar_one())


def confirmed_on_count(conn: Connection, audience_id: int) -> int:
    query = select(func.count()).where(
        memberships.c.audience_id == audience_id, memberships.c.value == "on"
    )
    return int(conn.execute(query).scalar_one())


def plan_changes(
    conn: Connection,
    *,
    run_id: int,
    audience_id: int,
    full: bool,
    parked_before: datetime,
) -> PlanCounts:
    """Write the run's changes for one audience into ``run_changes`` (status ``planned``).

    ``parked_before``: skips parked earlier than this are retried.
    """
    _refresh_statistics(conn)
    in_snapshot = exists().where(
        snapshot_members.c.run_id == run_id,
        snapshot_members.c.audience_id == audience_id,
        snapshot_members.c.email == memberships.c.email,
    )
    _unpark_changed_contacts(conn, run_id, audience_id)

    def parked(action: str, email_column: ColumnElement[str]) -> Exists:
        return exists().where(
            parked_contacts.c.audience_id == audience_id,
            parked_contacts.c.email == email_column,
            parked_contacts.c.action == action,
            parked_contacts.c.parked_at >= parked_before,
        )

    members = snapshot_query(run_id, audience_id).subquery("members")
    on_conditions = []
    if not full:
        on_conditions = [
            not_(
                exists().where(
                    memberships.c.audience_id == audience_id,
                    memberships.c.email == members.c.email,
                    memberships.c.value == "on",
                )
            ),
            not_(parked("on", members.c.email)),
        ]
    on_select = select(
        literal(run_id), literal(audience_id), members.c.email, literal("on"), literal("planned")
    ).where(*on_conditions)
    columns = ["run_id", "audience_id", "email", "action", "status"]
    conn.execute(insert(run_changes).from_select(columns, on_select))

    off_conditions = [
        memberships.c.audience_id == audience_id,
        memberships.c.value == "on",
        not_(in_snapshot),
    ]
    if not full:
        off_conditions.append(not_(parked("off", memberships.c.email)))
    off_select = select(
        literal(run_id),
        literal(audience_id),
        memberships.c.email,
        literal("off"),
        literal("planned"),
    ).where(*off_conditions)
    conn.execute(insert(run_changes).from_select(columns, off_select))
    planned: dict[str, int] = dict(
        conn.execute(
            select(run_changes.c.action, func.count())
            .where(run_changes.c.run_id == run_id, run_changes.c.audience_id == audience_id)
            .group_by(run_changes.c.action)
        ).all()
    )

    parked_counts: dict[str, int] = dict(
        conn.execute(
            select(parked_contacts.c.action, func.count())
            .where(
                parked_contacts.c.audience_id == audience_id,
                parked_contacts.c.parked_at >= parked_before,
            )
            .group_by(parked_contacts.c.action)
        ).all()
    )
    return PlanCounts(
        snapshot=snapshot_size(conn, run_id, audience_id),
        confirmed_on_before=confirmed_on_count(conn, audience_id),
        planned_on=planned.get("on", 0),
        planned_off=planned.get("off", 0),
        parked_on=0 if full else int(parked_counts.get("on", 0)),
        parked_off=0 if full else int(parked_counts.get("off", 0)),
    )


def _refresh_statistics(conn: Connection) -> None:
    # Right after a bulk load PostgreSQL has no statistics for the staged rows, plans the
    # anti-joins as nested loops over "a few" rows, and takes hours at 1M members.
    for table in (snapshot_members, memberships, parked_contacts):
        analyze(conn, table.name)


def _unpark_changed_contacts(conn: Connection, run_id: int, audience_id: int) -> None:
    """A parked skip no longer applies once the contact's desired value has changed."""
    member = exists().where(
        snapshot_members.c.run_id == run_id,
        snapshot_members.c.audience_id == audience_id,
        snapshot_members.c.email == parked_contacts.c.email,
    )
    conn.execute(
        delete(parked_contacts).where(
            parked_contacts.c.audience_id == audience_id,
            or_(
                and_(parked_contacts.c.action == "on", not_(member)),
                and_(parked_contacts.c.action == "off", member),
            ),
        )
    )


def drop_staged(conn: Connection, run_id: int, audience_id: int) -> None:
    """Forget a snapshot that was not read completely."""
    conn.execute(
        delete(snapshot_members).where(
            snapshot_members.c.run_id == run_id, snapshot_members.c.audience_id == audience_id
        )
    )


def drop_snapshots_before(conn: Connection, audience_id: int, run_id: int) -> None:
    """Keep only the newest staged snapshot of an audience (the one ``verify`` compares with)."""
    conn.execute(
        delete(snapshot_members).where(
            snapshot_members.c.audience_id == audience_id, snapshot_members.c.run_id < run_id
        )
    )


def changes_in_order(
    conn: Connection, run_id: int, audience_id: int, *, status: str = "planned"
) -> CursorResult[tuple[str, str]]:
    """Stream ``(email, action)`` rows of a run's changes in email order."""
    query = (
        select(run_changes.c.email, run_changes.c.action)
        .where(
            run_changes.c.run_id == run_id,
            run_changes.c.audience_id == audience_id,
            run_changes.c.status == status,
        )
        .order_by(run_changes.c.email)
    )
    return conn.execution_options(stream_results=True, yield_per=10_000).execute(query)
