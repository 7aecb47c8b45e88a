"""Where the state database is: a config file, a SQLAlchemy URL or a SQLite file path."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

from audience_sync.config import load_config
from audience_sync.errors import StateError

DB_ENV_VAR = "AUDIENCE_SYNC_DB"


def database_url(target: str | os.PathLike[str]) -> str:
    """The SQLAlchemy URL ``target`` names.

    ``target`` is a config file (``*.toml``; its ``[state] url``), a URL such as
    ``postgresql+psycopg://user@host/db`` or ``sqlite:///demo/audience-sync.db``, or the path of
    a SQLite file. A file path must exist: opening a missing one would create an empty database.
    """
    text = os.fspath(target)
    if "://" in text:
        url = text
    elif text.endswith(".toml"):
        url = load_config(Path(text).expanduser()).state_url
    else:
        url = f"sqlite:///{Path(text).expanduser().resolve()}"
    _refuse_missing_sqlite_file(url)
    return url


def state_database(target: str | os.PathLike[str]) -> tuple[str, str | None]:
    """The URL ``target`` names, and the state schema when ``target`` is a config file that
    sets ``[state] schema`` (a URL names its schema itself: ``?options=-csearch_path=...``)."""
    text = os.fspath(target)
    if "://" in text or not text.endswith(".toml"):
        return database_url(target), None
    config = load_config(Path(text).expanduser())
    _refuse_missing_sqlite_file(config.state_url)
    return config.state_url, config.state_schema


def _refuse_missing_sqlite_file(url: str) -> None:
    parsed = make_url(url)
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or not database or database == ":memory:":
        return
    if database.startswith("file:") or Path(database).is_file():
        return
    raise StateError(
        f"no state database at {Path(database).resolve()} "
        "(run `make demo` for a sample one, or pass a config path or a database URL)"
    )
