"""Reading state through ADBC on PostgreSQL: the query's values are bound (into session
settings, so the driver can stream the result through COPY), never spliced into the SQL."""

from __future__ import annotations

import pyarrow as pa
import pytest
from sqlalchemy import text

from audience_sync.plan.state_io import read_query
from tests.migrated import migrated_engine

LOOKS_LIKE_SQL = "o'brien'); DROP TABLE probe; --"


def test_values_that_look_like_sql_are_read_as_values(pg_database_url: str) -> None:
    engine = migrated_engine(pg_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE probe (k text, n bigint)"))
            conn.execute(
                text("INSERT INTO probe VALUES (:k, :n)"),
                [{"k": LOOKS_LIKE_SQL, "n": 1}, {"k": LOOKS_LIKE_SQL, "n": 0}, {"k": "x", "n": 5}],
            )
        schema = pa.schema([pa.field("k", pa.string()), pa.field("n", pa.int64())])
        with read_query(
            engine,
            "SELECT k, n FROM probe WHERE k = :k AND n >= :n ORDER BY n",
            {"k": LOOKS_LIKE_SQL, "n": 1},
            schema,
        ) as reader:
            rows = reader.read_all().to_pylist()
        assert rows == [{"k": LOOKS_LIKE_SQL, "n": 1}]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM probe")).scalar_one() == 3
    finally:
        engine.dispose()


def test_a_value_of_a_type_it_cannot_bind_is_refused(pg_database_url: str) -> None:
    engine = migrated_engine(pg_database_url)
    schema = pa.schema([pa.field("n", pa.int64())])
    try:
        with (
            pytest.raises(TypeError, match="unsupported parameter type float"),
            read_query(engine, "SELECT 1 AS n WHERE 1.5 > :x", {"x": 1.5}, schema),
        ):
            pass
    finally:
        engine.dispose()
