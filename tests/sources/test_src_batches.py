"""``MemberSource.batches``: the values of ``chunks`` as Arrow string arrays, the same errors.

CSV and Parquet read Arrow natively, and so does SQL on SQLite and PostgreSQL (ADBC, see
``test_src_sql_arrow``); the Segment sources wrap their chunks.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audience_sync.errors import SourceError
from audience_sync.normalize import normalize_batch
from audience_sync.sources import MemberSource, build_source
from audience_sync.sources.csv_columns import CSV_BLOCK_SIZE
from audience_sync.sources.specs import (
    CsvSourceSpec,
    ParquetSourceSpec,
    SegmentEventsSourceSpec,
    SqlSourceSpec,
)
from tests.sources.source_helpers import read_all, read_all_batches, track, write_jsonl

Reader = Callable[[MemberSource], list[str | None]]
# Every test of an error reads the source both ways: the errors must be the same.
READERS = [
    pytest.param(lambda source: read_all(source, 100), id="chunks"),
    pytest.param(lambda source: read_all_batches(source, 100), id="batches"),
]


def csv_source(tmp_path: Path, pattern: str, **options: str) -> MemberSource:
    spec = CsvSourceSpec.model_validate({"kind": "csv", "path": pattern, **options})
    return build_source(spec, base_dir=tmp_path, audience_key="vip")


def sizes(source: MemberSource, chunk_size: int) -> list[int]:
    return [len(batch) for batch in source.batches(chunk_size)]


class TestCsvBatches:
    def test_same_values_as_chunks_across_compressions_in_glob_order(self, tmp_path: Path) -> None:
        (tmp_path / "a.csv").write_text("id,Mail\n1, Ann@Example.COM \n2,\n3,NA\n")
        (tmp_path / "b.csv.gz").write_bytes(gzip.compress(b"id,Mail\n4,CAROL@example.com\n"))
        (tmp_path / "c.csv.bz2").write_bytes(bz2.compress(b"Mail\nd@example.com\n"))
        (tmp_path / "d.csv.xz").write_bytes(lzma.compress(b"Mail\ne@example.com\n"))
        source = csv_source(tmp_path, "*.csv*", email_column="Mail")
        expected = [
            " Ann@Example.COM ",
            "",
            "NA",
            "CAROL@example.com",
            "d@example.com",
            "e@example.com",
        ]
        assert read_all_batches(source) == expected
        assert read_all(source) == expected
        assert source.notes == {"files": 4}
        # one batch per file at most: a file's last batch may be short
        assert sizes(source, 2) == [2, 1, 1, 1, 1]

    def test_delimiter_quoted_newline_bom_blank_lines_and_encoding(self, tmp_path: Path) -> None:
        text = 'email;note\n"a\nb@x.com";1\n\n"c;d@x.com";2\nf\u00e9@x.com;3\n'
        (tmp_path / "m.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
        (tmp_path / "l.csv").write_bytes(text.encode("latin-1"))
        expected = ["a\nb@x.com", "c;d@x.com", "f\u00e9@x.com"]
        assert read_all_batches(csv_source(tmp_path, "m.csv", delimiter=";")) == expected
        latin = csv_source(tmp_path, "l.csv", delimiter=";", encoding="latin-1")
        assert read_all_batches(latin) == expected
        assert read_all(latin) == expected

    def test_a_csv_larger_than_one_block_streams_in_batches_of_chunk_size(
        self, tmp_path: Path
    ) -> None:
        rows = [f"{i},Person.{i}@Example.com" for i in range(CSV_BLOCK_SIZE // 10)]
        path = tmp_path / "big.csv"
        path.write_text("id,email\n" + "\n".join(rows) + "\n")
        assert path.stat().st_size > 2 * CSV_BLOCK_SIZE
        source = csv_source(tmp_path, "big.csv")
        chunk = len(rows) // 3 + 1
        assert sizes(source, chunk) == [chunk, chunk, len(rows) - 2 * chunk]
        batches = list(source.batches(chunk))
        assert [v for batch in batches for v in batch.to_pylist()] == [
            r.split(",")[1] for r in rows
        ]
        assert read_all(source, chunk) == read_all_batches(source, chunk)
        assert normalize_batch(batches[0]).emails[0].as_py() == "person.0@example.com"

    def test_batches_come_before_the_whole_file_is_read(self, tmp_path: Path) -> None:
        """The first batch is out although the file's last block cannot be decoded."""
        rows = "".join(f"{i},p{i}@x.com\n" for i in range(CSV_BLOCK_SIZE // 5))
        (tmp_path / "m.csv").write_bytes(("id,email\n" + rows).encode() + b"9,caf\xe9@x.com\n")
        batches = csv_source(tmp_path, "m.csv").batches(1000)
        assert next(batches).to_pylist()[:2] == ["p0@x.com", "p1@x.com"]
        with pytest.raises(SourceError, match="not valid utf-8"):
            list(batches)

    def test_a_zip_archive_is_still_read(self, tmp_path: Path) -> None:
        import zipfile

        with zipfile.ZipFile(tmp_path / "m.csv.zip", "w") as archive:
            archive.writestr("m.csv", "email\na@x.com\n\nb@x.com\n")
        source = csv_source(tmp_path, "m.csv.zip")
        assert read_all_batches(source) == ["a@x.com", "b@x.com"]

    def test_an_empty_file_with_a_header_gives_no_batch(self, tmp_path: Path) -> None:
        (tmp_path / "m.csv").write_text("id,email\n")
        assert list(csv_source(tmp_path, "m.csv").batches(10)) == []

    @pytest.mark.parametrize("read", READERS)
    def test_a_missing_column_names_the_file_and_its_columns(
        self, tmp_path: Path, read: Reader
    ) -> None:
        (tmp_path / "m.csv.gz").write_bytes(gzip.compress(b"id,mail\n1,a@x.com\n"))
        with pytest.raises(
            SourceError,
            match=r"^audience 'vip': m\.csv\.gz has no column 'email' \(columns: id, mail\)$",
        ):
            read(csv_source(tmp_path, "m.csv.gz"))

    @pytest.mark.parametrize("read", READERS)
    def test_an_empty_file_names_the_file(self, tmp_path: Path, read: Reader) -> None:
        (tmp_path / "m.csv").write_text("")
        with pytest.raises(
            SourceError, match=r"^audience 'vip': m\.csv is empty \(no header row\)$"
        ):
            read(csv_source(tmp_path, "m.csv"))

    @pytest.mark.parametrize("read", READERS)
    def test_undecodable_bytes_after_the_first_block_name_the_file(
        self, tmp_path: Path, read: Reader
    ) -> None:
        rows = "".join(f"{i},p{i}@x.com\n" for i in range(CSV_BLOCK_SIZE // 10))
        (tmp_path / "m.csv").write_bytes(("id,email\n" + rows).encode() + b"9,caf\xe9@x.com\n")
        with pytest.raises(SourceError) as caught:
            read(csv_source(tmp_path, "m.csv"))
        assert str(caught.value) == (
            "audience 'vip': cannot read m.csv: "
            "bytes that are not valid utf-8 (check the source's encoding)"
        )

    @pytest.mark.parametrize("read", READERS)
    def test_a_truncated_gzip_names_the_file(self, tmp_path: Path, read: Reader) -> None:
        data = gzip.compress(b"email\n" + b"".join(b"p%d@x.com\n" % i for i in range(50_000)))
        (tmp_path / "m.csv.gz").write_bytes(data[: len(data) // 2])
        with pytest.raises(SourceError) as caught:
            read(csv_source(tmp_path, "m.csv.gz"))
        assert str(caught.value) == (
            "audience 'vip': cannot read m.csv.gz: "
            "the file ends early (truncated, or still being written)"
        )

    @pytest.mark.parametrize("read", READERS)
    def test_a_row_with_too_few_fields_names_the_file_not_the_row(
        self, tmp_path: Path, read: Reader
    ) -> None:
        (tmp_path / "m.csv").write_text("id,email,name\n1,a@x.com,A\n2,secret.person@x.com\n")
        with pytest.raises(SourceError) as caught:
            read(csv_source(tmp_path, "m.csv"))
        assert str(caught.value) == (
            "audience 'vip': cannot read m.csv: CSV parse error: Expected 3 columns, got 2"
        )


def write_parquet(path: Path, columns: dict[str, object], **options: object) -> None:
    pq.write_table(pa.table(columns), path, **options)


class TestParquetBatches:
    def test_same_values_as_chunks_dictionary_decoded(self, tmp_path: Path) -> None:
        write_parquet(
            tmp_path / "p-1.parquet",
            {"email": pa.array([" A@x.com", None, "b@x.com"]).dictionary_encode()},
        )
        write_parquet(
            tmp_path / "p-2.parquet",
            {"email": pa.array(["c@x.com"], pa.large_string()), "n": [1]},
            compression="gzip",
        )
        spec = ParquetSourceSpec(kind="parquet", path="p-*.parquet")
        source = build_source(spec, base_dir=tmp_path, audience_key="vip")
        expected = [" A@x.com", None, "b@x.com", "c@x.com"]
        assert read_all_batches(source) == expected
        assert read_all(source) == expected
        assert sizes(source, 2) == [2, 1, 1]

    @pytest.mark.parametrize("read", READERS)
    def test_a_corrupt_file_names_the_file(self, tmp_path: Path, read: Reader) -> None:
        (tmp_path / "m.parquet").write_bytes(b"not parquet at all")
        spec = ParquetSourceSpec(kind="parquet", path="m.parquet")
        with pytest.raises(SourceError, match=r"^audience 'vip': cannot read m\.parquet: "):
            read(build_source(spec, base_dir=tmp_path, audience_key="vip"))


class TestWrappedSources:
    def test_sql_batches_hold_its_chunks(self, tmp_path: Path) -> None:
        with sqlite3.connect(tmp_path / "w.db") as db:
            db.execute("create table members (email text)")
            db.executemany(
                "insert into members values (?)",
                [("A@x.com",), (None,), ("b@x.com",), ("c@x.com",), ("d@x.com",)],
            )
        db.close()
        spec = SqlSourceSpec(kind="sql", url="sqlite:///w.db", query="select email from members")
        source = build_source(spec, base_dir=tmp_path, audience_key="vip")
        assert read_all_batches(source) == read_all(source)
        assert read_all_batches(source)[:2] == ["A@x.com", None]
        assert sizes(source, 2) == [2, 2, 1]

    @pytest.mark.parametrize("read", READERS)
    def test_sql_errors_are_source_errors(self, tmp_path: Path, read: Reader) -> None:
        (tmp_path / "w.db").write_bytes(b"")
        spec = SqlSourceSpec(kind="sql", url="sqlite:///w.db", query="select email from nowhere")
        with pytest.raises(SourceError, match=r"^audience 'vip': query against .*no such table"):
            read(build_source(spec, base_dir=tmp_path, audience_key="vip"))

    def test_segment_events_batches_wrap_its_chunks(self, tmp_path: Path) -> None:
        write_jsonl(
            tmp_path / "e.jsonl",
            [
                track("m1", "u1", "vip", True, "2024-05-01T10:00:00Z", email="A@x.com"),
                track("m2", "u2", "vip", True, "2024-05-01T10:00:00Z", email="b@x.com"),
            ],
        )
        spec = SegmentEventsSourceSpec(kind="segment_events", path="e.jsonl")
        source = build_source(spec, base_dir=tmp_path, audience_key="vip")
        assert sorted(read_all_batches(source), key=str) == sorted(read_all(source), key=str)
        assert len(read_all_batches(source)) == 2

    @pytest.mark.parametrize("read", READERS)
    def test_segment_events_errors_name_the_file(self, tmp_path: Path, read: Reader) -> None:
        (tmp_path / "e.jsonl").write_bytes(json.dumps({"type": "identify"}).encode() + b"\n\xff\n")
        spec = SegmentEventsSourceSpec(kind="segment_events", path="e.jsonl")
        with pytest.raises(SourceError, match=r"^audience 'vip': cannot read e\.jsonl: "):
            read(build_source(spec, base_dir=tmp_path, audience_key="vip"))
