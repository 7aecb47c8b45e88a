"""Every transition of a contact's change (``run_changes``), and nothing else writes its status.

    (plan, repair)   -> planned
    planned          -> submitted   an import part carries it (its email range)
    submitted        -> planned     the part was refused for its size and is split again
    submitted        -> confirmed | skipped | failed   Listrak's answer for the contact
    planned|submitted-> failed      its import failed, was lost or abandoned
    planned          -> failed      never sent (the audience or run failed, the run died)
    submitted        -> failed      its run died and no open import carries it
    planned          -> aborted     a guard stopped the run

A failed change stays unconfirmed, so the next run's diff plans it again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import and_, exists, func, literal, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CompoundSelect, Exists

from audience_sync.redaction import one_line
from audience_sync.state.bulk import insert_batches, insert_column, rows_of
from audience_sync.state.parents import require_import_of, require_run_and_audience
from audience_sync.state.statuses import (
    OPEN_IMPORT_STATUSES,
    UNRESOLVED_CHANGE_STATUSES,
    ChangeStatus,
)
from audience_sync.state.tables import import_results, listrak_imports, run_changes

if TYPE_CHECKING:
    import pyarrow as pa

REASON_LENGTH = 200
# What the parent checks (:mod:`.parents`) say a refused write was.
_PLANNED = "planned changes"

# ``(email, action)`` rows to plan, each email once.
ChangeRows = Select[tuple[str, str]] | CompoundSelect[tuple[str, str]]


@dataclass(frozen=True)
class ResultVocabulary:
    """Listrak's per-contact import results, by what they mean for a change."""

    accepted: Sequence[str]
    skipped: Sequence[str]


def plan_batches(
    conn: Connection, *, run_id: int, audience_id: int, batches: Iterable[pa.RecordBatch]
) -> int:
    """Plan every ``(email, action)`` row of Arrow record batches (each email once), in bulk:
    the emails of each action in one statement."""
    import pyarrow.compute as pc

    total = 0
    for batch in batches:
        require_run_and_audience(conn, run_id=run_id, audience_id=audience_id, what=_PLANNED)
        emails, actions = batch.column(0), batch.column(1)
        for action in pc.unique(actions).to_pylist():
            total += insert_column(
                conn,
                run_changes,
                "email",
                emails.filter(pc.equal(actions, action)),
                {
                    "run_id": run_id,
                    "audience_id": audience_id,
                    "action": action,
                    "status": ChangeStatus.PLANNED.value,
                },
            )
    return total


def plan_value_batches(
    conn: Connection, *, run_id: int, audience_id: int, batches: Iterable[pa.RecordBatch]
) -> int:
    """Plan a trait's ``(email, action, value)`` rows (``set`` with its value, ``clear``)."""
    require_run_and_audience(conn, run_id=run_id, audience_id=audience_id, what=_PLANNED)
    rows = rows_of(batches, before=(run_id, audience_id), after=(ChangeStatus.PLANNED.value,))
    return insert_batches(
        conn, run_changes, ["run_id", "audience_id", "email", "action", "value", "status"], rows
    )


def record_invalid_values(
    conn: Connection, *, run_id: int, audience_id: int, batches: Iterable[pa.RecordBatch]
) -> int:
    """A trait's ``(email, reason)`` contacts whose value cannot be sent: each reported as a
    ``set`` change ``skipped`` with reason ``invalid value: <reason>``, never sent (no import)
    and never parked. The value itself is not stored."""
    require_run_and_audience(conn, run_id=run_id, audience_id=audience_id, what=_PLANNED)
    total = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        import pyarrow as pa
        import pyarrow.compute as pc

        reasons = pc.binary_join_element_wise(
            pa.scalar("invalid value: "), batch.column(1).cast(pa.string()), ""
        )
        relabelled = pa.RecordBatch.from_arrays(
            [batch.column(0), reasons], names=["email", "reason"]
        )
        rows = rows_of(
            [relabelled],
            before=(run_id, audience_id, "set"),
            after=(ChangeStatus.SKIPPED.value,),
        )
        total += insert_batches(
            conn,
            run_changes,
            ["run_id", "audience_id", "action", "email", "reason", "status"],
            rows,
        )
    return total


def plan_rows(conn: Connection, *, run_id: int, audience_id: int, rows: ChangeRows) -> int:
    """Plan every ``(email, action)`` row."""
    require_run_and_audience(conn, run_id=run_id, audience_id=audience_id, what=_PLANNED)
    source = rows.subquery()
    result = conn.execute(
        run_changes.insert().from_select(
            ["run_id", "audience_id", "email", "action", "status"],
            select(
                literal(run_id),
                literal(audience_id),
                source.c.email,
                source.c[1],
                literal(ChangeStatus.PLANNED.value),
            ),
        )
    )
    return int(result.rowcount)


def assign_to_import(
    conn: Connection,
    *,
    run_id: int,
    audience_id: int,
    import_row_id: int,
    first_email: str,
    last_email: str,
) -> int:
    """The planned changes an import part carries (its email range) become ``submitted``."""
    require_import_of(
        conn, import_row_id, run_id=run_id, audience_id=audience_id, what="submitted changes"
    )
    result = conn.execute(
        update(run_changes)
        .where(
            run_changes.c.run_id == run_id,
            run_changes.c.audience_id == audience_id,
            run_changes.c.status == ChangeStatus.PLANNED,
            run_changes.c.email >= first_email,
            run_changes.c.email <= last_email,
        )
        .values(status=ChangeStatus.SUBMITTED, import_id=import_row_id)
    )
    return int(result.rowcount)


@dataclass(frozen=True)
class ImportRange:
    """Where an import's changes lie in ``run_changes``' primary key: its run, its audience
    and its email range (:func:`assign_to_import` gives an import only changes in its range)."""

    import_row_id: int
    run_id: int
    audience_id: int
    first_email: str
    last_email: str


def import_range(conn: Connection, import_row_id: int) -> ImportRange | None:
    """The import's :class:`ImportRange`; ``None`` when it is not in the ledger."""
    row = conn.execute(
        select(
            listrak_imports.c.run_id,
            listrak_imports.c.audience_id,
            listrak_imports.c.first_email,
            listrak_imports.c.last_email,
        ).where(listrak_imports.c.id == import_row_id)
    ).first()
    if row is None:
        return None
    return ImportRange(import_row_id, row.run_id, row.audience_id, row.first_email, row.last_email)


def of_import(where: ImportRange) -> ColumnElement[bool]:
    """The changes an import carries, found through the primary key (there is no index on
    ``import_id``: migration 0011) and then filtered by the import's id."""
    return and_(
        run_changes.c.run_id == where.run_id,
        run_changes.c.audience_id == where.audience_id,
        run_changes.c.email >= where.first_email,
        run_changes.c.email <= where.last_email,
        run_changes.c.import_id == where.import_row_id,
    )


def release_import(conn: Connection, import_row_id: int) -> None:
    """A part refused before Listrak applied anything: its changes are planned again, to be
    carried by smaller parts."""
    where = import_range(conn, import_row_id)
    if where is None:
        return
    conn.execute(
        update(run_changes)
        .where(of_import(where))
        .values(status=ChangeStatus.PLANNED, import_id=None)
    )


@dataclass(frozen=True)
class Settled:
    """How many of an import's changes each settling statement resolved."""

    confirmed: int
    skipped: int
    failed: int


def settle_import(
    conn: Connection, carried: ImportRange, vocabulary: ResultVocabulary, *, all_accepted: bool
) -> Settled:
    """Resolve every ``submitted`` change of one finished import, and count them by outcome
    from the statements' own row counts (no second pass over the import's changes).

    ``all_accepted``: Listrak's summary says every row was applied. Otherwise each change is
    resolved by its result staged in ``import_results``: accepted -> confirmed, skipped ->
    skipped (the result is the reason), anything else or none -> failed.
    """
    import_row_id = carried.import_row_id
    mine = and_(of_import(carried), run_changes.c.status == ChangeStatus.SUBMITTED)
    if all_accepted:
        confirmed = conn.execute(
            update(run_changes).where(mine).values(status=ChangeStatus.CONFIRMED, reason=None)
        )
        return Settled(confirmed=int(confirmed.rowcount), skipped=0, failed=0)

    def result_in(values: Sequence[str]) -> Exists:
        return exists().where(
            import_results.c.import_id == import_row_id,
            import_results.c.email == run_changes.c.email,
            import_results.c.result.in_(list(values)),
        )

    result_of = (
        select(import_results.c.result)
        .where(
            import_results.c.import_id == import_row_id,
            import_results.c.email == run_changes.c.email,
        )
        .scalar_subquery()
    )
    confirmed = conn.execute(
        update(run_changes)
        .where(mine, result_in(vocabulary.accepted))
        .values(status=ChangeStatus.CONFIRMED, reason=None)
    )
    skipped = conn.execute(
        update(run_changes)
        .where(mine, result_in(vocabulary.skipped))
        .values(status=ChangeStatus.SKIPPED, reason=result_of)
    )
    any_result = exists().where(
        import_results.c.import_id == import_row_id,
        import_results.c.email == run_changes.c.email,
    )
    unknown = conn.execute(
        update(run_changes)
        .where(mine, any_result)
        .values(status=ChangeStatus.FAILED, reason=literal("unknown import result: ") + result_of)
    )
    missing = conn.execute(
        update(run_changes)
        .where(mine)
        .values(status=ChangeStatus.FAILED, reason="Listrak reported no result for this contact")
    )
    return Settled(
        confirmed=int(confirmed.rowcount),
        skipped=int(skipped.rowcount),
        failed=int(unknown.rowcount) + int(missing.rowcount),
    )


def fail_import(conn: Connection, import_row_id: int, reason: str) -> int:
    """The import failed, was lost or abandoned: its unresolved changes fail."""
    where = import_range(conn, import_row_id)
    if where is None:
        return 0
    result = conn.execute(
        update(run_changes)
        .where(
            of_import(where),
            run_changes.c.status.in_((ChangeStatus.PLANNED, ChangeStatus.SUBMITTED)),
        )
        .values(status=ChangeStatus.FAILED, reason=one_line(reason, limit=REASON_LENGTH))
    )
    return int(result.rowcount)


def fail_unsent(
    conn: Connection, run_id: int, reason: str, *, audience_id: int | None = None
) -> int:
    """Planned changes never sent (of one audience, or of the whole run) fail."""
    return _close_unsent(conn, run_id, ChangeStatus.FAILED, reason, audience_id)


def abort_unsent(
    conn: Connection, run_id: int, reason: str, *, audience_id: int | None = None
) -> int:
    """A guard stopped the run (or one audience) before anything was sent: its planned changes
    are aborted."""
    return _close_unsent(conn, run_id, ChangeStatus.ABORTED, reason, audience_id)


def _close_unsent(
    conn: Connection,
    run_id: int,
    status: ChangeStatus,
    reason: str,
    audience_id: int | None,
) -> int:
    where = [run_changes.c.run_id == run_id, run_changes.c.status == ChangeStatus.PLANNED]
    if audience_id is not None:
        where.append(run_changes.c.audience_id == audience_id)
    result = conn.execute(
        update(run_changes)
        .where(*where)
        .values(status=status, reason=one_line(reason, limit=REASON_LENGTH))
    )
    return int(result.rowcount)


def fail_interrupted(conn: Connection, run_id: int) -> int:
    """A run whose process died: what it never sent, or sent in an import no longer open,
    fails. Changes of its imports still open stay ``submitted`` for whoever settles them."""
    fail_unsent(conn, run_id, "run interrupted before submit")
    open_import = (
        select(listrak_imports.c.id)
        .where(
            listrak_imports.c.id == run_changes.c.import_id,
            listrak_imports.c.status.in_(OPEN_IMPORT_STATUSES),
        )
        .exists()
    )
    result = conn.execute(
        update(run_changes)
        .where(
            run_changes.c.run_id == run_id,
            run_changes.c.status == ChangeStatus.SUBMITTED,
            or_(run_changes.c.import_id.is_(None), and_(~open_import)),
        )
        .values(status=ChangeStatus.FAILED, reason="run interrupted")
    )
    return int(result.rowcount)


@dataclass
class ResolvedTally:
    """A run's changes that Listrak resolved, by audience, added up from the settling
    statements' row counts (:class:`Settled`) of the run's imports as it settles them.

    A lower bound of the changes ``confirmed`` and ``skipped``: only settling confirms a change,
    each change is settled once, and neither status is ever left. So when the tally equals
    the number of changes, every change is resolved and the tally is the exact count; when
    it is lower (a trait's invalid values are skipped at planning, another process settled),
    the statuses are read from the table.
    """

    confirmed: Counter[int] = field(default_factory=Counter)
    skipped: Counter[int] = field(default_factory=Counter)

    def add(self, audience_id: int, settled: Settled) -> None:
        self.confirmed[audience_id] += settled.confirmed
        self.skipped[audience_id] += settled.skipped

    def resolved(self, audience_id: int | None = None) -> int:
        if audience_id is None:
            return self.confirmed.total() + self.skipped.total()
        return self.confirmed[audience_id] + self.skipped[audience_id]


def count(conn: Connection, run_id: int, *, audience_id: int | None = None) -> int:
    """How many changes a run (or one of its audiences) has: a count over the primary key's
    leading columns, which never reads the table's rows."""
    where = [run_changes.c.run_id == run_id]
    if audience_id is not None:
        where.append(run_changes.c.audience_id == audience_id)
    return int(conn.execute(select(func.count()).where(*where)).scalar_one())


def count_by_status_of_run(
    conn: Connection, run_id: int, tally: ResolvedTally | None = None
) -> dict[ChangeStatus, int]:
    """:func:`count_by_status` of a run; from ``tally`` when it accounts for every change."""
    if tally is not None and tally.resolved() > 0 and tally.resolved() == count(conn, run_id):
        counts = {
            ChangeStatus.CONFIRMED: tally.confirmed.total(),
            ChangeStatus.SKIPPED: tally.skipped.total(),
        }
        return {status: n for status, n in counts.items() if n}
    return count_by_status(conn, run_id=run_id)


def count_by_status(conn: Connection, *, run_id: int) -> dict[ChangeStatus, int]:
    """Changes of a run, counted by status."""
    rows = conn.execute(
        select(run_changes.c.status, func.count())
        .where(run_changes.c.run_id == run_id)
        .group_by(run_changes.c.status)
    ).all()
    return {ChangeStatus(status): int(count) for status, count in rows}


def unresolved(
    conn: Connection, run_id: int, audience_id: int, tally: ResolvedTally | None = None
) -> dict[ChangeStatus, int]:
    """Changes of one audience in a run that Listrak has not confirmed or skipped, by status;
    none without reading a status when ``tally`` accounts for every change."""
    if tally is not None:
        resolved = tally.resolved(audience_id)
        if resolved > 0 and resolved == count(conn, run_id, audience_id=audience_id):
            return {}
    rows = conn.execute(
        select(run_changes.c.status, func.count())
        .where(
            run_changes.c.run_id == run_id,
            run_changes.c.audience_id == audience_id,
            run_changes.c.status.in_(UNRESOLVED_CHANGE_STATUSES),
        )
        .group_by(run_changes.c.status)
    ).all()
    return {ChangeStatus(status): int(count) for status, count in rows}
