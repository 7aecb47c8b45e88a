"""A keyed query on a SQLite file read as Arrow without a Python object per row: SQLite packs
each chunk of rows into one text per column (``group_concat``), which is split into Arrow
arrays here.

The query's first column is the key: text, never null, unique over the rows (an audience's
emails) and without a line break, which separates the keys in the packed text. Every other
column is one digit (0-9: flags). Chunks are consecutive ranges of the key, read in key order,
so memory holds one chunk at a time whatever the audience's size. The read opens a connection
of its own through the application's ``sqlite3`` module (the same copy of SQLite, so the two
share the file's locks correctly) and only reads; SQLite runs with the GIL released, so on a
thread the read goes on while the caller reads its snapshot.

A packed text that does not split into the counted rows (a key with a line break, a column
that is not one digit) fails the read with :class:`PackedReadError`; it never yields rows that
differ from the query's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from audience_sync.plan.sqlite_child import BUSY_TIMEOUT_MS

CHUNK_ROWS = 1_000_000
_NEWLINE = 10
_ZERO = 48


class PackedReadError(Exception):
    """A packed chunk did not split into the rows SQLite counted."""


def packed_batches(
    path: Path,
    sql: str,
    params: Sequence[Any],
    schema: pa.Schema,
    *,
    chunk_rows: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """``sql``'s rows (positional ``?`` parameters ``params``) as batches of ``schema``: a
    string key first, then integer columns of one digit each; in key order, ``chunk_rows``
    (default ``CHUNK_ROWS``) rows a batch."""
    limit = chunk_rows or CHUNK_ROWS
    columns = [f"c{i}" for i in range(len(schema))]
    key = columns[0]
    packed = ", ".join(
        [f"CAST(group_concat({key}, char(10)) AS BLOB)"]
        + [f"CAST(group_concat({c}, '') AS BLOB)" for c in columns[1:]]
    )
    chunk_sql = (
        f"WITH rows({', '.join(columns)}) AS ({sql}) SELECT count(*), {packed} FROM "
        f"(SELECT * FROM rows WHERE {key} > ? ORDER BY {key} LIMIT ?)"
    )
    connection = sqlite3.connect(str(path), check_same_thread=False)
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        after = ""
        while True:
            count, *texts = connection.execute(chunk_sql, (*params, after, limit)).fetchone()
            if count == 0:
                return
            keys = _split_keys(texts[0], count)
            digits = [_digits(packed_column, count) for packed_column in texts[1:]]
            yield pa.RecordBatch.from_arrays([keys, *digits], schema=schema)
            if count < limit:
                return
            after = keys[count - 1].as_py()
    finally:
        connection.close()


def _split_keys(packed: bytes, count: int) -> pa.Array:
    """The ``count`` keys of ``packed`` (joined by line breaks) as a string array."""
    data = np.frombuffer(packed, dtype=np.uint8)
    breaks = np.flatnonzero(data == _NEWLINE)
    if len(breaks) != count - 1:
        raise PackedReadError("the keys did not split into the rows counted")
    offsets = np.empty(count + 1, dtype=np.int64)
    offsets[0] = 0
    # Each key ends where its line break begins, less the breaks before it.
    offsets[1:count] = breaks - np.arange(count - 1)
    offsets[count] = len(data) - (count - 1)
    keys = pa.Array.from_buffers(
        pa.large_string(),
        count,
        [None, pa.py_buffer(offsets), pa.py_buffer(data[data != _NEWLINE])],
    )
    try:
        keys.validate(full=True)
    except pa.ArrowInvalid:
        raise PackedReadError("the keys are not text") from None
    return keys.cast(pa.string())


def _digits(packed: bytes | None, count: int) -> pa.Array:
    values = np.frombuffer(packed or b"", dtype=np.uint8).astype(np.int64) - _ZERO
    if len(values) != count or values.min(initial=0) < 0 or values.max(initial=0) > 9:
        raise PackedReadError("a column is not one digit per row")
    return pa.array(values)
