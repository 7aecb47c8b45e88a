"""computed traits: audiences get a kind, changes carry the value to send

A computed trait is a unit of work like an audience: its own ``audiences`` row (``kind =
'trait'``), its confirmed values in ``memberships.value`` (general text since 0006), its
changes in ``run_changes`` with action ``set`` (``value`` holds the formatted value to send)
or ``clear`` (blank the field). ``parked_contacts.action`` takes the same actions. Audience
rows and changes are unchanged (``kind = 'audience'``, ``value`` NULL). ``listrak_values``
(the read-back staging table, replaced by every read) holds values up to 255 characters, as
``memberships.value`` does, so ``verify`` can compare trait values.

The allowed actions are frozen here as they were when this revision was written (see 0004).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ACTIONS = ("on", "off")
NEW_ACTIONS = ("on", "off", "set", "clear")
KINDS = ("audience", "trait")


def _condition(column: str, values: tuple[str, ...]) -> str:
    allowed = ", ".join(f"'{value}'" for value in values)
    return f'"{column}" IN ({allowed})'


def upgrade() -> None:
    with op.batch_alter_table("audiences", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=10), nullable=False, server_default="audience")
        )
        batch_op.create_check_constraint(op.f("ck_audiences_kind"), _condition("kind", KINDS))
    for table in ("parked_contacts", "run_changes"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_action"), type_="check")
            batch_op.alter_column(
                "action", existing_type=sa.String(length=3), type_=sa.String(length=5)
            )
            batch_op.create_check_constraint(
                op.f(f"ck_{table}_action"), _condition("action", NEW_ACTIONS)
            )
            if table == "run_changes":
                batch_op.add_column(sa.Column("value", sa.String(length=255), nullable=True))

    with op.batch_alter_table("listrak_values", schema=None) as batch_op:
        batch_op.alter_column(
            "value", existing_type=sa.String(length=50), type_=sa.String(length=255)
        )


def downgrade() -> None:
    # Trait changes and parked trait skips cannot be expressed before this revision; the
    # read-back is staging only (the next read replaces it).
    conn = op.get_bind()
    conn.execute(sa.text("DELETE FROM listrak_values"))
    with op.batch_alter_table("listrak_values", schema=None) as batch_op:
        batch_op.alter_column(
            "value", existing_type=sa.String(length=255), type_=sa.String(length=50)
        )
    for table in ("run_changes", "parked_contacts"):
        conn.execute(sa.text(f"DELETE FROM {table} WHERE action IN ('set', 'clear')"))
    for table in ("run_changes", "parked_contacts"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            if table == "run_changes":
                batch_op.drop_column("value")
            batch_op.drop_constraint(op.f(f"ck_{table}_action"), type_="check")
            batch_op.alter_column(
                "action", existing_type=sa.String(length=5), type_=sa.String(length=3)
            )
            batch_op.create_check_constraint(
                op.f(f"ck_{table}_action"), _condition("action", OLD_ACTIONS)
            )
    with op.batch_alter_table("audiences", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_audiences_kind"), type_="check")
        batch_op.drop_column("kind")
