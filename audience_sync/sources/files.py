"""Member lists from files: CSV (optionally gzipped) or Parquet, one or many by glob.

A glob matching no file and a file without the email column raise :class:`SourceError`; an
empty file with the right header is not an error (the pipeline's empty-snapshot guard decides).
"""

from __future__ import annotations

import bz2
import codecs
import glob
import gzip
import lzma
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from audience_sync.errors import SourceError
from audience_sync.sources.base import SourceBase, rebatch
from audience_sync.sources.read_errors import reading, shown_path
from audience_sync.sources.specs import CsvSourceSpec, ParquetSourceSpec


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


def resolve_paths(pattern: str, base_dir: Path, audience_key: str) -> list[Path]:
    """Expand a path or glob relative to ``base_dir``; no match is an error naming the audience."""
    full = pattern if Path(pattern).is_absolute() else str(base_dir / pattern)
    paths = sorted(Path(p) for p in glob.glob(full, recursive=True))
    files = [p for p in paths if p.is_file()]
    if not files:
        raise SourceError(f"audience {audience_key!r}: no file matches {pattern!r}")
    return files


# Archives pandas unpacks (one member inside) and Arrow cannot: still read with pandas.
_PANDAS_ONLY_SUFFIXES = frozenset({".zip", ".zst", ".tar"})
# Bytes Arrow's CSV reader parses at a time; a batch is assembled from as many as it needs.
CSV_BLOCK_SIZE = 4 << 20
# Arrow's parse errors end with the offending row: keep only what comes before it.
_ROW_IN_PARSE_ERROR = re.compile(r"(got \d+):.*", re.DOTALL)


class CsvSource(SourceBase[CsvSourceSpec]):
    """Reads the email column of CSV files, ``chunk_size`` rows per batch (fewer at a file's end).

    Arrow's streaming CSV reader parses only the email column into Arrow strings, one block at
    a time; ``chunks`` turns those batches into lists. Gzip, bzip2 and xz files are
    decompressed on the fly; zip, zstd and tar archives (rare) go through pandas.
    """

    def describe(self) -> str:
        return f"csv:{self._spec.path}"

    def _read(self, chunk_size: int) -> Iterator[list[str | None]]:
        for batch in self._read_batches(chunk_size):
            yield batch.to_pylist()

    def _read_batches(self, chunk_size: int) -> Iterator[pa.Array]:
        paths = resolve_paths(self._spec.path, self._base_dir, self._audience_key)
        self._notes["files"] = len(paths)
        for path in paths:
            with reading(path, base_dir=self._base_dir, audience_key=self._audience_key):
                if path.suffix.lower() in _PANDAS_ONLY_SUFFIXES:
                    yield from self._pandas_batches(path, chunk_size)
                else:
                    yield from rebatch(self._arrow_batches(path), chunk_size)

    def _arrow_batches(self, path: Path) -> Iterator[pa.Array]:
        stream = open_binary(path)
        column = self._spec.email_column
        with stream:
            try:
                reader = pacsv.open_csv(
                    stream,
                    read_options=pacsv.ReadOptions(
                        encoding=self._arrow_encoding(), block_size=CSV_BLOCK_SIZE
                    ),
                    parse_options=pacsv.ParseOptions(
                        delimiter=self._spec.delimiter, newlines_in_values=True
                    ),
                    convert_options=pacsv.ConvertOptions(
                        include_columns=[column], column_types={column: pa.string()}
                    ),
                )
            except (pa.ArrowKeyError, pa.ArrowInvalid) as exc:
                self._check_header(path)  # an empty file or no email column: says which
                raise self._plain(exc) from None
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except pa.ArrowInvalid as exc:
                    raise self._plain(exc) from None
                yield batch.column(0)

    def _arrow_encoding(self) -> str:
        """Arrow's name for UTF-8 (read natively), else the codec Arrow transcodes with."""
        try:
            name = codecs.lookup(self._spec.encoding).name
        except LookupError:
            return self._spec.encoding  # fails on open, naming the file
        return "utf8" if name == "utf-8" else self._spec.encoding

    def _plain(self, exc: pa.ArrowException) -> Exception:
        """Arrow's error as the exception the cause of a read failure is told from."""
        message = str(exc)
        if "invalid UTF8" in message:
            return UnicodeDecodeError(codecs.lookup(self._spec.encoding).name, b"", 0, 0, "invalid")
        return ValueError(_ROW_IN_PARSE_ERROR.sub(r"\1", message))

    def _pandas_batches(self, path: Path, chunk_size: int) -> Iterator[pa.Array]:
        self._check_header(path)
        reader = pd.read_csv(
            path,
            usecols=[self._spec.email_column],
            dtype=str,
            keep_default_na=False,
            sep=self._spec.delimiter,
            encoding=self._spec.encoding,
            chunksize=chunk_size,
            compression="infer",
        )
        with reader:
            for frame in reader:
                yield pa.array(frame[self._spec.email_column].tolist(), type=pa.string())

    def _check_header(self, path: Path) -> None:
        columns = csv_header(
            path,
            delimiter=self._spec.delimiter,
            encoding=self._spec.encoding,
            owner=f"audience {self._audience_key!r}",
            base_dir=self._base_dir,
        )
        if self._spec.email_column not in columns:
            raise SourceError(
                f"audience {self._audience_key!r}: {shown_path(path, self._base_dir)} has no "
                f"column {self._spec.email_column!r} (columns: {', '.join(columns) or 'none'})"
            )


def csv_header(
    path: Path, *, delimiter: str, encoding: str, owner: str, base_dir: Path
) -> list[str]:
    """The column names of a CSV file; an empty file is a SourceError naming ``owner``."""
    try:
        header = pd.read_csv(path, nrows=0, sep=delimiter, encoding=encoding, compression="infer")
    except pd.errors.EmptyDataError as exc:
        raise SourceError(
            f"{owner}: {shown_path(path, base_dir)} is empty (no header row)"
        ) from exc
    return [str(c) for c in header.columns]


class ParquetSource(SourceBase[ParquetSourceSpec]):
    """Reads only the email column of Parquet files, ``chunk_size`` rows per batch.

    Compression is inside the Parquet format (gzip, snappy, zstd...) and read transparently.
    """

    def describe(self) -> str:
        return f"parquet:{self._spec.path}"

    def _read(self, chunk_size: int) -> Iterator[list[str | None]]:
        for batch in self._read_batches(chunk_size):
            yield batch.to_pylist()

    def _read_batches(self, chunk_size: int) -> Iterator[pa.Array]:
        paths = resolve_paths(self._spec.path, self._base_dir, self._audience_key)
        self._notes["files"] = len(paths)
        for path in paths:
            with reading(path, base_dir=self._base_dir, audience_key=self._audience_key):
                parquet = pq.ParquetFile(path)
                self._check_schema(path, parquet.schema_arrow)
                for batch in parquet.iter_batches(
                    batch_size=chunk_size, columns=[self._spec.email_column]
                ):
                    column = batch.column(0)
                    if pa.types.is_dictionary(column.type):
                        column = column.dictionary_decode()
                    yield column

    def _check_schema(self, path: Path, schema: pa.Schema) -> None:
        column = self._spec.email_column
        if column not in schema.names:
            raise SourceError(
                f"audience {self._audience_key!r}: {shown_path(path, self._base_dir)} has no "
                f"column {column!r} "
                f"(columns: {', '.join(schema.names) or 'none'})"
            )
        column_type = schema.field(column).type
        if pa.types.is_dictionary(column_type):
            column_type = column_type.value_type
        if not (pa.types.is_string(column_type) or pa.types.is_large_string(column_type)):
            raise SourceError(
                f"audience {self._audience_key!r}: column {column!r} of "
                f"{shown_path(path, self._base_dir)} holds "
                f"{column_type}, not strings"
            )
