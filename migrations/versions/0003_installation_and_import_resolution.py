"""installation id; imports resolved by a later run, found by name

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    installation = op.create_table(
        "installation",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation")),
    )
    op.bulk_insert(installation, [{"id": secrets.token_hex(4), "created_at": datetime.now(UTC)}])
    with op.batch_alter_table("listrak_imports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resolved_run_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("found_by_name", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    # Not batch mode: SQLite (3.35+) drops columns in place, where recreating the table would
    # trip the foreign keys of run_changes and import_results on a database with data.
    op.drop_column("listrak_imports", "found_by_name")
    op.drop_column("listrak_imports", "resolved_run_id")
    op.drop_table("installation")
