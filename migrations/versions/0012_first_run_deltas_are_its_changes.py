"""A first run's deltas are its planned ``on`` changes, read from the ledger, not copied

When nothing was desired before, a plan's deltas (every member ``on``) are exactly its planned
``on`` changes. The plan copied them into ``snapshot_deltas`` (10M rows: 28 s on PostgreSQL);
it now marks the run instead (``run_audiences.deltas_are_changes``). The stored deltas move to
``recorded_deltas``, and ``snapshot_deltas`` becomes a view of both, so every query that
replays it still sees every run's deltas.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLAGGED_CHANGES = (
    "SELECT c.run_id, c.audience_id, c.email, c.action AS desired FROM run_changes c "
    "JOIN run_audiences ra ON ra.run_id = c.run_id AND ra.audience_id = c.audience_id "
    "WHERE ra.deltas_are_changes = true AND c.action = 'on'"
)
VIEW = (
    "CREATE VIEW snapshot_deltas AS "
    "SELECT run_id, audience_id, email, desired FROM recorded_deltas "
    f"UNION ALL {FLAGGED_CHANGES}"
)


def upgrade() -> None:
    with op.batch_alter_table("run_audiences", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("deltas_are_changes", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.rename_table("snapshot_deltas", "recorded_deltas")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE recorded_deltas RENAME CONSTRAINT pk_snapshot_deltas TO pk_recorded_deltas"
        )
    op.execute(VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW snapshot_deltas")
    op.execute(
        "INSERT INTO recorded_deltas (run_id, audience_id, email, desired) " + FLAGGED_CHANGES
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE recorded_deltas RENAME CONSTRAINT pk_recorded_deltas TO pk_snapshot_deltas"
        )
    op.rename_table("recorded_deltas", "snapshot_deltas")
    with op.batch_alter_table("run_audiences", schema=None) as batch_op:
        batch_op.drop_column("deltas_are_changes")
