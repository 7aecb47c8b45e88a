"""The segment_events source over JSON-lines archives (plain and gzipped)."""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Generator
from pathlib import Path

import pytest

from audience_sync.errors import SourceError
from audience_sync.normalize import normalize_chunk
from audience_sync.sources import build_source
from audience_sync.sources.segment_events import SegmentEventsSource
from audience_sync.sources.specs import SegmentEventsSourceSpec
from tests.sources.source_helpers import identify, read_all, track, write_jsonl

KEY = "first_time_shopper"


def events_source(tmp_path: Path, pattern: str, key: str = KEY) -> SegmentEventsSource:
    spec = SegmentEventsSourceSpec(kind="segment_events", path=pattern)
    source = build_source(spec, base_dir=tmp_path, audience_key=key)
    assert isinstance(source, SegmentEventsSource)
    return source


def members(source: SegmentEventsSource, chunk_size: int = 1000) -> list[str]:
    return sorted(normalize_chunk(read_all(source, chunk_size)).emails)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """Two days of Engage events, out of order and partly re-delivered, across gz and plain."""
    folder = tmp_path / "archive"
    folder.mkdir()
    day1 = [
        # u1 enters, then exits (the exit is written first: out of order)
        track("m2", "u1", KEY, False, "2024-05-02T10:00:00Z"),
        track("m1", "u1", KEY, True, "2024-05-01T10:00:00Z", email=" Ann@Example.COM "),
        # u2 enters via Identify with traits.email
        identify(
            "m3", "u2", "2024-05-01T11:00:00Z", traits={KEY: True, "email": "BOB@example.com"}
        ),
        # u3: exit and re-entry share a timestamp; receivedAt decides (entered received later)
        track("m4", "u3", KEY, False, "2024-05-01T12:00:00Z", received_at="2024-05-01T12:00:01Z"),
        track(
            "m5",
            "u3",
            KEY,
            True,
            "2024-05-01T12:00:00Z",
            received_at="2024-05-01T12:00:05Z",
            email="carol@example.com",
        ),
        # u4 is a member but no event ever carries an email
        track("m6", "u4", KEY, True, "2024-05-01T13:00:00Z"),
        # no userId nor anonymousId
        track("m7", None, KEY, True, "2024-05-01T14:00:00Z", email="ghost@example.com"),
        # another audience, and an unrelated event
        track("m8", "u5", "other_audience", True, "2024-05-01T15:00:00Z", email="e@example.com"),
        {"type": "page", "messageId": "m9", "userId": "u1", "timestamp": "2024-05-01T00:00:00Z"},
    ]
    day2 = [
        # re-delivery of m1 and m3 (a repeated messageId counts once)
        track("m1", "u1", KEY, True, "2024-05-01T10:00:00Z", email=" Ann@Example.COM "),
        identify(
            "m3", "u2", "2024-05-01T11:00:00Z", traits={KEY: True, "email": "BOB@example.com"}
        ),
        # anonymous profile enters; its email arrives in a later Identify without the trait
        track("m10", None, KEY, True, "2024-05-02T09:00:00Z", anonymous_id="anon-1"),
        identify(
            "m11",
            None,
            "2024-05-02T09:30:00Z",
            traits={"email": "Dora@Example.com"},
            anonymous_id="anon-1",
        ),
    ]
    write_jsonl(folder / "2024-05-01.jsonl.gz", day1, gz=True)
    write_jsonl(folder / "2024-05-02.jsonl", day2)
    return folder


def test_membership_from_out_of_order_duplicated_events(tmp_path: Path, archive: Path) -> None:
    source = events_source(tmp_path, "archive/*.jsonl*")
    assert members(source) == ["bob@example.com", "carol@example.com", "dora@example.com"]
    assert source.notes == {
        "files": 2,
        "events": 13,
        "membership_events": 10,
        "duplicate_messages": 2,
        "events_without_profile": 1,
        "events_without_timestamp": 0,
        "profiles": 5,
        "profiles_without_email": 1,
    }


def test_chunks_are_at_most_chunk_size(tmp_path: Path, archive: Path) -> None:
    chunks = list(events_source(tmp_path, "archive/*").chunks(1))
    assert all(len(chunk) == 1 for chunk in chunks)
    assert len(chunks) == 3


def test_raw_emails_are_passed_through_for_the_pipeline(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "e.jsonl",
        [track("m1", "u1", KEY, True, "2024-01-01T00:00:00Z", email="  MiXeD@Case.ORG\t")],
    )
    assert read_all(events_source(tmp_path, "e.jsonl")) == ["  MiXeD@Case.ORG\t"]


def test_injection_shaped_audience_key_is_just_a_value(tmp_path: Path) -> None:
    crafted = "x' OR '1'='1"
    write_jsonl(
        tmp_path / "e.jsonl",
        [
            track("m1", "u1", crafted, True, "2024-01-01T00:00:00Z", email="a@x.com"),
            track("m2", "u2", KEY, True, "2024-01-01T00:00:00Z", email="b@x.com"),
        ],
    )
    assert members(events_source(tmp_path, "e.jsonl", key=crafted)) == ["a@x.com"]


def test_scratch_database_is_removed(
    tmp_path: Path, archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    source = events_source(tmp_path, "archive/*")
    chunks = source.chunks(1)
    assert isinstance(chunks, Generator)
    next(chunks)
    assert len(list(scratch.iterdir())) == 1
    chunks.close()
    assert list(scratch.iterdir()) == []


def test_no_member_is_not_an_error(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "e.jsonl", [track("m1", "u1", KEY, False, "2024-01-01T00:00:00Z")])
    source = events_source(tmp_path, "e.jsonl")
    assert read_all(source) == []
    assert source.notes["profiles"] == 1


class TestFailures:
    def test_bad_json_names_file_and_line(self, tmp_path: Path) -> None:
        (tmp_path / "e.jsonl").write_text('{"type": "track"}\n\n{not json}\n')
        with pytest.raises(SourceError, match=rf"'{KEY}': e\.jsonl line 3 is not valid JSON"):
            read_all(events_source(tmp_path, "e.jsonl"))

    def test_line_that_is_not_an_object(self, tmp_path: Path) -> None:
        (tmp_path / "e.jsonl").write_text("[1, 2]\n")
        with pytest.raises(SourceError, match=r"e\.jsonl line 1 is not an object"):
            read_all(events_source(tmp_path, "e.jsonl"))

    def test_truncated_gzip(self, tmp_path: Path) -> None:
        data = gzip.compress(b'{"type": "identify"}\n' * 1000)
        (tmp_path / "e.jsonl.gz").write_bytes(data[: len(data) // 2])
        with pytest.raises(SourceError, match=r"cannot read e\.jsonl\.gz"):
            read_all(events_source(tmp_path, "*.gz"))

    def test_missing_files(self, tmp_path: Path) -> None:
        with pytest.raises(SourceError, match=rf"'{KEY}': no file matches"):
            read_all(events_source(tmp_path, "archive/*.jsonl.gz"))
