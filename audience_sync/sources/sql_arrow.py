"""The sql source's Arrow path: SQLite and PostgreSQL results read through ADBC.

The query is the same text the SQLAlchemy path runs. SQLAlchemy compiles its ``:name``
placeholders into the driver's positional form (``?`` for SQLite, ``$1``... for PostgreSQL) and
the values are bound by the driver, never formatted into the SQL.

ADBC's SQLite driver infers each column's Arrow type from the first rows and fails when a later
row holds another type (a SQLite column may hold any, and a run of nulls is read as integers).
The SQLite query is therefore wrapped so that the email column always comes back as text, with
its nulls in a second, integer column. PostgreSQL's email column is cast to string in Arrow.

Failures raise :class:`SourceError` worded as on the SQLAlchemy path: the audience, the masked
URL and the driver's first line with the credentials masked; the driver's exception is not
chained.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy.dialects import postgresql, sqlite
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
_SQLITE_TEXT = "email"
_SQLITE_NULL = "email_is_null"


class AdbcTarget(NamedTuple):
    """Which ADBC driver reads a URL, and what it connects to."""

    backend: str  # "sqlite" | "postgresql"
    target: str  # the SQLite file, or a libpq URI (with its password)


def adbc_target(url: URL) -> AdbcTarget | None:
    """The ADBC driver for ``url`` when there is one (a SQLite file, PostgreSQL); else None.

    ``url`` is interpolated and its SQLite path resolved. In-memory SQLite, ``file:`` URIs and
    SQLite URLs with options stay on the SQLAlchemy path.
    """
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database
        if not database or database == ":memory:" or database.startswith("file:") or url.query:
            return None
        return AdbcTarget("sqlite", database)
    if backend == "postgresql":
        uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return AdbcTarget("postgresql", uri)
    return None


def adbc_available(backend: str) -> bool:
    """Whether the ADBC driver for ``backend`` imports (the SQLAlchemy path is used if not)."""
    try:
        if backend == "sqlite":
            import adbc_driver_sqlite.dbapi  # noqa: F401
        else:
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
                if self._target.backend == "sqlite":
                    batches = self._sqlite(cursor)
                else:
                    batches = self._postgresql(cursor)
                yield from rebatch(batches, chunk_size)
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
        if self._target.backend == "sqlite":
            import adbc_driver_sqlite.dbapi as driver
        else:
            import adbc_driver_postgresql.dbapi as driver  # type: ignore[no-redef]
        connection = driver.connect(self._target.target)
        try:
            yield connection
        finally:
            connection.close()

    def _sqlite(self, cursor: Cursor) -> Iterator[pa.Array]:
        import adbc_driver_manager
        import pyarrow as pa
        import pyarrow.compute as pc

        sql, values = positional(self._statement, sqlite.dialect())
        column = sqlite.dialect().identifier_preparer.quote(self._email_column)
        wrapped = (
            f"select coalesce(cast({column} as text), '') as {_SQLITE_TEXT},"
            f" {column} is null as {_SQLITE_NULL} from (\n{sql}\n)"
        )
        try:
            cursor.execute(wrapped, values or None)
        except adbc_driver_manager.Error:
            # the wrapper's own failure when the query has no such column: say so, with the
            # query's columns; any other failure is the query's
            cursor.execute(sql, values or None)
            names = cursor.fetch_record_batch().schema.names
            if self._email_column not in names:
                raise self._missing_column(names) from None
            raise
        for batch in cursor.fetch_record_batch():
            is_null = batch.column(_SQLITE_NULL).cast(pa.bool_())
            yield pc.if_else(is_null, pa.scalar(None, pa.string()), batch.column(_SQLITE_TEXT))

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
