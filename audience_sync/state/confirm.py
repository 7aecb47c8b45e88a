"""Advance confirmed state from Listrak's answers, set-based and atomically per import.

Only contacts Listrak accepted become confirmed. Per-contact results are staged into
``import_results``; one statement per outcome class then updates ``run_changes``,
``memberships`` and ``parked_contacts``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, exists, func, insert, literal, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Exists

from audience_sync.redaction import one_line
from audience_sync.state.db import analyze, insert_ignoring_duplicates, utcnow
from audience_sync.state.tables import (
    import_results,
    memberships,
    parked_contacts,
    run_changes,
)

RESULT_BATCH = 10_000


@dataclass(frozen=True)
class ResultVocabulary:
    accepted: Sequence[str]
    skipped: Sequence[str]


@dataclass(frozen=True)
class ImportOutcome:
    confirmed: int
    skipped: int
    failed: int
    unknown_results: dict[str, int]


def assign_changes_to_import(
    conn: Connection,
    *,
    run_id: int,
    audience_id: int,
    import_row_id: int,
    first_email: str,
    last_email: str,
) -> int:
    """Mark the planned changes an import carries (its email range) as ``submitted``."""
    result = conn.execute(
        update(run_changes)
        .where(
            run_changes.c.run_id == run_id,
            run_changes.c.audience_id == audience_id,
            run_changes.c.status == "planned",
            run_changes.c.email >= first_email,
            run_changes.c.email <= last_email,
        )
        .values(status="submitted", import_id=import_row_id)
    )
    return int(result.rowcount)


def stage_results(conn: Connection, import_row_id: int, results: Iterable[tuple[str, str]]) -> None:
    """Stage ``(email, result)`` rows (emails already normalised); repeats keep the first."""
    batch: dict[str, str] = {}
    for email, result in results:
        batch.setdefault(email, result)
        if len(batch) >= RESULT_BATCH:
            _insert_results(conn, import_row_id, batch)
            batch = {}
    _insert_results(conn, import_row_id, batch)
    analyze(conn, import_results.name)


def _insert_results(conn: Connection, import_row_id: int, batch: dict[str, str]) -> None:
    if batch:
        rows = [{"import_id": import_row_id, "email": e, "result": r} for e, r in batch.items()]
        conn.execute(insert_ignoring_duplicates(conn, import_results), rows)


def settle_import(
    conn: Connection,
    *,
    import_row_id: int,
    run_id: int,
    audience_id: int,
    vocabulary: ResultVocabulary,
    all_accepted: bool,
) -> ImportOutcome:
    """Resolve every ``submitted`` change of one import, then advance confirmed state.

    ``all_accepted``: Listrak's summary says every row was applied, so no per-contact results
    were read. Otherwise a change is confirmed only when its staged result is an accepted one.
    """
    mine = and_(run_changes.c.import_id == import_row_id, run_changes.c.status == "submitted")
    if all_accepted:
        conn.execute(update(run_changes).where(mine).values(status="confirmed", reason=None))
    else:
        _apply_results(conn, import_row_id, mine, vocabulary)
    _advance_memberships(conn, import_row_id, run_id, audience_id)
    _park_skipped(conn, import_row_id, run_id, audience_id)
    unknown: dict[str, int] = {}
    if not all_accepted:
        known = [*vocabulary.accepted, *vocabulary.skipped]
        unknown = dict(
            conn.execute(
                select(import_results.c.result, func.count())
                .where(
                    import_results.c.import_id == import_row_id,
                    import_results.c.result.not_in(known),
                )
                .group_by(import_results.c.result)
            ).all()
        )
    conn.execute(delete(import_results).where(import_results.c.import_id == import_row_id))
    counts: dict[str, int] = dict(
        conn.execute(
            select(run_changes.c.status, func.count())
            .where(run_changes.c.import_id == import_row_id)
            .group_by(run_changes.c.status)
        ).all()
    )
    return ImportOutcome(
        confirmed=counts.get("confirmed", 0),
        skipped=counts.get("skipped", 0),
        failed=counts.get("failed", 0),
        unknown_results=unknown,
    )


def _apply_results(
    conn: Connection,
    import_row_id: int,
    mine: ColumnElement[bool],
    vocabulary: ResultVocabulary,
) -> None:
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
    conn.execute(
        update(run_changes)
        .where(mine, result_in(vocabulary.accepted))
        .values(status="confirmed", reason=None)
    )
    conn.execute(
        update(run_changes)
        .where(mine, result_in(vocabulary.skipped))
        .values(status="skipped", reason=result_of)
    )
    any_result = exists().where(
        import_results.c.import_id == import_row_id,
        import_results.c.email == run_changes.c.email,
    )
    conn.execute(
        update(run_changes)
        .where(mine, any_result)
        .values(status="failed", reason=literal("unknown import result: ") + result_of)
    )
    conn.execute(
        update(run_changes)
        .where(mine)
        .values(status="failed", reason="Listrak reported no result for this contact")
    )


def fail_import_changes(conn: Connection, import_row_id: int, reason: str) -> int:
    """Transient failure: the changes stay unconfirmed and are planned again by the next run."""
    result = conn.execute(
        update(run_changes)
        .where(
            run_changes.c.import_id == import_row_id,
            run_changes.c.status.in_(("planned", "submitted")),
        )
        .values(status="failed", reason=one_line(reason, limit=200))
    )
    return int(result.rowcount)


def fail_unsent_changes(
    conn: Connection, run_id: int, reason: str, *, audience_id: int | None = None
) -> int:
    """Planned changes never sent (of one audience, or of the whole run) become ``failed``;
    the next run plans them again."""
    where = [run_changes.c.run_id == run_id, run_changes.c.status == "planned"]
    if audience_id is not None:
        where.append(run_changes.c.audience_id == audience_id)
    result = conn.execute(
        update(run_changes)
        .where(*where)
        .values(status="failed", reason=one_line(reason, limit=200))
    )
    return int(result.rowcount)


def abort_planned_changes(conn: Connection, run_id: int, *, audience_id: int | None = None) -> int:
    """A guard stopped them: planned, never sent (of one audience, or of the whole run)."""
    where = [run_changes.c.run_id == run_id, run_changes.c.status == "planned"]
    if audience_id is not None:
        where.append(run_changes.c.audience_id == audience_id)
    result = conn.execute(
        update(run_changes)
        .where(*where)
        .values(status="aborted", reason="guard abort: nothing was sent")
    )
    return int(result.rowcount)


def unresolved_changes(conn: Connection, run_id: int, audience_id: int) -> dict[str, int]:
    """Changes of one audience in a run that Listrak has not confirmed or skipped, by status."""
    rows = conn.execute(
        select(run_changes.c.status, func.count())
        .where(
            run_changes.c.run_id == run_id,
            run_changes.c.audience_id == audience_id,
            run_changes.c.status.in_(("planned", "submitted", "failed")),
        )
        .group_by(run_changes.c.status)
    ).all()
    return {str(status): int(count) for status, count in rows}


def _advance_memberships(
    conn: Connection, import_row_id: int, run_id: int, audience_id: int
) -> None:
    confirmed = select(run_changes.c.email).where(
        run_changes.c.import_id == import_row_id, run_changes.c.status == "confirmed"
    )
    conn.execute(
        delete(memberships).where(
            memberships.c.audience_id == audience_id, memberships.c.email.in_(confirmed)
        )
    )
    conn.execute(
        insert(memberships).from_select(
            ["audience_id", "email", "value", "confirmed_run_id", "confirmed_at"],
            select(
                literal(audience_id),
                run_changes.c.email,
                run_changes.c.action,
                literal(run_id),
                literal(utcnow()),
            ).where(run_changes.c.import_id == import_row_id, run_changes.c.status == "confirmed"),
        )
    )
    conn.execute(
        delete(parked_contacts).where(
            parked_contacts.c.audience_id == audience_id, parked_contacts.c.email.in_(confirmed)
        )
    )


def _park_skipped(conn: Connection, import_row_id: int, run_id: int, audience_id: int) -> None:
    skipped = select(run_changes.c.email).where(
        run_changes.c.import_id == import_row_id, run_changes.c.status == "skipped"
    )
    conn.execute(
        delete(parked_contacts).where(
            parked_contacts.c.audience_id == audience_id, parked_contacts.c.email.in_(skipped)
        )
    )
    conn.execute(
        insert(parked_contacts).from_select(
            ["audience_id", "email", "action", "reason", "run_id", "parked_at"],
            select(
                literal(audience_id),
                run_changes.c.email,
                run_changes.c.action,
                func.coalesce(run_changes.c.reason, "skipped"),
                literal(run_id),
                literal(utcnow()),
            ).where(run_changes.c.import_id == import_row_id, run_changes.c.status == "skipped"),
        )
    )
