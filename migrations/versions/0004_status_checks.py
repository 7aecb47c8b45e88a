"""CHECK constraints on every status, trigger and action column

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

The allowed values are frozen here as they were when this revision was written; they are the
values of the enums in audience_sync/state/statuses.py, from which state/tables.py builds the
same constraints. Adding a value later takes a new revision.

On SQLite batch mode recreates each table with its rows; audience_sync.state.migrate turns
foreign keys off around the migration (SQLite cannot while a transaction is open) and checks
them before committing.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUN_STATUSES = ("running", "succeeded", "failed", "aborted", "planned", "interrupted")
RUN_TRIGGERS = ("scheduled", "manual", "full", "plan", "repair")
AUDIENCE_STATUSES = ("reading", "planned", "waiting", "submitted", "done", "failed", "aborted")
CHANGE_STATUSES = ("planned", "submitted", "confirmed", "skipped", "failed", "aborted")
CHANGE_ACTIONS = ("on", "off")
IMPORT_STATUSES = ("posting", "submitted", "finished", "failed", "lost", "abandoned")

CHECKS: dict[str, dict[str, tuple[str, ...]]] = {
    "sync_runs": {"trigger": RUN_TRIGGERS, "status": RUN_STATUSES},
    "run_audiences": {"status": AUDIENCE_STATUSES},
    "parked_contacts": {"action": CHANGE_ACTIONS},
    "listrak_imports": {"status": IMPORT_STATUSES},
    "run_changes": {"action": CHANGE_ACTIONS, "status": CHANGE_STATUSES},
}


def _condition(column: str, values: tuple[str, ...]) -> str:
    allowed = ", ".join(f"'{value}'" for value in values)
    return f'"{column}" IN ({allowed})'


def upgrade() -> None:
    for table, columns in CHECKS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, values in columns.items():
                batch_op.create_check_constraint(
                    op.f(f"ck_{table}_{column}"), _condition(column, values)
                )


def downgrade() -> None:
    for table, columns in reversed(CHECKS.items()):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.drop_constraint(op.f(f"ck_{table}_{column}"), type_="check")
