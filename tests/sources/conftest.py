"""Fixtures of the member-source tests: real PostgreSQL warehouses built by the tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class PgWarehouse:
    """A PostgreSQL database and a schema of its own, dropped after the test."""

    url: str
    schema: str


@pytest.fixture(scope="session")
def pg_warehouse_url() -> str:
    """The test PostgreSQL URL, or a visible skip when the server is unreachable."""
    engine = create_engine(PG_URL)
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {str(exc).splitlines()[0]}")
    finally:
        engine.dispose()
    return PG_URL


@pytest.fixture
def pg_warehouse(pg_warehouse_url: str) -> Iterator[PgWarehouse]:
    schema = f"src_{uuid.uuid4().hex[:12]}"
    engine = create_engine(pg_warehouse_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'create schema "{schema}"'))
        yield PgWarehouse(url=pg_warehouse_url, schema=schema)
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'drop schema if exists "{schema}" cascade'))
        engine.dispose()
