"""What a DuckDB failure in the planner tells the user: the kind, and what to change, never
DuckDB's own text (which can quote a value)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from audience_sync.plan.engine import EngineSettings, SnapshotPlan, planning_error

SETTINGS = EngineSettings(memory_limit="1MB")


def test_out_of_memory_names_the_setting_to_raise(tmp_path: Path) -> None:
    def load_and_deduplicate(snapshot: SnapshotPlan) -> None:
        snapshot.add(pa.array([f"user{i}@example.com" for i in range(1000)]))
        snapshot.flush()
        snapshot.duck.execute("CREATE TABLE s AS SELECT DISTINCT email FROM raw")

    with (
        SnapshotPlan(EngineSettings("1MB", tmp_path, 1)) as snapshot,
        pytest.raises(duckdb.OutOfMemoryException) as raised,
    ):
        load_and_deduplicate(snapshot)
    assert str(planning_error(raised.value, SETTINGS)) == (
        "planning ran out of memory within [planner] memory_limit = '1MB'; raise it, or set "
        "[planner] temp_directory to a disk with room to spill"
    )


def test_an_io_failure_points_at_the_spill_directory() -> None:
    message = str(planning_error(duckdb.IOException("No space left on device"), SETTINGS))
    assert message == (
        "planning could not write its spill files; check the free space of [planner] temp_directory"
    )


def test_any_other_failure_is_named_by_kind_only() -> None:
    exc = duckdb.ConversionException("Could not convert string 'ann@example.com' to INT32")
    message = str(planning_error(exc, SETTINGS))
    assert message == "planning failed in DuckDB (ConversionException)"
    assert "example.com" not in message
