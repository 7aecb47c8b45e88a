"""Running the console script as a separate process, and the checks every crash test makes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping

from sqlalchemy import select, text

from audience_sync.sandbox.world import SandboxWorld
from audience_sync.state.tables import audiences, listrak_imports, memberships, run_changes
from tests.harness import CLIENT_ID, CLIENT_SECRET, LIST_ID, Harness

CREDENTIALS = {"LISTRAK_CLIENT_ID": CLIENT_ID, "LISTRAK_CLIENT_SECRET": CLIENT_SECRET}
FINAL_STATUSES = {"confirmed", "skipped", "failed", "aborted"}
COMMAND_TIMEOUT_SECONDS = 120
POLL_SECONDS = 0.05
HELD_IMPORT_DELAY_SECONDS = 3600.0


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCE_SYNC_")}
    return {**base, **CREDENTIALS, **(extra or {})}


def run_cli(
    h: Harness, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audience_sync", "--config", str(h.write_config()), *args],
        capture_output=True,
        text=True,
        env=cli_env(env),
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )


def start_cli(
    h: Harness, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "audience_sync", "--config", str(h.write_config()), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(env),
    )


def wait_for_killed_lock_holder(h: Harness) -> None:
    """After a run was killed: on PostgreSQL its advisory lock lasts until the server notices
    the session ended, which the next run must not race. (SQLite sees the dead pid at once.)"""
    if h.engine.dialect.name != "postgresql":
        return
    held = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    deadline = time.monotonic() + COMMAND_TIMEOUT_SECONDS
    while True:
        with h.engine.connect() as conn:
            if conn.execute(held).scalar_one() == 0:
                return
        assert time.monotonic() < deadline, "the killed run's advisory lock was never released"
        time.sleep(POLL_SECONDS)


def hold_imports(world: SandboxWorld) -> None:
    """Imports created from now on stay queued until :func:`release_imports`, so a run is
    certain to find its import unfinished at the first poll however slow the machine is."""
    world.set_faults(import_delay_seconds=HELD_IMPORT_DELAY_SECONDS)


def release_imports(world: SandboxWorld) -> None:
    """Finish every held import now; later imports take the sandbox's start-up delay again."""
    world.set_faults(import_delay_seconds=world.settings.faults.import_delay_seconds)
    world.finish_pending_imports()


def subscribed(h: Harness) -> set[str]:
    return {
        c.email
        for c in h.sandbox.world.contacts(LIST_ID)
        if c.subscription_state == "Subscribed" and not c.banned and not c.suppressed
    }


def confirmed_by_audience(h: Harness, key: str) -> dict[str, str]:
    with h.engine.connect() as conn:
        rows = conn.execute(
            select(memberships.c.email, memberships.c.value)
            .join(audiences, audiences.c.id == memberships.c.audience_id)
            .where(audiences.c.key == key, memberships.c.value.is_not(None))
        )
        return {r.email: r.value for r in rows}


def change_statuses(h: Harness) -> Counter[str]:
    with h.engine.connect() as conn:
        return Counter(conn.execute(select(run_changes.c.status)).scalars())


def duplicate_sends(h: Harness) -> list[str]:
    """Sandbox imports that repeat, for some contact and field, the value the previous import
    for that contact and field already set: work that was sent twice."""
    world = h.sandbox.world
    last: dict[tuple[int, str], str | None] = {}
    duplicates = []
    for record in sorted(world.imports(LIST_ID), key=lambda r: r.import_id):
        repeated = False
        for row in record.rows:
            for field_id, value in row.values.items():
                key = (field_id, row.email.lower())
                repeated = repeated or last.get(key) == value
                last[key] = value
        if repeated:
            duplicates.append(record.file_name or str(record.import_id))
    return duplicates


def assert_in_step(h: Harness, desired: Mapping[str, Iterable[str]]) -> None:
    """The promises after a clean run: Listrak holds the desired membership for every subscribed
    contact, memberships hold exactly what Listrak accepted, and no change is left open."""
    live = subscribed(h)
    for key, members in desired.items():
        values = h.values(key)
        on = {email for email, value in values.items() if value == "on"}
        assert on == set(members) & live, key
        assert confirmed_by_audience(h, key) == values, key
    statuses = change_statuses(h)
    assert set(statuses) <= FINAL_STATUSES, statuses
    with h.engine.connect() as conn:
        unresolved = conn.execute(
            select(listrak_imports.c.file_name, listrak_imports.c.status).where(
                listrak_imports.c.status.in_(("posting", "submitted"))
            )
        ).all()
    assert unresolved == [], "imports left open"
