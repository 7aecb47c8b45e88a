"""Alembic migrations of the state database, installed as ``audience_sync.migrations``."""
