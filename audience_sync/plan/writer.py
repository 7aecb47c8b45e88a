"""Diff a loaded snapshot against the state database and write the outcome to it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pyarrow as pa
from sqlalchemy.engine import Engine

from audience_sync.plan.engine import Counts, EngineSettings, SnapshotPlan
from audience_sync.plan.traits import TraitCounts, TraitSnapshot
from audience_sync.state import changes, desired


def plan_snapshot(
    engine: Engine,
    snapshot: SnapshotPlan,
    *,
    run_id: int,
    audience_id: int,
    full: bool,
    parked_before: datetime,
    reconcile: bool = False,
) -> Counts:
    """Read confirmed state, diff, then write the planned changes (``run_changes``, status
    ``planned``), the desired-value deltas, and forget parked skips that no longer apply.

    The ledger first: every planned change is committed before anything is sent. A commit
    per batch keeps SQLite's write lock short, so the run lock's heartbeat gets through; rows
    of a write cut short belong to a run that never sends them, and deltas of a run that never
    finishes are never applied.
    """
    snapshot.load_state(engine, audience_id, parked_before=parked_before, listrak_on=reconcile)
    counts = snapshot.compute(full=full)
    with engine.connect() as conn:
        for batch in snapshot.changes():
            with conn.begin():
                changes.plan_batches(conn, run_id=run_id, audience_id=audience_id, batches=[batch])
        if deltas_are_planned_on(counts):
            with conn.begin():
                desired.mark_deltas_are_changes(conn, run_id=run_id, audience_id=audience_id)
        else:
            for batch in snapshot.deltas():
                with conn.begin():
                    desired.record_deltas(
                        conn, run_id=run_id, audience_id=audience_id, batches=[batch]
                    )
        with conn.begin():
            desired.unpark(conn, audience_id=audience_id, batches=snapshot.unparked())
    return counts


def deltas_are_planned_on(counts: Counts) -> bool:
    """Whether the deltas (every snapshot member ``on``, and ``off`` for each desired member
    no longer in it) are exactly the planned ``on`` changes, as in a first run.

    Every snapshot member a delta ``on`` and none ``off``: nothing was desired before. Every
    snapshot member planned ``on`` (the ``on`` changes are a subset of the snapshot, so equal
    in number means equal): the ``on`` changes are the snapshot.
    """
    return counts.delta_off == 0 and counts.delta_on == counts.snapshot == counts.planned_on


def plan_emails(
    engine: Engine,
    emails: Iterable[str],
    *,
    run_id: int,
    audience_id: int,
    full: bool,
    parked_before: datetime,
    reconcile: bool = False,
    settings: EngineSettings | None = None,
) -> Counts:
    """:func:`plan_snapshot` of an already normalised list of emails (tests, tools)."""
    with SnapshotPlan(settings or EngineSettings()) as snapshot:
        snapshot.add(pa.array(list(emails), type=pa.string()))
        return plan_snapshot(
            engine,
            snapshot,
            run_id=run_id,
            audience_id=audience_id,
            full=full,
            parked_before=parked_before,
            reconcile=reconcile,
        )


def plan_trait_snapshot(
    engine: Engine,
    snapshot: TraitSnapshot,
    *,
    run_id: int,
    audience_id: int,
    full: bool,
    clear_missing: bool,
    parked_before: datetime,
) -> TraitCounts:
    """:func:`plan_snapshot` for a computed trait: the value changes (``set``/``clear``), the
    contacts whose value is invalid (``skipped`` with the reason, never sent), the deltas of
    desired values, and parked skips that no longer apply. The ledger first, as for audiences."""
    snapshot.load_state(engine, audience_id, parked_before=parked_before)
    counts = snapshot.compute(full=full, clear_missing=clear_missing)
    with engine.connect() as conn:
        for batch in snapshot.changes():
            with conn.begin():
                changes.plan_value_batches(
                    conn, run_id=run_id, audience_id=audience_id, batches=[batch]
                )
        for batch in snapshot.invalid():
            with conn.begin():
                changes.record_invalid_values(
                    conn, run_id=run_id, audience_id=audience_id, batches=[batch]
                )
        for batch in snapshot.deltas():
            with conn.begin():
                desired.record_deltas(conn, run_id=run_id, audience_id=audience_id, batches=[batch])
        with conn.begin():
            desired.unpark(conn, audience_id=audience_id, batches=snapshot.unparked())
    return counts
