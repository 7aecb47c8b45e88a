"""read-back staging and scheduler state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "listrak_values",
        sa.Column("audience_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("value", sa.String(length=50), nullable=False),
    )
    with op.batch_alter_table("listrak_values", schema=None) as batch_op:
        batch_op.create_index(
            "ix_listrak_values_audience_email", ["audience_id", "email"], unique=False
        )

    op.create_table(
        "scheduler_state",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("schedule", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_state")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_state")
    with op.batch_alter_table("listrak_values", schema=None) as batch_op:
        batch_op.drop_index("ix_listrak_values_audience_email")

    op.drop_table("listrak_values")
