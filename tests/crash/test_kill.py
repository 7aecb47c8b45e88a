"""SIGKILL the job at every step boundary, run it again, and check that nothing was lost.

The job runs as ``python -m audience_sync run`` in its own process against the sandbox in this
process, which outlives the killed job. ``AUDIENCE_SYNC_KILL_AT`` names the boundary at which
the job kills itself (see audience_sync/checkpoints.py). Between the killed run and the next
one the member lists change again, so the resumed work and the new diff must add up.
"""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import select

from audience_sync.checkpoints import KILL_ENV, NAMES
from audience_sync.sandbox.settings import DropNextPost
from audience_sync.state.tables import listrak_imports, sync_runs
from tests.conftest import backend_url
from tests.crash.helpers import (
    assert_in_step,
    duplicate_sends,
    hold_imports,
    release_imports,
    run_cli,
    wait_for_killed_lock_holder,
)
from tests.harness import Harness

SUBSCRIBED = [f"s{i:03d}@example.com" for i in range(150)]
UNSUBSCRIBED = ["u0@example.com", "u1@example.com"]

BASELINE = {"vip": SUBSCRIBED[:80] + UNSUBSCRIBED[:1], "lapsed": SUBSCRIBED[100:]}
KILLED = {"vip": SUBSCRIBED[40:140] + UNSUBSCRIBED, "lapsed": SUBSCRIBED[:30] + SUBSCRIBED[100:120]}
LATEST = {"vip": SUBSCRIBED[50:], "lapsed": SUBSCRIBED[:40]}
FIELDS = {"vip": 300, "lapsed": 301}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Both backends, with PostgreSQL's cases in `make test-slow`: each case runs the job three
    or four times (15-35 s on two shared cores), and SQLite keeps every boundary in the fast
    suite."""
    return backend_url(request)


def set_members(h: Harness, members: dict[str, list[str]]) -> None:
    for key, emails in members.items():
        h.set_members(key, emails)


@pytest.fixture
def synced(harness: Harness) -> Harness:
    """Both audiences synced once; imports of about 1 kB so each run sends several parts."""
    h = harness
    h.listrak_settings = {"max_import_bytes": 1001}
    # Plans read the desired set from the snapshot cache once a run kept one.
    h.extra_toml = '[guards]\nmax_removed_fraction = 1.0\n[planner]\nsnapshot_cache = "snapshots"'
    h.add_contacts(subscribed=SUBSCRIBED, unsubscribed=UNSUBSCRIBED)
    for key, field_id in FIELDS.items():
        h.add_audience(key, field_id, BASELINE[key])
    assert h.run().status == "succeeded"
    assert_in_step(h, BASELINE)
    return h


def killed_run(h: Harness, boundary: str) -> None:
    set_members(h, KILLED)
    killed = run_cli(h, "--quiet", "run", env={KILL_ENV: boundary})
    release_imports(h.sandbox.world)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    wait_for_killed_lock_holder(h)
    with h.engine.connect() as conn:
        last = conn.execute(
            select(sync_runs.c.status).order_by(sync_runs.c.id.desc()).limit(1)
        ).scalar_one()
    assert last == "running"


@pytest.mark.parametrize("boundary", NAMES)
def test_killed_run_is_resumed_and_nothing_is_lost(synced: Harness, boundary: str) -> None:
    h = synced
    if boundary == "polling":
        hold_imports(h.sandbox.world)
    if boundary == "answer_lost":
        h.sandbox.world.set_faults(drop_next_post=DropNextPost(1, path_contains="ListImport"))
    killed_run(h, boundary)

    set_members(h, LATEST)
    again = run_cli(h, "--quiet", "run")
    assert again.returncode == 0, again.stderr

    assert_in_step(h, LATEST)
    with h.engine.connect() as conn:
        statuses = dict(conn.execute(select(sync_runs.c.id, sync_runs.c.status)).all())
        open_imports = conn.execute(
            select(listrak_imports.c.id).where(
                listrak_imports.c.status.in_(("posting", "submitted"))
            )
        ).all()
    assert list(statuses.values()) == ["succeeded", "interrupted", "succeeded"]
    assert open_imports == []
    file_names = [r.file_name for r in h.sandbox.world.imports(100)]
    assert len(file_names) == len(set(file_names)), "an import was sent twice under its name"
    # The promise is at most one duplicate import per kill; the sandbox lists an import as soon
    # as it is created, so the look-up by file name always finds it and there is none.
    assert duplicate_sends(h) == []

    unchanged = h.run()
    assert unchanged.status == "succeeded", unchanged.error
    assert unchanged.run_id == max(statuses) + 1
    assert h.change_count(unchanged.run_id) == 0


def test_resumed_import_is_polled_not_resent(synced: Harness) -> None:
    """Killed while Listrak processes an import: the next run polls the stored id."""
    h = synced
    hold_imports(h.sandbox.world)
    killed_run(h, "polling")
    sent_before = {r.import_id for r in h.sandbox.world.imports(100)}
    with h.engine.connect() as conn:
        stored = set(
            conn.execute(
                select(listrak_imports.c.listrak_import_id).where(
                    listrak_imports.c.status == "submitted"
                )
            ).scalars()
        )
    assert stored, "the killed run had submitted imports"

    again = run_cli(h, "--quiet", "run")
    assert again.returncode == 0, again.stderr
    new = [r.file_name for r in h.sandbox.world.imports(100) if r.import_id not in sent_before]
    assert all(str(name).startswith("audience-sync_run3_") for name in new), new
    with h.engine.connect() as conn:
        settled = conn.execute(
            select(listrak_imports.c.status).where(listrak_imports.c.listrak_import_id.in_(stored))
        ).scalars()
        assert set(settled) == {"finished"}
    assert duplicate_sends(h) == []
    assert_in_step(h, KILLED)


def test_import_whose_answer_was_lost_is_found_by_name(synced: Harness) -> None:
    """Killed after Listrak created the import but before its id was stored."""
    h = synced
    killed_run(h, "posted")
    names_before = [r.file_name for r in h.sandbox.world.imports(100)]
    with h.engine.connect() as conn:
        posting = conn.execute(
            select(listrak_imports.c.file_name).where(listrak_imports.c.status == "posting")
        ).scalar_one()
    assert posting in names_before

    again = run_cli(h, "--quiet", "run")
    assert again.returncode == 0, again.stderr
    names_after = [r.file_name for r in h.sandbox.world.imports(100)]
    assert names_after.count(posting) == 1
    assert duplicate_sends(h) == []
    assert_in_step(h, KILLED)
