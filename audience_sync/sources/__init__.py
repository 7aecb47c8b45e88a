"""Member sources: each reads one audience's complete snapshot in chunks; no state, no HTTP."""

from __future__ import annotations

from pathlib import Path

from audience_sync.sources.base import MemberSource
from audience_sync.sources.files import CsvSource
from audience_sync.sources.specs import CsvSourceSpec, SourceSpec

__all__ = ["MemberSource", "SourceSpec", "build_source"]


def build_source(spec: SourceSpec, *, base_dir: Path, audience_key: str) -> MemberSource:
    """The reader for ``spec``; relative paths resolve against ``base_dir``."""
    if isinstance(spec, CsvSourceSpec):
        return CsvSource(spec, base_dir=base_dir, audience_key=audience_key)
    raise TypeError(f"unsupported source spec {type(spec).__name__}")  # pragma: no cover
