"""incremental state: memberships holds the desired value, snapshots become per-run deltas

``memberships`` becomes the state of record: ``desired`` (what the last acted-on snapshot said)
next to ``value`` (what Listrak confirmed, now nullable: a member not yet confirmed has a row
with desired 'on' and no value). Both are general text. ``snapshot_deltas`` holds each run's
changes of desired values; ``snapshot_members`` (every run's whole snapshot) is dropped after
its latest acted-on snapshot per audience is carried over as ``desired`` and as that run's
deltas. Confirmed state, parked skips, the ledger and history are kept.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The newest snapshot a run acted on, per audience (what `verify` compared with until 0005):
# not a dry run, the audience planned/submitted/done, and the run succeeded or the audience done.
LATEST_SNAPSHOTS = """
SELECT sm.audience_id, MAX(sm.run_id)
FROM snapshot_members sm
JOIN sync_runs r ON r.id = sm.run_id
JOIN run_audiences ra ON ra.run_id = sm.run_id AND ra.audience_id = sm.audience_id
WHERE r."trigger" != 'plan'
  AND ra.status IN ('planned', 'submitted', 'done')
  AND (r.status = 'succeeded' OR ra.status = 'done')
GROUP BY sm.audience_id
"""


def upgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.alter_column(
            "value", existing_type=sa.String(length=3), type_=sa.String(length=255), nullable=True
        )
        batch_op.alter_column("confirmed_run_id", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column(
            "confirmed_at", existing_type=sa.DateTime(timezone=True), nullable=True
        )
        batch_op.add_column(sa.Column("desired", sa.String(length=255), nullable=True))
    with op.batch_alter_table("audiences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("snapshot_run_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("run_audiences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("snapshot_fingerprint", sa.String(length=64), nullable=True))
    op.create_table(
        "snapshot_deltas",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("audience_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("desired", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "audience_id", "email", name=op.f("pk_snapshot_deltas")),
    )

    conn = op.get_bind()
    latest = conn.execute(sa.text(LATEST_SNAPSHOTS)).all()
    for audience_id, run_id in latest:
        params = {"a": int(audience_id), "r": int(run_id)}
        conn.execute(
            sa.text(
                "INSERT INTO snapshot_deltas (run_id, audience_id, email, desired) "
                "SELECT DISTINCT :r, :a, email, 'on' FROM snapshot_members "
                "WHERE run_id = :r AND audience_id = :a"
            ),
            params,
        )
        conn.execute(
            sa.text(
                "UPDATE memberships SET desired = 'on' WHERE audience_id = :a AND email IN "
                "(SELECT email FROM snapshot_deltas WHERE run_id = :r AND audience_id = :a)"
            ),
            params,
        )
        conn.execute(
            sa.text(
                "INSERT INTO memberships (audience_id, email, desired) "
                "SELECT :a, d.email, 'on' FROM snapshot_deltas d "
                "WHERE d.run_id = :r AND d.audience_id = :a AND NOT EXISTS "
                "(SELECT 1 FROM memberships m WHERE m.audience_id = :a AND m.email = d.email)"
            ),
            params,
        )
        conn.execute(
            sa.text("UPDATE audiences SET snapshot_run_id = :r WHERE id = :a"),
            params,
        )

    with op.batch_alter_table("snapshot_members", schema=None) as batch_op:
        batch_op.drop_index("ix_snapshot_members_run_audience_email")
    op.drop_table("snapshot_members")


def downgrade() -> None:
    """Best effort: the latest snapshot per audience comes back; members never confirmed lose
    their rows, and values longer than three characters would not fit."""
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
    conn = op.get_bind()
    conn.execute(
        sa.text(
            "INSERT INTO snapshot_members (run_id, audience_id, email) "
            "SELECT a.snapshot_run_id, m.audience_id, m.email FROM memberships m "
            "JOIN audiences a ON a.id = m.audience_id "
            "WHERE m.desired = 'on' AND a.snapshot_run_id IS NOT NULL"
        )
    )
    conn.execute(sa.text("DELETE FROM memberships WHERE value IS NULL"))
    op.drop_table("snapshot_deltas")
    with op.batch_alter_table("run_audiences", schema=None) as batch_op:
        batch_op.drop_column("snapshot_fingerprint")
    with op.batch_alter_table("audiences", schema=None) as batch_op:
        batch_op.drop_column("snapshot_run_id")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("desired")
        batch_op.alter_column(
            "confirmed_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )
        batch_op.alter_column("confirmed_run_id", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column(
            "value", existing_type=sa.String(length=255), type_=sa.String(length=3), nullable=False
        )
