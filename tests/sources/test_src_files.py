"""CSV and Parquet sources: globs, gzip, email column checks, chunking."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audience_sync.errors import SourceError
from audience_sync.normalize import normalize_chunk
from audience_sync.sources import MemberSource, build_source
from audience_sync.sources.specs import CsvSourceSpec, ParquetSourceSpec
from tests.sources.source_helpers import read_all


def parquet_source(tmp_path: Path, pattern: str, column: str = "email") -> MemberSource:
    spec = ParquetSourceSpec(kind="parquet", path=pattern, email_column=column)
    return build_source(spec, base_dir=tmp_path, audience_key="vip")


def write_parquet(path: Path, columns: dict[str, list[object]], **options: object) -> Path:
    pq.write_table(pa.table(columns), path, **options)
    return path


class TestCsv:
    def test_gzipped_glob_with_mixed_case_emails(self, tmp_path: Path) -> None:
        (tmp_path / "a.csv").write_text("id,Mail\n1, Ann@Example.COM \n2,bob@example.com\n")
        (tmp_path / "b.csv.gz").write_bytes(gzip.compress(b"id,Mail\n3,CAROL@example.com\n"))
        source = build_source(
            CsvSourceSpec(kind="csv", path="*.csv*", email_column="Mail"),
            base_dir=tmp_path,
            audience_key="vip",
        )
        raw = read_all(source)
        assert raw == [" Ann@Example.COM ", "bob@example.com", "CAROL@example.com"]
        assert normalize_chunk(raw).emails == [
            "ann@example.com",
            "bob@example.com",
            "carol@example.com",
        ]
        assert source.notes["files"] == 2

    def test_missing_column_names_audience_and_columns(self, tmp_path: Path) -> None:
        (tmp_path / "a.csv").write_text("id,mail\n1,a@b.co\n")
        source = build_source(
            CsvSourceSpec(kind="csv", path="a.csv"), base_dir=tmp_path, audience_key="vip"
        )
        with pytest.raises(SourceError, match=r"'vip'.*no column 'email'.*id, mail"):
            read_all(source)

    def test_missing_file(self, tmp_path: Path) -> None:
        source = build_source(
            CsvSourceSpec(kind="csv", path="none/*.csv"), base_dir=tmp_path, audience_key="vip"
        )
        with pytest.raises(SourceError, match=r"'vip': no file matches 'none/\*\.csv'"):
            read_all(source)


class TestParquet:
    def test_gzip_compressed_glob_in_chunks(self, tmp_path: Path) -> None:
        write_parquet(
            tmp_path / "part-1.parquet",
            {"email": [" Ann@Example.com", None, "b@example.com"], "n": [1, 2, 3]},
            compression="gzip",
        )
        write_parquet(tmp_path / "part-2.parquet", {"email": ["C@example.com"], "n": [4]})
        source = parquet_source(tmp_path, "part-*.parquet")
        chunks = list(source.chunks(2))
        assert chunks == [[" Ann@Example.com", None], ["b@example.com"], ["C@example.com"]]
        assert source.notes == {"files": 2}
        assert source.describe() == "parquet:part-*.parquet"

    def test_dictionary_encoded_strings_and_custom_column(self, tmp_path: Path) -> None:
        column = pa.array(["a@x.com", "b@x.com"]).dictionary_encode()
        pq.write_table(pa.table({"Email Address": column}), tmp_path / "m.parquet")
        source = parquet_source(tmp_path, "m.parquet", column="Email Address")
        assert read_all(source) == ["a@x.com", "b@x.com"]

    def test_missing_column_lists_columns(self, tmp_path: Path) -> None:
        write_parquet(tmp_path / "m.parquet", {"mail": ["a@x.com"], "id": [1]})
        with pytest.raises(SourceError, match=r"'vip'.*m\.parquet has no column 'email'.*mail, id"):
            read_all(parquet_source(tmp_path, "m.parquet"))

    def test_non_string_column_is_refused(self, tmp_path: Path) -> None:
        write_parquet(tmp_path / "m.parquet", {"email": [1, 2]})
        with pytest.raises(SourceError, match=r"column 'email' of m\.parquet holds int64"):
            read_all(parquet_source(tmp_path, "m.parquet"))

    def test_corrupt_file(self, tmp_path: Path) -> None:
        (tmp_path / "m.parquet").write_bytes(b"not parquet at all")
        with pytest.raises(SourceError, match=r"'vip': cannot read m\.parquet"):
            read_all(parquet_source(tmp_path, "m.parquet"))

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(SourceError, match="no file matches"):
            read_all(parquet_source(tmp_path, "*.parquet"))

    def test_empty_file_is_not_an_error(self, tmp_path: Path) -> None:
        write_parquet(tmp_path / "m.parquet", {"email": pa.array([], type=pa.string())})
        assert read_all(parquet_source(tmp_path, "m.parquet")) == []
