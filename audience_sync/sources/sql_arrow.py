"""The sql source's Arrow path: PostgreSQL results read through ADBC.

The query is the same text the SQLAlchemy path runs. SQLAlchemy compiles its ``:name``
placeholders into PostgreSQL's positional form (``$1``...) and the values are bound by the
driver, never formatted into the SQL. The email column is cast to string in Arrow.

SQLite stays on the SQLAlchemy path: ADBC's SQLite driver links its own SQLite library, and two
SQLite libraries in one process that open the same file (a query against the state database,
say) release each other's POSIX locks; the planner saw that break the WAL ("disk I/O error").

Failures raise :class:`SourceError` worded as on the SQLAlchemy path: the audience, the masked
URL and the driver's first line with the credentials masked; the driver's exception is not
chained.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.engine.interfaces import BindTyping
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import TextClause

from audience_sync.errors import SourceError
from audience_sync.sources.base import rebatch

if TYPE_CHECKING:
    import pyarrow as pa
    from adbc_driver_manager.dbapi import Connection, Cursor

# ADBC prefixes the driver's message with a status, the library it comes from and the step.
_ADBC_PREFIXES = re.compile(
    r"^(?:[A-Z_]+: )?(?:\[\w+\] )?(?:Failed to (?:prepare|execute) query: )?"
)
# psycopg's wording of a failed connection, for the same message on both paths
_ADBC_CONNECT = "Failed to connect: "
_PSYCOPG_CONNECT = "connection failed: "


class AdbcTarget(NamedTuple):
    """Which ADBC driver reads a URL, and what it connects to."""

    backend: str  # "postgresql"
    target: str  # a libpq URI (with its password)


def adbc_target(url: URL) -> AdbcTarget | None:
    """The ADBC driver for ``url`` (interpolated) when there is one (PostgreSQL); else None."""
    if url.get_backend_name() == "postgresql":
        uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return AdbcTarget("postgresql", uri)
    return None


def adbc_available(backend: str) -> bool:
    """Whether the ADBC driver for ``backend`` imports (the SQLAlchemy path is used if not)."""
    try:
        import adbc_driver_postgresql.dbapi  # noqa: F401
    except ImportError:
        return False
    return True


def adbc_error_line(exc: BaseException) -> str:
    """The driver's own message, as the DB-API drivers word it: PostgreSQL's ``ERROR:`` line,
    else the first line without ADBC's status and library prefixes (never the query, which
    ADBC quotes)."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    for line in lines:
        _, marker, message = line.partition("ERROR:  ")
        if marker:
            return message.strip()
    message = _ADBC_PREFIXES.sub("", lines[0], count=1) or lines[0]
    if message.startswith(_ADBC_CONNECT):
        return _PSYCOPG_CONNECT + message.removeprefix(_ADBC_CONNECT)
    return message


def postgres_dialect() -> Dialect:
    """PostgreSQL with ``$1``... placeholders, without casts: ADBC types each value from its
    Arrow type (``str`` as ``text``, ``int`` as ``bigint``...), much as SQLAlchemy's psycopg
    dialect casts them (``::VARCHAR``, ``::INTEGER``...)."""
    # the dialect's constructor is unannotated
    dialect = postgresql.dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]
    dialect.bind_typing = BindTyping.NONE
    return dialect


def positional(statement: TextClause, dialect: Dialect) -> tuple[str, list[Any]]:
    """``statement`` in ``dialect``'s positional paramstyle, and its values in order.

    A placeholder without a value raises SQLAlchemy's error, as on execution.
    """
    compiled = statement.compile(dialect=dialect)
    values = compiled.construct_params()
    names = compiled.positiontup or []
    return str(compiled).rstrip().rstrip(";"), [values[name] for name in names]


class ArrowQuery:
    """Runs one query through ADBC and yields its email column as string arrays."""

    def __init__(
        self,
        target: AdbcTarget,
        statement: TextClause,
        email_column: str,
        *,
        failed: Callable[[str], SourceError],
        missing_column: Callable[[list[str]], SourceError],
    ) -> None:
        """``failed(cause)`` and ``missing_column(columns)`` word the errors."""
        self._target = target
        self._statement = statement
        self._email_column = email_column
        self._failed = failed
        self._missing_column = missing_column

    def arrays(self, chunk_size: int) -> Iterator[pa.Array]:
        """The email column, ``chunk_size`` values per array (the last may hold fewer)."""
        import adbc_driver_manager
        import pyarrow as pa

        try:
            with self._connect() as connection, connection.cursor() as cursor:
                yield from rebatch(self._postgresql(cursor), chunk_size)
        except SourceError:
            raise
        except SQLAlchemyError as exc:
            # a placeholder without a value, worded as SQLAlchemy words it on execution
            kind = f"{type(exc).__module__}.{type(exc).__name__}"
            raise self._failed(f"({kind}) {exc.args[0]}") from None
        except (adbc_driver_manager.Error, pa.ArrowException) as exc:
            raise self._failed(adbc_error_line(exc)) from None

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        import adbc_driver_postgresql.dbapi as driver

        connection = driver.connect(self._target.target)
        try:
            yield connection
        finally:
            connection.close()

    def _postgresql(self, cursor: Cursor) -> Iterator[pa.Array]:
        import pyarrow as pa

        sql, values = positional(self._statement, postgres_dialect())
        cursor.execute(sql, values or None)
        reader = cursor.fetch_record_batch()
        names = reader.schema.names
        if self._email_column not in names:
            raise self._missing_column(names)
        index = names.index(self._email_column)
        for batch in reader:
            yield batch.column(index).cast(pa.string())
