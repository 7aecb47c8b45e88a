"""Fixtures of the member-source tests: real PostgreSQL warehouses built by the tests."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text

from tests.sources.source_helpers import PgWarehouse


@pytest.fixture
def pg_warehouse(pg_database_url: str) -> PgWarehouse:
    """A schema of its own in a fresh PostgreSQL database (see ``pg_database_url``)."""
    schema = f"src_{uuid.uuid4().hex[:12]}"
    engine = create_engine(pg_database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'create schema "{schema}"'))
    finally:
        engine.dispose()
    return PgWarehouse(url=pg_database_url, schema=schema)
