"""The one place the planner gets a source's members as Arrow.

Today: ``source.chunks()`` normalised by ``normalize_chunk()``; to be swapped for
``source.batches()`` + ``normalize_batch()`` without touching the planner.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from audience_sync.normalize import normalize_chunk
from audience_sync.sources.base import MemberSource


def normalised_batches(
    source: MemberSource, chunk_size: int
) -> Iterator[tuple[pa.Array, dict[str, int], int]]:
    """Per chunk: the usable normalised emails (a string array), rejects by reason, and the
    number of raw rows read."""
    for raw in source.chunks(chunk_size):
        chunk = normalize_chunk(raw)
        yield pa.array(chunk.emails, type=pa.string()), chunk.invalid, len(raw)
