"""Advance confirmed state from Listrak's answers, set-based and atomically per import.

Only contacts Listrak accepted become confirmed. Per-contact results are staged into
``import_results``; the changes are resolved from them (:func:`.changes.settle_import`), then
set-based statements update ``memberships`` and ``parked_contacts``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, exists, func, insert, literal, select, text
from sqlalchemy.engine import Connection

from audience_sync.state import changes
from audience_sync.state.changes import ResultVocabulary
from audience_sync.state.db import analyze, insert_ignoring_duplicates, utcnow
from audience_sync.state.parents import require_audience, require_import
from audience_sync.state.statuses import ChangeStatus
from audience_sync.state.tables import (
    TS,
    import_results,
    listrak_imports,
    parked_contacts,
    run_changes,
)

RESULT_BATCH = 10_000


@dataclass(frozen=True)
class ImportOutcome:
    settled: changes.Settled
    unknown_results: dict[str, int]

    @property
    def confirmed(self) -> int:
        return self.settled.confirmed

    @property
    def skipped(self) -> int:
        return self.settled.skipped

    @property
    def failed(self) -> int:
        return self.settled.failed


def stage_results(conn: Connection, import_row_id: int, results: Iterable[tuple[str, str]]) -> None:
    """Stage ``(email, result)`` rows (emails already normalised); repeats keep the first."""
    require_import(conn, import_row_id, what="contact results")
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
    settled = changes.settle_import(conn, import_row_id, vocabulary, all_accepted=all_accepted)
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
    return ImportOutcome(settled=settled, unknown_results=unknown)


def _advance_memberships(
    conn: Connection, import_row_id: int, run_id: int, audience_id: int
) -> None:
    """Confirmed changes set ``value`` (a trait's ``clear`` sets NULL); ``desired`` (the
    snapshot's say) is left as it is."""
    require_audience(conn, audience_id, what="confirmed memberships")
    conn.execute(
        text(
            "INSERT INTO memberships (audience_id, email, value, confirmed_run_id, confirmed_at) "
            # An audience confirms its CheckBox value (the action); a trait the value it set,
            # or none once cleared.
            "SELECT :a, email, CASE WHEN action IN ('on', 'off') THEN action ELSE value END, "
            ":r, :at FROM run_changes "
            "WHERE import_id = :i AND status = :confirmed "
            "ON CONFLICT (audience_id, email) DO UPDATE SET value = excluded.value, "
            "confirmed_run_id = excluded.confirmed_run_id, confirmed_at = excluded.confirmed_at"
        ).bindparams(bindparam("at", type_=TS)),
        {
            "a": audience_id,
            "r": run_id,
            "at": utcnow(),
            "i": import_row_id,
            "confirmed": ChangeStatus.CONFIRMED.value,
        },
    )
    _unpark_changes_of(conn, import_row_id, audience_id, ChangeStatus.CONFIRMED)


def _unpark_changes_of(
    conn: Connection, import_row_id: int, audience_id: int, status: ChangeStatus
) -> None:
    """Forget the parked skips of the import's contacts whose change ended ``status``. Probed
    from the parked side (usually few rows, none in a first run) through the changes' primary
    key (the import's run, the audience, the email), never by listing every change of the
    import."""
    import_run = (
        select(listrak_imports.c.run_id)
        .where(listrak_imports.c.id == import_row_id)
        .scalar_subquery()
    )
    conn.execute(
        delete(parked_contacts).where(
            parked_contacts.c.audience_id == audience_id,
            exists().where(
                run_changes.c.run_id == import_run,
                run_changes.c.audience_id == parked_contacts.c.audience_id,
                run_changes.c.email == parked_contacts.c.email,
                # ``+ 0``: not through the import's index, which would scan the whole import
                # for every parked contact.
                run_changes.c.import_id + 0 == import_row_id,
                run_changes.c.status == status,
            ),
        )
    )


def _park_skipped(conn: Connection, import_row_id: int, run_id: int, audience_id: int) -> None:
    _unpark_changes_of(conn, import_row_id, audience_id, ChangeStatus.SKIPPED)
    conn.execute(
        insert(parked_contacts).from_select(
            ["audience_id", "email", "action", "reason", "run_id", "parked_at"],
            select(
                literal(audience_id),
                run_changes.c.email,
                run_changes.c.action,
                func.coalesce(run_changes.c.reason, ChangeStatus.SKIPPED.value),
                literal(run_id),
                literal(utcnow()),
            ).where(
                run_changes.c.import_id == import_row_id,
                run_changes.c.status == ChangeStatus.SKIPPED,
            ),
        )
    )
