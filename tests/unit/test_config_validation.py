"""Bad config values end in one clear line per problem (exit 2), and never echo a secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audience_sync.config import load_config
from audience_sync.config_errors import echo
from audience_sync.errors import ConfigError
from audience_sync.redaction import redact
from audience_sync.sources.specs import CsvSourceSpec, SqlSourceSpec

PASSWORD = "hunter2-warehouse"

TEMPLATE = """
[state]
url = "{state}"
{state_extra}

[listrak]
api_url = "{api}"
auth_url = "{auth}"
{listrak}
{extra}
[[audiences]]
key = "vip"
list_id = 100
profile_field_id = 200
source = {source}
"""

DEFAULTS = {
    "state": "sqlite:///audience-sync.db",
    "state_extra": "",
    "api": "https://api.listrak.com/email/v1",
    "auth": "https://auth.listrak.com/OAuth2/Token",
    "listrak": "",
    "extra": "",
    "source": '{ kind = "csv", path = "members.csv" }',
}


def write(tmp_path: Path, **values: str) -> Path:
    path = tmp_path / "audience-sync.toml"
    path.write_text(TEMPLATE.format(**{**DEFAULTS, **values}), encoding="utf-8")
    return path


def problem(tmp_path: Path, **values: str) -> str:
    """The one line naming the problem, as the CLI prints it (through its redaction)."""
    path = write(tmp_path, **values)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.exit_code == 2
    header, *lines = redact(str(caught.value)).splitlines()
    assert header == f"invalid config in {path}:"
    assert len(lines) == 1, lines
    return lines[0].strip()


# --- source encoding -----------------------------------------------------------------------


def test_an_unknown_encoding_is_refused_at_load_naming_the_audience(tmp_path: Path) -> None:
    line = problem(tmp_path, source='{ kind = "csv", path = "m.csv", encoding = "utf-9" }')
    assert line == (
        "audience 'vip': audiences[0].source.csv.encoding: unknown encoding; expected a Python "
        "codec name such as 'utf-8' or 'latin-1' (got 'utf-9')"
    )


def test_a_known_encoding_alias_loads(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, source='{ kind = "csv", path = "m.csv", encoding = "Latin-1" }')
    )
    source = config.settings.audiences[0].source
    assert isinstance(source, CsvSourceSpec)
    assert source.encoding == "Latin-1"


# --- no secret in config errors ------------------------------------------------------------

SQL_SOURCE = (
    '{{ kind = "{kind}", url = "postgresql+psycopg://reader:' + PASSWORD + '@dw/segment", '
    'query = "select email from members"{more} }}'
)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            SQL_SOURCE.format(kind="sqll", more=""),
            "audience 'vip': audiences[0].source: Input tag 'sqll' found using 'kind' does not "
            "match any of the expected tags: 'csv', 'parquet', 'sql', 'segment_events', "
            "'segment_events_sql'",
        ),
        (
            SQL_SOURCE.format(kind="sql", more=", bogus = 1"),
            "audience 'vip': audiences[0].source.sql.bogus: unknown key",
        ),
        (
            SQL_SOURCE.format(kind="sql", more=", params = 3"),
            "audience 'vip': audiences[0].source.sql.params: Input should be a valid dictionary "
            "(got 3)",
        ),
        (
            SQL_SOURCE.format(kind="sql", more="").replace("postgresql+psycopg", "postgres"),
            "audience 'vip': audiences[0].source.sql.url: SQLAlchemy does not know "
            "'postgres://'; use postgresql+psycopg://user@host/db "
            "(got 'postgres://reader:***@dw/segment')",
        ),
    ],
)
def test_an_audience_error_names_the_key_path_and_never_the_warehouse_password(
    tmp_path: Path, source: str, expected: str
) -> None:
    line = problem(tmp_path, source=source)
    assert line == expected
    assert PASSWORD not in line


def test_a_repeated_audience_key_does_not_echo_the_audience_tables(tmp_path: Path) -> None:
    path = write(tmp_path, source=SQL_SOURCE.format(kind="sql", more=""))
    text = path.read_text(encoding="utf-8")
    path.write_text(text + text[text.index("[[audiences]]") :], encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).splitlines()[1:] == [
        "  audiences: audience keys must be unique; repeated: vip"
    ]
    assert PASSWORD not in str(caught.value)


def test_a_secret_in_the_config_says_where_secrets_belong(tmp_path: Path) -> None:
    line = problem(tmp_path, listrak='client_secret = "s3cr3t-value"')
    assert line == (
        "listrak.client_secret is not read from the config file: Listrak credentials come "
        "from the environment variables LISTRAK_CLIENT_ID and LISTRAK_CLIENT_SECRET"
    )


def test_a_password_key_in_a_source_says_where_it_belongs(tmp_path: Path) -> None:
    line = problem(
        tmp_path,
        source='{ kind = "sql", url = "sqlite:///dw.db", query = "q", password = "pw-value" }',
    )
    assert line == (
        "audience 'vip': audiences[0].source.sql.password is not read from the config file: "
        "a warehouse password comes from an environment variable named in the source URL "
        "as ${VAR}"
    )


def test_the_cli_prints_where_secrets_belong_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, listrak='client_secret = "s3cr3t-value"')
    result = subprocess.run(
        [sys.executable, "-m", "audience_sync", "--config", str(path), "plan"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert (
        "  listrak.client_secret is not read from the config file: Listrak credentials come "
        "from the environment variables LISTRAK_CLIENT_ID and LISTRAK_CLIENT_SECRET"
    ) in result.stderr.splitlines()
    assert "s3cr3t-value" not in result.stdout + result.stderr
    assert "[redacted]" not in result.stderr


# --- state and source URLs -----------------------------------------------------------------


# --- [state] schema ---------------------------------------------------------------------------

POSTGRESQL_STATE = "postgresql+psycopg://sync@db/state"
NO_SQLITE_SCHEMA = (
    "state.schema: SQLite has no schemas: a schema applies only to a PostgreSQL state "
    "database; remove it, or use a postgresql+psycopg:// url (got 'audience_sync')"
)


def test_a_state_schema_loads_with_postgresql(tmp_path: Path) -> None:
    path = write(tmp_path, state=POSTGRESQL_STATE, state_extra='schema = "audience_sync"')
    assert load_config(path).state_schema == "audience_sync"
    assert load_config(write(tmp_path, state=POSTGRESQL_STATE)).state_schema is None


@pytest.mark.parametrize(
    "name", ["Audience_Sync", "audience-sync", 'x"; DROP SCHEMA public; --', "1st", "a" * 64]
)
def test_a_schema_name_that_is_not_a_plain_identifier_is_refused(tmp_path: Path, name: str) -> None:
    line = problem(tmp_path, state=POSTGRESQL_STATE, state_extra=f"schema = '{name}'")
    assert line.startswith(
        "state.schema: expected a lower-case PostgreSQL schema name: a letter or '_', then "
        "letters, digits or '_', at most 63 characters"
    )


def test_postgresql_s_own_schema_names_are_refused(tmp_path: Path) -> None:
    line = problem(tmp_path, state=POSTGRESQL_STATE, state_extra='schema = "pg_catalog"')
    assert line.startswith("state.schema: names starting with 'pg_' and 'information_schema'")


def test_a_schema_with_a_sqlite_state_database_is_refused(tmp_path: Path) -> None:
    assert problem(tmp_path, state_extra='schema = "audience_sync"') == NO_SQLITE_SCHEMA


def test_the_cli_refuses_a_schema_on_sqlite_with_exit_2_and_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, state_extra='schema = "audience_sync"')
    result = subprocess.run(
        [sys.executable, "-m", "audience_sync", "--config", str(path), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: invalid config in {path}:",
        f"  {NO_SQLITE_SCHEMA}",
    ]
    assert not (tmp_path / "audience-sync.db").exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"postgres://sync:{PASSWORD}@db/state",
            "state.url: SQLAlchemy does not know 'postgres://'; use "
            "postgresql+psycopg://user@host/db (got 'postgres://sync:***@db/state')",
        ),
        (
            "sqlite://s.db",
            "state.url: a SQLite file needs three slashes: sqlite:///s.db for a file relative "
            "to the config, four for an absolute path (got 'sqlite://s.db')",
        ),
        (
            "sqlite://",
            "state.url: an in-memory SQLite database keeps nothing; give a file, for example "
            "sqlite:///audience-sync.db (got 'sqlite://')",
        ),
        (
            "sqlite:///:memory:",
            "state.url: an in-memory SQLite database keeps nothing; give a file, for example "
            "sqlite:///audience-sync.db (got 'sqlite:///:memory:')",
        ),
        (
            f"nosuchdb://sync:{PASSWORD}@db/state",
            "state.url: unknown database dialect 'nosuchdb' (for example "
            "sqlite:///audience-sync.db or postgresql+psycopg://user@host/db) "
            "(got 'nosuchdb://sync:***@db/state')",
        ),
        (
            "mssql+pyodbc://db/state",
            "state.url: the state database must be SQLite or PostgreSQL "
            "(sqlite:///audience-sync.db or postgresql+psycopg://user@host/db), not 'mssql' "
            "(got 'mssql+pyodbc://db/state')",
        ),
    ],
)
def test_an_unusable_state_url_is_refused_at_load(tmp_path: Path, url: str, expected: str) -> None:
    assert problem(tmp_path, state=url) == expected


@pytest.mark.parametrize(
    "url", ["sqlite:///audience-sync.db", "sqlite:////srv/s.db", "postgresql+psycopg://u@h/db"]
)
def test_usable_state_urls_load(tmp_path: Path, url: str) -> None:
    assert load_config(write(tmp_path, state=url)).settings.state.url == url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "sqlite://dw.db",
            "a SQLite file needs three slashes: sqlite:///dw.db for a file relative to the "
            "config, four for an absolute path (got 'sqlite://dw.db')",
        ),
        (
            "sqlite://",
            "an in-memory SQLite database keeps nothing; give a file, for example "
            "sqlite:///audience-sync.db (got 'sqlite://')",
        ),
        (
            "nosuchdb://u:${PW}@dw/x",
            "unknown database dialect 'nosuchdb' (for example sqlite:///audience-sync.db or "
            "postgresql+psycopg://user@host/db) (got 'nosuchdb://u:***@dw/x')",
        ),
    ],
)
def test_an_unusable_source_url_is_refused_at_load(tmp_path: Path, url: str, expected: str) -> None:
    source = f'{{ kind = "segment_events_sql", url = "{url}", table = "events" }}'
    assert problem(tmp_path, source=source) == (
        f"audience 'vip': audiences[0].source.segment_events_sql.url: {expected}"
    )


@pytest.mark.parametrize(
    "url", ["${WAREHOUSE_URL}", "${SCHEME}://dw/x", "postgresql+psycopg://u:${PW}@${HOST}/dw"]
)
def test_source_urls_built_from_variables_are_left_to_the_read(tmp_path: Path, url: str) -> None:
    source = f'{{ kind = "sql", url = "{url}", query = "q" }}'
    audience = load_config(write(tmp_path, source=source)).settings.audiences[0]
    assert isinstance(audience.source, SqlSourceSpec)
    assert audience.source.url == url


# --- Listrak URLs --------------------------------------------------------------------------


def test_an_uppercase_https_scheme_is_accepted(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, api="HTTPS://api.listrak.com/email/v1/"))
    assert config.settings.listrak.api_url == "https://api.listrak.com/email/v1"


@pytest.mark.parametrize("key", ["api", "auth"])
def test_plain_http_to_a_remote_host_is_refused(tmp_path: Path, key: str) -> None:
    url = "http://auth.listrak.com/OAuth2/Token"
    line = problem(tmp_path, **{key: url})
    assert line == (
        f"listrak.{key}_url: plain http would send the credentials in clear; use https:// "
        f"(http is allowed only to a loopback host such as the local sandbox) (got '{url}')"
    )


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8123", "localhost:8123", "[::1]:8123", "127.0.0.2", "LOCALHOST"]
)
def test_plain_http_to_loopback_stays_allowed_for_the_sandbox(tmp_path: Path, host: str) -> None:
    config = load_config(write(tmp_path, auth=f"http://{host}/OAuth2/Token"))
    assert config.settings.listrak.auth_url == f"http://{host}/OAuth2/Token"


# --- durations and intervals ---------------------------------------------------------------


def test_a_negative_duration_is_named_once(tmp_path: Path) -> None:
    line = problem(tmp_path, extra='[schedule]\nevery = "-5m"')
    assert line == (
        "schedule.every: expected a duration such as '24h', '90m' or a number of seconds "
        "(got '-5m')"
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "[schedule]\nevery = 1e300",
            "schedule.every: a duration cannot be longer than 3650 days (got 1e+300)",
        ),
        (
            '[schedule]\nevery = "99999999999999999999d"',
            "schedule.every: a duration cannot be longer than 3650 days "
            "(got '99999999999999999999d')",
        ),
        (
            "[schedule]\nmisfire_grace = inf",
            "schedule.misfire_grace: a duration cannot be longer than 3650 days (got inf)",
        ),
        (
            "[schedule]\nevery = nan",
            "schedule.every: expected a duration such as '24h', '90m' or a number of seconds "
            "(got nan)",
        ),
        (
            "[sync]\nretry_skipped_after = 9223372036854775807",
            "sync.retry_skipped_after: a duration cannot be longer than 3650 days "
            "(got 9223372036854775807)",
        ),
    ],
)
def test_absurd_durations_are_one_clear_line(tmp_path: Path, extra: str, expected: str) -> None:
    assert problem(tmp_path, extra=extra) == expected


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            "timeout_seconds = 1e300",
            "listrak.timeout_seconds: Input should be less than or equal to 86400 (got 1e+300)",
        ),
        (
            "poll_interval_seconds = inf",
            "listrak.poll_interval_seconds: Input should be less than or equal to 86400 (got inf)",
        ),
        (
            "import_timeout = 1e300",
            "listrak.import_timeout: a duration cannot be longer than 3650 days (got 1e+300)",
        ),
    ],
)
def test_absurd_intervals_are_one_clear_line(tmp_path: Path, setting: str, expected: str) -> None:
    assert problem(tmp_path, listrak=setting) == expected


def test_the_cli_refuses_every_1e300_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, extra="[schedule]\nevery = 1e300")
    result = subprocess.run(
        [sys.executable, "-m", "audience_sync", "--config", str(path), "plan"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        "  schedule.every: a duration cannot be longer than 3650 days (got 1e+300)"
        in result.stderr.splitlines()
    )


def test_only_short_scalars_are_echoed_and_url_passwords_never() -> None:
    assert echo(3) == "3"
    assert echo("utf-9") == "'utf-9'"
    assert echo(f"postgresql+psycopg://reader:{PASSWORD}@dw/x") == (
        "'postgresql+psycopg://reader:***@dw/x'"
    )
    assert echo({"url": f"postgresql://reader:{PASSWORD}@dw/x"}) is None
    assert echo([f"postgresql://reader:{PASSWORD}@dw/x"]) is None
    assert echo("select email from members where " + "x = 1 and " * 10) is None
