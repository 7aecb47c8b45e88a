"""The optional PostgreSQL schema holding the state tables (``[state] schema``).

Every connection to the state database finds the tables through its ``search_path``: the state
schema first, then PostgreSQL's default path (``"$user", public``), so the unqualified SQL of
the job and the unqualified names of a user's own tables (``customers``) both resolve. The path
is set when the session starts, as a libpq ``options`` setting, so it holds on every connection
(SQLAlchemy's, the run lock's, Alembic's, the ADBC reader's) and survives a rollback.

The name is composed into DDL and connection options, so it must match :data:`SCHEMA_PATTERN`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import URL, Connection, Engine

SCHEMA_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DEFAULT_SEARCH_PATH = '"$user",public'
# How an engine made for a state schema remembers it (an execution option SQLAlchemy ignores).
ENGINE_OPTION = "audience_sync_state_schema"


def check_schema_name(value: str) -> str:
    if not SCHEMA_PATTERN.fullmatch(value):
        raise ValueError(
            "expected a lower-case PostgreSQL schema name: a letter or '_', then letters, "
            "digits or '_', at most 63 characters"
        )
    if value.startswith("pg_") or value == "information_schema":
        raise ValueError("names starting with 'pg_' and 'information_schema' are PostgreSQL's own")
    return value


def quoted(schema: str) -> str:
    """The schema as a quoted SQL identifier (the pattern admits no quote to escape)."""
    return f'"{check_schema_name(schema)}"'


def search_path_option(schema: str) -> str:
    """The libpq ``options`` value that starts every session in ``schema``."""
    return f"-c search_path={check_schema_name(schema)},{DEFAULT_SEARCH_PATH}".replace(" ", "")


def libpq_options(url: URL, schema: str) -> str:
    """The URL's own ``options`` (if any) followed by the search path; the later one wins."""
    given = url.query.get("options")
    own = " ".join((given,) if isinstance(given, str) else (given or ()))
    return f"{own} {search_path_option(schema)}".strip()


def state_connect_args(url: URL, schema: str, connect_args: Mapping[str, Any]) -> dict[str, Any]:
    """``connect_args`` for a PostgreSQL state engine in ``schema`` (they take precedence over the
    URL's query, so the URL's own ``options`` are kept in front)."""
    return {**connect_args, "options": libpq_options(url, schema)}


def engine_schema(engine: Engine | Connection) -> str | None:
    """The state schema ``engine`` was made for, None for the default (public) location."""
    schema = engine.get_execution_options().get(ENGINE_OPTION)
    return schema if isinstance(schema, str) else None


def lock_scope(schema: str) -> int:
    """A stable signed 32-bit number for ``schema``: the second key of its run lock, so two
    installations in one database, each in its own schema, do not wait for each other."""
    value = zlib.crc32(schema.encode("ascii"))
    return value - (1 << 32) if value >= 1 << 31 else value
