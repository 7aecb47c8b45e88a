"""`plan` of one large audience against an empty state database: the 100M-member measurement.

No Listrak is involved (a dry run sends nothing; the client is never called), so no sandbox has
to hold the contacts. Reports the wall time per stage, the job's peak RSS, the largest size the
DuckDB spill directory reached (sampled every half second) and the state database's size.

    .venv/bin/python bench/plan_only.py --members 100000000 --workdir bench/out
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
from probes import Probe, peak_rss_mb, reset_peak_rss, timing
from run_bench import make_job, state_engine
from sqlalchemy import text
from sqlalchemy.engine import Engine
from workload import _write

from audience_sync.config import load_config
from audience_sync.state.statuses import RunTrigger

AUDIENCE = "bench"


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class DiskSampler(threading.Thread):
    """The largest size ``path`` reaches while the plan runs."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            try:
                self.peak = max(self.peak, directory_bytes(self.path))
            except FileNotFoundError:
                continue


def write_members(path: Path, members: int) -> None:
    """The audience's CSV, written in a function of its own: the member ids (800 MB at 100M)
    must be gone before the plan's peak RSS is measured."""
    started = time.perf_counter()
    _write(path, np.random.default_rng(7).permutation(members), raw=True)
    print(f"wrote {path} in {time.perf_counter() - started:.0f}s", flush=True)


def state_database_bytes(engine: Engine, folder: Path, members_csv: Path) -> int:
    """What the state database takes on disk: the SQLite file with its WAL, or PostgreSQL's
    database (tables, indexes and TOAST; not the server's shared WAL)."""
    if engine.dialect.name == "sqlite":
        spill = folder / "spill"
        return directory_bytes(folder) - members_csv.stat().st_size - directory_bytes(spill)
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000_000)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--memory-limit", default="1GB")
    args = parser.parse_args(argv)

    folder = args.workdir / f"plan-only-{args.members}"
    folder.mkdir(parents=True, exist_ok=True)
    members_csv = folder / "members.csv"
    if not members_csv.exists():
        write_members(members_csv, args.members)
    spill = folder / "spill"
    shutil.rmtree(spill, ignore_errors=True)
    spill.mkdir()

    engine = state_engine(args.store, folder)
    config_path = folder / "plan-only.toml"
    config_path.write_text(
        f"""\
[state]
url = "{engine.url.render_as_string(hide_password=False)}"
[listrak]
api_url = "http://127.0.0.1:9/v1"
auth_url = "http://127.0.0.1:9/OAuth2/Token"
[planner]
memory_limit = "{args.memory_limit}"
temp_directory = "{spill}"
[[audiences]]
key = "{AUDIENCE}"
list_id = 1
profile_field_id = 1
source = {{ kind = "csv", path = "{members_csv}" }}
""",
        encoding="utf-8",
    )
    config = load_config(config_path)
    probe = Probe()
    job = make_job(config, engine, probe)
    sampler = DiskSampler(spill)
    sampler.start()
    reset_peak_rss()
    with timing(probe):
        started = time.perf_counter()
        outcome = job.run(trigger=RunTrigger.MANUAL, dry_run=True)
        wall = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    plan = outcome.audiences[0].plan
    state_bytes = state_database_bytes(engine, folder, members_csv)
    result = {
        "members": args.members,
        "store": args.store,
        "status": str(outcome.status),
        "wall_seconds": round(wall, 1),
        "stages": {k: round(v, 1) for k, v in probe.stages(wall).items()},
        "peak_rss_mib": round(peak_rss_mb()),
        "spill_peak_mib": round(sampler.peak / 2**20),
        "state_db_mib": round(state_bytes / 2**20),
        "csv_mib": round(members_csv.stat().st_size / 2**20),
        "planned_on": plan.planned_on if plan else None,
        "memory_limit": args.memory_limit,
    }
    print(json.dumps(result, indent=2))
    (folder / f"result-{args.store}.json").write_text(json.dumps(result, indent=2))
    engine.dispose()
    return 0 if plan is not None and plan.planned_on == args.members else 1


if __name__ == "__main__":
    sys.exit(main())
