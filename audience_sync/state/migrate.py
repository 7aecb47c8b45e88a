"""Schema management through Alembic: upgrade, current revision, and the up-to-date check."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from audience_sync.errors import StateError

MIGRATIONS_PACKAGE = "audience_sync.migrations"


def migrations_dir() -> Path:
    """The installed migrations (the top-level ``migrations/`` folder, mapped into the package
    by pyproject.toml); Alembic reads them from the file system."""
    location = Path(str(resources.files(MIGRATIONS_PACKAGE)))
    if not (location / "env.py").is_file():  # pragma: no cover - only in a broken install
        raise StateError(f"the Alembic migrations are missing from {location}")
    return location


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config built in code (no alembic.ini): the script location is the package."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if engine is not None:
        config.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def ensure_current(engine: Engine) -> None:
    """Refuse to work on a database whose schema is not at the newest migration."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        found = "an empty database" if current is None else f"revision {current}"
        raise StateError(
            f"the state database schema is out of date ({found}, expected {head}); "
            "run `audience-sync db upgrade`"
        )
