"""Schema management through Alembic: upgrade, current revision, and the up-to-date check.

With a state schema (``[state] schema``), the migrations create it if missing and keep their
tables and ``alembic_version`` in it; without one, everything stays where it always was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from audience_sync.errors import StateError
from audience_sync.state.schema import engine_schema, quoted

MIGRATIONS_PACKAGE = "audience_sync.migrations"


def migrations_dir() -> Path:
    """The installed migrations (the top-level ``migrations/`` folder, mapped into the package
    by pyproject.toml); Alembic reads them from the file system."""
    location = Path(str(resources.files(MIGRATIONS_PACKAGE)))
    if not (location / "env.py").is_file():  # pragma: no cover - only in a broken install
        raise StateError(f"the Alembic migrations are missing from {location}")
    return location


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config built in code (no alembic.ini): the script location is the package."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if engine is not None:
        config.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table_schema": engine_schema(engine)}
        )
        return context.get_current_revision()


def state_elsewhere(engine: Engine) -> list[str]:
    """Other PostgreSQL schemas of this database that hold state tables (the ledger): where an
    installation lived before ``[state] schema`` was set or changed."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT table_schema FROM information_schema.tables "
                "WHERE table_name = 'run_changes' "
                "AND table_schema <> coalesce(:schema, current_schema()) "
                "ORDER BY table_schema"
            ),
            {"schema": engine_schema(engine)},
        )
        return [str(row[0]) for row in rows]


def upgrade(engine: Engine, revision: str = "head") -> None:
    _migrate(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str) -> None:
    _migrate(engine, lambda config: command.downgrade(config, revision))


def _migrate(engine: Engine, step: Callable[[Config], None]) -> None:
    config = alembic_config(engine)
    schema = engine_schema(engine)
    with engine.connect() as conn, _sqlite_foreign_keys_off(conn), conn.begin():
        if schema is not None:
            _create_schema(conn, schema)
        config.attributes["connection"] = conn
        config.attributes["version_table_schema"] = schema
        step(config)
        _check_foreign_keys(conn)


def _create_schema(conn: Connection, schema: str) -> None:
    """Create the state schema if missing. A schema that exists is left alone: PostgreSQL checks
    CREATE on the database even for ``CREATE SCHEMA IF NOT EXISTS``, and a job's role may only
    own a schema an administrator created."""
    exists = conn.execute(
        text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": schema}
    ).first()
    if exists is None:
        conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted(schema)}")


@contextmanager
def _sqlite_foreign_keys_off(conn: Connection) -> Iterator[None]:
    """SQLite changes a table's constraints by recreating it (Alembic's batch mode), and with
    foreign keys on, dropping a table other rows refer to fails. The pragma is ignored inside a
    transaction, so it is switched around the whole migration, which checks the keys before it
    commits (SQLite's own procedure for schema changes)."""
    if conn.dialect.name != "sqlite":
        yield
        return
    conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
    conn.commit()
    try:
        yield
    finally:
        conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        conn.commit()


def _check_foreign_keys(conn: Connection) -> None:
    if conn.dialect.name != "sqlite":
        return
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = ", ".join(sorted({str(row[0]) for row in broken}))
        raise StateError(
            f"the migration left {len(broken)} row(s) referring to missing rows in: {tables}; "
            "nothing was changed"
        )


def ensure_current(engine: Engine) -> None:
    """Refuse to work on a database whose schema is not at the newest migration."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        found = "an empty database" if current is None else f"revision {current}"
        raise StateError(
            f"the state database schema is out of date ({found}, expected {head}); "
            f"run `audience-sync db upgrade`{_moved_hint(engine) if current is None else ''}"
        )


def _moved_hint(engine: Engine) -> str:
    others = state_elsewhere(engine)
    if not others:
        return ""
    return (
        f" (state tables exist in schema {', '.join(others)}: changing [state] schema does not "
        "move them, and an upgrade here starts an empty installation)"
    )
