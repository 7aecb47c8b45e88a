"""Micro-benchmark: reading and normalising one CSV, lists versus Arrow batches (not a test).

    python bench/read_normalize.py [--rows 1000000] [--chunk-size 100000] [--repeat 3]

Writes an N-row CSV (id, email; about 2% of the addresses Unicode, IDN, blank or invalid, with
distinct local parts, the rest plain ASCII in mixed case with stray spaces) and times, best of
``--repeat``:

  before   the reader and normaliser as they were (pandas chunks of Python strings, then the
           list-based normalise with its in-chunk dedupe); a copy kept here for comparison, run
           with today's normalize_email (whose host-label cache helps it too)
  chunks   today's CsvSource.chunks + normalize_chunk (lists, now built on Arrow batches)
  batches  CsvSource.batches + normalize_batch: Arrow arrays end to end
  duckdb   DuckDB's read_csv + lower(trim(email)) + count(distinct), the planner's yardstick
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from audience_sync.normalize import (
    _LONG_LABEL,
    _SIMPLE_EMAIL,
    MAX_EMAIL_LENGTH,
    normalize_batch,
    normalize_chunk,
    normalize_email,
)
from audience_sync.sources import build_source
from audience_sync.sources.specs import CsvSourceSpec

# Distinct local parts at a few internationalised domains, blanks and rejects.
ODD = [
    " Ann.{i}@B\u00dccher.de",
    "",
    "bad{i}",
    "a{i}@xn--bcher-kva.de",
    "user{i}@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444",
    "Z\u00e9{i}@example.com",
]


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(15)
    with path.open("w", encoding="utf-8") as out:
        out.write("id,email\n")
        for i in range(rows):
            if rng.random() < 0.02:
                email = rng.choice(ODD).format(i=i)
            else:
                email = f"{' ' if i % 7 == 0 else ''}Member.{i % (rows - rows // 50)}@Example.com"
            out.write(f"{i},{email}\n")


def before(path: Path, chunk_size: int) -> int:
    """The code as of 1a7938d: pandas chunks, then normalize_chunk over Python lists."""
    count = 0
    reader = pd.read_csv(
        path, usecols=["email"], dtype=str, keep_default_na=False, chunksize=chunk_size
    )
    with reader:
        for frame in reader:
            raw: list[str | None] = frame["email"].tolist()
            values = pa.array(raw, type=pa.string())
            canonical = pc.ascii_lower(pc.ascii_trim_whitespace(values))
            simple = pc.and_(
                pc.and_(
                    pc.string_is_ascii(values),
                    pc.less_equal(pc.binary_length(canonical), MAX_EMAIL_LENGTH),
                ),
                pc.and_(
                    pc.match_substring_regex(canonical, _SIMPLE_EMAIL),
                    pc.invert(pc.match_substring_regex(canonical, _LONG_LABEL)),
                ),
            ).fill_null(False)
            seen: set[str] = set()
            for value, form, is_simple in zip(
                raw, canonical.to_pylist(), simple.to_pylist(), strict=True
            ):
                email = form if is_simple else normalize_email(value)[0]
                if email is not None and email not in seen:
                    seen.add(email)
            count += len(seen)
    return count


def chunks(path: Path, chunk_size: int) -> int:
    source = build_source(
        CsvSourceSpec(kind="csv", path=path.name), base_dir=path.parent, audience_key="bench"
    )
    return sum(len(normalize_chunk(chunk).emails) for chunk in source.chunks(chunk_size))


def batches(path: Path, chunk_size: int) -> int:
    source = build_source(
        CsvSourceSpec(kind="csv", path=path.name), base_dir=path.parent, audience_key="bench"
    )
    return sum(len(normalize_batch(batch).emails) for batch in source.batches(chunk_size))


def read_only(path: Path, chunk_size: int) -> int:
    source = build_source(
        CsvSourceSpec(kind="csv", path=path.name), base_dir=path.parent, audience_key="bench"
    )
    return sum(len(batch) for batch in source.batches(chunk_size))


def duckdb_reference(path: Path, chunk_size: int) -> int:
    con = duckdb.connect(":memory:")
    try:
        row = con.execute(
            "select count(distinct lower(trim(email))) from read_csv(?, all_varchar = true)",
            [str(path)],
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0])


def best(run: Callable[[Path, int], int], path: Path, chunk_size: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run(path, chunk_size)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "members.csv"
        write_csv(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        print(f"{args.rows:,} rows, {size_mb:.0f} MB, chunk size {args.chunk_size:,}")
        for name, run in [
            ("before  (pandas lists + list normalise)", before),
            ("chunks  (CsvSource.chunks + normalize_chunk)", chunks),
            ("batches (CsvSource.batches + normalize_batch)", batches),
            ("  of which reading (CsvSource.batches)", read_only),
            ("duckdb  (read_csv + lower(trim) distinct)", duckdb_reference),
        ]:
            print(f"{name:48} {best(run, path, args.chunk_size, args.repeat):6.2f} s")


if __name__ == "__main__":
    main()
