"""Which audiences may be planned inside the state database (``planner = "in_database"``).

The in-database planner runs the audience's (or trait's) source query in the state database's own
connection, so the query must live there: the state database is PostgreSQL and the source is
``kind = "sql"`` whose URL names the same server and database (after ``${VAR}``
substitution). Any other combination is a config error (exit 2) naming the audience and why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL, make_url

from audience_sync.errors import ConfigError, SourceError

if TYPE_CHECKING:
    from audience_sync.config import Settings

IN_DATABASE = "in_database"
POSTGRESQL_PORT = 5432
# The email (and a trait's value) column is composed into the staging SQL as an identifier,
# so only plain names.
EMAIL_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_planner_placement(settings: Settings, environ: Mapping[str, str]) -> None:
    """Raise :class:`ConfigError` for the first audience or trait that asks for the
    in-database planner where it cannot run."""
    for trait in settings.traits:
        if trait.planner != IN_DATABASE:
            continue
        problem = placement_problem(settings.state.url, trait.source, trait.key, environ)
        if problem:
            raise ConfigError(f"trait {trait.key!r}: planner = 'in_database' {problem}")
    for audience in settings.audiences:
        if audience.planner != IN_DATABASE:
            continue
        problem = placement_problem(settings.state.url, audience.source, audience.key, environ)
        if problem:
            raise ConfigError(f"audience {audience.key!r}: planner = 'in_database' {problem}")


def placement_problem(
    state_url: str, source: object, audience_key: str, environ: Mapping[str, str]
) -> str | None:
    """Why the in-database planner cannot plan this audience, or None."""
    from audience_sync.sources.specs import SqlSourceSpec

    state = make_url(state_url)
    if state.get_backend_name() != "postgresql":
        return "needs a PostgreSQL state database"
    if not isinstance(source, SqlSourceSpec):
        return f"needs a source of kind 'sql' (this one is {getattr(source, 'kind', '?')!r})"
    if not EMAIL_COLUMN.match(source.email_column):
        return "needs an email_column that is a plain identifier (letters, digits, '_')"
    value_column = getattr(source, "value_column", None)
    if value_column is not None and not EMAIL_COLUMN.match(value_column):
        return "needs a value_column that is a plain identifier (letters, digits, '_')"
    from audience_sync.sources.sql import interpolate_env

    try:
        resolved = interpolate_env(source.url, environ, audience_key)
    except SourceError as exc:
        return f"cannot compare the source URL with the state database: {exc}"
    if not same_database(state, resolved.url):
        return (
            "needs the source query to run in the state database: its URL must name the same "
            "backend, host, port and database as [state] url"
        )
    return None


def same_database(a: URL, b: URL) -> bool:
    """Same backend, host, port and database name (users, drivers and options may differ)."""

    def where(url: URL) -> tuple[str, str, int, str]:
        return (
            url.get_backend_name(),
            (url.host or "").lower(),
            url.port or POSTGRESQL_PORT,
            url.database or "",
        )

    return where(a) == where(b)
