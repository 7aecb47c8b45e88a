"""The sql source against real SQLite and PostgreSQL warehouses built by the tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from audience_sync.errors import SourceError
from audience_sync.normalize import normalize_chunk
from audience_sync.sources.specs import SqlSourceSpec
from audience_sync.sources.sql import SqlSource, interpolate_env, open_stream
from tests.sources.source_helpers import PgWarehouse, read_all, read_all_batches

INJECTION = "vip' OR '1'='1'; DROP TABLE members; --"


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


@pytest.fixture
def sqlite_warehouse(tmp_path: Path) -> Path:
    """``warehouse.db`` beside the config: members(email, audience, region)."""
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as db:
        db.execute("create table members (email text, audience text, region text)")
        db.executemany(
            "insert into members values (?, ?, ?)",
            [
                (" Ann@Example.COM ", "vip", "eu"),
                ("bob@example.com", "vip", "us"),
                ("carol@example.com", "vip", "eu"),
                (None, "vip", "eu"),
                ("dan@example.com", "other", "eu"),
            ],
        )
    db.close()
    return path


class TestSqlite:
    QUERY = "select email from members where audience = :audience_key and region = :region"

    def test_bound_parameters_and_relative_path(
        self, tmp_path: Path, sqlite_warehouse: Path
    ) -> None:
        source = sql_source(tmp_path, "sqlite:///warehouse.db", self.QUERY, params={"region": "eu"})
        raw = read_all(source)
        assert raw == [" Ann@Example.COM ", "carol@example.com", None]
        assert normalize_chunk(raw).emails == ["ann@example.com", "carol@example.com"]
        assert source.notes == {"rows": 3}

    def test_chunks(self, tmp_path: Path, sqlite_warehouse: Path) -> None:
        source = sql_source(tmp_path, "sqlite:///warehouse.db", "select email from members")
        assert [len(chunk) for chunk in source.chunks(2)] == [2, 2, 1]

    def test_injection_in_audience_key_stays_inert(
        self, tmp_path: Path, sqlite_warehouse: Path
    ) -> None:
        source = sql_source(
            tmp_path,
            "sqlite:///warehouse.db",
            self.QUERY,
            audience_key=INJECTION,
            params={"region": "eu' OR '1'='1"},
        )
        assert read_all(source) == []
        with sqlite3.connect(sqlite_warehouse) as db:
            assert db.execute("select count(*) from members").fetchone() == (5,)
        db.close()

    def test_query_without_audience_key_parameter(
        self, tmp_path: Path, sqlite_warehouse: Path
    ) -> None:
        source = sql_source(
            tmp_path, "sqlite:///warehouse.db", "select email from members where region = 'us'"
        )
        assert read_all(source) == ["bob@example.com"]

    def test_custom_email_column(self, tmp_path: Path, sqlite_warehouse: Path) -> None:
        source = sql_source(
            tmp_path,
            "sqlite:///warehouse.db",
            "select region, email as address from members where audience = 'other'",
            email_column="address",
        )
        assert read_all(source) == ["dan@example.com"]

    def test_missing_email_column_lists_columns(
        self, tmp_path: Path, sqlite_warehouse: Path
    ) -> None:
        source = sql_source(
            tmp_path, "sqlite:///warehouse.db", "select region, audience from members"
        )
        with pytest.raises(SourceError, match=r"'vip'.*no column 'email'.*region, audience"):
            read_all(source)

    def test_empty_result_is_left_to_the_pipeline(
        self, tmp_path: Path, sqlite_warehouse: Path
    ) -> None:
        source = sql_source(
            tmp_path, "sqlite:///warehouse.db", self.QUERY, params={"region": "mars"}
        )
        assert read_all(source) == []
        assert source.notes == {"rows": 0}

    def test_failing_query_names_audience_and_cause(
        self, tmp_path: Path, sqlite_warehouse: Path
    ) -> None:
        source = sql_source(tmp_path, "sqlite:///warehouse.db", "select email from nowhere")
        with pytest.raises(SourceError, match=r"'vip': query against .* no such table: nowhere"):
            read_all(source)

    def test_unbound_parameter_fails(self, tmp_path: Path, sqlite_warehouse: Path) -> None:
        source = sql_source(tmp_path, "sqlite:///warehouse.db", self.QUERY)
        with pytest.raises(SourceError, match="region"):
            read_all(source)


class TestUrlAndCredentials:
    def test_env_interpolation(self, tmp_path: Path, sqlite_warehouse: Path) -> None:
        source = sql_source(
            tmp_path,
            "sqlite:///${WAREHOUSE_FILE}",
            "select email from members where audience = 'other'",
            environ={"WAREHOUSE_FILE": str(sqlite_warehouse)},
        )
        assert read_all(source) == ["dan@example.com"]
        assert source.describe() == "sql:sqlite:///${WAREHOUSE_FILE}"

    def test_missing_variable_is_named(self, tmp_path: Path) -> None:
        source = sql_source(
            tmp_path, "postgresql+psycopg://u:${PW}@127.0.0.1/${DB}", "select 1 as email"
        )
        with pytest.raises(SourceError, match=r"'vip': environment variable\(s\) DB, PW"):
            read_all(source)

    def test_describe_hides_a_literal_password(self, tmp_path: Path) -> None:
        source = sql_source(tmp_path, "postgresql://me:hunter22@db.example/dw", "select 1")
        assert "hunter22" not in source.describe()
        assert source.describe() == "sql:postgresql://me:***@db.example/dw"

    def test_connection_error_never_shows_the_password(self, tmp_path: Path) -> None:
        source = sql_source(
            tmp_path,
            "postgresql+psycopg://postgres:${PW}@127.0.0.1:1/${PW}db?connect_timeout=2",
            "select 1 as email",
            environ={"PW": "s3cr3t-value"},
        )
        with pytest.raises(SourceError) as caught:
            read_all(source)
        message = str(caught.value)
        assert "s3cr3t-value" not in message
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__
        assert message.startswith("audience 'vip': query against postgresql+psycopg://")

    def test_scrub_masks_substituted_values(self) -> None:
        resolved = interpolate_env(
            "postgresql://u:${PW}@${HOST}/dw", {"PW": "pa:ss", "HOST": "h1"}, "vip"
        )
        assert resolved.url.password == "pa:ss"
        assert resolved.scrub("password pa:ss for h1") == "password *** for h1"

    def test_params_cannot_override_the_audience_key(self) -> None:
        with pytest.raises(ValueError, match="always bound"):
            SqlSourceSpec(kind="sql", url="sqlite://", query="q", params={"audience_key": "x"})


@pytest.mark.postgres
class TestPostgres:
    def _build(self, wh: PgWarehouse) -> None:
        engine = create_engine(wh.url)
        with engine.begin() as db:
            db.execute(text(f"set search_path to {wh.schema}"))
            db.execute(
                text(
                    "create table profile_traits (canonical_segment_id text primary key,"
                    " first_time_shopper boolean, vip boolean)"
                )
            )
            db.execute(
                text(
                    "create table user_identifiers (canonical_segment_id text,"
                    " type text, value text)"
                )
            )
            db.execute(
                text("insert into profile_traits values (:id, :fts, :vip)"),
                [{"id": f"p{i}", "fts": i % 2 == 0, "vip": i % 5 == 0} for i in range(1, 101)],
            )
            db.execute(
                text("insert into user_identifiers values (:id, :type, :value)"),
                [
                    {"id": f"p{i}", "type": "email", "value": f" User{i}@Example.com"}
                    for i in range(1, 101)
                ]
                + [{"id": "p2", "type": "phone", "value": "+15550100"}],
            )
        engine.dispose()

    def test_profiles_sync_query_streams_in_chunks(
        self, tmp_path: Path, pg_warehouse: PgWarehouse
    ) -> None:
        self._build(pg_warehouse)
        query = (
            f"select u.value as email from {pg_warehouse.schema}.profile_traits p"
            f" join {pg_warehouse.schema}.user_identifiers u"
            " on u.canonical_segment_id = p.canonical_segment_id and u.type = :id_type"
            " where p.first_time_shopper = true order by p.canonical_segment_id"
        )
        source = sql_source(tmp_path, pg_warehouse.url, query, params={"id_type": "email"})
        chunks = list(source.chunks(20))
        assert [len(c) for c in chunks] == [20, 20, 10]
        emails = normalize_chunk([e for c in chunks for e in c]).emails
        assert sorted(emails) == sorted(f"user{i}@example.com" for i in range(2, 101, 2))
        assert source.notes == {"rows": 50}

    def test_injection_stays_inert(self, tmp_path: Path, pg_warehouse: PgWarehouse) -> None:
        self._build(pg_warehouse)
        schema = pg_warehouse.schema
        query = (
            f"select u.value as email from {schema}.user_identifiers u"
            " where u.canonical_segment_id = :audience_key"
        )
        crafted = f"p1'; drop table {schema}.profile_traits; --"
        source = sql_source(tmp_path, pg_warehouse.url, query, audience_key=crafted)
        assert read_all(source) == []
        engine = create_engine(pg_warehouse.url)
        with engine.connect() as db:
            count = db.execute(text(f"select count(*) from {schema}.profile_traits")).scalar()
        engine.dispose()
        assert count == 100

    def test_env_url_and_bad_column(self, tmp_path: Path, pg_warehouse: PgWarehouse) -> None:
        self._build(pg_warehouse)
        url = make_url(pg_warehouse.url)
        password = f":{url.password}" if url.password else ""
        where = f"{url.host}:{url.port or 5432}/{url.database}"
        source = sql_source(
            tmp_path,
            f"{url.drivername}://${{PGUSER_X}}{password}@{where}",
            f"select canonical_segment_id from {pg_warehouse.schema}.profile_traits",
            environ={"PGUSER_X": str(url.username)},
        )
        with pytest.raises(SourceError, match="columns: canonical_segment_id"):
            read_all(source)

    def test_results_come_from_a_server_side_cursor(self, pg_database_url: str) -> None:
        engine = create_engine(pg_database_url)
        try:
            with (
                engine.connect() as db,
                open_stream(db, text("select generate_series(1, 10) as email"), 3) as result,
            ):
                assert isinstance(result.cursor, psycopg.ServerCursor)
                assert [len(rows) for rows in result.partitions(3)] == [3, 3, 3, 1]
        finally:
            engine.dispose()

    @pytest.mark.parametrize("read", [read_all, read_all_batches], ids=["chunks", "batches"])
    def test_an_error_quoting_a_parameter_does_not_show_it(
        self,
        tmp_path: Path,
        pg_warehouse: PgWarehouse,
        read: Callable[[SqlSource], list[str | None]],
    ) -> None:
        self._build(pg_warehouse)
        query = (
            f"select u.value as email from {pg_warehouse.schema}.user_identifiers u"
            " where length(u.value) > cast(:min_length as integer)"
        )
        source = sql_source(tmp_path, pg_warehouse.url, query, params={"min_length": "seven-ish"})
        with pytest.raises(SourceError) as raised:
            read(source)
        message = str(raised.value)
        assert "invalid input syntax" in message
        assert "seven-ish" not in message
        assert "***" in message
