from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from audience_sync.config import load_config, load_credentials, resolve_sqlite_path
from audience_sync.errors import ConfigError

MINIMAL = """
[state]
url = "sqlite:///audience-sync.db"

[listrak]
api_url = "https://api.listrak.com/email/v1"
auth_url = "https://auth.listrak.com/OAuth2/Token"

[[audiences]]
key = "first_time_shopper"
list_id = 100
profile_field_id = 200
source = { kind = "csv", path = "members/first_time_shopper.csv", email_column = "email" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "audience-sync.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_config_loads_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.state_url == f"sqlite:///{tmp_path.resolve()}/audience-sync.db"
    assert config.base_dir == tmp_path.resolve()
    assert config.settings.sync.retry_skipped_after == timedelta(hours=24)
    assert config.settings.listrak.submit_via == "list_import"
    assert config.settings.sync.lock_lease_seconds == 90


def test_config_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIENCE_SYNC_CONFIG", str(write(tmp_path, MINIMAL)))
    assert load_config(None).settings.audiences[0].key == "first_time_shopper"


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        (
            "list_id = 100",
            'list_id = "abc"',
            "audiences[0].list_id: Input should be a valid integer",
        ),
        (
            'key = "first_time_shopper"',
            'key = "First Time"',
            "audiences[0].key: String should match",
        ),
        (
            "profile_field_id = 200",
            "profile_field_id = 200\nlist = 3",
            "audiences[0].list: unknown key",
        ),
        ('kind = "csv"', 'kind = "xls"', "audiences[0].source: Input tag 'xls' found using 'kind'"),
        ('api_url = "https', 'api_url = "ftp', "listrak.api_url: expected an http(s) URL"),
        ("list_id = 100\n", "", "audiences[0].list_id: required key is missing"),
        (
            "[listrak]",
            "[sync]\nlock_lease_seconds = 0\n[listrak]",
            "sync.lock_lease_seconds: Input should be greater than 0",
        ),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, replace: str, by: str, message: str) -> None:
    path = write(tmp_path, MINIMAL.replace(replace, by, 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)
    assert caught.value.exit_code == 2


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[state\n"))


def test_duplicate_audience_keys_rejected(tmp_path: Path) -> None:
    audience = MINIMAL[MINIMAL.index("[[audiences]]") :]
    with pytest.raises(ConfigError, match="repeated: first_time_shopper"):
        load_config(write(tmp_path, MINIMAL + audience))


def test_two_audiences_on_one_field_rejected(tmp_path: Path) -> None:
    second = MINIMAL[MINIMAL.index("[[audiences]]") :].replace(
        'key = "first_time_shopper"', 'key = "lapsed"'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, MINIMAL + second))
    assert str(caught.value).splitlines()[1:] == [
        "  audiences: audiences 'first_time_shopper' and 'lapsed' both write list 100 profile "
        "field 200; give each audience its own field"
    ]
    assert caught.value.exit_code == 2


def test_same_field_id_on_other_lists_and_unset_fields_accepted(tmp_path: Path) -> None:
    audience = MINIMAL[MINIMAL.index("[[audiences]]") :]
    other_list = audience.replace('key = "first_time_shopper"', 'key = "other_list"').replace(
        "list_id = 100", "list_id = 101"
    )
    unset = [
        audience.replace('key = "first_time_shopper"', f'key = "{key}"').replace(
            "profile_field_id = 200\n", ""
        )
        for key in ("new_one", "new_two")
    ]
    config = load_config(write(tmp_path, MINIMAL + other_list + "".join(unset)))
    assert [a.profile_field_id for a in config.settings.audiences] == [200, 200, None, None]


def test_credentials_only_from_environment() -> None:
    with pytest.raises(
        ConfigError, match="LISTRAK_CLIENT_ID and LISTRAK_CLIENT_SECRET must be set"
    ):
        load_credentials({})
    creds = load_credentials({"LISTRAK_CLIENT_ID": "id", "LISTRAK_CLIENT_SECRET": "s3cret"})
    assert creds.client_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(creds)


def test_sqlite_paths() -> None:
    base = Path("/srv/sync")
    assert resolve_sqlite_path("sqlite:///state.db", base) == "sqlite:////srv/sync/state.db"
    assert resolve_sqlite_path("sqlite:////abs/state.db", base) == "sqlite:////abs/state.db"
    assert resolve_sqlite_path("sqlite://", base) == "sqlite://"
    pg = "postgresql+psycopg://u@h/db"
    assert resolve_sqlite_path(pg, base) == pg


def test_lock_lease_is_configurable(tmp_path: Path) -> None:
    text = MINIMAL.replace("[listrak]", "[sync]\nlock_lease_seconds = 2.5\n[listrak]", 1)
    assert load_config(write(tmp_path, text)).settings.sync.lock_lease_seconds == 2.5


def test_planner_settings_have_bounded_defaults_and_are_validated(tmp_path: Path) -> None:
    planner = load_config(write(tmp_path, MINIMAL)).settings.planner
    assert (planner.memory_limit, planner.temp_directory, planner.threads) == ("1GB", None, None)
    text = MINIMAL.replace(
        "[[audiences]]",
        '[planner]\nmemory_limit = "512MB"\ntemp_directory = "spill"\nthreads = 2\n\n[[audiences]]',
    )
    planner = load_config(write(tmp_path, text)).settings.planner
    assert (planner.memory_limit, planner.temp_directory, planner.threads) == (
        "512MB",
        Path("spill"),
        2,
    )
    bad = MINIMAL.replace("[[audiences]]", '[planner]\nmemory_limit = "lots"\n\n[[audiences]]')
    with pytest.raises(ConfigError, match=r"planner\.memory_limit"):
        load_config(write(tmp_path, bad))
