"""Named columns of one CSV file as Arrow string batches: the one CSV reader of the member and
trait sources.

Arrow's streaming reader parses only the wanted columns, a block at a time; gzip, bzip2 and xz
files are decompressed on the fly, and zip, zstd and tar archives (rare) go through pandas.
Failures come out as the exceptions :func:`~audience_sync.sources.read_errors.cause` describes
in a few words: Arrow's parse errors lose the offending row (it is member data), and undecodable
bytes become a :class:`UnicodeDecodeError` naming the configured encoding.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from audience_sync.errors import SourceError
from audience_sync.sources.read_errors import shown_path

# Archives pandas unpacks (one member inside) and Arrow cannot: still read with pandas.
PANDAS_ONLY_SUFFIXES = frozenset({".zip", ".zst", ".tar"})
# Bytes Arrow's CSV reader parses at a time; a batch is assembled from as many as it needs.
CSV_BLOCK_SIZE = 4 << 20
# Arrow's parse errors end with the offending row: keep only what comes before it.
_ROW_IN_PARSE_ERROR = re.compile(r"(got \d+):.*", re.DOTALL)


@dataclass(frozen=True)
class CsvLayout:
    """How a source's CSV files are written, and whose they are (named in errors)."""

    delimiter: str
    encoding: str
    owner: str
    base_dir: Path
    # Traits read a blank cell as "no value"; member sources keep it (an ``empty`` email).
    blank_is_null: bool = False


def open_binary(path: Path) -> pa.NativeFile:
    """The bytes of ``path`` for Arrow, decompressed if it is ``.gz``, ``.bz2`` or ``.xz``.

    Decompressed by Python's own modules, so a truncated or corrupt archive fails with the
    exceptions (and the messages, see :func:`~audience_sync.sources.read_errors.cause`) it
    always did. Closing the returned file closes the archive.
    """
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return pa.PythonFile(gzip.open(path, "rb"), mode="r")
    if suffix == ".bz2":
        return pa.PythonFile(bz2.open(path, "rb"), mode="r")
    if suffix == ".xz":
        return pa.PythonFile(lzma.open(path, "rb"), mode="r")
    return pa.OSFile(str(path))


def csv_header(path: Path, layout: CsvLayout) -> list[str]:
    """The column names of a CSV file; an empty file is a SourceError naming the owner."""
    try:
        header = pd.read_csv(
            path, nrows=0, sep=layout.delimiter, encoding=layout.encoding, compression="infer"
        )
    except pd.errors.EmptyDataError as exc:
        raise SourceError(
            f"{layout.owner}: {shown_path(path, layout.base_dir)} is empty (no header row)"
        ) from exc
    return [str(c) for c in header.columns]


def check_columns(path: Path, layout: CsvLayout, wanted: list[str]) -> None:
    """A SourceError naming the first of ``wanted`` the file's header lacks."""
    columns = csv_header(path, layout)
    absent = [c for c in wanted if c not in columns]
    if absent:
        raise SourceError(
            f"{layout.owner}: {shown_path(path, layout.base_dir)} has no column {absent[0]!r} "
            f"(columns: {', '.join(columns) or 'none'})"
        )


def csv_batches(
    path: Path, layout: CsvLayout, columns: list[str], chunk_size: int
) -> Iterator[pa.RecordBatch]:
    """``columns`` of the file, as strings, in batches (of at most ``chunk_size`` rows when
    read through pandas; Arrow's own block size otherwise)."""
    check_columns(path, layout, columns)
    if path.suffix.lower() in PANDAS_ONLY_SUFFIXES:
        yield from _pandas_batches(path, layout, columns, chunk_size)
    else:
        yield from _arrow_batches(path, layout, columns)


def _arrow_batches(path: Path, layout: CsvLayout, columns: list[str]) -> Iterator[pa.RecordBatch]:
    convert = pacsv.ConvertOptions(
        include_columns=columns, column_types=dict.fromkeys(columns, pa.string())
    )
    if layout.blank_is_null:
        convert.strings_can_be_null = True
        convert.quoted_strings_can_be_null = True
        convert.null_values = [""]
    with open_binary(path) as stream:
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(
                    encoding=_arrow_encoding(layout.encoding), block_size=CSV_BLOCK_SIZE
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=layout.delimiter, newlines_in_values=True
                ),
                convert_options=convert,
            )
        except (pa.ArrowKeyError, pa.ArrowInvalid) as exc:
            raise _plain(exc, layout.encoding) from None
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                raise _plain(exc, layout.encoding) from None
            yield batch.select(columns)


def _pandas_batches(
    path: Path, layout: CsvLayout, columns: list[str], chunk_size: int
) -> Iterator[pa.RecordBatch]:
    reader = pd.read_csv(
        path,
        usecols=columns,
        dtype=str,
        keep_default_na=False,
        na_values=[""] if layout.blank_is_null else None,
        sep=layout.delimiter,
        encoding=layout.encoding,
        chunksize=chunk_size,
        compression="infer",
    )
    with reader:
        for frame in reader:
            yield pa.RecordBatch.from_arrays(
                [pa.array(frame[c].tolist(), type=pa.string(), from_pandas=True) for c in columns],
                names=columns,
            )


def _arrow_encoding(encoding: str) -> str:
    """Arrow's name for UTF-8 (read natively), else the codec Arrow transcodes with."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return encoding  # fails on open, naming the file
    return "utf8" if name == "utf-8" else encoding


def _plain(exc: pa.ArrowException, encoding: str) -> Exception:
    """Arrow's error as the exception the cause of a read failure is told from."""
    message = str(exc)
    if "invalid UTF8" in message:
        return UnicodeDecodeError(codecs.lookup(encoding).name, b"", 0, 0, "invalid")
    return ValueError(_ROW_IN_PARSE_ERROR.sub(r"\1", message))
