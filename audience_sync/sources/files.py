"""Member lists from files: CSV (optionally gzipped) or Parquet, one or many by glob.

A glob matching no file and a file without the email column raise :class:`SourceError`; an
empty file with the right header is not an error (the pipeline's empty-snapshot guard decides).
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from audience_sync.errors import SourceError
from audience_sync.sources.base import SourceBase
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
    """Reads the email column of CSV files with pandas, ``chunk_size`` rows at a time."""

    def describe(self) -> str:
        return f"csv:{self._spec.path}"

    def _read(self, chunk_size: int) -> Iterator[list[str | None]]:
        paths = resolve_paths(self._spec.path, self._base_dir, self._audience_key)
        self._notes["files"] = len(paths)
        for path in paths:
            with reading(path, base_dir=self._base_dir, audience_key=self._audience_key):
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
                        yield frame[self._spec.email_column].tolist()

    def _check_header(self, path: Path) -> None:
        try:
            header = pd.read_csv(
                path,
                nrows=0,
                sep=self._spec.delimiter,
                encoding=self._spec.encoding,
                compression="infer",
            )
        except pd.errors.EmptyDataError as exc:
            raise SourceError(
                f"audience {self._audience_key!r}: "
                f"{shown_path(path, self._base_dir)} is empty (no header row)"
            ) from exc
        columns = [str(c) for c in header.columns]
        if self._spec.email_column not in columns:
            raise SourceError(
                f"audience {self._audience_key!r}: {shown_path(path, self._base_dir)} has no "
                f"column {self._spec.email_column!r} (columns: {', '.join(columns) or 'none'})"
            )


class ParquetSource(SourceBase[ParquetSourceSpec]):
    """Reads only the email column of Parquet files, ``chunk_size`` rows per batch.

    Compression is inside the Parquet format (gzip, snappy, zstd...) and read transparently.
    """

    def describe(self) -> str:
        return f"parquet:{self._spec.path}"

    def _read(self, chunk_size: int) -> Iterator[list[str | None]]:
        paths = resolve_paths(self._spec.path, self._base_dir, self._audience_key)
        self._notes["files"] = len(paths)
        for path in paths:
            with reading(path, base_dir=self._base_dir, audience_key=self._audience_key):
                parquet = pq.ParquetFile(path)
                self._check_schema(path, parquet.schema_arrow)
                for batch in parquet.iter_batches(
                    batch_size=chunk_size, columns=[self._spec.email_column]
                ):
                    yield [None if v is None else str(v) for v in batch.column(0).to_pylist()]

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
