"""``planner = "in_database"`` is accepted only where it can run; otherwise exit 2 naming the
audience and why, never printing a password."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audience_sync.config import load_config, parse_settings
from audience_sync.errors import ConfigError
from audience_sync.planner_placement import check_planner_placement

STATE = "postgresql+psycopg://postgres@db.internal:5432/audiences"
SAME = "postgresql+psycopg://reader:${WAREHOUSE_PASSWORD}@DB.internal/audiences"
QUERY = "SELECT email FROM members WHERE audience = :audience_key"


def settings(source: dict[str, Any], *, state: str = STATE, trait: bool = False) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "state": {"url": state},
        "audiences": [
            {
                "key": "vip",
                "list_id": 1,
                "profile_field_id": 2,
                "source": source,
                "planner": "in_database",
            }
        ],
    }
    if trait:
        raw["audiences"][0]["planner"] = "embedded"
        raw["traits"] = [
            {
                "key": "tier",
                "list_id": 1,
                "profile_field_id": 3,
                "planner": "in_database",
                "source": {**source, "value_column": "tier"},
            }
        ]
    return raw


def problem(raw: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        check_planner_placement(parse_settings(raw), environ or {})
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert "\n" not in message
    return message


def sql(url: str = SAME, **extra: Any) -> dict[str, Any]:
    return {"kind": "sql", "url": url, "query": QUERY, **extra}


def test_a_sql_source_in_the_state_database_is_accepted() -> None:
    check_planner_placement(parse_settings(settings(sql())), {"WAREHOUSE_PASSWORD": "s3cret!"})


def test_a_sqlite_state_database_is_refused() -> None:
    message = problem(settings(sql("sqlite:///members.db"), state="sqlite:///state.db"))
    assert "'vip'" in message
    assert "PostgreSQL state database" in message


def test_a_source_other_than_sql_is_refused() -> None:
    message = problem(settings({"kind": "csv", "path": "members.csv"}))
    assert "'vip'" in message
    assert "kind 'sql'" in message
    assert "'csv'" in message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://reader:${WAREHOUSE_PASSWORD}@db.internal/warehouse",
        "postgresql+psycopg://reader:${WAREHOUSE_PASSWORD}@other.internal/audiences",
        "postgresql+psycopg://reader:${WAREHOUSE_PASSWORD}@db.internal:6543/audiences",
        "mysql+pymysql://reader:${WAREHOUSE_PASSWORD}@db.internal/audiences",
    ],
)
def test_a_source_in_another_database_is_refused_without_its_password(url: str) -> None:
    message = problem(settings(sql(url)), {"WAREHOUSE_PASSWORD": "s3cret!"})
    assert "'vip'" in message
    assert "same backend, host, port and database" in message
    assert "s3cret!" not in message


def test_the_comparison_is_after_variable_substitution() -> None:
    url = "postgresql+psycopg://reader@${DB_HOST}:5432/${DB_NAME}"
    good = {"DB_HOST": "db.internal", "DB_NAME": "audiences"}
    check_planner_placement(parse_settings(settings(sql(url))), good)
    assert "same backend" in problem(settings(sql(url)), {**good, "DB_NAME": "warehouse"})
    assert "DB_NAME" in problem(settings(sql(url)), {"DB_HOST": "db.internal"})


def test_an_email_column_that_is_not_a_plain_name_is_refused() -> None:
    message = problem(
        settings(sql(email_column='e"; DROP TABLE x; --')), {"WAREHOUSE_PASSWORD": "x"}
    )
    assert "email_column" in message


def test_a_trait_with_a_sql_source_in_the_state_database_is_accepted() -> None:
    check_planner_placement(
        parse_settings(settings(sql(), trait=True)), {"WAREHOUSE_PASSWORD": "x"}
    )


@pytest.mark.parametrize(
    ("source", "state", "why"),
    [
        (sql(), "sqlite:///state.db", "PostgreSQL state database"),
        ({"kind": "csv", "path": "tiers.csv"}, STATE, "kind 'sql'"),
        (sql("postgresql+psycopg://r@db.internal/warehouse"), STATE, "same backend"),
        (sql(email_column="e mail"), STATE, "email_column"),
    ],
)
def test_a_trait_is_refused_where_an_audience_would_be(
    source: dict[str, Any], state: str, why: str
) -> None:
    raw = settings(source, state=state, trait=True)
    message = problem(raw, {"WAREHOUSE_PASSWORD": "x"})
    assert "trait 'tier': planner = 'in_database'" in message
    assert why in message


def test_a_trait_value_column_that_is_not_a_plain_name_is_refused() -> None:
    raw = settings(sql(), trait=True)
    raw["traits"][0]["source"]["value_column"] = "tier) FROM x; --"
    message = problem(raw, {"WAREHOUSE_PASSWORD": "x"})
    assert "trait 'tier'" in message
    assert "value_column" in message


def test_load_config_checks_it(tmp_path: Path) -> None:
    path = tmp_path / "audience-sync.toml"
    path.write_text(
        '[state]\nurl = "sqlite:///state.db"\n[[audiences]]\nkey = "vip"\nlist_id = 1\n'
        'planner = "in_database"\n'
        f'source = {{ kind = "sql", url = "{STATE}", query = "{QUERY}" }}\n',
        encoding="utf-8",
    )
    with pytest.raises(
        ConfigError,
        match="audience 'vip': planner = 'in_database' needs a PostgreSQL state database",
    ):
        load_config(path)


def test_the_default_is_the_embedded_planner() -> None:
    raw = settings({"kind": "csv", "path": "members.csv"}, state="sqlite:///state.db")
    del raw["audiences"][0]["planner"]
    parsed = parse_settings(raw)
    assert parsed.audiences[0].planner == "embedded"
    check_planner_placement(parsed, {})
