"""The Segment membership rules as SQL, over a flattened table of events in a warehouse.

The table has one row per message and audience (column names configurable, see
:class:`~audience_sync.sources.specs.EventColumns`): ``message_id``, ``user_id``,
``anonymous_id``, ``type`` (``identify``/``track``), ``event``, ``audience_key``, ``value``
(boolean), ``email``, ``timestamp`` and ``received_at`` (timestamps, or anything that sorts in
time order). Rows of other audiences may still supply a profile's email. The rules are those of
:func:`audience_sync.sources.segment_rules.decide_profile`; the warehouse evaluates them with
window functions, the audience key is a bound parameter, and identifiers are quoted by
SQLAlchemy. The ``segment_events`` file source loads archives into SQLite and runs the same SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    column,
    func,
    literal,
    or_,
    select,
    table,
    true,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Executable
from sqlalchemy.sql.expression import CTE, TableClause

from audience_sync.sources.base import SourceBase
from audience_sync.sources.segment_rules import MEMBERSHIP_EVENTS
from audience_sync.sources.specs import EventColumns, SegmentEventsSqlSourceSpec
from audience_sync.sources.sql import (
    as_raw_email,
    describe_url,
    open_stream,
    warehouse_connection,
)


def events_table(name: str, columns: EventColumns) -> TableClause:
    """A lightweight table of the flattened shape; ``name`` may be ``schema.table``."""
    schema, _, table_name = name.rpartition(".")
    names = columns.model_dump().values()
    return table(table_name, *(column(n) for n in names), schema=schema or None)


@dataclass(frozen=True)
class _Exprs:
    """The derived expressions of the rules over one events table."""

    profile: ColumnElement[str]
    order_time: ColumnElement[object]
    email: ColumnElement[str]
    membership: ColumnElement[bool]
    usable: ColumnElement[bool]


def _expressions(events: TableClause, c: EventColumns, audience_key: str) -> _Exprs:
    col = events.c
    profile = func.coalesce(func.nullif(col[c.user_id], ""), func.nullif(col[c.anonymous_id], ""))
    order_time = func.coalesce(col[c.timestamp], col[c.received_at])
    email = case((func.trim(col[c.email]) == "", None), else_=col[c.email])
    membership = and_(
        col[c.audience_key] == literal(audience_key),
        col[c.value].is_not(None),
        or_(
            col[c.type] == "identify",
            and_(col[c.type] == "track", col[c.event].in_(MEMBERSHIP_EVENTS)),
        ),
    )
    usable = and_(membership, profile.is_not(None), order_time.is_not(None))
    return _Exprs(profile, order_time, email, membership, usable)


def _copies(events: TableClause, c: EventColumns, x: _Exprs) -> CTE:
    """Usable membership rows, numbered within each (profile, messageId): copy 1 is kept."""
    col = events.c
    return (
        select(
            x.profile.label("profile"),
            col[c.value].label("value"),
            x.email.label("email"),
            col[c.message_id].label("message_id"),
            x.order_time.label("order_time"),
            col[c.received_at].label("received_at"),
            func.row_number()
            .over(
                partition_by=[x.profile, col[c.message_id]],
                order_by=[
                    col[c.received_at].asc().nulls_last(),
                    col[c.timestamp].asc().nulls_last(),
                    col[c.value].asc(),
                    x.email.asc().nulls_last(),
                ],
            )
            .label("copy"),
        )
        .where(x.usable)
        .cte("copies")
    )


def members_query(events: TableClause, c: EventColumns, audience_key: str) -> Executable:
    """Rows ``(profile, email)`` of the profiles whose latest membership row says member."""
    col = events.c
    x = _expressions(events, c, audience_key)
    copies = _copies(events, c, x)
    ranked = (
        select(
            copies.c.profile,
            copies.c.value,
            copies.c.email,
            func.row_number()
            .over(
                partition_by=copies.c.profile,
                order_by=[
                    copies.c.order_time.desc().nulls_last(),
                    copies.c.received_at.desc().nulls_last(),
                    copies.c.message_id.desc().nulls_last(),
                    copies.c.value.asc(),
                    copies.c.email.desc().nulls_last(),
                ],
            )
            .label("rank"),
        )
        .where(or_(copies.c.message_id.is_(None), copies.c.copy == 1))
        .cte("ranked")
    )
    latest_email = (
        select(
            x.profile.label("profile"),
            x.email.label("email"),
            func.row_number()
            .over(
                partition_by=x.profile,
                order_by=[
                    x.order_time.desc().nulls_last(),
                    col[c.received_at].desc().nulls_last(),
                    col[c.message_id].desc().nulls_last(),
                    x.email.desc(),
                ],
            )
            .label("rank"),
        )
        .where(x.profile.is_not(None), x.email.is_not(None))
        .cte("latest_email")
    )
    return (
        select(
            ranked.c.profile,
            func.coalesce(ranked.c.email, latest_email.c.email).label("email"),
        )
        .select_from(
            ranked.outerjoin(
                latest_email,
                and_(latest_email.c.profile == ranked.c.profile, latest_email.c.rank == 1),
            )
        )
        .where(ranked.c.rank == 1, ranked.c.value == true())
    )


def counts_query(events: TableClause, c: EventColumns, audience_key: str) -> Executable:
    """Counters of the membership rows: total, unusable, duplicated messages, profiles."""
    x = _expressions(events, c, audience_key)
    copies = _copies(events, c, x)
    rows = (
        select(
            _count_if(x.membership).label("membership_events"),
            _count_if(x.profile.is_(None)).label("events_without_profile"),
            _count_if(and_(x.profile.is_not(None), x.order_time.is_(None))).label(
                "events_without_timestamp"
            ),
        )
        .where(x.membership)
        .subquery("membership_rows")
    )
    repeats = select(
        _count_if(and_(copies.c.message_id.is_not(None), copies.c.copy > 1)).label(
            "duplicate_messages"
        ),
        func.count(func.distinct(copies.c.profile)).label("profiles"),
    ).subquery("repeats")
    return select(rows, repeats).select_from(rows.join(repeats, true()))


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def stream_members(
    connection: Connection,
    events: TableClause,
    columns: EventColumns,
    audience_key: str,
    chunk_size: int,
    notes: dict[str, int],
) -> Iterator[list[str | None]]:
    """Yield member emails in chunks; count profiles without email and the other counters."""
    notes["profiles_without_email"] = 0
    query = members_query(events, columns, audience_key)
    with open_stream(connection, query, chunk_size) as result:
        for rows in result.partitions(chunk_size):
            emails = [as_raw_email(row.email) for row in rows]
            notes["profiles_without_email"] += emails.count(None)
            chunk: list[str | None] = [e for e in emails if e is not None]
            if chunk:
                yield chunk
    counts = connection.execute(counts_query(events, columns, audience_key)).one()
    notes.update({key: int(value or 0) for key, value in counts._mapping.items()})


class SegmentEventsSqlSource(SourceBase[SegmentEventsSqlSourceSpec]):
    """Members of one audience decided by the warehouse from a flattened events table."""

    def describe(self) -> str:
        return f"segment_events_sql:{describe_url(self._spec.url)}/{self._spec.table}"

    def _read(self, chunk_size: int) -> Iterator[list[str | None]]:
        events = events_table(self._spec.table, self._spec.columns)
        with warehouse_connection(
            self._spec.url,
            base_dir=self._base_dir,
            audience_key=self._audience_key,
            environ=self._environ,
        ) as (connection, _):
            yield from stream_members(
                connection,
                events,
                self._spec.columns,
                self._audience_key,
                chunk_size,
                self._notes,
            )
