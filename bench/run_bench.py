"""Benchmark: the job on an N-member audience against DuckDB's anti-join of the same files.

    python bench/run_bench.py --members 1000000 --churn 0.01 [--store sqlite|postgresql]
        [--planner embedded|in_database] [--source file|table]

``--source table`` (PostgreSQL only, implied by ``--planner in_database``) loads the member
files into tables of the state database with COPY and reads them through a sql source, so the
two planners can be compared on the same input.

Scenarios, in order, on one state database and one sandbox (in its own process):
  first run        every member is new: N contacts turned on
  unchanged rerun  the same file again: nothing to send
  plan (churn)     the changed file, dry run: read, plan in DuckDB, write the changes
  run (churn)      the changed file: send the changes
  duckdb           in-memory DuckDB reads both files and anti-joins them both ways

"plan" is DuckDB: loading the snapshot, reading confirmed state, the anti-joins. "write" is the
planned changes, the desired-value deltas, and applying them when the audience is done.
"other" is the rest of the wall time: lock, resume, ledger rows. "sandbox" is the sandbox's own
handling of the requests the job waited on in *submit* (parsing the POSTed files) and *confirm*
(the results), timed by the sandbox from each body received to its answer sent, and taken out
of those two stages; its status polls (and applying the import) stay in *await*.
Peak RSS is this process's high-water mark during each scenario; the sandbox's memory and the
PostgreSQL server's are not in it.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import math
import os
import platform
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from probes import Probe, peak_rss_mb, reset_peak_rss, timing
from sandbox_process import (
    FIELD_ID,
    LIST_ID,
    SandboxInfo,
    SandboxProcess,
    handling_seconds,
    stage_of_route,
)
from source_table import load_source_table, table_source
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from workload import Workload, duckdb_diff, prepare

from audience_sync.config import AppConfig, Credentials, load_config
from audience_sync.listrak.client import ListrakClient
from audience_sync.pipeline import SyncJob
from audience_sync.sandbox.settings import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from audience_sync.state import migrate
from audience_sync.state.db import make_engine
from audience_sync.state.statuses import RunStatus, RunTrigger
from audience_sync.state.tables import listrak_imports

AUDIENCE = "bench_audience"
PART_LIMIT_BYTES = 185_000_000
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Several checkouts may benchmark on one server at once: each can name its own database.
PG_DATABASE = os.environ.get("AUDIENCE_SYNC_BENCH_PG_DATABASE", "audience_sync_bench")
STAGES = (
    "read",
    "normalise",
    "plan",
    "write",
    "submit",
    "await",
    "confirm",
    "other",
    "sandbox",
)


@dataclass
class Row:
    scenario: str
    wall: float
    stages: dict[str, float]
    peak_rss_mb: float
    import_posts: int = 0
    http_requests: int = 0
    changed_bytes: int = 0
    planned_on: int = 0
    planned_off: int = 0
    status: str = ""
    inclusive: dict[str, float] = field(default_factory=dict)


@dataclass
class Result:
    machine: dict[str, Any]
    members: int
    churn: float
    store: str
    planner: str = "embedded"
    source: str = "file"
    snapshot_cache: bool = True
    rows: list[Row] = field(default_factory=list)
    duckdb_seconds: float = 0.0
    duckdb_rss_mb: float = 0.0
    sandbox_seed_seconds: float = 0.0
    sandbox_rss_mb: float = 0.0

    def row(self, scenario: str) -> Row:
        return next(r for r in self.rows if r.scenario == scenario)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--planner", choices=("embedded", "in_database"), default="embedded")
    parser.add_argument("--source", choices=("file", "table"), default="file")
    parser.add_argument(
        "--no-snapshot-cache",
        action="store_true",
        help="plan without [planner] snapshot_cache (the desired set read from every state row)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write a cProfile file per scenario into this directory (slows the job down)",
    )
    args = parser.parse_args(argv)
    if args.planner == "in_database":
        args.source = "table"
    if args.source == "table" and args.store != "postgresql":
        parser.error("--source table and --planner in_database need --store postgresql")

    started = time.perf_counter()
    workload = prepare(args.workdir, args.members, args.churn)
    print(f"data ready in {time.perf_counter() - started:.1f}s: {workload.old_csv.parent}")
    result = Result(
        machine=machine(args.store),
        members=args.members,
        churn=args.churn,
        store=args.store,
        planner=args.planner,
        source=args.source,
        snapshot_cache=not args.no_snapshot_cache,
    )
    sandbox = SandboxProcess(workload.contacts_csv, AUDIENCE)
    with sandbox as info:
        result.sandbox_seed_seconds = info.seed_seconds
        print(
            f"sandbox seeded with {args.members + workload.added:,} contacts "
            f"in {info.seed_seconds:.1f}s ({info.rss_mb:,.0f} MiB)"
        )
        engine = state_engine(args.store, args.workdir)
        try:
            run_scenarios(result, workload, info, engine, args)
        finally:
            engine.dispose()
            if args.store == "postgresql":
                drop_pg_database()
        result.sandbox_rss_mb = sandbox.rss_mb()
    reset_peak_rss()
    reference = duckdb_diff(workload)
    result.duckdb_seconds = reference.seconds
    result.duckdb_rss_mb = peak_rss_mb()
    churn_plan = result.row("plan (churn)")
    if (reference.added, reference.removed) != (churn_plan.planned_on, churn_plan.planned_off):
        raise SystemExit(
            f"plan disagrees with DuckDB: on/off {churn_plan.planned_on}/{churn_plan.planned_off}"
            f", DuckDB added/removed {reference.added}/{reference.removed}"
        )
    print_report(result)
    cache = "-no-cache" if args.no_snapshot_cache else ""
    out = (
        args.workdir
        / f"result-{args.store}-{args.planner}-{args.source}-{args.members}{cache}.json"
    )
    out.write_text(json.dumps(asdict(result), indent=2), encoding="utf-8")
    print(f"\n(raw figures in {out})")
    return 0


def run_scenarios(
    result: Result, workload: Workload, sandbox: SandboxInfo, engine: Engine, args: Any
) -> None:
    sources = {}
    for name, csv_path in (("old", workload.old_csv), ("new", workload.new_csv)):
        if args.source == "table":
            seconds = load_source_table(engine, f"bench_{name}", csv_path)
            print(f"  COPY {csv_path.name} into bench_{name}: {seconds:.1f}s", flush=True)
            sources[name] = table_source(engine, f"bench_{name}")
        else:
            sources[name] = f'{{ kind = "csv", path = "{csv_path}" }}'
    old, new = (
        write_config(
            args.workdir,
            name,
            sources[name],
            sandbox,
            engine,
            args.chunk_size,
            args.planner,
            snapshot_cache=not args.no_snapshot_cache,
        )
        for name in ("old", "new")
    )
    scenarios = [
        ("first run", old, False),
        ("unchanged rerun", old, False),
        ("plan (churn)", new, True),
        ("run (churn)", new, False),
    ]
    probe = Probe()
    for name, config, dry_run in scenarios:
        probe.reset()
        job = make_job(config, engine, probe)
        reset_peak_rss()
        handled_before = handling_seconds(sandbox)
        with timing(probe), profiled(args.profile, name):
            t0 = time.perf_counter()
            outcome = job.run(trigger=RunTrigger.MANUAL, dry_run=dry_run)
            wall = time.perf_counter() - t0
        row = Row(
            scenario=name,
            wall=wall,
            stages=probe.stages(wall, sandbox_time(handled_before, handling_seconds(sandbox))),
            peak_rss_mb=peak_rss_mb(),
            import_posts=probe.requests["import_posts"],
            http_requests=probe.requests["total"],
            changed_bytes=import_bytes(engine, outcome.run_id),
            status=outcome.status,
            inclusive=dict(probe.inclusive),
        )
        plan = outcome.audiences[0].plan
        if plan is not None:
            row.planned_on, row.planned_off = plan.planned_on, plan.planned_off
        result.rows.append(row)
        print(f"  {name}: {wall:.1f}s ({outcome.status})", flush=True)
        if outcome.status not in (RunStatus.SUCCEEDED, RunStatus.PLANNED):
            raise SystemExit(f"{name} ended {outcome.status}: {outcome.error}")


@contextlib.contextmanager
def profiled(directory: Path | None, scenario: str) -> Iterator[None]:
    """cProfile one scenario into ``directory`` (``python -m pstats FILE`` reads it)."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        profile.dump_stats(directory / f"{scenario.replace(' ', '_').strip('()')}.prof")


def sandbox_time(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The sandbox's own handling time between two readings, by the job's stage that waited
    on it (the status polls are left inside *await*)."""
    by_stage: dict[str, float] = {}
    for key, seconds in after.items():
        stage = stage_of_route(key)
        if stage is not None:
            by_stage[stage] = by_stage.get(stage, 0.0) + seconds - before.get(key, 0.0)
    return by_stage


def write_config(
    workdir: Path,
    name: str,
    source: str,
    sandbox: SandboxInfo,
    engine: Engine,
    chunk_size: int | None,
    planner: str = "embedded",
    snapshot_cache: bool = True,
) -> AppConfig:
    sync = f"[sync]\nchunk_size = {chunk_size}\n" if chunk_size else ""
    cache = (
        f'[planner]\nsnapshot_cache = "{workdir / "snapshot-cache"}"\n' if snapshot_cache else ""
    )
    text = f"""\
{cache}[state]
url = "{engine.url.render_as_string(hide_password=False)}"
[listrak]
api_url = "{sandbox.api_url}"
auth_url = "{sandbox.auth_url}"
poll_interval_seconds = 0.1
timeout_seconds = 600
{sync}
[[audiences]]
key = "{AUDIENCE}"
list_id = {LIST_ID}
profile_field_id = {FIELD_ID}
planner = "{planner}"
source = {source}
"""
    path = workdir / f"bench-{name}.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def make_job(config: AppConfig, engine: Engine, probe: Probe) -> SyncJob:
    credentials = Credentials(client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET)
    return SyncJob(
        config,
        engine=engine,
        client_factory=lambda: ListrakClient.build(
            config.settings.listrak,
            credentials,
            event_hooks={"request": [probe.on_request]},
        ),
    )


def state_engine(store: str, workdir: Path) -> Engine:
    # A fresh state database: no cached snapshot from an earlier bench saves the first run work.
    shutil.rmtree(workdir / "snapshot-cache", ignore_errors=True)
    if store == "sqlite":
        path = workdir / "bench-state.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        engine = make_engine(f"sqlite:///{path}")
    else:
        drop_pg_database()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {PG_DATABASE}")
        engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DATABASE}")
    migrate.upgrade(engine)
    return engine


def drop_pg_database() -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")


def import_bytes(engine: Engine, run_id: int) -> int:
    with engine.connect() as conn:
        total = conn.execute(
            select(func.coalesce(func.sum(listrak_imports.c.byte_count), 0)).where(
                listrak_imports.c.run_id == run_id
            )
        ).scalar_one()
    return int(total)


def machine(store: str) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    if store == "postgresql":
        with psycopg.connect(PG_ADMIN_URL) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            info["postgresql"] = row[0] if row else "?"
    return info


def print_report(result: Result) -> None:
    m = result.machine
    print(
        f"\n{result.members:,} members, churn {result.churn:.2%}, store {result.store}, "
        f"planner {result.planner}, source {result.source}, "
        f"snapshot cache {'on' if result.snapshot_cache else 'off'}, "
        f"{m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB, Python {m['python']}, "
        f"SQLite {m['sqlite']}" + (f", PostgreSQL {m['postgresql']}" if "postgresql" in m else "")
    )
    header = ["scenario", "wall s", *STAGES, "peak RSS MiB", "import POSTs", "HTTP", "on", "off"]
    lines = [header]
    for row in result.rows:
        lines.append(
            [
                row.scenario,
                f"{row.wall:.1f}",
                *(f"{row.stages[s]:.1f}" for s in STAGES),
                f"{row.peak_rss_mb:,.0f}",
                str(row.import_posts),
                str(row.http_requests),
                f"{row.planned_on:,}",
                f"{row.planned_off:,}",
            ]
        )
    blank = [""] * len(STAGES)
    lines.append(
        [
            "duckdb anti-join",
            f"{result.duckdb_seconds:.1f}",
            *blank,
            f"{result.duckdb_rss_mb:,.0f}",
            "",
            "",
            "",
            "",
        ]
    )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for i, line in enumerate(lines):
        print(
            "| "
            + " | ".join(
                cell.ljust(w) if j == 0 else cell.rjust(w)
                for j, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
            + " |"
        )
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")

    plan, first = result.row("plan (churn)"), result.row("first run")
    rerun, churn_run = result.row("unchanged rerun"), result.row("run (churn)")
    ratio = plan.wall / result.duckdb_seconds
    print(
        f"\nplan / DuckDB = {plan.wall:.1f}s / {result.duckdb_seconds:.1f}s = {ratio:.1f}x"
        f"  (target <= 1.5x: {verdict(ratio <= 1.5)})"
    )
    print(
        f"plan peak RSS = {plan.peak_rss_mb:,.0f} MiB  (target < 2 GB: "
        f"{verdict(plan.peak_rss_mb < 2048)})"
    )
    for row in (first, churn_run):
        allowed = max(1, math.ceil(row.changed_bytes / PART_LIMIT_BYTES))
        print(
            f"{row.scenario}: {row.import_posts} import POST(s) for "
            f"{row.changed_bytes / 1e6:,.1f} MB of changes (at most {allowed}: "
            f"{verdict(row.import_posts <= allowed)})"
        )
    rerun_ratio = rerun.wall / first.wall
    print(
        f"unchanged rerun / first run = {rerun.wall:.1f}s / {first.wall:.1f}s = "
        f"{rerun_ratio:.2f}  (target <= 0.1: {verdict(rerun_ratio <= 0.1)})"
    )
    # The job's own time: all but waiting for the sandbox to apply the imports and the
    # sandbox's own handling of the other requests (parsing the POSTed files, the results),
    # which the sandbox times from each body received to its answer sent.
    waited, handled = first.stages["await"], first.stages["sandbox"]
    own = first.wall - waited - handled
    print(
        f"first run, the job's own time = wall - await - sandbox processing = {first.wall:.1f}s"
        f" - {waited:.1f}s - {handled:.1f}s = {own:.1f}s  (target <= 180s: {verdict(own <= 180)})"
    )
    print(
        f"sandbox (separate process): seeded in {result.sandbox_seed_seconds:.1f}s, "
        f"RSS at the end {result.sandbox_rss_mb:,.0f} MiB"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


if __name__ == "__main__":
    sys.exit(main())
