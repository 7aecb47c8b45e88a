"""Member sources: each reads one audience's complete snapshot in chunks; no state, no HTTP.

Every source raises :class:`~audience_sync.errors.SourceError` naming the audience and the
cause when it cannot read its snapshot completely (failing query, missing file or column, bad
JSON...), before the pipeline stages anything. An empty snapshot is not a source error: the
pipeline's empty-snapshot guard decides about it.
"""

from __future__ import annotations

from pathlib import Path

from audience_sync.sources.base import MemberSource
from audience_sync.sources.specs import (
    CsvSourceSpec,
    ParquetSourceSpec,
    SegmentEventsSourceSpec,
    SegmentEventsSqlSourceSpec,
    SourceSpec,
    SqlSourceSpec,
)

__all__ = ["MemberSource", "SourceSpec", "build_source"]


def build_source(spec: SourceSpec, *, base_dir: Path, audience_key: str) -> MemberSource:
    """The reader for ``spec``; relative paths resolve against ``base_dir``.

    Readers are imported here, not at the top, so that loading the config (which needs only
    the specs) does not load pandas and pyarrow.
    """
    if isinstance(spec, CsvSourceSpec | ParquetSourceSpec):
        from audience_sync.sources.files import CsvSource, ParquetSource

        if isinstance(spec, CsvSourceSpec):
            return CsvSource(spec, base_dir=base_dir, audience_key=audience_key)
        return ParquetSource(spec, base_dir=base_dir, audience_key=audience_key)
    if isinstance(spec, SqlSourceSpec):
        from audience_sync.sources.sql import SqlSource

        return SqlSource(spec, base_dir=base_dir, audience_key=audience_key)
    if isinstance(spec, SegmentEventsSourceSpec):
        from audience_sync.sources.segment_events import SegmentEventsSource

        return SegmentEventsSource(spec, base_dir=base_dir, audience_key=audience_key)
    if isinstance(spec, SegmentEventsSqlSourceSpec):
        from audience_sync.sources.segment_events_sql import SegmentEventsSqlSource

        return SegmentEventsSqlSource(spec, base_dir=base_dir, audience_key=audience_key)
    raise TypeError(f"unsupported source spec {type(spec).__name__}")  # pragma: no cover
