"""What went wrong with the state database, in one line without SQL or parameters."""

from __future__ import annotations

import os

from sqlalchemy.engine import Engine, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from audience_sync.errors import StateError
from audience_sync.redaction import one_line

# Driver messages (lower case) and the cause a user reads; the first match wins.
_CAUSES = (
    ("database is locked", "database is locked (another process holds its write lock)"),
    ("database table is locked", "database is locked (another process holds its write lock)"),
    ("lock timeout", "lock timeout (another session holds a conflicting lock)"),
    ("deadlock detected", "deadlock with another session"),
    ("database or disk is full", "disk full"),
    ("no space left on device", "disk full"),
    ("could not extend file", "disk full"),
    ("readonly database", "read-only (the file or its directory cannot be written)"),
    ("read-only", "read-only"),
    ("disk i/o error", "disk I/O error"),
    ("connection refused", "connection refused"),
    ("could not translate host name", "unknown host"),
    ("name or service not known", "unknown host"),
    ("password authentication failed", "authentication failed"),
    ("timeout expired", "connection timed out"),
    ("server closed the connection", "the server closed the connection"),
    ("terminating connection", "the server closed the connection"),
    ("file is not a database", "not a database file"),
    ("database disk image is malformed", "the database file is corrupt"),
)


def describe_url(url: str | URL) -> str:
    """The URL as it may be shown: no password."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception:
        return "(unparsable URL)"
    return parsed.render_as_string(hide_password=True)


def state_error_for(engine: Engine | None, exc: BaseException | None) -> StateError | None:
    """The StateError for a database failure; None for integrity errors and non-database ones."""
    if not isinstance(exc, DBAPIError) or isinstance(exc, IntegrityError):
        return None
    url = engine.url if engine is not None else None
    return StateError(state_error_message(url, exc), cause=cause(url, exc))


def state_error_message(url: URL | None, exc: StatementError) -> str:
    where = f"state database {describe_url(url)}" if url is not None else "state database"
    return f"{where}: {cause(url, exc)}"


def cause(url: URL | None, exc: StatementError) -> str:
    original = exc.orig if exc.orig is not None else exc
    text = str(original).strip()
    lowered = text.lower()
    sqlite = url is not None and url.get_backend_name() == "sqlite"
    if sqlite and url is not None and "unable to open database file" in lowered:
        return _sqlite_open_problem(url.database)
    for needle, meaning in _CAUSES:
        if needle in lowered:
            return meaning
    first_line = text.splitlines()[0] if text else type(original).__name__
    return one_line(first_line, limit=200)


def _sqlite_open_problem(database: str | None) -> str:
    if not database:
        return "cannot open the database"
    directory = os.path.dirname(os.path.abspath(database))
    if not os.path.isdir(directory):
        return f"directory {directory} does not exist"
    if not os.access(directory, os.W_OK):
        return f"directory {directory} is read-only"
    return "cannot open the database file"


__all__ = ["describe_url", "state_error_for", "state_error_message"]
