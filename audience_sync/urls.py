"""Checks of the URLs in the config, done at load so an unusable one is a config error (exit 2).

Pure: each check takes the configured text and returns it (possibly normalised) or raises
``ValueError`` with a message that says what to write instead and never repeats a password.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

POSTGRESQL_EXAMPLE = "postgresql+psycopg://user@host/db"
SQLITE_EXAMPLE = "sqlite:///audience-sync.db"
STATE_DIALECTS = ("sqlite", "postgresql")


def check_state_url(value: str) -> str:
    """The state database's URL: a SQLite file or PostgreSQL with an installed driver."""
    url = _parse(value)
    _check_dialect(url)
    if url.get_backend_name() not in STATE_DIALECTS:
        raise ValueError(
            f"the state database must be SQLite or PostgreSQL ({SQLITE_EXAMPLE} or "
            f"{POSTGRESQL_EXAMPLE}), not {url.get_backend_name()!r}"
        )
    _check_sqlite_file(url)
    try:
        url.get_dialect().import_dbapi()
    except ImportError:
        raise ValueError(
            f"the database driver for {url.drivername!r} is not installed; for PostgreSQL "
            f"use {POSTGRESQL_EXAMPLE}"
        ) from None
    return value


def check_source_url(value: str) -> str:
    """A warehouse URL, as far as it can be checked before ``${VAR}`` references are filled in.

    Only the parts written literally are checked: a scheme or host given by a variable is left
    to the read, where a failure fails only that audience.
    """
    scheme, separator, _ = value.partition("://")
    if not separator or "$" in scheme:
        return value
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        url = URL.create(drivername=scheme)
    _check_dialect(url)
    if "$" not in (url.host or ""):
        _check_sqlite_file(url)
    return value


def check_http_url(value: str) -> str:
    """An http(s) URL, scheme lowercased, trailing slash removed; plain http only to loopback.

    Listrak's token request carries the client secret, which must not cross a network in clear;
    the sandbox on 127.0.0.1 is the one place plain http is fine.
    """
    scheme, separator, rest = value.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in ("https", "http") or not rest:
        raise ValueError("expected an http(s) URL")
    normalised = f"{scheme}://{rest}".rstrip("/")
    if scheme == "http" and not _is_loopback(urlsplit(normalised).hostname):
        raise ValueError(
            "plain http would send the credentials in clear; use https:// "
            "(http is allowed only to a loopback host such as the local sandbox)"
        )
    return normalised


def _parse(value: str) -> URL:
    scheme = value.partition("://")[0]
    if scheme.lower().split("+")[0] == "postgres":
        raise ValueError(f"SQLAlchemy does not know 'postgres://'; use {POSTGRESQL_EXAMPLE}")
    try:
        return make_url(value)
    except (ArgumentError, ValueError):
        raise ValueError(
            f"expected an SQLAlchemy database URL such as {SQLITE_EXAMPLE} or {POSTGRESQL_EXAMPLE}"
        ) from None


def _check_dialect(url: URL) -> None:
    if url.get_backend_name() == "postgres":
        raise ValueError(f"SQLAlchemy does not know 'postgres://'; use {POSTGRESQL_EXAMPLE}")
    try:
        url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(
            f"unknown database dialect {url.drivername!r} (for example {SQLITE_EXAMPLE} or "
            f"{POSTGRESQL_EXAMPLE})"
        ) from None


def _check_sqlite_file(url: URL) -> None:
    if url.get_backend_name() != "sqlite":
        return
    if url.host:
        raise ValueError(
            f"a SQLite file needs three slashes: sqlite:///{url.host} for a file relative to "
            "the config, four for an absolute path"
        )
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        raise ValueError(
            f"an in-memory SQLite database keeps nothing; give a file, for example {SQLITE_EXAMPLE}"
        )


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
