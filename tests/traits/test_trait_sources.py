"""Trait sources: ``(email, value)`` record batches from CSV, Parquet and Segment archives."""

from __future__ import annotations

import gzip
import json
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audience_sync.errors import SourceError
from audience_sync.sources.specs import (
    CsvTraitSourceSpec,
    ParquetTraitSourceSpec,
    SegmentEventsTraitSourceSpec,
    SqlTraitSourceSpec,
)
from audience_sync.sources.trait_sources import (
    TraitSource,
    build_trait_source,
    trait_value,
)
from audience_sync.traits.values import FieldSpec, format_array
from tests.sources.source_helpers import identify, track, write_jsonl

KEY = "lifetime_value"


def rows(source: TraitSource, chunk_size: int = 1000) -> list[tuple[Any, Any]]:
    out: list[tuple[Any, Any]] = []
    for batch in source.value_batches(chunk_size):
        assert batch.schema.names == ["email", "value"]
        assert batch.num_rows <= chunk_size
        out.extend(zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True))
    return out


def csv_source(tmp_path: Path, text: str, name: str = "ltv.csv", **spec: Any) -> TraitSource:
    path = tmp_path / name
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    fields = {"kind": "csv", "path": name, "value_column": "ltv", **spec}
    return build_trait_source(CsvTraitSourceSpec(**fields), base_dir=tmp_path, trait_key=KEY)


@pytest.mark.parametrize("name", ["ltv.csv", "ltv.csv.gz"])
def test_csv_values_are_read_as_written(tmp_path: Path, name: str) -> None:
    text = 'email,name,ltv\nann@example.com,Ann,412.50\nbob@example.com,"B, ob",\n,x,3\n'
    source = csv_source(tmp_path, text, name)
    assert rows(source) == [("ann@example.com", "412.50"), ("bob@example.com", None), (None, "3")]
    assert source.notes == {"files": 1}


def test_csv_batches_respect_the_chunk_size(tmp_path: Path) -> None:
    text = "email,ltv\n" + "".join(f"m{i}@example.com,{i}\n" for i in range(7))
    got = rows(csv_source(tmp_path, text), chunk_size=3)
    assert [v for _, v in got] == [str(i) for i in range(7)]


def test_csv_without_the_value_column_names_the_trait_and_columns(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        rows(csv_source(tmp_path, "email,spend\na@example.com,1\n"))
    assert str(caught.value) == (
        "trait 'lifetime_value': ltv.csv has no column 'ltv' (columns: email, spend)"
    )


def test_a_malformed_csv_row_is_described_without_quoting_it(tmp_path: Path) -> None:
    source = csv_source(tmp_path, "email,ltv\nann@example.com,1\nbob.secret@example.com,2,77\n")
    with pytest.raises(SourceError) as caught:
        rows(source)
    message = str(caught.value)
    assert message == (
        "trait 'lifetime_value': cannot read ltv.csv: CSV parse error: Expected 2 columns, got 3"
    )
    assert "secret" not in message
    assert "77" not in message


def test_undecodable_csv_bytes_name_the_encoding(tmp_path: Path) -> None:
    (tmp_path / "ltv.csv").write_bytes(b"email,ltv\nann@example.com,1\n\xff\xfe@example.com,2\n")
    spec = CsvTraitSourceSpec(kind="csv", path="ltv.csv", value_column="ltv")
    with pytest.raises(SourceError) as caught:
        rows(build_trait_source(spec, base_dir=tmp_path, trait_key=KEY))
    assert str(caught.value) == (
        "trait 'lifetime_value': cannot read ltv.csv: "
        "bytes that are not valid utf-8 (check the source's encoding)"
    )


def test_a_glob_matching_nothing_names_the_trait(tmp_path: Path) -> None:
    spec = CsvTraitSourceSpec(kind="csv", path="none-*.csv", value_column="ltv")
    with pytest.raises(SourceError, match=r"^trait 'lifetime_value': no file matches"):
        rows(build_trait_source(spec, base_dir=tmp_path, trait_key=KEY))


def test_parquet_values_keep_their_type(tmp_path: Path) -> None:
    table = pa.table(
        {
            "email": pa.array(["a@example.com", "b@example.com"]).dictionary_encode(),
            "last_order": pa.array([date(2026, 11, 2), None], pa.date32()),
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    spec = ParquetTraitSourceSpec(kind="parquet", path="t.parquet", value_column="last_order")
    source = build_trait_source(spec, base_dir=tmp_path, trait_key="last_order_date")
    got = rows(source)
    assert got == [("a@example.com", date(2026, 11, 2)), ("b@example.com", None)]
    (batch,) = source.value_batches(10)
    values, reasons = format_array(FieldSpec("Date"), batch.column(1))
    assert values.to_pylist() == ["2026-11-02", None]
    assert reasons.to_pylist() == [None, "empty"]


def test_parquet_email_must_be_strings(tmp_path: Path) -> None:
    pq.write_table(pa.table({"email": [1, 2], "v": [1.0, 2.0]}), tmp_path / "t.parquet")
    spec = ParquetTraitSourceSpec(kind="parquet", path="t.parquet", value_column="v")
    with pytest.raises(SourceError, match=r"column 'email' of t\.parquet holds int64"):
        rows(build_trait_source(spec, base_dir=tmp_path, trait_key=KEY))


def test_identify_trait_values_as_text() -> None:
    def message(value: object) -> dict[str, Any]:
        return identify("m", "u", "2026-01-01T00:00:00Z", traits={KEY: value})

    assert trait_value(message(412.5), KEY) == (True, "412.5")
    assert trait_value(message("shoes"), KEY) == (True, "shoes")
    assert trait_value(message(True), KEY) == (True, "true")
    assert trait_value(message(None), KEY) == (True, None)
    assert trait_value(identify("m", "u", "t", traits={}), KEY) == (False, None)
    assert trait_value(track("m", "u", KEY, True, "2026-01-01T00:00:00Z"), KEY) == (False, None)


def test_segment_archives_give_each_profiles_latest_trait(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    day1 = [
        # u1: two values, written out of order; the later one wins; email in the first
        identify("m2", "u1", "2026-05-02T10:00:00Z", traits={KEY: 500}),
        identify("m1", "u1", "2026-05-01T10:00:00Z", traits={KEY: 412.5, "email": "ann@x.com"}),
        # u2: the same timestamp twice, receivedAt decides
        identify(
            "m3",
            "u2",
            "2026-05-01T11:00:00Z",
            traits={KEY: 1, "email": "bob@x.com"},
            received_at="2026-05-01T11:00:09Z",
        ),
        identify(
            "m4",
            "u2",
            "2026-05-01T11:00:00Z",
            traits={KEY: 2},
            received_at="2026-05-01T11:00:01Z",
        ),
        # u3 has the trait but no email anywhere; u4 has an email but not the trait
        identify("m5", "u3", "2026-05-01T12:00:00Z", traits={KEY: 9}),
        identify("m6", "u4", "2026-05-01T12:00:00Z", traits={"email": "dan@x.com"}),
        # no profile at all
        identify("m7", None, "2026-05-01T12:00:00Z", traits={KEY: 3, "email": "g@x.com"}),
    ]
    day2 = [
        # a later message of u3 carries the email; u5's trait is null (no value)
        track("m8", "u3", "other", True, "2026-05-03T00:00:00Z", email="cy@x.com"),
        identify("m9", "u5", "2026-05-03T00:00:00Z", traits={KEY: None, "email": "eve@x.com"}),
    ]
    write_jsonl(folder / "day1.jsonl.gz", day1, gz=True)
    write_jsonl(folder / "day2.jsonl", day2)
    spec = SegmentEventsTraitSourceSpec(kind="segment_events", path="archive/*")
    source = build_trait_source(spec, base_dir=tmp_path, trait_key=KEY)
    assert sorted(rows(source, chunk_size=2)) == [
        ("ann@x.com", "500"),
        ("bob@x.com", "1"),
        ("cy@x.com", "9"),
        ("eve@x.com", None),
    ]
    assert source.notes == {
        "files": 2,
        "events": 9,
        "trait_events": 6,
        "events_without_profile": 1,
        "profiles": 4,
        "profiles_without_email": 0,
    }


def test_segment_archives_can_name_a_different_trait(tmp_path: Path) -> None:
    message = identify("m1", "u1", "2026-05-01T00:00:00Z", traits={"ltv": 7, "email": "a@x.com"})
    write_jsonl(tmp_path / "a.jsonl", [message])
    spec = SegmentEventsTraitSourceSpec(kind="segment_events", path="a.jsonl", trait="ltv")
    assert rows(build_trait_source(spec, base_dir=tmp_path, trait_key=KEY)) == [("a@x.com", "7")]


def test_a_bad_archive_line_names_the_trait(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(json.dumps({"type": "identify"}) + "\nnot json\n")
    spec = SegmentEventsTraitSourceSpec(kind="segment_events", path="a.jsonl")
    with pytest.raises(SourceError, match=r"^trait 'lifetime_value': a.jsonl line 2 is not valid"):
        rows(build_trait_source(spec, base_dir=tmp_path, trait_key=KEY))


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "dw.db"
    with sqlite3.connect(path) as db:
        db.execute("create table t (email text, ltv numeric, since text, k text)")
        db.executemany(
            "insert into t values (?, ?, ?, ?)",
            [
                ("ann@example.com", 412.5, "2026-11-02", KEY),
                ("bob@example.com", None, None, KEY),
                ("cy@example.com", 3, "2026-01-01", "other"),
            ],
        )
    return path


def test_sql_traits_bind_the_trait_key_and_keep_value_types(
    tmp_path: Path, warehouse: Path
) -> None:
    spec = SqlTraitSourceSpec(
        kind="sql",
        url="sqlite:///dw.db",
        query="select email, ltv as value from t where k = :trait_key and :floor <= 1",
        params={"floor": 0},
    )
    source = build_trait_source(spec, base_dir=tmp_path, trait_key=KEY)
    assert rows(source, chunk_size=1) == [("ann@example.com", 412.5), ("bob@example.com", None)]
    assert source.notes == {"rows": 2}
    assert source.describe() == "sql:sqlite:///dw.db"


def test_sql_traits_mixing_types_become_text(tmp_path: Path, warehouse: Path) -> None:
    query = "select email, case when ltv > 100 then ltv else since end as v from t"
    spec = SqlTraitSourceSpec(kind="sql", url="sqlite:///dw.db", query=query, value_column="v")
    got = rows(build_trait_source(spec, base_dir=tmp_path, trait_key=KEY))
    assert got == [
        ("ann@example.com", "412.5"),
        ("bob@example.com", None),
        ("cy@example.com", "2026-01-01"),
    ]


def test_a_query_without_the_value_column_names_the_trait(tmp_path: Path, warehouse: Path) -> None:
    spec = SqlTraitSourceSpec(kind="sql", url="sqlite:///dw.db", query="select email from t")
    with pytest.raises(SourceError) as caught:
        rows(build_trait_source(spec, base_dir=tmp_path, trait_key=KEY))
    assert str(caught.value) == (
        "trait 'lifetime_value': the query returns no column 'value' (columns: email)"
    )


def test_a_failing_query_names_the_trait(tmp_path: Path) -> None:
    spec = SqlTraitSourceSpec(
        kind="sql", url="sqlite:///dw.db", query="select email, value from missing"
    )
    with pytest.raises(SourceError, match=r"^trait 'lifetime_value': query against sqlite"):
        rows(build_trait_source(spec, base_dir=tmp_path, trait_key=KEY))


def test_an_error_quoting_a_parameter_does_not_show_it(
    tmp_path: Path, pg_database_url: str
) -> None:
    spec = SqlTraitSourceSpec(
        kind="sql",
        url=pg_database_url,
        query="select 'ann@example.com' as email, 1 as value where 2 > cast(:floor as integer)",
        params={"floor": "seven-ish"},
    )
    with pytest.raises(SourceError) as caught:
        rows(build_trait_source(spec, base_dir=tmp_path, trait_key=KEY))
    message = str(caught.value)
    assert "invalid input syntax" in message
    assert "seven-ish" not in message
    assert "***" in message
