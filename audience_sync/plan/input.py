"""The one place the planner gets a source's members as Arrow: ``source.batches()``
normalised by ``normalize_batch()``, with no Python string per simple address."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from audience_sync.normalize import normalize_batch
from audience_sync.sources.base import MemberSource


def normalised_batches(
    source: MemberSource, chunk_size: int
) -> Iterator[tuple[pa.Array, dict[str, int], int]]:
    """Per batch: the usable normalised emails (a string array, repeats kept; the planner
    deduplicates), rejects by reason, and the number of raw rows read."""
    for raw in source.batches(chunk_size):
        batch = normalize_batch(raw)
        yield batch.emails, batch.invalid, len(raw)
