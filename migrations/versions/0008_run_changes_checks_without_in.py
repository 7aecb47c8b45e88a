"""run_changes: its CHECK constraints as ``=`` comparisons joined by OR instead of ``IN (...)``

SQLite evaluates a CHECK of the form ``"status" IN ('planned', ...)`` by building a temporary
table of the list for every row written, so inserting a first run's millions of planned
changes, and every status update of them, cost several times what the row itself does
(measured: 1M inserts 15 s with the two IN checks, 4.6 s without). The same rule as ``=``
comparisons joined by OR costs next to nothing. What the constraints allow does not change.

The allowed values are frozen here as they were when this revision was written (see 0004).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECKS = {
    "action": ("on", "off", "set", "clear"),
    "status": ("planned", "submitted", "confirmed", "skipped", "failed", "aborted"),
}


def _any_of(column: str, values: tuple[str, ...]) -> str:
    return " OR ".join(f"\"{column}\" = '{value}'" for value in values)


def _in_list(column: str, values: tuple[str, ...]) -> str:
    allowed = ", ".join(f"'{value}'" for value in values)
    return f'"{column}" IN ({allowed})'


def _replace_checks(condition: Callable[[str, tuple[str, ...]], str]) -> None:
    with op.batch_alter_table("run_changes", schema=None) as batch_op:
        for column, values in CHECKS.items():
            batch_op.drop_constraint(op.f(f"ck_run_changes_{column}"), type_="check")
            batch_op.create_check_constraint(
                op.f(f"ck_run_changes_{column}"),
                condition(column, values),
            )


def upgrade() -> None:
    _replace_checks(_any_of)


def downgrade() -> None:
    _replace_checks(_in_list)
