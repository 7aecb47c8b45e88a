"""SQLite keeps ``memberships`` in its primary key's order (``WITHOUT ROWID``)

Each plan reads an audience's state rows in email order by the primary key ``(audience_id,
email)`` (:mod:`audience_sync.plan.sqlite_packed`). In a rowid table that key is a separate
index, and every row it finds is a second lookup in the table; a ``WITHOUT ROWID`` table is
stored in that key's order, so an audience's rows are read as one range of the table itself,
and a write by key touches one B-tree instead of two. The table is rebuilt, its rows copied in
key order. PostgreSQL is unchanged.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = "audience_id, email, value, confirmed_run_id, confirmed_at, desired"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(with_rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(with_rowid=True)


def _rebuild(*, with_rowid: bool) -> None:
    op.create_table(
        "memberships_rebuilt",
        sa.Column("audience_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=True),
        sa.Column("confirmed_run_id", sa.Integer(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("desired", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("audience_id", "email", name="pk_memberships"),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(
        f"INSERT INTO memberships_rebuilt ({COLUMNS}) SELECT {COLUMNS} FROM memberships "
        "ORDER BY audience_id, email"
    )
    op.drop_index("ix_memberships_audience_value", table_name="memberships")
    op.drop_table("memberships")
    op.rename_table("memberships_rebuilt", "memberships")
    op.create_index("ix_memberships_audience_value", "memberships", ["audience_id", "value"])
