"""Any failure reading a source file becomes a :class:`SourceError` naming the file and the cause.

A truncated or corrupt archive, undecodable bytes, a JSON document nested too deeply: whatever a
reader raises while reading one file fails only that audience, with a message that names the
file (relative to the config's folder) and says in a few words what is wrong, never a line of
the file itself.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from audience_sync.errors import SourceError
from audience_sync.redaction import redact

MAX_CAUSE_LENGTH = 160


def shown_path(path: Path, base_dir: Path) -> str:
    """``path`` relative to the config's folder when it is inside it, else as it is."""
    try:
        return str(path.resolve().relative_to(base_dir.resolve()))
    except ValueError:
        return str(path)


def cause(exc: BaseException) -> str:
    """A few words on why a read failed; no data from the file."""
    if isinstance(exc, EOFError):
        return "the file ends early (truncated, or still being written)"
    if isinstance(exc, zlib.error | gzip.BadGzipFile):
        return "the gzip data is corrupt"
    if isinstance(exc, zipfile.BadZipFile):
        return "the zip data is corrupt"
    if isinstance(exc, UnicodeDecodeError):
        return f"bytes that are not valid {exc.encoding} (check the source's encoding)"
    if isinstance(exc, LookupError):
        return "unknown encoding"
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    if isinstance(exc, MemoryError):
        return "out of memory"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    lines = str(exc).strip().splitlines()
    text = redact(lines[0]) if lines else type(exc).__name__
    return text if len(text) <= MAX_CAUSE_LENGTH else text[: MAX_CAUSE_LENGTH - 1] + "…"


def read_error(audience_key: str, path: Path, base_dir: Path, exc: BaseException) -> SourceError:
    return SourceError(
        f"audience {audience_key!r}: cannot read {shown_path(path, base_dir)}: {cause(exc)}"
    )


@contextmanager
def reading(path: Path, *, base_dir: Path, audience_key: str) -> Iterator[None]:
    """Turn every failure inside the block into a :class:`SourceError` about ``path``.

    A :class:`SourceError` raised inside (a missing column, say) passes unchanged.
    """
    try:
        yield
    except SourceError:
        raise
    except Exception as exc:
        raise read_error(audience_key, path, base_dir, exc) from None
