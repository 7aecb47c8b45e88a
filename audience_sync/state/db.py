"""Engines for the state database, and the clock the ledger writes.

Database failures leave an engine made here as a :class:`~audience_sync.errors.StateError` with
a one-line message naming the database and the cause, never the SQL or its parameters
(see :mod:`audience_sync.state.db_errors`). Integrity errors pass through unchanged: the run
lock relies on them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Insert, Table, create_engine, event, insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, ExceptionContext, make_url

from audience_sync.errors import ConfigError, MissingStateError
from audience_sync.state import schema as state_schema
from audience_sync.state.db_errors import describe_url, state_error_for


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands timestamps back without a zone; they were written in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def make_engine(url: str, *, schema: str | None = None, **kwargs: Any) -> Engine:
    """An engine for the state database; ``schema`` (PostgreSQL only) is where its tables live,
    first on every session's search path (:mod:`audience_sync.state.schema`)."""
    if schema is not None:
        kwargs = _in_schema(url, schema, kwargs)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        # A ``?timeout=SECONDS`` in the URL sets the busy timeout; otherwise wait 30 s for a lock.
        if "timeout" not in engine.url.query:
            event.listen(engine, "connect", _sqlite_busy_timeout)
        event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "handle_error", _raise_state_error)
    return engine


def _in_schema(url: str, schema: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError(
            f"[state] schema applies only to PostgreSQL; {parsed.get_backend_name()} has no schemas"
        )
    return {
        **kwargs,
        "connect_args": state_schema.state_connect_args(
            parsed, schema, kwargs.get("connect_args", {})
        ),
        "execution_options": {
            **kwargs.get("execution_options", {}),
            state_schema.ENGINE_OPTION: schema,
        },
    }


def existing_engine(url: str, *, schema: str | None = None, **kwargs: Any) -> Engine:
    """An engine for a database that must already exist: a missing SQLite file is an error,
    not a new empty database."""
    parsed = make_url(url)
    database = parsed.database
    if (
        parsed.get_backend_name() == "sqlite"
        and database
        and database != ":memory:"
        and not database.startswith("file:")
        and not Path(database).is_file()
    ):
        raise MissingStateError(
            f"state database {describe_url(parsed)}: no such file "
            "(`audience-sync db upgrade` creates it; check [state] url)"
        )
    return make_engine(url, schema=schema, **kwargs)


def _raise_state_error(context: ExceptionContext) -> None:
    error = state_error_for(context.engine, context.sqlalchemy_exception)
    if error is not None:
        raise error from None


def _sqlite_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def insert_ignoring_duplicates(conn: Connection, table: Table) -> Insert:
    """An INSERT that skips rows whose primary key already exists (SQLite and PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return insert(table)


def analyze(conn: Connection, table_name: str) -> None:
    """Refresh planner statistics after a bulk load, so set-based statements use the indexes."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f'ANALYZE "{table_name}"'))
