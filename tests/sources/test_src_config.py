"""Every source kind can be embedded in the config file and built from it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from audience_sync.config import parse_settings
from audience_sync.errors import ConfigError
from audience_sync.sources import build_source
from audience_sync.sources.files import CsvSource, ParquetSource
from audience_sync.sources.segment_events import SegmentEventsSource
from audience_sync.sources.segment_events_sql import SegmentEventsSqlSource
from audience_sync.sources.sql import SqlSource

CONFIG = """
[[audiences]]
key = "a_csv"
list_id = 1
source = { kind = "csv", path = "a.csv.gz" }

[[audiences]]
key = "a_parquet"
list_id = 1
source = { kind = "parquet", path = "*.parquet", email_column = "mail" }

[[audiences]]
key = "a_sql"
list_id = 1
[audiences.source]
kind = "sql"
url = "postgresql+psycopg://reader:${PW}@dw/segment"
query = "select email from t where a = :audience_key and r = :region"
params = { region = "eu", limit = 5 }

[[audiences]]
key = "a_events"
list_id = 1
source = { kind = "segment_events", path = "archive/**/*.jsonl.gz" }

[[audiences]]
key = "a_events_sql"
list_id = 1
[audiences.source]
kind = "segment_events_sql"
url = "sqlite:///dw.db"
table = "s.events"
columns = { message_id = "msg_id" }
"""


def test_each_kind_parses_and_builds() -> None:
    settings = parse_settings(tomllib.loads(CONFIG))
    built = [
        build_source(a.source, base_dir=Path("/cfg"), audience_key=a.key)
        for a in settings.audiences
    ]
    assert [type(s) for s in built] == [
        CsvSource,
        ParquetSource,
        SqlSource,
        SegmentEventsSource,
        SegmentEventsSqlSource,
    ]
    assert built[2].describe() == "sql:postgresql+psycopg://reader:***@dw/segment"


def test_unknown_field_of_a_kind_is_reported() -> None:
    raw = tomllib.loads(CONFIG.replace('email_column = "mail"', 'columns = "mail"'))
    with pytest.raises(ConfigError, match=r"audiences\[1\]\.source\.parquet\.columns: unknown key"):
        parse_settings(raw)
