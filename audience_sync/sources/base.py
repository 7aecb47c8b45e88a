"""What every member source looks like to the pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class MemberSource(Protocol):
    """A complete snapshot of one audience's members, read in chunks.

    ``chunks`` yields lists of raw email strings (``None`` where a row has no email); the
    pipeline normalises them. ``notes`` holds counters worth reporting once reading is done
    (for example ``{"profiles_without_email": 3}``). ``describe`` is safe to log: it never
    contains credentials.
    """

    def chunks(self, chunk_size: int) -> Iterator[list[str | None]]: ...

    @property
    def notes(self) -> dict[str, int]: ...

    def describe(self) -> str: ...
