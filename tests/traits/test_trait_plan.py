"""The trait planner's rules (DuckDB, no state database): duplicates, invalid values, what is
set, cleared, held back by a parked skip, and what counts as a change for the guard."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa

from audience_sync.config import TraitGuardSettings
from audience_sync.guards import check_trait_guards
from audience_sync.plan.engine import EngineSettings
from audience_sync.plan.traits import TraitCounts, TraitSnapshot

Row = tuple[str, str | None, str | None]  # email, value, reason


def plan(
    rows: list[Row],
    state: Mapping[str, tuple[str | None, str | None]] | None = None,
    parked: list[tuple[str, str, int]] | None = None,
    *,
    full: bool = False,
    clear_missing: bool = False,
) -> tuple[TraitCounts, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Counts, changes {email: (action, value)}, invalid {email: reason}, deltas."""
    with TraitSnapshot(EngineSettings(threads=1)) as snapshot:
        snapshot.add(
            pa.array([r[0] for r in rows], pa.string()),
            pa.array([r[1] for r in rows], pa.string()),
            pa.array([r[2] for r in rows], pa.string()),
        )
        state = state or {}
        snapshot.load_tables(
            pa.table(
                {
                    "email": pa.array(list(state), pa.string()),
                    "value": pa.array([v for v, _ in state.values()], pa.string()),
                    "desired": pa.array([d for _, d in state.values()], pa.string()),
                }
            ),
            pa.table(
                {
                    "email": pa.array([p[0] for p in parked or []], pa.string()),
                    "action": pa.array([p[1] for p in parked or []], pa.string()),
                    "recent": pa.array([p[2] for p in parked or []], pa.int64()),
                }
            ),
        )
        counts = snapshot.compute(full=full, clear_missing=clear_missing)
        changes = {r["email"]: (r["action"], r["value"]) for r in _rows(snapshot.changes())}
        invalid = {r["email"]: r["reason"] for r in _rows(snapshot.invalid())}
        deltas = {r["email"]: r["desired"] for r in _rows(snapshot.deltas())}
    return counts, changes, invalid, deltas


def _rows(batches: Iterator[pa.RecordBatch]) -> list[dict[str, Any]]:
    return [row for batch in batches for row in batch.to_pylist()]


def test_a_first_run_sets_every_valid_value_and_reports_the_invalid() -> None:
    counts, changes, invalid, deltas = plan(
        [("a@x.com", "1", None), ("b@x.com", None, "not_a_number"), ("c@x.com", "2", None)]
    )
    assert changes == {"a@x.com": ("set", "1"), "c@x.com": ("set", "2")}
    assert invalid == {"b@x.com": "not_a_number"}
    assert deltas == {"a@x.com": "1", "c@x.com": "2"}
    assert (counts.snapshot, counts.valid, counts.invalid) == (3, 2, {"not_a_number": 1})
    assert counts.changed == 0  # first values are not changes


def test_duplicates_that_agree_collapse_and_conflicting_ones_are_rejected() -> None:
    counts, changes, invalid, _ = plan(
        [
            ("a@x.com", "1", None),
            ("a@x.com", "1", None),
            ("b@x.com", "1", None),
            ("b@x.com", "2", None),
            ("c@x.com", "3", None),
            ("c@x.com", None, "not_a_number"),
        ],
        state={"b@x.com": ("1", "1")},
    )
    assert changes == {"a@x.com": ("set", "1")}
    assert invalid == {"b@x.com": "conflicting_values", "c@x.com": "conflicting_values"}
    assert counts.invalid == {"conflicting_values": 2}


def test_only_values_that_differ_are_set_and_a_full_sync_sets_all() -> None:
    state = {"a@x.com": ("1", "1"), "b@x.com": ("2", "2")}
    rows: list[Row] = [("a@x.com", "1", None), ("b@x.com", "3", None), ("c@x.com", "4", None)]
    counts, changes, _, deltas = plan(rows, state)
    assert changes == {"b@x.com": ("set", "3"), "c@x.com": ("set", "4")}
    assert deltas == {"b@x.com": "3", "c@x.com": "4"}
    assert counts.changed == 1
    assert counts.confirmed_before == 2
    _, full, _, _ = plan(rows, state, full=True)
    assert set(full) == {"a@x.com", "b@x.com", "c@x.com"}


def test_leavers_are_cleared_only_with_clear_missing_and_invalid_values_never() -> None:
    state = {"a@x.com": ("1", "1"), "b@x.com": ("2", "2")}
    rows: list[Row] = [("b@x.com", None, "not_a_number")]
    counts, changes, _, deltas = plan(rows, state)
    assert changes == {}
    assert deltas == {"a@x.com": None}  # a left the source; b's desired value is unknown
    counts, changes, _, _ = plan(rows, state, clear_missing=True)
    assert changes == {"a@x.com": ("clear", None)}
    assert counts.changed == 1
    assert counts.planned_clear == 1


def test_a_recent_parked_skip_holds_a_value_back_until_it_changes() -> None:
    state = {"a@x.com": (None, "1")}
    parked = [("a@x.com", "set", 1)]
    counts, changes, _, _ = plan([("a@x.com", "1", None)], state, parked)
    assert changes == {}
    assert counts.parked_set == 1
    counts, changes, _, _ = plan([("a@x.com", "2", None)], state, parked)
    assert changes == {"a@x.com": ("set", "2")}
    assert counts.unpark == 1
    _, changes, _, _ = plan([("a@x.com", "1", None)], state, [("a@x.com", "set", 0)])
    assert changes == {"a@x.com": ("set", "1")}  # older than retry_skipped_after


def test_the_guard_stops_many_changes_and_an_empty_source() -> None:
    guards = TraitGuardSettings(max_changed_fraction=0.2)
    assert check_trait_guards(valid=10, confirmed=10, changed=2, guards=guards).ok
    stopped = check_trait_guards(valid=10, confirmed=10, changed=3, guards=guards)
    assert not stopped.ok
    assert stopped.reason is not None
    assert "3 of 10 confirmed values" in stopped.reason
    assert check_trait_guards(valid=100, confirmed=0, changed=0, guards=guards).ok
    assert not check_trait_guards(valid=0, confirmed=5, changed=0, guards=guards).ok
    allow = TraitGuardSettings(allow_empty=True)
    assert check_trait_guards(valid=0, confirmed=0, changed=0, guards=allow).ok
