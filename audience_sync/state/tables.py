"""The state schema, defined once as SQLAlchemy Core metadata (Alembic's ``target_metadata``).

Tables are created only by the Alembic migrations in ``migrations/``. Every status, trigger and
action column has a CHECK constraint built from its enum in :mod:`.statuses`.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from audience_sync.state.statuses import (
    AudienceKind,
    AudienceStatus,
    ChangeAction,
    ChangeStatus,
    ImportStatus,
    RunStatus,
    RunTrigger,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

EMAIL_LENGTH = 320
VALUE_LENGTH = 255
TS = DateTime(timezone=True)


def one_of(column: str, values: type[StrEnum]) -> CheckConstraint:
    """``column`` holds one of the enum's values; named ``ck_<table>_<column>``."""
    allowed = ", ".join(f"'{value.value}'" for value in values)
    return CheckConstraint(f'"{column}" IN ({allowed})', name=column)


def any_of(column: str, values: type[StrEnum]) -> CheckConstraint:
    """:func:`one_of` as ``=`` comparisons joined by OR, for tables written millions of rows
    at a time: SQLite evaluates ``IN (...)`` by building a temporary table for every row
    written (migration 0008)."""
    condition = " OR ".join(f"\"{column}\" = '{value.value}'" for value in values)
    return CheckConstraint(condition, name=column)


audiences = Table(
    "audiences",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(100), nullable=False, unique=True),
    Column("list_id", BigInteger, nullable=False),
    Column("profile_field_id", BigInteger, nullable=True),
    Column("source_description", Text, nullable=False, default=""),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    # The run whose snapshot ``memberships.desired`` holds (the one ``verify`` compares with).
    Column("snapshot_run_id", Integer, nullable=True),
    Column("kind", String(10), nullable=False, server_default=AudienceKind.AUDIENCE.value),
    one_of("kind", AudienceKind),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trigger", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS, nullable=True),
    Column("host", String(255), nullable=False, default=""),
    Column("pid", Integer, nullable=False, default=0),
    Column("planned_count", Integer, nullable=False, default=0),
    Column("confirmed_count", Integer, nullable=False, default=0),
    Column("skipped_count", Integer, nullable=False, default=0),
    Column("failed_count", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
    one_of("trigger", RunTrigger),
    one_of("status", RunStatus),
)

run_audiences = Table(
    "run_audiences",
    metadata,
    Column("run_id", Integer, ForeignKey("sync_runs.id"), primary_key=True),
    Column("audience_id", Integer, ForeignKey("audiences.id"), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("source_description", Text, nullable=False, default=""),
    Column("rows_read", BigInteger, nullable=False, default=0),
    Column("invalid_count", BigInteger, nullable=False, default=0),
    Column("invalid_reasons", Text, nullable=False, default="{}"),
    Column("source_notes", Text, nullable=False, default="{}"),
    Column("snapshot_count", BigInteger, nullable=False, default=0),
    # Order-independent hash of the distinct snapshot (hex), for audit.
    Column("snapshot_fingerprint", String(64), nullable=True),
    Column("confirmed_on_before", BigInteger, nullable=False, default=0),
    Column("planned_on", BigInteger, nullable=False, default=0),
    Column("planned_off", BigInteger, nullable=False, default=0),
    Column("unchanged_count", BigInteger, nullable=False, default=0),
    Column("parked_count", BigInteger, nullable=False, default=0),
    Column("error", Text, nullable=True),
    # The plan's deltas are its planned ``on`` changes (nothing was desired before), which
    # ``snapshot_deltas`` shows as its deltas; nothing was copied to ``recorded_deltas``.
    Column("deltas_are_changes", Boolean, nullable=False, server_default=false()),
    one_of("status", AudienceStatus),
)

# The state of record, one row per (audience, contact): ``desired`` is what the last acted-on
# snapshot said ('on' for its members; 'off' or NULL for others), ``value`` what Listrak last
# confirmed (NULL until it has). Values are general text so other field types can diff the same way.
# No foreign key (migration 0010): its writers check the audience once per statement
# (:mod:`.parents`) instead of the database once per row.
memberships = Table(
    "memberships",
    metadata,
    Column("audience_id", Integer, primary_key=True),
    Column("email", String(EMAIL_LENGTH), primary_key=True),
    Column("value", String(VALUE_LENGTH), nullable=True),
    Column("confirmed_run_id", Integer, nullable=True),
    Column("confirmed_at", TS, nullable=True),
    Column("desired", String(VALUE_LENGTH), nullable=True),
    Index("ix_memberships_audience_value", "audience_id", "value"),
    postgresql_with={"fillfactor": 45},
    # Stored in primary-key order: a plan reads an audience's rows as one range (0013).
    sqlite_with_rowid=False,
)

# Per run and audience, how its snapshot's desired values differ from the previous acted-on
# snapshot's, as the plan wrote them; a run with ``run_audiences.deltas_are_changes`` has none
# here (its deltas are its planned ``on`` changes). Read them through ``snapshot_deltas``.
recorded_deltas = Table(
    "recorded_deltas",
    metadata,
    Column("run_id", Integer, primary_key=True),
    Column("audience_id", Integer, primary_key=True),
    Column("email", String(EMAIL_LENGTH), primary_key=True),
    Column("desired", String(VALUE_LENGTH), nullable=True),
)

# The view (migration 0012) of every run's deltas: ``recorded_deltas`` and, for runs with
# ``deltas_are_changes``, their planned ``on`` changes. Applied to ``memberships.desired`` when
# the audience finishes ``done``; replaying the deltas of the runs whose audience finished
# ``done`` gives the snapshot at any past run. Not in ``metadata``: the migration creates it.
snapshot_deltas = Table(
    "snapshot_deltas",
    MetaData(),
    Column("run_id", Integer),
    Column("audience_id", Integer),
    Column("email", String(EMAIL_LENGTH)),
    Column("desired", String(VALUE_LENGTH)),
)

# Contacts Listrak skipped for a reason about the contact itself; not re-sent until their
# desired value changes, a full sync, or retry_skipped_after has passed.
parked_contacts = Table(
    "parked_contacts",
    metadata,
    Column("audience_id", Integer, ForeignKey("audiences.id"), primary_key=True),
    Column("email", String(EMAIL_LENGTH), primary_key=True),
    Column("action", String(5), nullable=False),
    Column("reason", String(100), nullable=False),
    Column("run_id", Integer, nullable=False),
    Column("parked_at", TS, nullable=False),
    one_of("action", ChangeAction),
)

listrak_imports = Table(
    "listrak_imports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("sync_runs.id"), nullable=False),
    Column("audience_id", Integer, ForeignKey("audiences.id"), nullable=False),
    Column("list_id", BigInteger, nullable=False),
    Column("field_id", BigInteger, nullable=False),
    Column("part", Integer, nullable=False),
    Column("route", String(30), nullable=False),  # list_import | segmentation_field_api
    Column("file_name", String(255), nullable=False, unique=True),
    Column("first_email", String(EMAIL_LENGTH), nullable=False),
    Column("last_email", String(EMAIL_LENGTH), nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("byte_count", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),
    Column("listrak_import_id", String(64), nullable=True),
    Column("listrak_status", String(50), nullable=True),
    Column("summary", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("submitted_at", TS, nullable=True),
    Column("finished_at", TS, nullable=True),
    # The run that resolved an import left open by an earlier run (lost, abandoned or settled).
    Column("resolved_run_id", Integer, nullable=True),
    # Its Listrak id came from a look-up by file name, not from the POST's answer.
    Column("found_by_name", Boolean, nullable=False, default=False),
    one_of("status", ImportStatus),
)

# No foreign keys (migration 0010): its writers check the run, audience and import once per
# statement or batch (:mod:`.parents`) instead of the database once per row.
run_changes = Table(
    "run_changes",
    metadata,
    Column("run_id", Integer, primary_key=True),
    Column("audience_id", Integer, primary_key=True),
    Column("email", String(EMAIL_LENGTH), primary_key=True),
    Column("action", String(5), nullable=False),
    Column("status", String(20), nullable=False),
    Column("reason", String(200), nullable=True),
    Column("import_id", Integer, nullable=True),
    # A trait's ``set``: the formatted value to send (NULL for audiences and ``clear``).
    Column("value", String(VALUE_LENGTH), nullable=True),
    any_of("action", ChangeAction),
    any_of("status", ChangeStatus),
    # Room on each page for a row's updated version: its updates (submitted, settled) are
    # heap-only, writing no index entry (migration 0011). An import's changes are found
    # through the primary key with the import's email range (``changes.of_import``).
    postgresql_with={"fillfactor": 45},
)

# Per-contact answers read back from Listrak, staged so confirmation is one set-based statement.
# No foreign key (migration 0010): :func:`.confirm.stage_results` checks the import once.
import_results = Table(
    "import_results",
    metadata,
    Column("import_id", Integer, primary_key=True),
    Column("email", String(EMAIL_LENGTH), primary_key=True),
    Column("result", String(100), nullable=False),
)

run_lock = Table(
    "run_lock",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("run_id", Integer, nullable=True),
    Column("holder_host", String(255), nullable=False),
    Column("holder_pid", Integer, nullable=False),
    Column("token", String(64), nullable=False),
    Column("acquired_at", TS, nullable=False),
    Column("heartbeat_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    UniqueConstraint("token"),
)

# Listrak's actual field values, read back by `verify` and `run --reconcile` while the run lock is
# held; every read replaces the previous one. One row per (audience, subscribed contact); an empty
# value means the contact has none.
listrak_values = Table(
    "listrak_values",
    metadata,
    Column("audience_id", Integer, nullable=False),
    Column("email", String(EMAIL_LENGTH), nullable=False),
    Column("value", String(VALUE_LENGTH), nullable=False),
    Index("ix_listrak_values_audience_email", "audience_id", "email"),
)

# One row: this state database's id, made at `db upgrade`, part of every import file name so
# names never repeat across recreated databases or deployments sharing one Listrak account.
installation = Table(
    "installation",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("created_at", TS, nullable=False),
)

# What the running `audience-sync schedule` process has planned next (read by `status`).
scheduler_state = Table(
    "scheduler_state",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("schedule", String(200), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("next_run_at", TS, nullable=True),
    Column("updated_at", TS, nullable=False),
)

# How long each step of a run took (written after the run when [metrics] is configured).
run_steps = Table(
    "run_steps",
    metadata,
    Column("run_id", Integer, ForeignKey("sync_runs.id"), primary_key=True),
    Column("step", String(30), primary_key=True),
    Column("seconds", Float, nullable=False),
)

# What `verify` (or `verify --repair`) measured per audience, when alerts or metrics are on.
verify_checks = Table(
    "verify_checks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("checked_at", TS, nullable=False),
    Column("audience", String(100), nullable=False),
    Column("drift", BigInteger, nullable=False),
    Index("ix_verify_checks_audience_checked_at", "audience", "checked_at"),
)

# Every alert sent (or not): the receiver is named by scheme and host only, never its path.
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", TS, nullable=False),
    Column("run_id", Integer, nullable=True),
    Column("events", String(200), nullable=False),
    Column("receiver", String(255), nullable=False),
    Column("status", String(20), nullable=False),  # delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=True),
)
