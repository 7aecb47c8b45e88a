"""Measuring a run from the outside: per-stage wall time, peak RSS, HTTP requests.

Stage times come from wrapping the job's own functions for the duration of the benchmark, so
the pipeline carries no timing code. Times are inclusive; :func:`stage_table` derives the
exclusive ones (read = the reading loop minus normalise and the load into DuckDB; await =
settle minus the DB).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from audience_sync.listrak import routes
from audience_sync.pipeline import planning, polling, submitting
from audience_sync.plan import engine as plan_engine
from audience_sync.plan import in_database
from audience_sync.plan import input as plan_input
from audience_sync.state import changes, confirm, desired

_PROC_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass
class Probe:
    inclusive: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    requests: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        self.inclusive.clear()
        self.requests.clear()

    def on_request(self, request: httpx.Request) -> None:
        self.requests["total"] += 1
        if request.method == "POST" and request.url.path.endswith("/ListImport"):
            self.requests["import_posts"] += 1

    def stages(self, wall: float, sandbox: dict[str, float] | None = None) -> dict[str, float]:
        """Exclusive stage times. ``sandbox``: the sandbox's own handling time by the stage
        that waited on it, taken out of that stage into its own ``sandbox`` column."""
        sandbox = sandbox or {}
        t = self.inclusive
        stages: dict[str, float] = {
            "read": t["read_loop"] - t["normalise"] - t["load"],
            "normalise": t["normalise"],
            "plan": t["load"] + t["plan"],
            "write": t["write"],
            "submit": t["submit"],
            "await": t["settle_loop"] - t["confirm"],
            "confirm": t["confirm"],
        }
        stages["other"] = wall - sum(stages.values())
        for stage, seconds in sandbox.items():
            stages[stage] -= seconds
        stages["sandbox"] = sum(sandbox.values())
        return stages


_WRAPPED: list[tuple[Any, str, str]] = [
    (planning, "read_source", "read_loop"),
    (plan_input, "normalize_batch", "normalise"),
    (plan_engine.SnapshotPlan, "add", "load"),
    (plan_engine.SnapshotPlan, "load_state", "plan"),
    (plan_engine.SnapshotPlan, "compute", "plan"),
    # The in-database planner: staging the source query normalised in SQL is its "read", the
    # diff written to the ledger by INSERT ... SELECT its "plan" (its writes are inside).
    (in_database, "stage_snapshot", "read_loop"),
    (in_database, "write_plan", "plan"),
    (changes, "plan_batches", "write"),
    (desired, "record_deltas", "write"),
    (desired, "mark_deltas_are_changes", "write"),
    (desired, "unpark", "write"),
    (desired, "apply_deltas", "write"),
    (submitting, "submit_audience", "submit"),
    (polling.ImportPoller, "drain", "settle_loop"),
    (confirm, "stage_results", "confirm"),
    (confirm, "settle_import", "confirm"),
    # Parts of the stages above, for the raw figures only.
    (changes, "assign_to_import", "submit.assign"),
    (routes.ListImportRoute, "post", "submit.post"),
    (desired, "apply_deltas", "write.apply_deltas"),
    (changes, "settle_import", "confirm.changes"),
]


@contextlib.contextmanager
def timing(probe: Probe) -> Iterator[None]:
    """Wrap the job's stage functions so each call adds its wall time to ``probe``."""
    # A function listed twice (a stage and one of its parts) is wrapped twice, the second
    # wrapper around the first, so both stages count it; unwrapped in reverse order.
    replaced: list[tuple[Any, str, Any]] = []
    for owner, name, stage in _WRAPPED:
        current = getattr(owner, name)
        replaced.append((owner, name, current))
        setattr(owner, name, _timed(current, stage, probe))
    try:
        yield
    finally:
        for owner, name, current in reversed(replaced):
            setattr(owner, name, current)


def _timed(function: Callable[..., Any], stage: str, probe: Probe) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            probe.inclusive[stage] += time.perf_counter() - started

    return wrapper


def reset_peak_rss() -> None:
    """Start a new high-water mark (Linux: ``/proc/self/clear_refs``)."""
    gc.collect()
    with contextlib.suppress(OSError):
        _CLEAR_REFS.write_text("5")


def peak_rss_mb() -> float:
    """This process's RSS high-water mark since :func:`reset_peak_rss`, in MiB."""
    for line in _PROC_STATUS.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
