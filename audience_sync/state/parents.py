"""The rows a bulk write points at exist: checked once per write, not once per row.

``run_changes``, ``memberships`` and ``import_results`` carry no foreign keys (migration 0010):
on PostgreSQL each key fired a trigger for every row written, most of a first run's own time.
The writers of those tables name their run, audience and import once per statement or batch, so
each writer calls one of these first: one primary-key lookup per parent, in the writer's
transaction, and a one-line :class:`~audience_sync.errors.StateError` naming the missing id
when one is absent, before any row is written.
Nothing in the job deletes a run, an audience or an import, so a parent that exists when the
write starts still exists when it commits.
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.engine import Connection

from audience_sync.errors import StateError
from audience_sync.state.db_errors import describe_url
from audience_sync.state.tables import audiences, listrak_imports, sync_runs


def require_run_and_audience(conn: Connection, *, run_id: int, audience_id: int, what: str) -> None:
    """Refuse to write ``what`` (e.g. "planned changes") for a run or audience not in the
    ledger; both looked up in one statement."""
    run_found, audience_found = conn.execute(
        select(
            exists().where(sync_runs.c.id == run_id), exists().where(audiences.c.id == audience_id)
        )
    ).one()
    if not run_found:
        raise missing_parent(conn, what, f"run {run_id}")
    if not audience_found:
        raise missing_parent(conn, what, f"audience {audience_id}")


def require_audience(conn: Connection, audience_id: int, *, what: str) -> None:
    """Refuse to write ``what`` for an audience not in the ledger."""
    if not conn.execute(select(exists().where(audiences.c.id == audience_id))).scalar_one():
        raise missing_parent(conn, what, f"audience {audience_id}")


def require_import(conn: Connection, import_row_id: int, *, what: str) -> None:
    """Refuse to write ``what`` for an import not in the ledger."""
    if not conn.execute(select(exists().where(listrak_imports.c.id == import_row_id))).scalar_one():
        raise missing_parent(conn, what, f"import {import_row_id}")


def require_import_of(
    conn: Connection, import_row_id: int, *, run_id: int, audience_id: int, what: str
) -> None:
    """Refuse to write ``what`` for an import that is not in the ledger as one of this run's
    imports for this audience (stricter than the foreign key was)."""
    found = conn.execute(
        select(
            exists().where(
                listrak_imports.c.id == import_row_id,
                listrak_imports.c.run_id == run_id,
                listrak_imports.c.audience_id == audience_id,
            )
        )
    ).scalar_one()
    if not found:
        raise missing_parent(
            conn, what, f"import {import_row_id} of run {run_id} and audience {audience_id}"
        )


def missing_parent(conn: Connection, what: str, parent: str) -> StateError:
    """The one-line refusal to write ``what`` for ``parent`` (e.g. "import 7")."""
    cause = f"refusing to write {what} for {parent}: it is not in the ledger"
    return StateError(f"state database {describe_url(conn.engine.url)}: {cause}", cause=cause)
