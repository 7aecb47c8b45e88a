"""Member lists from files: CSV (optionally gzipped) or Parquet, one or many by glob.

A glob matching no file and a file without the email column raise :class:`SourceError`; an
empty file with the right header is not an error (the pipeline's empty-snapshot guard decides).
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from audience_sync.errors import SourceError
from audience_sync.sources.base import SourceBase, rebatch
from audience_sync.sources.csv_columns import CsvLayout, csv_batches
from audience_sync.sources.read_errors import reading, shown_path
from audience_sync.sources.specs import CsvSourceSpec, ParquetSourceSpec


def resolve_paths(pattern: str, base_dir: Path, audience_key: str) -> list[Path]:
    """Expand a path or glob relative to ``base_dir``; no match is an error naming the audience."""
    full = pattern if Path(pattern).is_absolute() else str(base_dir / pattern)
    paths = sorted(Path(p) for p in glob.glob(full, recursive=True))
    files = [p for p in paths if p.is_file()]
    if not files:
        raise SourceError(f"audience {audience_key!r}: no file matches {pattern!r}")
    return files


class CsvSource(SourceBase[CsvSourceSpec]):
    """Reads the email column of CSV files, ``chunk_size`` rows per batch (fewer at a file's end).

    :func:`~audience_sync.sources.csv_columns.csv_batches` parses only the email column into
    Arrow strings; ``chunks`` turns those batches into lists.
    """

    def describe(self) -> str:
        return f"csv:{self._spec.path}"

    def _read(self, chunk_size: int) -> Iterator[list[str | None]]:
        for batch in self._read_batches(chunk_size):
            yield batch.to_pylist()

    def _read_batches(self, chunk_size: int) -> Iterator[pa.Array]:
        paths = resolve_paths(self._spec.path, self._base_dir, self._audience_key)
        self._notes["files"] = len(paths)
        layout = CsvLayout(
            delimiter=self._spec.delimiter,
            encoding=self._spec.encoding,
            owner=f"audience {self._audience_key!r}",
            base_dir=self._base_dir,
        )
        column = [self._spec.email_column]
        for path in paths:
            with reading(path, base_dir=self._base_dir, audience_key=self._audience_key):
                batches = csv_batches(path, layout, column, chunk_size)
                yield from rebatch((batch.column(0) for batch in batches), chunk_size)


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
