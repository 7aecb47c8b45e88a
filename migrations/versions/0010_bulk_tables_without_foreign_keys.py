"""run_changes, memberships, import_results: no foreign keys; writers check parents once per batch

Each foreign key fires a row-level trigger on PostgreSQL for every row written, and a lookup of
the parent on SQLite. A first run writes a row per member into these tables, several times: its
planned changes (``run_changes``: run, audience and import keys), ``import_id`` set on every
change when a part is submitted, every confirmed contact into ``memberships`` (audience key),
and, when an import's summary reports any rejection, every contact's answer of that import into
``import_results`` (import key). Measured at 1M rows on PostgreSQL: COPY of the planned changes
12.4 s with the three keys, 2.6 s without; the UPDATE setting ``import_id`` 12.4 s and 8.5 s;
staging 1M results 24.8 s with the key, 19.8 s without. ``snapshot_deltas`` has had no foreign
keys since 0006 for the same reason. ``parked_contacts`` keeps its key: only the contacts
Listrak skipped are written there.

What the database no longer checks: that a row of ``run_changes`` names a run (``sync_runs``),
an audience (``audiences``) and, once submitted, an import (``listrak_imports``) that exist;
that a row of ``memberships`` names an existing audience; that a row of ``import_results``
names an existing import. What the application checks instead
(``audience_sync.state.parents``): every writer of these rows names one run, one audience and
at most one import per statement or batch, and looks them up first, one primary-key probe
each, refusing the write with a one-line ``StateError`` before writing anything when one is
missing. Submitting also requires the import to be one of that run's imports for that audience,
which the key never checked. Nothing in the job deletes a run, an audience or an import, so no
later delete orphans these rows either. A row written by hand is no longer refused.

On SQLite the three tables are recreated (Alembic's batch mode, as in 0008), keeping every row,
the primary keys, the CHECK constraints of ``run_changes`` (0008's ``=`` comparisons) and the
indexes; the copy takes time in proportion to the ledger. On PostgreSQL the constraints
are dropped in place. The downgrade adds the keys back; it fails, changing nothing, if a row
was written meanwhile whose parent does not exist.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> (column, referred table) of each foreign key, every one referring to ``id``.
FOREIGN_KEYS = {
    "run_changes": (
        ("run_id", "sync_runs"),
        ("audience_id", "audiences"),
        ("import_id", "listrak_imports"),
    ),
    "memberships": (("audience_id", "audiences"),),
    "import_results": (("import_id", "listrak_imports"),),
}


def _name(table: str, column: str, referred: str) -> str:
    return f"fk_{table}_{column}_{referred}"


def upgrade() -> None:
    for table, keys in FOREIGN_KEYS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, referred in keys:
                batch_op.drop_constraint(op.f(_name(table, column, referred)), type_="foreignkey")


def downgrade() -> None:
    for table, keys in FOREIGN_KEYS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, referred in keys:
                batch_op.create_foreign_key(
                    op.f(_name(table, column, referred)), referred, [column], ["id"]
                )
