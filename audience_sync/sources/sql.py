"""Members from any SQLAlchemy database: a query with bound parameters, streamed in chunks.

Credentials stay out of the config file, the state database and the logs: the URL may say
``${WAREHOUSE_PASSWORD}`` and the value is read from the environment only when the source is
read; :meth:`SqlSource.describe` and error messages mask it. Parameters (``:audience_key`` and
the configured ``params``) are always bound by the driver, never formatted into the SQL text.

An empty result is not an error here: the pipeline's empty-snapshot guard decides about it.
Connection failures, SQL errors and a missing email column raise :class:`SourceError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, CursorResult, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.sql import Executable, TextClause

from audience_sync.errors import SourceError
from audience_sync.sources.base import SourceBase
from audience_sync.sources.specs import ParamValue, SqlSourceSpec
from audience_sync.sources.sql_arrow import ArrowQuery, adbc_available, adbc_target

if TYPE_CHECKING:
    import pyarrow as pa

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MIN_MASKED_LENGTH = 3


class ResolvedUrl:
    """A database URL with its ``${VAR}`` references substituted, and the values to mask."""

    def __init__(self, url: URL, secrets: list[str]) -> None:
        self.url = url
        self.secrets = secrets

    def scrub(self, message: str) -> str:
        """``message`` with every substituted value and the password replaced by ``***``."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            message = message.replace(secret, "***")
        return message


def interpolate_env(
    template: str,
    environ: Mapping[str, str],
    audience_key: str,
    *,
    masked: Sequence[str] = (),
) -> ResolvedUrl:
    """Substitute ``${VAR}`` from ``environ``; a missing variable is named, never its value.

    ``masked``: further values (the query's bound parameters) errors must not quote.
    """
    missing = sorted({m for m in _ENV_REFERENCE.findall(template) if m not in environ})
    if missing:
        raise SourceError(
            f"audience {audience_key!r}: environment variable(s) {', '.join(missing)} "
            "referenced by the source URL are not set"
        )
    values = [environ[name] for name in _ENV_REFERENCE.findall(template)]
    raw = _ENV_REFERENCE.sub(lambda m: environ[m.group(1)], template)
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError) as exc:
        raise SourceError(
            f"audience {audience_key!r}: the source URL is not a valid SQLAlchemy URL "
            "(percent-encode special characters of substituted values)"
        ) from exc
    secrets = [v for v in [*values, *masked] if len(v) >= _MIN_MASKED_LENGTH]
    if url.password and len(str(url.password)) >= _MIN_MASKED_LENGTH:
        secrets.append(str(url.password))
    return ResolvedUrl(url, secrets)


def resolve_sqlite_file(url: URL, base_dir: Path) -> URL:
    """Make a relative SQLite file path absolute against ``base_dir``; other URLs pass through."""
    database = url.database
    if not url.drivername.startswith("sqlite") or not database or database == ":memory:":
        return url
    if database.startswith("file:") or Path(database).is_absolute():
        return url
    return url.set(database=str((base_dir / database).resolve()))


def describe_url(template: str) -> str:
    """A loggable form of the (uninterpolated) URL: any password becomes ``***``.

    Works on the text, so ``${VAR}`` names stay readable and a URL too broken to parse still
    never shows its password.
    """
    scheme, separator, rest = template.partition("://")
    if not separator:
        return scheme.split(":", 1)[0] + ":…"
    at = rest.split("?", 1)[0].rfind("@")
    if at < 0 or ":" not in rest[:at]:
        return template
    user = rest[:at].split(":", 1)[0]
    return f"{scheme}://{user}:***{rest[at:]}"


def error_line(exc: BaseException) -> str:
    """The driver's own message: its first line, without SQLAlchemy's SQL and parameters echo."""
    origin: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        origin = exc.orig
    lines = str(origin).strip().splitlines() or [type(origin).__name__]
    return lines[0]


def error_cause(exc: BaseException, resolved: ResolvedUrl) -> str:
    """:func:`error_line` with the credentials masked."""
    return resolved.scrub(error_line(exc))


@contextmanager
def warehouse_connection(
    url_template: str,
    *,
    base_dir: Path,
    audience_key: str,
    environ: Mapping[str, str],
    masked: Sequence[str] = (),
) -> Iterator[tuple[Connection, ResolvedUrl]]:
    """A connection from a dedicated engine, disposed afterwards; failures become SourceError.

    The driver's exception is not chained (``from None``): its text and SQLAlchemy's echo of
    statement and parameters could carry credentials into tracebacks and logs.
    """
    resolved = interpolate_env(url_template, environ, audience_key, masked=masked)
    try:
        engine = create_engine(resolve_sqlite_file(resolved.url, base_dir))
    except (ArgumentError, ImportError, SQLAlchemyError) as exc:
        raise SourceError(
            f"audience {audience_key!r}: cannot use {describe_url(url_template)}: "
            f"{error_cause(exc, resolved)}"
        ) from None
    try:
        with engine.connect() as connection:
            yield connection, resolved
    except SQLAlchemyError as exc:
        raise SourceError(
            f"audience {audience_key!r}: query against {describe_url(url_template)} failed: "
            f"{error_cause(exc, resolved)}"
        ) from None
    finally:
        engine.dispose()


def open_stream(
    connection: Connection, statement: Executable, chunk_size: int
) -> CursorResult[Any]:
    """Execute with a server-side cursor; read it with ``partitions(chunk_size)``."""
    return connection.execute(
        statement, execution_options={"stream_results": True, "yield_per": chunk_size}
    )


def as_raw_email(value: object) -> str | None:
    """A database value as a raw email string (the pipeline normalises it)."""
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


class SqlSource(SourceBase[SqlSourceSpec]):
    """Runs the configured query and yields its email column, ``chunk_size`` rows at a time.

    :meth:`batches` reads SQLite files and PostgreSQL through ADBC, as Arrow
    (:mod:`~audience_sync.sources.sql_arrow`); other databases, and these when their ADBC
    driver does not import, through SQLAlchemy, as :meth:`chunks` does.
    """

    def describe(self) -> str:
        return f"sql:{describe_url(self._spec.url)}"

    def _read(self, chunk_size: int) -> Iterator[list[str | None]]:
        statement = self._statement()
        self._notes["rows"] = 0
        with (
            warehouse_connection(
                self._spec.url,
                base_dir=self._base_dir,
                audience_key=self._audience_key,
                environ=self._environ,
                masked=self._param_texts(),
            ) as (connection, _),
            open_stream(connection, statement, chunk_size) as result,
        ):
            index = self._email_index(list(result.keys()))
            for rows in result.partitions(chunk_size):
                self._notes["rows"] += len(rows)
                yield [as_raw_email(row[index]) for row in rows]

    def _read_batches(self, chunk_size: int) -> Iterator[pa.Array]:
        resolved = interpolate_env(
            self._spec.url, self._environ, self._audience_key, masked=self._param_texts()
        )
        target = adbc_target(resolve_sqlite_file(resolved.url, self._base_dir))
        if target is None or not adbc_available(target.backend):
            yield from super()._read_batches(chunk_size)
            return

        def failed(cause: str) -> SourceError:
            return SourceError(
                f"audience {self._audience_key!r}: query against "
                f"{describe_url(self._spec.url)} failed: {resolved.scrub(cause)}"
            )

        query = ArrowQuery(
            target,
            self._statement(),
            self._spec.email_column,
            failed=failed,
            missing_column=self._missing_column,
        )
        self._notes["rows"] = 0
        for array in query.arrays(chunk_size):
            self._notes["rows"] += len(array)
            yield array

    def _statement(self) -> TextClause:
        """The query with ``:audience_key`` and the configured params bound (those it uses)."""
        return text(self._spec.query).bindparams(**self.query_values())

    def query_values(self) -> dict[str, ParamValue]:
        """The values of the query's bound parameters: ``:audience_key`` and the configured
        params, those the query uses."""
        wanted = set(text(self._spec.query).compile().params)
        values: dict[str, ParamValue] = {"audience_key": self._audience_key, **self._spec.params}
        return {k: v for k, v in values.items() if k in wanted}

    @property
    def spec(self) -> SqlSourceSpec:
        return self._spec

    def scrub(self, message: str) -> str:
        """``message`` (a database's error line) with the URL's substituted values, its
        password and the configured parameter values masked."""
        resolved = interpolate_env(
            self._spec.url, self._environ, self._audience_key, masked=self._param_texts()
        )
        return resolved.scrub(message)

    def _param_texts(self) -> list[str]:
        """The configured parameters as a database error could quote them."""
        return [str(value) for value in self._spec.params.values()]

    def _email_index(self, keys: list[str]) -> int:
        if self._spec.email_column in keys:
            return keys.index(self._spec.email_column)
        raise self._missing_column(keys)

    def _missing_column(self, keys: list[str]) -> SourceError:
        return SourceError(
            f"audience {self._audience_key!r}: the query returns no column "
            f"{self._spec.email_column!r} (columns: {', '.join(keys) or 'none'})"
        )
