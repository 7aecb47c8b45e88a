"""Alembic migrations on both backends: up from empty, down to nothing, and no drift."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from audience_sync.errors import StateError
from audience_sync.state import migrate
from audience_sync.state.db import make_engine
from audience_sync.state.tables import metadata


def test_upgrade_from_empty_to_head_and_back_down(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert migrate.current_revision(engine) is None
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert set(metadata.tables) <= set(inspect(engine).get_table_names())

        migrate.downgrade(engine, "base")
        assert migrate.current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


def test_metadata_and_migrations_do_not_drift(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
        assert differences == [], (
            f"state/tables.py and migrations/ differ; generate a migration: {differences}"
        )
    finally:
        engine.dispose()


def test_out_of_date_schema_is_refused_with_advice(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with pytest.raises(StateError, match="run `audience-sync db upgrade`"):
            migrate.ensure_current(engine)
        migrate.upgrade(engine)
        migrate.ensure_current(engine)
    finally:
        engine.dispose()
