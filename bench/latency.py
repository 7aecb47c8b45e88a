"""Benchmark: a run's wall time with many audiences against one, when Listrak is slow to import.

    python bench/latency.py [--audiences 8] [--members 300] [--import-delay 5] [--store sqlite]

The sandbox (in this process) takes ``--import-delay`` seconds to process every import, the way
a queued Listrak import does. The job runs once with one audience and once with all of them,
each time against a fresh state database and a fresh sandbox account, and every audience turns
``--members`` contacts on. If audiences wait for each other the ratio is about the number of
audiences; if their imports are awaited together it stays near 1 (target: at most 1.5).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from audience_sync.config import AppConfig, Credentials, load_config
from audience_sync.listrak.client import ListrakClient
from audience_sync.pipeline import SyncJob
from audience_sync.sandbox import SandboxServer, SandboxSettings
from audience_sync.sandbox.settings import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Faults
from audience_sync.state import migrate
from audience_sync.state.db import make_engine
from audience_sync.state.statuses import RunTrigger

LIST_ID = 100
FIRST_FIELD_ID = 300
TARGET_RATIO = 1.5
POLL_INTERVAL_SECONDS = 0.25
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DATABASE = "audience_sync_bench_latency"


@dataclass(frozen=True)
class Measurement:
    audiences: int
    wall: float
    status: str
    import_posts: int
    http_requests: int


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audiences", type=int, default=8)
    parser.add_argument("--members", type=int, default=300, help="members per audience")
    parser.add_argument("--import-delay", type=float, default=5.0, help="seconds per import")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args(argv)

    settings = SandboxSettings(faults=Faults(import_delay_seconds=args.import_delay))
    with SandboxServer(settings) as sandbox, tempfile.TemporaryDirectory() as tmp:
        one = measure(sandbox, Path(tmp) / "one", 1, args)
        many = measure(sandbox, Path(tmp) / "many", args.audiences, args)
    for m in (one, many):
        print(
            f"{m.audiences} audience(s): {m.wall:.1f}s ({m.status}; {m.import_posts} import "
            f"POSTs, {m.http_requests} HTTP requests)"
        )
    ratio = many.wall / one.wall
    met = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(
        f"{many.audiences} audiences / 1 audience = {many.wall:.1f}s / {one.wall:.1f}s = "
        f"{ratio:.1f} x  (import latency {args.import_delay:g}s, {args.members} members each, "
        f"store {args.store}; target <= {TARGET_RATIO}: {met})"
    )
    return 0 if "failed" not in (one.status, many.status) else 1


def measure(
    sandbox: SandboxServer, workdir: Path, audiences: int, args: argparse.Namespace
) -> Measurement:
    """One run of the job with ``audiences`` audiences, from nothing to every member on."""
    workdir.mkdir(parents=True)
    keys = [f"audience_{i}" for i in range(audiences)]
    world = sandbox.world
    world.reset()
    world.set_faults(import_delay_seconds=args.import_delay)
    world.add_list(LIST_ID, "Latency list")
    contacts = [member(i) for i in range(args.members * audiences)]
    world.upsert_contacts(LIST_ID, [{"emailAddress": e} for e in contacts])
    for number, key in enumerate(keys):
        world.add_field(LIST_ID, key, field_id=FIRST_FIELD_ID + number)
        members = contacts[number * args.members : (number + 1) * args.members]
        (workdir / f"{key}.csv").write_text("email\n" + "\n".join(members) + "\n", "utf-8")

    state_url = fresh_state(args.store, workdir)
    config = write_config(workdir, sandbox, state_url, keys)
    engine = make_engine(state_url)
    requests: Counter[str] = Counter()
    try:
        migrate.upgrade(engine)
        job = SyncJob(config, engine=engine, client_factory=client_factory(config, requests))
        started = time.perf_counter()
        outcome = job.run(trigger=RunTrigger.MANUAL)
        wall = time.perf_counter() - started
    finally:
        engine.dispose()
        if args.store == "postgresql":
            drop_pg_database()
    if outcome.status != "succeeded":
        print(f"{audiences} audience(s): the run ended {outcome.status}: {outcome.error}")
    return Measurement(audiences, wall, outcome.status, requests["import_posts"], requests["total"])


def member(number: int) -> str:
    return f"latency{number:06d}@example.com"


def client_factory(config: AppConfig, requests: Counter[str]) -> Callable[[], ListrakClient]:
    credentials = Credentials(client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET)

    def count(request: httpx.Request) -> None:
        requests["total"] += 1
        if request.method == "POST" and request.url.path.endswith("/ListImport"):
            requests["import_posts"] += 1

    return lambda: ListrakClient.build(
        config.settings.listrak, credentials, event_hooks={"request": [count]}
    )


def fresh_state(store: str, workdir: Path) -> str:
    if store == "sqlite":
        return f"sqlite:///{workdir / 'state.db'}"
    drop_pg_database()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {PG_DATABASE}")
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DATABASE}"


def drop_pg_database() -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")


def write_config(
    workdir: Path, sandbox: SandboxServer, state_url: str, keys: list[str]
) -> AppConfig:
    audiences = "".join(
        f"""
[[audiences]]
key = "{key}"
list_id = {LIST_ID}
profile_field_id = {FIRST_FIELD_ID + number}
source = {{ kind = "csv", path = "{key}.csv" }}
"""
        for number, key in enumerate(keys)
    )
    text = f"""\
[state]
url = "{state_url}"
[listrak]
api_url = "{sandbox.api_url}"
auth_url = "{sandbox.auth_url}"
poll_interval_seconds = {POLL_INTERVAL_SECONDS}
{audiences}"""
    path = workdir / "audience-sync.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


if __name__ == "__main__":
    sys.exit(main())
