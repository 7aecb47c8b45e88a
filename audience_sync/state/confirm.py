"""Advance confirmed state from Listrak's answers, set-based and atomically per import.

Only contacts Listrak accepted become confirmed. Per-contact results are staged into
``import_results``; the changes are resolved from them (:func:`.changes.settle_import`), then
set-based statements update ``memberships`` and ``parked_contacts``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Insert, Select, case, delete, exists, func, insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from audience_sync.state import changes
from audience_sync.state.changes import ResultVocabulary
from audience_sync.state.db import analyze, insert_ignoring_duplicates, utcnow
from audience_sync.state.parents import missing_parent, require_audience, require_import
from audience_sync.state.statuses import ChangeStatus
from audience_sync.state.tables import (
    TS,
    import_results,
    memberships,
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
    carried = changes.import_range(conn, import_row_id)
    if carried is None:
        raise missing_parent(conn, "settled changes", f"import {import_row_id}")
    settled = changes.settle_import(conn, carried, vocabulary, all_accepted=all_accepted)
    _advance_memberships(conn, carried, run_id, audience_id)
    _park_skipped(conn, carried, run_id, audience_id)
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
    conn: Connection, carried: changes.ImportRange, run_id: int, audience_id: int
) -> None:
    """Confirmed changes set ``value`` (a trait's ``clear`` sets NULL); ``desired`` (the
    snapshot's say) is left as it is.

    When no membership of the audience lies in the import's email range yet (an audience's
    first run), the rows are inserted without the upsert's conflict check per row.
    """
    require_audience(conn, audience_id, what="confirmed memberships")
    confirmed = select(
        literal(audience_id),
        run_changes.c.email,
        # An audience confirms its CheckBox value (the action); a trait the value it set, or
        # none once cleared.
        case(
            (run_changes.c.action.in_(("on", "off")), run_changes.c.action),
            else_=run_changes.c.value,
        ),
        literal(run_id),
        literal(utcnow(), type_=TS),
    ).where(changes.of_import(carried), run_changes.c.status == ChangeStatus.CONFIRMED)
    columns = ["audience_id", "email", "value", "confirmed_run_id", "confirmed_at"]
    range_is_empty = not conn.execute(
        select(
            exists().where(
                memberships.c.audience_id == audience_id,
                memberships.c.email >= carried.first_email,
                memberships.c.email <= carried.last_email,
            )
        )
    ).scalar_one()
    if range_is_empty:
        conn.execute(insert(memberships).from_select(columns, confirmed))
    else:
        conn.execute(_upsert_memberships(conn, columns, confirmed))
    _unpark_changes_of(conn, carried, audience_id, ChangeStatus.CONFIRMED)


def _upsert_memberships(conn: Connection, columns: list[str], rows: Select[Any]) -> Insert:
    statement: postgresql.Insert | sqlite.Insert
    if conn.dialect.name == "postgresql":
        statement = postgresql.insert(memberships).from_select(columns, rows)
    else:
        statement = sqlite.insert(memberships).from_select(columns, rows)
    return statement.on_conflict_do_update(
        index_elements=[memberships.c.audience_id, memberships.c.email],
        set_={
            "value": statement.excluded.value,
            "confirmed_run_id": statement.excluded.confirmed_run_id,
            "confirmed_at": statement.excluded.confirmed_at,
        },
    )


def _unpark_changes_of(
    conn: Connection, carried: changes.ImportRange, audience_id: int, status: ChangeStatus
) -> None:
    """Forget the parked skips of the import's contacts whose change ended ``status``. Probed
    from the parked side (usually few rows, none in a first run) through the changes' primary
    key (the import's run, the audience, the email), never by listing every change of the
    import."""
    conn.execute(
        delete(parked_contacts).where(
            parked_contacts.c.audience_id == audience_id,
            parked_contacts.c.email >= carried.first_email,
            parked_contacts.c.email <= carried.last_email,
            exists().where(
                run_changes.c.run_id == carried.run_id,
                run_changes.c.audience_id == parked_contacts.c.audience_id,
                run_changes.c.email == parked_contacts.c.email,
                run_changes.c.import_id == carried.import_row_id,
                run_changes.c.status == status,
            ),
        )
    )


def _park_skipped(
    conn: Connection, carried: changes.ImportRange, run_id: int, audience_id: int
) -> None:
    _unpark_changes_of(conn, carried, audience_id, ChangeStatus.SKIPPED)
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
            ).where(changes.of_import(carried), run_changes.c.status == ChangeStatus.SKIPPED),
        )
    )
