"""Drift between Listrak's actual values, confirmed state and the latest snapshot, in SQL.

Over the subscribed contacts read back into ``listrak_values`` (the only ones an
``UpdateSubscribers`` import can change), per audience, with S the latest snapshot a run acted
on (``memberships.desired = 'on'``), L the value in Listrak and C the confirmed value
(``memberships.value``), three disjoint categories:

  on_not_member   L = on,  not in S                      -> send off
  member_not_on   in S,    L is off or empty             -> send on
  stale_state     L already right, C disagrees           -> re-send the value (re-confirms it)
                  (in S, L = on, C not on; or not in S, L not on, C = on)

A repair run plans exactly these changes; reconcile plans ``on_not_member`` on top of a sync.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Select, exists, func, literal, not_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CompoundSelect, Exists

from audience_sync.state import changes, desired
from audience_sync.state.parents import require_run_and_audience
from audience_sync.state.statuses import ChangeAction, ChangeStatus
from audience_sync.state.tables import (
    listrak_values,
    memberships,
    run_changes,
)

CATEGORIES: dict[str, str] = {
    "on_not_member": "on in Listrak, not a member",
    "member_not_on": "member, off or empty in Listrak",
    "stale_state": "Listrak right, confirmed state differs",
}
FIX: dict[str, str] = {
    "on_not_member": ChangeAction.OFF,
    "member_not_on": ChangeAction.ON,
    "stale_state": "re-send",
}
SAMPLE_SIZE = 5

Rows = Select[tuple[str, str]] | CompoundSelect[tuple[str, str]]


@dataclass(frozen=True)
class SampleRow:
    email: str
    listrak: str
    confirmed: str
    member: bool


@dataclass
class AudienceDrift:
    audience_id: int
    snapshot_run: int
    members: int
    confirmed_on: int
    on_in_listrak: int
    subscribed_read: int
    counts: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[SampleRow]] = field(default_factory=dict)
    trait: bool = False  # a computed trait: members/confirmed_on/on_in_listrak count values

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def latest_snapshot_run(conn: Connection, audience_id: int) -> int | None:
    """The run whose snapshot ``memberships.desired`` holds: the newest one a run acted on
    completely (not a dry run, not a guard-aborted or failed one)."""
    return desired.snapshot_run(conn, audience_id)


def on_in_listrak(conn: Connection, audience_id: int) -> int:
    lv = listrak_values
    query = select(lv.c.email).where(lv.c.audience_id == audience_id, lv.c.value == ChangeAction.ON)
    return _count(conn, query.distinct())


class _Sets:
    """The EXISTS tests the categories are built from, for one audience and snapshot."""

    def __init__(self, audience_id: int) -> None:
        self.audience_id = audience_id

    def member(self, email: ColumnElement[str]) -> Exists:
        m = memberships.alias("m_member")
        return exists().where(
            m.c.audience_id == self.audience_id, m.c.email == email, m.c.desired == ChangeAction.ON
        )

    def in_listrak(self, email: ColumnElement[str], *, on: bool = False) -> Exists:
        lv = listrak_values.alias("lv_probe")
        conditions = [lv.c.audience_id == self.audience_id, lv.c.email == email]
        if on:
            conditions.append(lv.c.value == ChangeAction.ON)
        return exists().where(*conditions)

    def confirmed_on(self, email: ColumnElement[str]) -> Exists:
        m = memberships.alias("m_confirmed")
        return exists().where(
            m.c.audience_id == self.audience_id, m.c.email == email, m.c.value == ChangeAction.ON
        )

    def on_not_member(self) -> Select[tuple[str, str]]:
        lv = listrak_values
        return (
            select(lv.c.email, literal(ChangeAction.OFF.value))
            .where(lv.c.audience_id == self.audience_id, lv.c.value == ChangeAction.ON)
            .where(not_(self.member(lv.c.email)))
            .distinct()
        )

    def category(self, name: str) -> Rows:
        """``(email, action to send)`` rows of one category, each email once."""
        lv = listrak_values
        m = memberships
        if name == "on_not_member":
            return self.on_not_member()
        if name == "member_not_on":
            return (
                select(m.c.email, literal(ChangeAction.ON.value))
                .where(m.c.audience_id == self.audience_id, m.c.desired == ChangeAction.ON)
                .where(self.in_listrak(m.c.email), not_(self.in_listrak(m.c.email, on=True)))
            )
        if name == "stale_state":
            return (
                select(lv.c.email, literal(ChangeAction.ON.value))
                .where(lv.c.audience_id == self.audience_id, lv.c.value == ChangeAction.ON)
                .where(self.member(lv.c.email), not_(self.confirmed_on(lv.c.email)))
                .distinct()
                .union(
                    select(m.c.email, literal(ChangeAction.OFF.value)).where(
                        m.c.audience_id == self.audience_id,
                        m.c.value == ChangeAction.ON,
                        m.c.desired.is_distinct_from(ChangeAction.ON),
                        self.in_listrak(m.c.email),
                        not_(self.in_listrak(m.c.email, on=True)),
                    )
                )
            )
        raise ValueError(f"unknown drift category {name!r}")


def measure(conn: Connection, audience_id: int, snapshot_run: int) -> AudienceDrift:
    """Counts and a small sample per category; the sets stay in the database."""
    sets = _Sets(audience_id)
    lv = listrak_values
    report = AudienceDrift(
        audience_id=audience_id,
        snapshot_run=snapshot_run,
        members=desired.desired_on_count(conn, audience_id),
        confirmed_on=_count(
            conn,
            select(memberships.c.email).where(
                memberships.c.audience_id == audience_id, memberships.c.value == ChangeAction.ON
            ),
        ),
        on_in_listrak=on_in_listrak(conn, audience_id),
        subscribed_read=_count(
            conn, select(lv.c.email).where(lv.c.audience_id == audience_id).distinct()
        ),
    )
    for name in CATEGORIES:
        rows = sets.category(name).subquery()
        report.counts[name] = _count(conn, select(rows.c.email))
        emails = (
            conn.execute(select(rows.c.email).order_by(rows.c.email).limit(SAMPLE_SIZE))
            .scalars()
            .all()
        )
        report.samples[name] = _describe(conn, sets, list(emails))
    return report


def plan_repair(conn: Connection, *, run_id: int, audience_id: int) -> None:
    """Plan every drifted contact's fix."""
    sets = _Sets(audience_id)
    for name in CATEGORIES:
        changes.plan_rows(conn, run_id=run_id, audience_id=audience_id, rows=sets.category(name))


def _describe(
    conn: Connection, sets: _Sets, emails: Sequence[str], *, trait: bool = False
) -> list[SampleRow]:
    if not emails:
        return []
    lv = listrak_values
    actual = dict(
        conn.execute(
            select(lv.c.email, func.max(lv.c.value))
            .where(lv.c.audience_id == sets.audience_id, lv.c.email.in_(emails))
            .group_by(lv.c.email)
        ).all()
    )
    confirmed = dict(
        conn.execute(
            select(memberships.c.email, memberships.c.value).where(
                memberships.c.audience_id == sets.audience_id, memberships.c.email.in_(emails)
            )
        ).all()
    )
    members = set(
        conn.execute(
            select(memberships.c.email).where(
                memberships.c.audience_id == sets.audience_id,
                memberships.c.desired.is_not(None)
                if trait
                else memberships.c.desired == ChangeAction.ON,
                memberships.c.email.in_(emails),
            )
        ).scalars()
    )
    return [
        SampleRow(
            email=e,
            listrak=actual.get(e) or "empty",
            confirmed=confirmed.get(e) or "none",
            member=e in members,
        )
        for e in emails
    ]


def _count(conn: Connection, query: Select[tuple[str]]) -> int:
    return int(conn.execute(select(func.count()).select_from(query.subquery())).scalar_one())


# --- computed traits -----------------------------------------------------------------------
#
# Over the subscribed contacts read back (their values formatted as the planner formats them),
# for the contacts of the latest snapshot a run acted on (``memberships.desired``, a value):
#
#   value_differs   L differs from the snapshot's value (or is empty)  -> set the value
#   stale_state     L already right, the confirmed value differs       -> re-send (re-confirms)
#
# Contacts outside the snapshot are not compared (a trait clears them only with clear_missing).

TRAIT_CATEGORIES: dict[str, str] = {
    "value_differs": "value in Listrak differs from the snapshot's",
    "stale_state": "Listrak right, confirmed value differs",
}
TRAIT_FIX: dict[str, str] = {"value_differs": ChangeAction.SET, "stale_state": "re-send"}

ValueRows = Select[tuple[str, str, str]]


def _trait_category(audience_id: int, name: str) -> ValueRows:
    """``(email, 'set', value)`` rows of one category, each email once."""
    m = memberships
    lv = listrak_values.alias("lv")
    read = (
        select(lv.c.email, func.max(lv.c.value).label("value"))
        .where(lv.c.audience_id == audience_id)
        .group_by(lv.c.email)
        .subquery("read")
    )
    query = (
        select(m.c.email, literal(ChangeAction.SET.value), m.c.desired)
        .join(read, read.c.email == m.c.email)
        .where(m.c.audience_id == audience_id, m.c.desired.is_not(None))
    )
    if name == "value_differs":
        return query.where(read.c.value != m.c.desired)
    if name == "stale_state":
        return query.where(read.c.value == m.c.desired, m.c.value.is_distinct_from(m.c.desired))
    raise ValueError(f"unknown drift category {name!r}")


def measure_trait(conn: Connection, audience_id: int, snapshot_run: int) -> AudienceDrift:
    """A trait's drift: counts and a small sample per category (see above)."""
    m = memberships
    lv = listrak_values
    report = AudienceDrift(
        audience_id=audience_id,
        snapshot_run=snapshot_run,
        members=_count(
            conn, select(m.c.email).where(m.c.audience_id == audience_id, m.c.desired.is_not(None))
        ),
        confirmed_on=_count(
            conn, select(m.c.email).where(m.c.audience_id == audience_id, m.c.value.is_not(None))
        ),
        on_in_listrak=_count(
            conn,
            select(lv.c.email).where(lv.c.audience_id == audience_id, lv.c.value != "").distinct(),
        ),
        subscribed_read=_count(
            conn, select(lv.c.email).where(lv.c.audience_id == audience_id).distinct()
        ),
        trait=True,
    )
    sets = _Sets(audience_id)
    for name in TRAIT_CATEGORIES:
        rows = _trait_category(audience_id, name).subquery()
        report.counts[name] = _count(conn, select(rows.c.email))
        emails = (
            conn.execute(select(rows.c.email).order_by(rows.c.email).limit(SAMPLE_SIZE))
            .scalars()
            .all()
        )
        report.samples[name] = _describe(conn, sets, list(emails), trait=True)
    return report


def plan_trait_repair(conn: Connection, *, run_id: int, audience_id: int) -> int:
    """Plan every drifted trait contact's fix: set the snapshot's value again."""
    require_run_and_audience(conn, run_id=run_id, audience_id=audience_id, what="planned repairs")
    total = 0
    for name in TRAIT_CATEGORIES:
        rows = _trait_category(audience_id, name).subquery()
        result = conn.execute(
            run_changes.insert().from_select(
                ["run_id", "audience_id", "email", "action", "value", "status"],
                select(
                    literal(run_id),
                    literal(audience_id),
                    rows.c.email,
                    rows.c[1],
                    rows.c[2],
                    literal(ChangeStatus.PLANNED.value),
                ).where(
                    not_(
                        exists().where(
                            run_changes.c.run_id == run_id,
                            run_changes.c.audience_id == audience_id,
                            run_changes.c.email == rows.c.email,
                        )
                    )
                ),
            )
        )
        total += int(result.rowcount)
    return total
