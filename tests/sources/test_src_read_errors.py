"""Every way a source file can fail to read becomes a SourceError naming the file and the cause.

Nothing from the file itself (no line, no address) is in the message.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audience_sync.errors import SourceError
from audience_sync.sources import build_source
from audience_sync.sources.base import SourceBase
from audience_sync.sources.specs import (
    CsvSourceSpec,
    ParquetSourceSpec,
    SegmentEventsSourceSpec,
    SourceSpec,
)
from tests.sources.source_helpers import read_all

ROWS = "".join(f"{i},secret.person{i}@example.com\n" for i in range(5000))
CSV_BYTES = ("id,email\n" + ROWS).encode()
MESSAGE = {
    "type": "identify",
    "messageId": "m1",
    "userId": "u1",
    "traits": {"email": "secret.person@example.com", "vip": True},
    "timestamp": "2026-11-01T00:00:00Z",
}


def read_error(spec: SourceSpec, base_dir: Path) -> str:
    source = build_source(spec, base_dir=base_dir, audience_key="vip")
    with pytest.raises(SourceError) as caught:
        read_all(source, chunk_size=100)
    message = str(caught.value)
    assert "secret.person" not in message
    assert "Traceback" not in message
    return message


def csv_spec(path: str, **options: str) -> CsvSourceSpec:
    return CsvSourceSpec(kind="csv", path=path, **options)


def events_spec(path: str) -> SegmentEventsSourceSpec:
    return SegmentEventsSourceSpec(kind="segment_events", path=path)


def truncated_gzip(data: bytes) -> bytes:
    whole = gzip.compress(data)
    return whole[: len(whole) // 2]


def corrupt_gzip(data: bytes) -> bytes:
    """A gzip member whose deflate stream starts with a block of the reserved type 3."""
    whole = bytearray(gzip.compress(data))
    whole[10] = 0b111  # after the 10-byte header: final block, type 3
    return bytes(whole)


def bad_checksum_gzip(data: bytes) -> bytes:
    whole = bytearray(gzip.compress(data))
    whole[-8] ^= 0xFF  # the CRC-32 of the trailer
    return bytes(whole)


def test_a_truncated_csv_gz_names_the_file_and_says_it_ends_early(tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "vip.csv.gz").write_bytes(truncated_gzip(CSV_BYTES))
    message = read_error(csv_spec("exports/*.csv.gz"), tmp_path)
    assert message == (
        "audience 'vip': cannot read exports/vip.csv.gz: "
        "the file ends early (truncated, or still being written)"
    )


def test_a_corrupt_csv_gz_names_the_file_and_says_it_is_corrupt(tmp_path: Path) -> None:
    (tmp_path / "vip.csv.gz").write_bytes(corrupt_gzip(CSV_BYTES))
    message = read_error(csv_spec("vip.csv.gz"), tmp_path)
    assert message == "audience 'vip': cannot read vip.csv.gz: the gzip data is corrupt"


def test_a_csv_gz_failing_its_checksum_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "vip.csv.gz").write_bytes(bad_checksum_gzip(CSV_BYTES))
    message = read_error(csv_spec("vip.csv.gz"), tmp_path)
    assert message == "audience 'vip': cannot read vip.csv.gz: the gzip data is corrupt"


def test_a_gz_file_that_is_not_gzip_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "vip.csv.gz").write_bytes(b"not gzip at all, just text\n" * 10)
    message = read_error(csv_spec("vip.csv.gz"), tmp_path)
    assert message.startswith("audience 'vip': cannot read vip.csv.gz: ")


def test_undecodable_bytes_name_the_file_and_the_encoding(tmp_path: Path) -> None:
    (tmp_path / "vip.csv").write_bytes(CSV_BYTES + b"9,caf\xe9@example.com\n")
    message = read_error(csv_spec("vip.csv"), tmp_path)
    assert message == (
        "audience 'vip': cannot read vip.csv: "
        "bytes that are not valid utf-8 (check the source's encoding)"
    )


def test_a_truncated_segment_archive_names_the_file(tmp_path: Path) -> None:
    lines = "".join(json.dumps({**MESSAGE, "messageId": f"m{i}"}) + "\n" for i in range(3000))
    (tmp_path / "engage.jsonl.gz").write_bytes(truncated_gzip(lines.encode()))
    message = read_error(events_spec("*.jsonl.gz"), tmp_path)
    assert message == (
        "audience 'vip': cannot read engage.jsonl.gz: "
        "the file ends early (truncated, or still being written)"
    )


def test_a_corrupt_segment_archive_names_the_file(tmp_path: Path) -> None:
    lines = "".join(json.dumps({**MESSAGE, "messageId": f"m{i}"}) + "\n" for i in range(3000))
    (tmp_path / "engage.jsonl.gz").write_bytes(corrupt_gzip(lines.encode()))
    message = read_error(events_spec("*.jsonl.gz"), tmp_path)
    assert message == "audience 'vip': cannot read engage.jsonl.gz: the gzip data is corrupt"


def test_a_deeply_nested_segment_event_fails_only_with_its_line(tmp_path: Path) -> None:
    nested = '{"a": ' * 100_000 + "1" + "}" * 100_000
    (tmp_path / "engage.jsonl").write_text(json.dumps(MESSAGE) + "\n" + nested + "\n")
    message = read_error(events_spec("engage.jsonl"), tmp_path)
    assert message == "audience 'vip': engage.jsonl line 2 is JSON nested too deeply"


def test_undecodable_bytes_in_a_segment_archive_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "engage.jsonl").write_bytes(json.dumps(MESSAGE).encode() + b"\n\xff\xfe\n")
    message = read_error(events_spec("engage.jsonl"), tmp_path)
    assert message == (
        "audience 'vip': cannot read engage.jsonl: "
        "bytes that are not valid utf-8 (check the source's encoding)"
    )


def test_an_unknown_encoding_that_escaped_the_config_check_names_the_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "vip.csv").write_bytes(CSV_BYTES)
    spec = CsvSourceSpec.model_construct(kind="csv", path="vip.csv", encoding="utf-9")
    message = read_error(spec, tmp_path)
    assert message == "audience 'vip': cannot read vip.csv: unknown encoding"


def test_a_truncated_parquet_file_names_the_file(tmp_path: Path) -> None:
    table = pa.table({"email": [f"secret.person{i}@example.com" for i in range(1000)]})
    pq.write_table(table, tmp_path / "vip.parquet")
    whole = (tmp_path / "vip.parquet").read_bytes()
    (tmp_path / "vip.parquet").write_bytes(whole[: len(whole) // 2])
    message = read_error(ParquetSourceSpec(kind="parquet", path="vip.parquet"), tmp_path)
    assert message.startswith("audience 'vip': cannot read vip.parquet: ")


class _Exploding(SourceBase[None]):
    def describe(self) -> str:
        return "custom:feed"

    def _read(self, chunk_size: int) -> Iterator[list[str | None]]:
        yield ["a@example.com"]
        raise RuntimeError("unforeseen for secret.person@example.com\nsecond line")


def test_a_failure_no_reader_foresaw_still_fails_only_as_a_source_error() -> None:
    source = _Exploding(None, base_dir=Path("."), audience_key="vip")
    with pytest.raises(SourceError) as caught:
        read_all(source)
    assert str(caught.value) == (
        "audience 'vip': reading custom:feed failed: unforeseen for s***@example.com"
    )
