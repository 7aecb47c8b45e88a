from __future__ import annotations

import base64
import csv
import io

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_sync.listrak.imports import (
    _csv_line,
    build_import_file,
    field_value_batch,
    import_file_name,
    split_batches_into_parts,
    split_into_parts,
)
from audience_sync.listrak.models import ImportFile


def rows(n: int) -> list[tuple[str, str]]:
    return [(f"user{i:04d}@example.com", "on" if i % 2 else "off") for i in range(n)]


def test_one_part_holds_header_and_rows() -> None:
    (part,) = list(split_into_parts(rows(3), column_name="vip", max_bytes=10_000))
    parsed = list(csv.reader(io.StringIO(part.body.decode())))
    assert parsed == [
        ["EmailAddress", "vip"],
        ["user0000@example.com", "off"],
        ["user0001@example.com", "on"],
        ["user0002@example.com", "off"],
    ]
    assert (part.first_email, part.last_email, part.row_count) == (
        "user0000@example.com",
        "user0002@example.com",
        3,
    )


def test_parts_stay_under_the_byte_limit_and_lose_no_row() -> None:
    parts = list(split_into_parts(rows(1000), column_name="vip", max_bytes=2_000))
    assert len(parts) > 1
    assert all(len(p.body) <= 2_000 for p in parts)
    assert [p.part for p in parts] == list(range(1, len(parts) + 1))
    assert sum(p.row_count for p in parts) == 1000
    emails = [r[0] for p in parts for r in list(csv.reader(io.StringIO(p.body.decode())))[1:]]
    assert emails == [e for e, _ in rows(1000)]


def test_no_rows_no_parts() -> None:
    assert list(split_into_parts([], column_name="vip", max_bytes=2_000)) == []


def test_import_file_updates_subscribers_only() -> None:
    (part,) = list(split_into_parts(rows(2), column_name="vip", max_bytes=10_000))
    body = build_import_file(part, file_name="f.csv", field_id=456)
    assert isinstance(body, ImportFile)
    assert body.importType == "UpdateSubscribers"
    assert body.segmentationImportType == "Update"
    assert body.includeUnsubscribed is False
    assert base64.b64decode(body.fileStream) == part.body
    mappings = [m.model_dump(exclude_none=True) for m in body.fileMappings]
    assert mappings == [
        {"fileColumn": 0, "fileColumnType": "Email"},
        {"fileColumn": 1, "fileColumnType": "SegmentationField", "segmentationFieldId": 456},
    ]


def test_file_names_are_deterministic_and_distinct() -> None:
    assert import_file_name("ab12", 7, "vip", 456, 1) == import_file_name("ab12", 7, "vip", 456, 1)
    assert import_file_name("ab12", 7, "vip", 456, 1) != import_file_name("ab12", 7, "vip", 456, 2)
    assert import_file_name("ab12", 7, "vip", 456, 1) != import_file_name("ab12", 8, "vip", 456, 1)
    # A recreated state database has another installation id: run ids may repeat, names not.
    assert import_file_name("ab12", 7, "vip", 456, 1) != import_file_name("cd34", 7, "vip", 456, 1)


def test_json_route_batch() -> None:
    batch = field_value_batch([("a@x.com", "on")], field_id=9)
    assert [b.model_dump() for b in batch] == [
        {
            "emailAddress": "a@x.com",
            "segmentationFieldValues": [{"segmentationFieldId": 9, "value": "on"}],
        }
    ]


@given(st.tuples(st.text(), st.text()))
def test_csv_lines_are_what_csv_writer_writes(values: tuple[str, str]) -> None:
    out = io.StringIO()
    csv.writer(out, delimiter=",", quotechar='"', lineterminator="\r\n").writerow(values)
    assert _csv_line(values) == out.getvalue().encode("utf-8")


cells = st.text(alphabet=st.sampled_from(["a", "é", ",", '"', "\r", "\n", "x", "@"]), max_size=6)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    rows=st.lists(st.tuples(cells, cells), max_size=40),
    batch_sizes=st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=8),
    max_bytes=st.integers(min_value=1, max_value=120),
)
def test_arrow_batches_make_the_same_parts_as_rows(
    rows: list[tuple[str, str]], batch_sizes: list[int], max_bytes: int
) -> None:
    """Same bytes, ranges, counts and blanks as the row-by-row writer, however the rows are
    cut into batches (empty batches and sliced arrays included) and whatever needs quoting."""
    batches, start = [], 0
    while start < len(rows) and any(batch_sizes):
        for size in batch_sizes:
            chunk = rows[start : start + size]
            start += size
            padded = [("pad", "pad"), *chunk]  # a sliced batch: its arrays have an offset
            batch = pa.RecordBatch.from_arrays(
                [pa.array([e for e, _ in padded]), pa.array([v for _, v in padded])],
                names=["email", "value"],
            )
            batches.append(batch.slice(1))
    rows = rows[:start]
    expected = list(split_into_parts(rows, column_name="vip", max_bytes=max_bytes))
    got = list(split_batches_into_parts(batches, column_name="vip", max_bytes=max_bytes))
    assert got == expected
