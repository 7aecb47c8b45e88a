"""run_changes: drop the ``(audience_id, email)`` index

Every planned change was also written into an index ordered by email across the whole ledger.
Inserting a run's changes there lands on random pages of an index that grows with every run:
200,000 changes of a 10M-member audience took 5.3 s with the index and 0.5 s without it, and on
PostgreSQL every status update of a change (not a HOT update, since ``import_id`` changes too)
added one more entry to it. The lookups it served are now made through the primary key
``(run_id, audience_id, email)``: settling an import probes its own run's changes, and one
contact's history probes each run and audience. An analyst's membership-as-of query reads the
audience's changes by scan and sort instead, off the sync's path.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_run_changes_audience_email", table_name="run_changes")


def downgrade() -> None:
    op.create_index("ix_run_changes_audience_email", "run_changes", ["audience_id", "email"])
