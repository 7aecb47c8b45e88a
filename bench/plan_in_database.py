"""`plan` of a churned N-member audience on PostgreSQL, by both planners, side by side.

The member files are loaded into tables of the state database with COPY, and confirmed state
(every member of the old file ``on``) is seeded directly with SQL instead of by a first run
through the sandbox (17 minutes at 10M here). Then a dry run plans the new file's table with
the embedded planner (DuckDB, reading the table through the sql source) and with the
in-database planner, and DuckDB's anti-join of the two files is timed as the reference. No
Listrak is involved: a dry run sends nothing.

    .venv/bin/python bench/plan_in_database.py --members 10000000 --churn 0.01
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from probes import Probe, peak_rss_mb, reset_peak_rss, timing
from run_bench import PG_ADMIN_URL, machine, make_job
from source_table import load_source_table, table_source
from sqlalchemy import text
from sqlalchemy.engine import Engine
from workload import duckdb_diff, prepare

from audience_sync.config import load_config
from audience_sync.state import ledger, migrate
from audience_sync.state.db import make_engine
from audience_sync.state.statuses import RunTrigger

AUDIENCE = "bench"
PLANNERS = ("embedded", "in_database")
# Its own database: run_bench.py's may be in use by another benchmark on the same server.
PG_DATABASE = "audience_sync_bench_in_database"


def bench_engine() -> Engine:
    drop_database()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {PG_DATABASE}")
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DATABASE}")
    migrate.upgrade(engine)
    return engine


def drop_database() -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")


def seed_confirmed(engine: Engine) -> float:
    """Every member of ``bench_old`` confirmed and desired ``on``, as a finished first run
    leaves them (the workload's raw forms canonicalise by trimming and lowercasing)."""
    started = time.perf_counter()
    with engine.begin() as conn:
        audience_id = ledger.upsert_audience(
            conn, key=AUDIENCE, list_id=1, field_id=1, source="bench"
        )
        conn.execute(
            text(
                "INSERT INTO memberships (audience_id, email, value, confirmed_run_id, "
                "confirmed_at, desired) SELECT DISTINCT CAST(:a AS integer), lower(btrim(email)), "
                "'on', 0, now(), 'on' FROM bench_old"
            ),
            {"a": audience_id},
        )
    with engine.connect() as conn:
        conn.execute(text("ANALYZE memberships"))
        conn.commit()
    return time.perf_counter() - started


def plan_with(folder: Path, engine: Engine, planner: str, memory_limit: str) -> dict[str, Any]:
    config_path = folder / f"plan-{planner}.toml"
    config_path.write_text(
        f"""\
[state]
url = "{engine.url.render_as_string(hide_password=False)}"
[listrak]
api_url = "http://127.0.0.1:9/v1"
auth_url = "http://127.0.0.1:9/OAuth2/Token"
[planner]
memory_limit = "{memory_limit}"
[[audiences]]
key = "{AUDIENCE}"
list_id = 1
profile_field_id = 1
planner = "{planner}"
source = {table_source(engine, "bench_new")}
""",
        encoding="utf-8",
    )
    probe = Probe()
    job = make_job(load_config(config_path), engine, probe)
    reset_peak_rss()
    with timing(probe):
        started = time.perf_counter()
        outcome = job.run(trigger=RunTrigger.MANUAL, dry_run=True)
        wall = time.perf_counter() - started
    plan = outcome.audiences[0].plan
    if plan is None:
        raise SystemExit(f"{planner}: no plan ({outcome.status}: {outcome.audiences[0].error})")
    return {
        "planner": planner,
        "wall_seconds": round(wall, 1),
        "stages": {k: round(v, 1) for k, v in probe.stages(wall).items() if v >= 0.05},
        "peak_rss_mib": round(peak_rss_mb()),
        "snapshot": plan.snapshot,
        "planned_on": plan.planned_on,
        "planned_off": plan.planned_off,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--memory-limit", default="1GB")
    args = parser.parse_args(argv)

    workload = prepare(args.workdir, args.members, args.churn)
    folder = args.workdir / f"plan-in-database-{args.members}"
    folder.mkdir(parents=True, exist_ok=True)
    engine = bench_engine()
    try:
        loaded = {
            name: load_source_table(engine, f"bench_{name}", path)
            for name, path in (("old", workload.old_csv), ("new", workload.new_csv))
        }
        seeded = seed_confirmed(engine)
        print(f"COPY {loaded}, seeded confirmed state in {seeded:.1f}s", flush=True)
        rows = []
        for planner in PLANNERS:
            rows.append(plan_with(folder, engine, planner, args.memory_limit))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        engine.dispose()
        drop_database()
    reset_peak_rss()
    reference = duckdb_diff(workload)
    for row in rows:
        if (row["planned_on"], row["planned_off"]) != (reference.added, reference.removed):
            raise SystemExit(f"{row['planner']} disagrees with DuckDB: {row}, {reference}")
    result = {
        "members": args.members,
        "churn": args.churn,
        "machine": machine("postgresql"),
        "copy_seconds": {k: round(v, 1) for k, v in loaded.items()},
        "seed_seconds": round(seeded, 1),
        "plans": rows,
        "duckdb_reference_seconds": round(reference.seconds, 1),
        "duckdb_reference_rss_mib": round(peak_rss_mb()),
    }
    print(f"\n| plan of {args.members:,} members, churn {args.churn:.0%} | wall s | peak RSS MiB |")
    print("|---|---:|---:|")
    for row in rows:
        print(f"| {row['planner']} planner | {row['wall_seconds']} | {row['peak_rss_mib']:,} |")
    print(
        f"| DuckDB anti-join of the two files (reference) | {reference.seconds:.1f} | "
        f"{result['duckdb_reference_rss_mib']:,} |"
    )
    out = folder / "result.json"
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"\n(raw figures in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
