"""The diff of one audience's staged snapshot against confirmed state, all in the database.

As set operations:
  on  = in the snapshot and not confirmed ``on``
  off = confirmed ``on`` and not in the snapshot
minus contacts parked by an earlier skip for the same action (unless the skip is older than
``retry_skipped_after``). A full sync ignores confirmed state and parking for ``on``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, exists, func, not_, or_, select
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Exists

from audience_sync.state import changes
from audience_sync.state.db import analyze
from audience_sync.state.staging import snapshot_query, snapshot_size
from audience_sync.state.statuses import ChangeAction, ChangeStatus
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


def confirmed_on_count(conn: Connection, audience_id: int) -> int:
    query = select(func.count()).where(
        memberships.c.audience_id == audience_id, memberships.c.value == ChangeAction.ON
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
    """Plan the run's changes for one audience (``run_changes`` rows, status ``planned``).

    ``parked_before``: skips parked earlier than this are retried.
    """
    _refresh_statistics(conn)
    in_snapshot = exists().where(
        snapshot_members.c.run_id == run_id,
        snapshot_members.c.audience_id == audience_id,
        snapshot_members.c.email == memberships.c.email,
    )
    _unpark_changed_contacts(conn, run_id, audience_id)

    def parked(action: ChangeAction, email_column: ColumnElement[str]) -> Exists:
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
                    memberships.c.value == ChangeAction.ON,
                )
            ),
            not_(parked(ChangeAction.ON, members.c.email)),
        ]
    turn_on = select(members.c.email).where(*on_conditions)
    changes.plan(
        conn, run_id=run_id, audience_id=audience_id, emails=turn_on, action=ChangeAction.ON
    )

    off_conditions = [
        memberships.c.audience_id == audience_id,
        memberships.c.value == ChangeAction.ON,
        not_(in_snapshot),
    ]
    if not full:
        off_conditions.append(not_(parked(ChangeAction.OFF, memberships.c.email)))
    turn_off = select(memberships.c.email).where(*off_conditions)
    changes.plan(
        conn, run_id=run_id, audience_id=audience_id, emails=turn_off, action=ChangeAction.OFF
    )
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
        planned_on=planned.get(ChangeAction.ON, 0),
        planned_off=planned.get(ChangeAction.OFF, 0),
        parked_on=0 if full else int(parked_counts.get(ChangeAction.ON, 0)),
        parked_off=0 if full else int(parked_counts.get(ChangeAction.OFF, 0)),
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
                and_(parked_contacts.c.action == ChangeAction.ON, not_(member)),
                and_(parked_contacts.c.action == ChangeAction.OFF, member),
            ),
        )
    )


def changes_in_order(
    conn: Connection,
    run_id: int,
    audience_id: int,
    *,
    status: ChangeStatus = ChangeStatus.PLANNED,
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
