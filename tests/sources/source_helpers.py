"""Helpers of the member-source tests: reading a source, Segment message builders."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from audience_sync.sources.base import MemberSource


@dataclass(frozen=True)
class PgWarehouse:
    """A PostgreSQL database of the test's own and a schema in it."""

    url: str
    schema: str


def read_all(source: MemberSource, chunk_size: int = 1000) -> list[str | None]:
    """Every raw email the source yields, in order."""
    return [email for chunk in source.chunks(chunk_size) for email in chunk]


def track(
    message_id: str,
    user_id: str | None,
    key: str,
    entered: bool,
    timestamp: str,
    *,
    email: str | None = None,
    received_at: str | None = None,
    value: object = "same",
    anonymous_id: str | None = None,
) -> dict[str, Any]:
    """A Track ``Audience Entered``/``Exited`` as Engage emits it."""
    properties: dict[str, Any] = {"audience_key": key}
    properties[key] = entered if value == "same" else value
    message: dict[str, Any] = {
        "type": "track",
        "messageId": message_id,
        "event": "Audience Entered" if entered else "Audience Exited",
        "properties": properties,
        "context": {"traits": {"email": email} if email else {}},
        "timestamp": timestamp,
        "receivedAt": received_at or timestamp,
    }
    if user_id is not None:
        message["userId"] = user_id
    if anonymous_id is not None:
        message["anonymousId"] = anonymous_id
    return message


def identify(
    message_id: str,
    user_id: str | None,
    timestamp: str,
    *,
    traits: dict[str, Any],
    received_at: str | None = None,
    anonymous_id: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "identify",
        "messageId": message_id,
        "traits": traits,
        "timestamp": timestamp,
        "receivedAt": received_at or timestamp,
    }
    if user_id is not None:
        message["userId"] = user_id
    if anonymous_id is not None:
        message["anonymousId"] = anonymous_id
    return message


def write_jsonl(path: Path, messages: Iterable[dict[str, Any]], *, gz: bool = False) -> Path:
    lines = "".join(json.dumps(m) + "\n" for m in messages)
    if gz:
        path.write_bytes(gzip.compress(lines.encode()))
    else:
        path.write_text(lines, encoding="utf-8")
    return path


def read_all_batches(source: MemberSource, chunk_size: int = 1000) -> list[str | None]:
    """Every raw email the source's Arrow batches hold, in order (each checked to be strings)."""
    values: list[str | None] = []
    for batch in source.batches(chunk_size):
        assert pa.types.is_string(batch.type) or pa.types.is_large_string(batch.type)
        values.extend(batch.to_pylist())
    return values
