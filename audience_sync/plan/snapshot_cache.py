"""Each audience's planned snapshot kept as a Parquet file, so a later plan can read the
desired set D from it instead of from every state row (``[planner] snapshot_cache``).

Why a file can stand for D: ``memberships.desired`` holds the snapshot of the run that
``audiences.snapshot_run_id`` names (only applying a finished run's deltas moves either, in one
transaction), and that run recorded its snapshot's size and fingerprint. A file is named by
the audience, size and fingerprint of the deduplicated snapshot it holds, so it is D exactly
when its name matches what the database recorded for that run, whichever run, process or
database wrote it. Files are written by real runs at plan time, before anything is sent: one
whose run never finishes is simply never named by the database. A file the database does not
name is never read; a missing, unreadable or wrong-sized one means reading D from the database,
as without a cache.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audience_sync.state.tables import audiences, run_audiences

logger = logging.getLogger(__name__)

_FINGERPRINT = re.compile(r"^[0-9a-f]{1,64}$")


@dataclass(frozen=True)
class CachedSnapshot:
    path: Path
    size: int


def file_name(audience_id: int, size: int, fingerprint: str) -> str:
    return f"audience-{audience_id}-{size}-{fingerprint}.parquet"


def applied_snapshot(conn: Connection, cache_dir: Path, audience_id: int) -> CachedSnapshot | None:
    """The file holding the snapshot ``desired`` holds, if the cache has it."""
    recorded = conn.execute(
        select(run_audiences.c.snapshot_count, run_audiences.c.snapshot_fingerprint)
        .select_from(
            audiences.join(
                run_audiences,
                (run_audiences.c.run_id == audiences.c.snapshot_run_id)
                & (run_audiences.c.audience_id == audiences.c.id),
            )
        )
        .where(audiences.c.id == audience_id)
    ).first()
    if recorded is None or recorded.snapshot_fingerprint is None:
        return None
    fingerprint = str(recorded.snapshot_fingerprint)
    if not _FINGERPRINT.match(fingerprint):
        return None
    path = cache_dir / file_name(audience_id, int(recorded.snapshot_count), fingerprint)
    return CachedSnapshot(path, int(recorded.snapshot_count)) if path.is_file() else None


def keep_snapshot(
    duck: duckdb.DuckDBPyConnection,
    table: str,
    cache_dir: Path,
    *,
    audience_id: int,
    size: int,
    fingerprint: str,
    applied: Path | None,
) -> None:
    """Write ``table`` (the deduplicated snapshot) as the audience's file, unless it is there,
    and remove the audience's other files but ``applied`` (D's file until this run's deltas are
    applied). The cache only saves time: failing to write it is logged, never fatal."""
    path = cache_dir / file_name(audience_id, size, fingerprint)
    try:
        if not path.is_file():
            # The files hold members' addresses: as private as the state database should be.
            cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
            try:
                duck.table(table).write_parquet(str(partial))
                partial.chmod(0o600)
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)
        # Also the partial files of runs killed while writing one.
        for stale in [
            *cache_dir.glob(f"audience-{audience_id}-*.parquet"),
            *cache_dir.glob(f".audience-{audience_id}-*.partial"),
        ]:
            if stale not in (path, applied):
                stale.unlink(missing_ok=True)
    except (OSError, duckdb.Error) as exc:
        logger.warning(
            "planner.snapshot_cache_not_written",
            extra={"audience_id": audience_id, "reason": type(exc).__name__},
        )
