"""Reading sets from the state database into DuckDB tables, as Arrow; :func:`read_query` hands
the same reads out as a record batch reader (the planned changes read back for submission).

PostgreSQL is read through its ADBC driver (columnar, binary COPY, no Python object per row);
a load started by :func:`start_load` runs on a thread of its own meanwhile. From a SQLite
file, a keyed load (an audience's state: emails and flags) is read on a thread too, packed by
SQLite into one text per column and chunk (:mod:`audience_sync.plan.sqlite_packed`). Other
reads of a SQLite file go through the ADBC SQLite driver when the query returns at least
``PROCESS_MIN_ROWS`` rows, but in a child process (:mod:`audience_sync.plan.sqlite_child`)
that writes Arrow IPC to a file in the planner's spill directory: the driver links its own
copy of SQLite, and two copies of SQLite in one process break each other's POSIX locks on the
same file (closing the ADBC connection dropped the WAL the application's connection still
used: "disk I/O error"), while another process is an ordinary second reader. Fewer rows are
read through the application's own ``sqlite3`` driver, in batches of rows turned into Arrow
arrays, which costs less than starting the child. Any other database is read through
SQLAlchemy in streamed batches. Parameters are always bound.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb
import pyarrow as pa
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.sql.elements import TextClause

from audience_sync.errors import StateError
from audience_sync.plan.sqlite_packed import packed_batches
from audience_sync.plan.sqlite_process import SqliteProcessRead
from audience_sync.state.db_errors import describe_url
from audience_sync.state.schema import engine_schema, libpq_options

BATCH_ROWS = 100_000
# Below this many rows the in-process sqlite3 read is done before the child has started.
PROCESS_MIN_ROWS = 500_000


def load_query(
    engine: Engine,
    duck: duckdb.DuckDBPyConnection,
    table: str,
    sql: str | TextClause,
    params: Mapping[str, Any],
    schema: pa.Schema,
    *,
    columnar: bool = True,
    workdir: Path | None = None,
    keyed: bool = False,
) -> None:
    """Create DuckDB table ``table`` holding the rows ``sql`` selects (``:name`` parameters,
    each used once). ``columnar=False`` reads through SQLAlchemy, which binds any Python type
    (timestamps) the way the rest of the application writes it; ``workdir`` and ``keyed`` as
    :func:`start_load` takes them."""
    pending = start_load(
        engine, duck, table, sql, params, schema, columnar=columnar, workdir=workdir, keyed=keyed
    )
    try:
        pending.finish()
    finally:
        pending.close()


class PendingLoad:
    """A :func:`load_query` begun by :func:`start_load`: :meth:`finish` creates the table,
    :meth:`close` (always, also after ``finish``) ends a child process still reading."""

    def __init__(
        self, finish: Callable[[], None], close: Callable[[], None] = lambda: None
    ) -> None:
        self.finish = finish
        self.close = close


def start_load(
    engine: Engine,
    duck: duckdb.DuckDBPyConnection,
    table: str,
    sql: str | TextClause,
    params: Mapping[str, Any],
    schema: pa.Schema,
    *,
    columnar: bool = True,
    workdir: Path | None = None,
    keyed: bool = False,
) -> PendingLoad:
    """:func:`load_query` in two steps. A PostgreSQL read runs on a thread while the caller
    goes on. From a SQLite file, a ``keyed`` query (its first column a key as
    :mod:`audience_sync.plan.sqlite_packed` describes, the others digits) is read packed on a
    thread too; otherwise ``PROCESS_MIN_ROWS`` rows or more are read by a child process into a
    file in ``workdir`` (a temporary directory if None) meanwhile. Anything else is read when
    the load finishes."""
    if columnar and isinstance(sql, str):
        backend = engine.url.get_backend_name()
        if backend == "postgresql":
            return _thread_load(
                duck,
                table,
                schema,
                lambda cursor: _fill(engine, cursor, table, sql, params, schema, columnar=True),
            )
        path = _sqlite_file(engine.url) if keyed and backend == "sqlite" else None
        if path is not None:
            return _thread_load(
                duck,
                table,
                schema,
                lambda cursor: _fill_packed(engine, path, cursor, table, sql, params, schema),
            )
    read = (
        _child_process_read(engine, sql, params, schema, workdir)
        if columnar and isinstance(sql, str)
        else None
    )
    if read is None:
        return PendingLoad(lambda: _load_now(engine, duck, table, sql, params, schema, columnar))

    def finish() -> None:
        duck.execute(f'CREATE TABLE "{table}" ({_ddl(schema)})')
        _insert_from(duck, table, read.reader(), schema)

    return PendingLoad(finish, read.close)


@contextmanager
def read_query(
    engine: Engine,
    sql: str,
    params: Mapping[str, Any],
    schema: pa.Schema,
    *,
    workdir: Path | None = None,
) -> Iterator[pa.RecordBatchReader]:
    """The rows ``sql`` selects (``:name`` parameters, each used once), in its order, as a
    reader of ``schema``'s columns, closed on leaving the block. Read as :func:`load_query`
    reads: ADBC on PostgreSQL; from a SQLite file, ``PROCESS_MIN_ROWS`` rows or more by the
    child process (into a file in ``workdir``, a temporary directory if None), fewer by the
    application's ``sqlite3``; SQLAlchemy elsewhere. A failure of the read, also while the
    rows are iterated, is one :class:`StateError` line naming the database."""
    failed = _read_failed(engine)
    read = _child_process_read(engine, sql, params, schema, workdir)
    if read is not None:
        try:
            yield _guarded(read.reader(), schema, failed)
        finally:
            read.close()
        return
    opened = _columnar_reader(engine, sql, params, schema)
    if opened is None:
        yield _guarded(
            pa.RecordBatchReader.from_batches(
                schema, _sqlalchemy_batches(engine, sql, params, schema)
            ),
            schema,
            failed,
        )
        return
    reader, close = opened
    try:
        yield _guarded(reader, schema, failed)
    finally:
        close()


def _child_process_read(
    engine: Engine,
    sql: str,
    params: Mapping[str, Any],
    schema: pa.Schema,
    workdir: Path | None,
) -> SqliteProcessRead | None:
    """The child process reading ``sql`` from a SQLite file, started, when the query returns
    ``PROCESS_MIN_ROWS`` rows or more; None for fewer rows or any other database."""
    url = engine.url
    path = _sqlite_file(url) if url.get_backend_name() == "sqlite" else None
    if path is None:
        return None
    positional, values = _qmark(sql, params)
    try:
        many = _has_rows(engine, positional, values, PROCESS_MIN_ROWS)
    except sqlite3.Error:
        raise StateError(_read_failed(engine)) from None
    if not many:
        return None
    return SqliteProcessRead(
        path, positional, values, schema.names, workdir=workdir, database=describe_url(url)
    )


def _read_failed(engine: Engine) -> str:
    return f"state database {describe_url(engine.url)}: reading state failed"


def _guarded(reader: pa.RecordBatchReader, schema: pa.Schema, failed: str) -> pa.RecordBatchReader:
    """``reader``'s batches as ``schema`` (same columns, the driver's types cast); a driver
    error while reading becomes the one line ``failed``, without the driver's message."""

    def batches() -> Iterator[pa.RecordBatch]:
        source = iter(reader)
        while True:
            try:
                batch = next(source)
            except StopIteration:
                return
            except Exception:
                raise StateError(failed) from None
            if batch.schema != schema:
                batch = pa.RecordBatch.from_arrays(
                    [
                        column.cast(field.type)
                        for column, field in zip(batch.columns, schema, strict=True)
                    ],
                    schema=schema,
                )
            yield batch

    return pa.RecordBatchReader.from_batches(schema, batches())


def _thread_load(
    duck: duckdb.DuckDBPyConnection,
    table: str,
    schema: pa.Schema,
    fill: Callable[[duckdb.DuckDBPyConnection], None],
) -> PendingLoad:
    """``fill`` of the new table on a thread of its own, through a second connection to the
    same DuckDB database: the driver streams the rows and DuckDB inserts them while the caller
    reads its snapshot, both mostly outside the GIL."""
    duck.execute(f'CREATE TABLE "{table}" ({_ddl(schema)})')
    cursor = duck.cursor()
    failures: list[BaseException] = []

    def load() -> None:
        try:
            fill(cursor)
        except BaseException as exc:  # handed to the caller by finish()
            failures.append(exc)

    thread = threading.Thread(target=load, name=f"state-load-{table}", daemon=True)
    thread.start()

    def finish() -> None:
        thread.join()
        if failures:
            raise failures[0]

    def close() -> None:
        thread.join()
        cursor.close()

    return PendingLoad(finish, close)


def _load_now(
    engine: Engine,
    duck: duckdb.DuckDBPyConnection,
    table: str,
    sql: str | TextClause,
    params: Mapping[str, Any],
    schema: pa.Schema,
    columnar: bool,
) -> None:
    duck.execute(f'CREATE TABLE "{table}" ({_ddl(schema)})')
    _fill(engine, duck, table, sql, params, schema, columnar=columnar)


def _fill(
    engine: Engine,
    duck: duckdb.DuckDBPyConnection,
    table: str,
    sql: str | TextClause,
    params: Mapping[str, Any],
    schema: pa.Schema,
    *,
    columnar: bool,
) -> None:
    opened = (
        _columnar_reader(engine, sql, params, schema) if columnar and isinstance(sql, str) else None
    )
    if opened is None:
        batches = _sqlalchemy_batches(engine, sql, params, schema)
        _insert_from(duck, table, pa.RecordBatchReader.from_batches(schema, batches), schema)
        return
    reader, close = opened
    try:
        _insert_from(duck, table, reader, schema)
    except Exception:
        # The driver's message is not passed on: one line naming the database, no SQL.
        raise StateError(_read_failed(engine)) from None
    finally:
        close()


def _fill_packed(
    engine: Engine,
    path: Path,
    duck: duckdb.DuckDBPyConnection,
    table: str,
    sql: str,
    params: Mapping[str, Any],
    schema: pa.Schema,
) -> None:
    batches = packed_batches(path, *_qmark(sql, params), schema)
    try:
        _insert_from(duck, table, pa.RecordBatchReader.from_batches(schema, batches), schema)
    except Exception:
        # Neither SQLite's message nor the packed text is passed on: one line, no SQL.
        raise StateError(_read_failed(engine)) from None


def _insert_from(
    duck: duckdb.DuckDBPyConnection, table: str, reader: pa.RecordBatchReader, schema: pa.Schema
) -> None:
    source = f"arrow_{table}"  # a load on another thread may be registering its own
    duck.register(source, reader)
    try:
        duck.execute(f'INSERT INTO "{table}" SELECT {_casts(schema)} FROM "{source}"')
    finally:
        duck.unregister(source)


def _ddl(schema: pa.Schema) -> str:
    return ", ".join(f'"{f.name}" {_duck_type(f.type)}' for f in schema)


def _casts(schema: pa.Schema) -> str:
    return ", ".join(f'CAST("{f.name}" AS {_duck_type(f.type)})' for f in schema)


def _duck_type(kind: pa.DataType) -> str:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "VARCHAR"
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    if pa.types.is_integer(kind):
        return "BIGINT"
    raise TypeError(f"unsupported column type {kind}")


def _columnar_reader(
    engine: Engine, sql: str, params: Mapping[str, Any], schema: pa.Schema
) -> tuple[pa.RecordBatchReader, Callable[[], None]] | None:
    """A record batch reader, and how to close it; None when neither ADBC nor the SQLite
    driver applies to this database."""
    url = engine.url
    backend = url.get_backend_name()
    if backend == "sqlite":
        try:
            return _sqlite_reader(engine, *_qmark(sql, params), schema)
        except sqlite3.Error:
            raise StateError(_read_failed(engine)) from None
    names = list(params)
    if backend == "postgresql":
        import adbc_driver_postgresql.dbapi as adbc_pg

        positional = _positional(sql, names, lambda i: _session_parameter(i, params[names[i - 1]]))
        target = libpq_uri(url, engine_schema(engine))
    else:
        return None
    try:
        conn: Any = adbc_pg.connect(target)
    except Exception:
        # A URL libpq does not take as SQLAlchemy's driver does: read through SQLAlchemy,
        # which fails with the usual one-line StateError if the database itself is the problem.
        return None
    try:
        cursor = conn.cursor()
        # These reads scan whole audiences with simple filters; PostgreSQL's estimate of their
        # rows then makes it compile the scan (~0.1 s at 10M rows), which only costs here.
        cursor.execute("SET jit = off")
        cursor.fetchall()
        for index, name in enumerate(names, start=1):
            cursor.execute(
                "SELECT set_config($1, $2, false)",
                parameters=(_SESSION_PARAMETER.format(index), str(params[name])),
            )
            cursor.fetchall()
        cursor.execute(positional)
        reader = cursor.fetch_record_batch()
        if reader.schema.names != schema.names:
            # Rename only; the driver's types stay (DuckDB casts them on insert).
            renamed = pa.schema(
                [
                    pa.field(name, f.type)
                    for name, f in zip(schema.names, reader.schema, strict=True)
                ]
            )
            source = reader
            reader = pa.RecordBatchReader.from_batches(
                renamed,
                (pa.RecordBatch.from_arrays(b.columns, schema=renamed) for b in source),
            )
    except Exception:
        conn.close()
        raise StateError(_read_failed(engine)) from None

    def close() -> None:
        try:
            cursor.close()
        finally:
            conn.close()

    return reader, close


# The driver streams a result through COPY only for a statement without bind parameters; with
# them it holds the whole result in memory first (10M rows: 1.27 GB against 0.18 GB). So the
# values are bound into session settings first and the query reads them from there.
_SESSION_PARAMETER = "audience_sync.p{}"


def _session_parameter(index: int, value: Any) -> str:
    """The expression that reads parameter ``index`` back from the session, typed."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"unsupported parameter type {type(value).__name__}")
    cast = "bigint" if isinstance(value, int) else "text"
    return f"current_setting('{_SESSION_PARAMETER.format(index)}')::{cast}"


def libpq_uri(url: URL, schema: str | None = None) -> str:
    """The SQLAlchemy URL as a libpq connection URI. Query values are percent-encoded for
    libpq (which decodes ``%20`` but not ``+``), e.g. ``options=-c lock_timeout=200``.
    ``schema``: the state schema, put first on the session's search path."""
    base = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    if schema is not None:
        url = url.update_query_dict({"options": libpq_options(url, schema)})
    pairs = [
        f"{quote(key, safe='')}={quote(item, safe='')}"
        for key, value in url.query.items()
        for item in ((value,) if isinstance(value, str) else value)
    ]
    return f"{base}?{'&'.join(pairs)}" if pairs else base


def _sqlite_file(url: URL) -> Path | None:
    """The SQLite database's file, if it is a plain file another process can open."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    return path.resolve() if path.is_file() else None


def _has_rows(engine: Engine, sql: str, params: Sequence[Any], rows: int) -> bool:
    """Whether ``sql`` returns at least ``rows`` rows; counts no further than that."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(f"SELECT count(*) FROM ({sql} LIMIT ?)", (*params, rows))
        (found,) = cursor.fetchone() or (0,)
        cursor.close()
    finally:
        raw.close()
    return int(found) >= rows


def _sqlite_reader(
    engine: Engine, sql: str, params: Sequence[Any], schema: pa.Schema
) -> tuple[pa.RecordBatchReader, Callable[[], None]]:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(sql, tuple(params))
    except BaseException:
        raw.close()
        raise

    def batches() -> Iterator[pa.RecordBatch]:
        while rows := cursor.fetchmany(BATCH_ROWS):
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array([row[i] for row in rows], type=field.type)
                    for i, field in enumerate(schema)
                ],
                schema=schema,
            )

    def close() -> None:
        try:
            cursor.close()
        finally:
            raw.close()

    return pa.RecordBatchReader.from_batches(schema, batches()), close


def _qmark(sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """``sql`` with ``?`` for its ``:name`` placeholders, and the values in their order."""
    names = list(params)
    return _positional(sql, names, lambda i: "?"), [params[n] for n in names]


def _positional(sql: str, names: Sequence[str], mark: Any) -> str:
    """``:name`` placeholders (each used once, in ``names`` order) as positional ones."""
    out = sql
    for index, name in enumerate(names, start=1):
        placeholder = f":{name}"
        assert out.count(placeholder) == 1, "each parameter appears once"
        out = out.replace(placeholder, mark(index))
    return out


def _sqlalchemy_batches(
    engine: Engine, sql: str | TextClause, params: Mapping[str, Any], schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(
            text(sql) if isinstance(sql, str) else sql, dict(params)
        )
        for rows in result.partitions(BATCH_ROWS):
            columns: list[list[Any]] = [[] for _ in schema]
            for row in rows:
                for column, value in zip(columns, row, strict=True):
                    column.append(value)
            yield pa.RecordBatch.from_arrays(
                [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)],
                schema=schema,
            )
