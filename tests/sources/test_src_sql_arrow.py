"""The sql source's ``batches`` against real SQLite and PostgreSQL warehouses (PostgreSQL
through ADBC, SQLite through SQLAlchemy).

``batches`` must hold exactly what ``chunks`` (SQLAlchemy) yields, and fail with the same
messages, without the password.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from audience_sync.errors import SourceError
from audience_sync.sources.specs import SqlSourceSpec
from audience_sync.sources.sql import SqlSource
from audience_sync.sources.sql_arrow import adbc_target, positional, postgres_dialect
from tests.sources.source_helpers import PgWarehouse, read_all, read_all_batches

INJECTION = "vip' OR '1'='1'; DROP TABLE members; --"
PASSWORD = "s3cr3t-pw"


def sql_source(
    tmp_path: Path,
    url: str,
    query: str,
    *,
    audience_key: str = "vip",
    environ: dict[str, str] | None = None,
    **options: object,
) -> SqlSource:
    spec = SqlSourceSpec.model_validate({"kind": "sql", "url": url, "query": query, **options})
    return SqlSource(spec, base_dir=tmp_path, audience_key=audience_key, environ=environ or {})


def sizes(source: SqlSource, chunk_size: int) -> list[int]:
    return [len(batch) for batch in source.batches(chunk_size)]


def both_errors(source: SqlSource) -> str:
    """The message ``chunks`` and ``batches`` fail with, checked to be one and the same."""
    messages = []
    read: Callable[[SqlSource], object]
    for read in (read_all, read_all_batches):
        with pytest.raises(SourceError) as caught:
            read(source)
        assert caught.value.__cause__ is None
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    return messages[0]


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """``warehouse.db``: members(email, audience, region); SQLite columns hold any type, and
    the first 1500 rows have no email (ADBC would read such a run as integers)."""
    path = tmp_path / "warehouse.db"
    rows: list[tuple[object, str, str]] = [(None, "vip", "eu")] * 1500
    rows += [
        (" Ann@Example.COM ", "vip", "eu"),
        ("bob@example.com", "vip", "us"),
        (42, "vip", "eu"),
        (1.5, "vip", "eu"),
        ("carol@example.com", "vip", "eu"),
        ("dan@example.com", "other", "eu"),
    ]
    with sqlite3.connect(path) as db:
        db.execute("create table members (email, audience text, region text)")
        db.executemany("insert into members values (?, ?, ?)", rows)
    db.close()
    return path


class TestSqlite:
    QUERY = "select email from members where audience = :audience_key and region = :region"

    def test_sqlite_stays_on_sqlalchemy(self, tmp_path: Path) -> None:
        # ADBC's SQLite driver would bring a second SQLite library into the process
        assert adbc_target(make_url(f"sqlite:///{tmp_path}/w.db")) is None

    def test_same_values_as_chunks_nulls_casts_and_bound_params(
        self, tmp_path: Path, warehouse: Path
    ) -> None:
        source = sql_source(tmp_path, "sqlite:///warehouse.db", self.QUERY, params={"region": "eu"})
        values = read_all_batches(source)
        assert values == read_all(source)
        assert values[1499:] == [None, " Ann@Example.COM ", "42", "1.5", "carol@example.com"]
        assert source.notes == {"rows": 1504}

    def test_a_large_result_is_recut_into_exact_chunk_sizes(
        self, tmp_path: Path, warehouse: Path
    ) -> None:
        source = sql_source(tmp_path, "sqlite:///warehouse.db", "select email from members")
        assert sizes(source, 1000) == [1000, 506]
        assert sizes(source, 7) == [7] * 215 + [1]
        assert read_all_batches(source, 7) == read_all(source, 7)

    def test_a_repeated_parameter_a_cast_and_a_trailing_semicolon(
        self, tmp_path: Path, warehouse: Path
    ) -> None:
        query = (
            "select email from members where (audience = :audience_key or :audience_key = 'all')"
            " and cast(email as text) like '%@example.com' and region = :region;"
        )
        source = sql_source(tmp_path, "sqlite:///warehouse.db", query, params={"region": "us"})
        assert read_all_batches(source) == read_all(source) == ["bob@example.com"]

    def test_injection_stays_inert(self, tmp_path: Path, warehouse: Path) -> None:
        source = sql_source(
            tmp_path,
            "sqlite:///warehouse.db",
            self.QUERY,
            audience_key=INJECTION,
            params={"region": "eu' OR '1'='1"},
        )
        assert read_all_batches(source) == []
        with sqlite3.connect(warehouse) as db:
            assert db.execute("select count(*) from members").fetchone() == (1506,)
        db.close()

    def test_a_uri_with_options_falls_back_to_sqlalchemy(
        self, tmp_path: Path, warehouse: Path
    ) -> None:
        url = f"sqlite:///file:{warehouse}?mode=ro&uri=true"
        assert adbc_target(make_url(url)) is None
        source = sql_source(tmp_path, url, "select email from members where audience = 'other'")
        assert read_all_batches(source) == read_all(source) == ["dan@example.com"]

    def test_missing_column_lists_the_columns(self, tmp_path: Path, warehouse: Path) -> None:
        source = sql_source(
            tmp_path, "sqlite:///warehouse.db", "select region, audience from members"
        )
        assert both_errors(source) == (
            "audience 'vip': the query returns no column 'email' (columns: region, audience)"
        )

    def test_bad_sql(self, tmp_path: Path, warehouse: Path) -> None:
        source = sql_source(tmp_path, "sqlite:///warehouse.db", "select email from nowhere")
        assert both_errors(source) == (
            "audience 'vip': query against sqlite:///warehouse.db failed: no such table: nowhere"
        )

    def test_an_unbound_parameter_is_named(self, tmp_path: Path, warehouse: Path) -> None:
        source = sql_source(tmp_path, "sqlite:///warehouse.db", self.QUERY)
        assert "A value is required for bind parameter 'region'" in both_errors(source)

    def test_a_missing_variable_is_named(self, tmp_path: Path) -> None:
        source = sql_source(tmp_path, "sqlite:///${WAREHOUSE}", "select email from members")
        assert both_errors(source) == (
            "audience 'vip': environment variable(s) WAREHOUSE referenced by the source URL"
            " are not set"
        )

    def test_the_path_from_the_environment_is_masked(self, tmp_path: Path) -> None:
        source = sql_source(
            tmp_path,
            "sqlite:///${WAREHOUSE}",
            "select email from nowhere",
            environ={"WAREHOUSE": str(tmp_path / "hidden-name.db")},
        )
        message = both_errors(source)
        assert "hidden-name" not in message
        assert message.endswith("no such table: nowhere")


@pytest.mark.postgres
class TestPostgres:
    def _build(self, wh: PgWarehouse) -> str:
        """members(email text, n int, vip boolean) in the warehouse's schema: 2500 rows, every
        tenth email null; its qualified name."""
        engine = create_engine(wh.url)
        with engine.begin() as db:
            db.execute(text(f"create table {wh.schema}.members (email text, n int, vip boolean)"))
            db.execute(
                text(f"insert into {wh.schema}.members values (:email, :n, :vip)"),
                [
                    {
                        "email": None if n % 10 == 0 else f" User{n}@Example.com",
                        "n": n,
                        "vip": n % 2 == 0,
                    }
                    for n in range(1, 2501)
                ],
            )
        engine.dispose()
        return f"{wh.schema}.members"

    def test_the_url_is_read_through_adbc_with_its_password(self) -> None:
        target = adbc_target(
            make_url(f"postgresql+psycopg://u:{PASSWORD}@h:5433/dw?sslmode=disable")
        )
        assert target is not None
        assert target.backend == "postgresql"
        assert target.target == f"postgresql://u:{PASSWORD}@h:5433/dw?sslmode=disable"

    def test_placeholders_become_numbered(self) -> None:
        statement = text("select :a as email where :b = :a and x::text = 'a:b'").bindparams(
            a="1", b=2
        )
        sql, values = positional(statement, postgres_dialect())
        assert sql == "select $1 as email where $2 = $1 and x::text = 'a:b'"
        assert values == ["1", 2]

    def test_same_values_as_chunks_nulls_and_bound_params(
        self, tmp_path: Path, pg_warehouse: PgWarehouse
    ) -> None:
        table = self._build(pg_warehouse)
        query = (
            f"select email from {table} where vip = :vip and n > :low"
            " and :audience_key = 'vip' and email is distinct from :skip order by n"
        )
        source = sql_source(
            tmp_path,
            pg_warehouse.url,
            query,
            params={"vip": True, "low": 2000, "skip": " User2002@Example.com"},
        )
        values = read_all_batches(source)
        assert values == read_all(source)
        assert values[:5] == [
            " User2004@Example.com",
            " User2006@Example.com",
            " User2008@Example.com",
            None,
            " User2012@Example.com",
        ]
        assert len(values) == 249
        assert source.notes == {"rows": 249}

    def test_a_non_string_email_column_is_cast(
        self, tmp_path: Path, pg_warehouse: PgWarehouse
    ) -> None:
        table = self._build(pg_warehouse)
        source = sql_source(
            tmp_path, pg_warehouse.url, f"select n as email from {table} where n <= 3 order by n"
        )
        assert read_all_batches(source) == read_all(source) == ["1", "2", "3"]

    def test_a_large_result_is_recut_into_exact_chunk_sizes(
        self, tmp_path: Path, pg_warehouse: PgWarehouse
    ) -> None:
        table = self._build(pg_warehouse)
        source = sql_source(tmp_path, pg_warehouse.url, f"select email from {table} order by n")
        assert sizes(source, 1000) == [1000, 1000, 500]
        assert sizes(source, 999) == [999, 999, 502]
        assert read_all_batches(source, 999) == read_all(source, 999)

    def test_injection_stays_inert(self, tmp_path: Path, pg_warehouse: PgWarehouse) -> None:
        table = self._build(pg_warehouse)
        source = sql_source(
            tmp_path,
            pg_warehouse.url,
            f"select email from {table} where email = :audience_key",
            audience_key=f"x'; drop table {table}; --",
        )
        assert read_all_batches(source) == []
        engine = create_engine(pg_warehouse.url)
        with engine.connect() as db:
            assert db.execute(text(f"select count(*) from {table}")).scalar() == 2500
        engine.dispose()

    def _with_password(self, url: str) -> str:
        """``url`` with a password in it (the test server trusts any), by ``${PW}``."""
        parsed = make_url(url)
        where = f"{parsed.host}:{parsed.port or 5432}/{parsed.database}"
        return f"{parsed.drivername}://{parsed.username}:${{PW}}@{where}"

    def test_missing_column_lists_the_columns(
        self, tmp_path: Path, pg_warehouse: PgWarehouse
    ) -> None:
        table = self._build(pg_warehouse)
        source = sql_source(
            tmp_path,
            self._with_password(pg_warehouse.url),
            f"select n, vip from {table}",
            environ={"PW": PASSWORD},
        )
        assert both_errors(source) == (
            "audience 'vip': the query returns no column 'email' (columns: n, vip)"
        )

    def test_bad_sql_never_shows_the_password_nor_the_parameters(
        self, tmp_path: Path, pg_warehouse: PgWarehouse
    ) -> None:
        source = sql_source(
            tmp_path,
            self._with_password(pg_warehouse.url),
            "select email from nowhere where email = :who",
            environ={"PW": PASSWORD},
            params={"who": "someone@example.com"},
        )
        message = both_errors(source)
        assert PASSWORD not in message
        assert "someone@example.com" not in message
        shown = source.describe().removeprefix("sql:")
        assert ":***@" in shown
        assert message == (
            f"audience 'vip': query against {shown} failed: relation \"nowhere\" does not exist"
        )

    def test_connection_refused_never_shows_the_password(self, tmp_path: Path) -> None:
        source = sql_source(
            tmp_path,
            "postgresql+psycopg://postgres:${PW}@127.0.0.1:1/${PW}db?connect_timeout=2",
            "select 1 as email",
            environ={"PW": PASSWORD},
        )
        message = both_errors(source)
        assert PASSWORD not in message
        assert message == (
            "audience 'vip': query against postgresql+psycopg://postgres:***@127.0.0.1:1/${PW}db"
            '?connect_timeout=2 failed: connection failed: connection to server at "127.0.0.1",'
            " port 1 failed: Connection refused"
        )
