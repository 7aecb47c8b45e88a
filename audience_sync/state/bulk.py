"""Bulk writes of many rows from Arrow record batches: COPY on PostgreSQL, the driver's
``executemany`` (or, for one varying column, ``json_each``) on SQLite, SQLAlchemy's
executemany elsewhere. Inside the caller's transaction,
so a plan's rows commit together with its ledger counts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, text
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    import pyarrow as pa


def rows_of(
    batches: Iterable[pa.RecordBatch], *, before: Sequence[Any] = (), after: Sequence[Any] = ()
) -> Iterator[list[tuple[Any, ...]]]:
    """Each batch as a list of tuples ``(*before, *batch columns, *after)``: one batch of
    Python values at a time, never the whole set."""
    head, tail = tuple(before), tuple(after)
    for batch in batches:
        if batch.num_rows == 0:
            continue
        columns = [column.to_pylist() for column in batch.columns]
        yield [(*head, *values, *tail) for values in zip(*columns, strict=True)]


def insert_batches(
    conn: Connection, table: Table, columns: Sequence[str], batches: Iterable[list[tuple[Any, ...]]]
) -> int:
    """Insert every row of every batch (column order ``columns``); returns the row count."""
    total = 0
    dialect = conn.dialect.name
    driver = conn.connection.driver_connection if dialect in ("sqlite", "postgresql") else None
    names = ", ".join(f'"{c}"' for c in columns)
    for rows in batches:
        if not rows:
            continue
        total += len(rows)
        if dialect == "postgresql":
            assert driver is not None, "an open connection has its driver connection"
            with (
                driver.cursor() as cursor,
                cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        elif dialect == "sqlite":
            assert driver is not None, "an open connection has its driver connection"
            marks = ", ".join("?" for _ in columns)
            cursor = driver.cursor()
            try:
                cursor.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', rows)
            finally:
                cursor.close()
        else:
            conn.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])
    return total


def insert_column(
    conn: Connection, table: Table, column: str, values: pa.Array, constants: Mapping[str, Any]
) -> int:
    """Insert one row per value of an Arrow string array, the other columns set to
    ``constants`` (column names from code); returns the row count.

    SQLite gets the values as one bound JSON array expanded by ``json_each`` in a single
    statement: per-row ``executemany`` re-runs the statement, and its CHECK constraints, for
    every row, several times slower.
    """
    if len(values) == 0:
        return 0
    if conn.dialect.name != "sqlite":
        fixed = tuple(constants.values())
        rows = [(*fixed, value) for value in values.to_pylist()]
        return insert_batches(conn, table, [*constants, column], [rows])
    names = ", ".join(f'"{c}"' for c in [*constants, column])
    binds = ", ".join(f":c{i}" for i in range(len(constants)))
    params: dict[str, Any] = {f"c{i}": value for i, value in enumerate(constants.values())}
    params["values"] = json.dumps(values.to_pylist())
    conn.execute(
        text(f'INSERT INTO "{table.name}" ({names}) SELECT {binds}, value FROM json_each(:values)'),
        params,
    )
    return len(values)
