"""initial state schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audiences",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("list_id", sa.BigInteger(), nullable=False),
        sa.Column("profile_field_id", sa.BigInteger(), nullable=True),
        sa.Column("source_description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audiences")),
        sa.UniqueConstraint("key", name=op.f("uq_audiences_key")),
    )
    op.create_table(
        "run_lock",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("holder_host", sa.String(length=255), nullable=False),
        sa.Column("holder_pid", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_run_lock")),
        sa.UniqueConstraint("token", name=op.f("uq_run_lock_token")),
    )
    op.create_table(
        "snapshot_members",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("audience_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
    )
    with op.batch_alter_table("snapshot_members", schema=None) as batch_op:
        batch_op.create_index(
            "ix_snapshot_members_run_audience_email",
            ["run_id", "audience_id", "email"],
            unique=False,
        )

    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("planned_count", sa.Integer(), nullable=False),
        sa.Column("confirmed_count", sa.Integer(), nullable=False),
        sa.Column("skipped_count", sa.Integer(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    op.create_table(
        "listrak_imports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("audience_id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.BigInteger(), nullable=False),
        sa.Column("field_id", sa.BigInteger(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("route", sa.String(length=30), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("first_email", sa.String(length=320), nullable=False),
        sa.Column("last_email", sa.String(length=320), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("byte_count", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("listrak_import_id", sa.String(length=64), nullable=True),
        sa.Column("listrak_status", sa.String(length=50), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["audience_id"], ["audiences.id"], name=op.f("fk_listrak_imports_audience_id_audiences")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name=op.f("fk_listrak_imports_run_id_sync_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listrak_imports")),
        sa.UniqueConstraint("file_name", name=op.f("uq_listrak_imports_file_name")),
    )
    op.create_table(
        "memberships",
        sa.Column("audience_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("value", sa.String(length=3), nullable=False),
        sa.Column("confirmed_run_id", sa.Integer(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_id"], ["audiences.id"], name=op.f("fk_memberships_audience_id_audiences")
        ),
        sa.PrimaryKeyConstraint("audience_id", "email", name=op.f("pk_memberships")),
    )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index(
            "ix_memberships_audience_value", ["audience_id", "value"], unique=False
        )

    op.create_table(
        "parked_contacts",
        sa.Column("audience_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=100), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_id"], ["audiences.id"], name=op.f("fk_parked_contacts_audience_id_audiences")
        ),
        sa.PrimaryKeyConstraint("audience_id", "email", name=op.f("pk_parked_contacts")),
    )
    op.create_table(
        "run_audiences",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("audience_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("source_description", sa.Text(), nullable=False),
        sa.Column("rows_read", sa.BigInteger(), nullable=False),
        sa.Column("invalid_count", sa.BigInteger(), nullable=False),
        sa.Column("invalid_reasons", sa.Text(), nullable=False),
        sa.Column("source_notes", sa.Text(), nullable=False),
        sa.Column("snapshot_count", sa.BigInteger(), nullable=False),
        sa.Column("confirmed_on_before", sa.BigInteger(), nullable=False),
        sa.Column("planned_on", sa.BigInteger(), nullable=False),
        sa.Column("planned_off", sa.BigInteger(), nullable=False),
        sa.Column("unchanged_count", sa.BigInteger(), nullable=False),
        sa.Column("parked_count", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["audience_id"], ["audiences.id"], name=op.f("fk_run_audiences_audience_id_audiences")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name=op.f("fk_run_audiences_run_id_sync_runs")
        ),
        sa.PrimaryKeyConstraint("run_id", "audience_id", name=op.f("pk_run_audiences")),
    )
    op.create_table(
        "import_results",
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("result", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["listrak_imports.id"],
            name=op.f("fk_import_results_import_id_listrak_imports"),
        ),
        sa.PrimaryKeyConstraint("import_id", "email", name=op.f("pk_import_results")),
    )
    op.create_table(
        "run_changes",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("audience_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["audience_id"], ["audiences.id"], name=op.f("fk_run_changes_audience_id_audiences")
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["listrak_imports.id"],
            name=op.f("fk_run_changes_import_id_listrak_imports"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.id"], name=op.f("fk_run_changes_run_id_sync_runs")
        ),
        sa.PrimaryKeyConstraint("run_id", "audience_id", "email", name=op.f("pk_run_changes")),
    )
    with op.batch_alter_table("run_changes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_run_changes_audience_email", ["audience_id", "email"], unique=False
        )
        batch_op.create_index("ix_run_changes_import_id", ["import_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("run_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_run_changes_import_id")
        batch_op.drop_index("ix_run_changes_audience_email")

    op.drop_table("run_changes")
    op.drop_table("import_results")
    op.drop_table("run_audiences")
    op.drop_table("parked_contacts")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_memberships_audience_value")

    op.drop_table("memberships")
    op.drop_table("listrak_imports")
    op.drop_table("sync_runs")
    with op.batch_alter_table("snapshot_members", schema=None) as batch_op:
        batch_op.drop_index("ix_snapshot_members_run_audience_email")

    op.drop_table("snapshot_members")
    op.drop_table("run_lock")
    op.drop_table("audiences")
