"""The benchmark's member files as tables of the PostgreSQL state database, loaded by COPY, for
the sql source (and so the in-database planner) to read."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy.engine import Engine

COPY_BLOCK_BYTES = 1 << 20


def load_source_table(engine: Engine, table: str, csv_path: Path) -> float:
    """(Re)create ``table (email text)`` holding the file's rows, analysed; returns seconds."""
    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(f"CREATE TABLE {table} (email text)")
        with (
            csv_path.open("rb") as source,
            cursor.copy(f"COPY {table} (email) FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
        ):
            while block := source.read(COPY_BLOCK_BYTES):
                copy.write(block)
        cursor.execute(f"ANALYZE {table}")
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - started


def table_source(engine: Engine, table: str) -> str:
    """The inline TOML of a sql source reading ``table`` from the state database."""
    url = engine.url.render_as_string(hide_password=False)
    return f'{{ kind = "sql", url = "{url}", query = "SELECT email FROM {table}" }}'
