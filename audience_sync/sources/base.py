"""What every member source looks like to the pipeline."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from audience_sync.errors import SourceError
from audience_sync.sources.read_errors import cause

if TYPE_CHECKING:
    import pyarrow as pa

SpecT = TypeVar("SpecT")
T = TypeVar("T")


class MemberSource(Protocol):
    """A complete snapshot of one audience's members, read in chunks.

    ``chunks`` yields lists of raw email strings (``None`` where a row has no email); the
    pipeline normalises them. ``batches`` yields the same values as Arrow string (or large
    string) arrays, nulls where a row has no email, for
    :func:`~audience_sync.normalize.normalize_batch`; file sources read them natively, without
    a Python string per value. ``notes`` holds counters worth reporting once reading is done
    (for example ``{"profiles_without_email": 3}``). ``describe`` is safe to log: it never
    contains credentials.
    """

    def chunks(self, chunk_size: int) -> Iterator[list[str | None]]: ...

    def batches(self, chunk_size: int) -> Iterator[pa.Array]: ...

    @property
    def notes(self) -> dict[str, int]: ...

    def describe(self) -> str: ...


class SourceBase(Generic[SpecT]):
    """What every source keeps: its spec, where relative paths start, the audience it reads for
    (named in every error), the environment for ``${VAR}`` interpolation, and its notes."""

    def __init__(
        self,
        spec: SpecT,
        *,
        base_dir: Path,
        audience_key: str,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._spec = spec
        self._base_dir = base_dir
        self._audience_key = audience_key
        self._environ = os.environ if environ is None else environ
        self._notes: dict[str, int] = {}

    @property
    def notes(self) -> dict[str, int]:
        return self._notes

    def describe(self) -> str:
        raise NotImplementedError

    def chunks(self, chunk_size: int) -> Iterator[list[str | None]]:
        """The reader's chunks; whatever it raises comes out as a :class:`SourceError`.

        Readers name the file in their own errors (:mod:`~audience_sync.sources.read_errors`);
        this is the last line of defence, so a failure none foresaw still fails only its
        audience.
        """
        yield from self._guarded(self._read(chunk_size))

    def batches(self, chunk_size: int) -> Iterator[pa.Array]:
        """The reader's values as Arrow string arrays, with the errors of :meth:`chunks`.

        Sources that can read Arrow natively override :meth:`_read_batches`; the default wraps
        each chunk of :meth:`_read`.
        """
        yield from self._guarded(self._read_batches(chunk_size))

    def _guarded(self, reader: Iterator[T]) -> Iterator[T]:
        """``reader``'s items; whatever it raises comes out as a :class:`SourceError`."""
        try:
            yield from reader
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(
                f"audience {self._audience_key!r}: reading {self.describe()} failed: {cause(exc)}"
            ) from None

    def _read(self, chunk_size: int) -> Iterator[list[str | None]]:
        raise NotImplementedError

    def _read_batches(self, chunk_size: int) -> Iterator[pa.Array]:
        import pyarrow as pa

        for chunk in self._read(chunk_size):
            yield pa.array(chunk, type=pa.string())


def rebatch(arrays: Iterable[pa.Array], size: int) -> Iterator[pa.Array]:
    """The values of ``arrays``, in order, ``size`` per array (the last may hold fewer)."""
    import pyarrow as pa

    pending: list[pa.Array] = []
    pending_rows = 0
    for array in arrays:
        rest = array
        while len(rest):
            part = rest.slice(0, size - pending_rows)
            rest = rest.slice(len(part))
            pending.append(part)
            pending_rows += len(part)
            if pending_rows == size:
                yield pending[0] if len(pending) == 1 else pa.concat_arrays(pending)
                pending, pending_rows = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else pa.concat_arrays(pending)
