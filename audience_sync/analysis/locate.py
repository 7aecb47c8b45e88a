"""Where the state database is: a config file, a SQLAlchemy URL or a SQLite file path."""

from __future__ import annotations

import os
from pathlib import Path

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
        return text
    path = Path(text).expanduser()
    if path.suffix == ".toml":
        return load_config(path).state_url
    if not path.is_file():
        raise StateError(
            f"no state database at {path.resolve()} "
            "(run `make demo` for a sample one, or pass a config path or a database URL)"
        )
    return f"sqlite:///{path.resolve()}"
