"""SIGKILL a run whose audience is planned in the database at every step boundary, run it
again, and check that nothing was lost and that it converges to what its twin planned by the
embedded planner from the same source rows converges to (PostgreSQL only).

The in-database audience comes first, so ``staged`` kills inside its planning transaction
(the snapshot staged, nothing written). The other boundaries run the job three or four times
each and are in ``make test-slow``, as the PostgreSQL cases of test_kill.py are.
"""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import select

from audience_sync.checkpoints import KILL_ENV, NAMES
from audience_sync.sandbox.settings import DropNextPost
from audience_sync.state.tables import listrak_imports, sync_runs
from tests.crash.helpers import (
    assert_in_step,
    confirmed_by_audience,
    duplicate_sends,
    hold_imports,
    release_imports,
    run_cli,
    wait_for_killed_lock_holder,
)
from tests.e2e.test_in_database_planner import add_audience, pg_harness, set_source, sql_source
from tests.harness import Harness

SUBSCRIBED = [f"s{i:03d}@example.com" for i in range(150)]
UNSUBSCRIBED = ["u0@example.com", "u1@example.com"]
BASELINE = SUBSCRIBED[:80] + UNSUBSCRIBED[:1]
KILLED = [s.upper() for s in SUBSCRIBED[40:140]] + UNSUBSCRIBED + ["", "bad@@x.com"]
LATEST = [*SUBSCRIBED[50:], " S060@Example.com "]
# In config order: the in-database audience is planned first.
TWINS = {"vip_in_db": ("in_database", 301), "vip_embedded": ("embedded", 300)}

__all__ = ["pg_harness"]


@pytest.fixture
def synced(pg_harness: Harness) -> Harness:
    """Both twins synced once; imports of about 1 kB so each run sends several parts."""
    h = pg_harness
    h.listrak_settings = {"max_import_bytes": 1001}
    h.add_contacts(subscribed=SUBSCRIBED, unsubscribed=UNSUBSCRIBED)
    for key, (planner, field_id) in TWINS.items():
        add_audience(h, key, field_id, planner, sql_source(h, "vip"))
    set_source(h, "vip", BASELINE)
    assert h.run().status == "succeeded"
    assert_in_step(h, dict.fromkeys(TWINS, BASELINE))
    return h


BOUNDARIES = [
    boundary if boundary == "staged" else pytest.param(boundary, marks=pytest.mark.slow)
    for boundary in NAMES
]


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_killed_in_database_run_converges_like_the_embedded_twin(
    synced: Harness, boundary: str
) -> None:
    h = synced
    if boundary == "polling":
        hold_imports(h.sandbox.world)
    if boundary == "answer_lost":
        h.sandbox.world.set_faults(drop_next_post=DropNextPost(1, path_contains="ListImport"))
    set_source(h, "vip", KILLED)
    killed = run_cli(h, "--quiet", "run", env={KILL_ENV: boundary})
    release_imports(h.sandbox.world)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    wait_for_killed_lock_holder(h)

    set_source(h, "vip", LATEST)
    again = run_cli(h, "--quiet", "run")
    assert again.returncode == 0, again.stderr

    latest = [s.strip().lower() for s in LATEST]
    assert_in_step(h, dict.fromkeys(TWINS, latest))
    in_db, embedded = (confirmed_by_audience(h, key) for key in TWINS)
    assert in_db == embedded
    with h.engine.connect() as conn:
        statuses = list(conn.execute(select(sync_runs.c.status).order_by(sync_runs.c.id)).scalars())
        open_imports = conn.execute(
            select(listrak_imports.c.id).where(
                listrak_imports.c.status.in_(("posting", "submitted"))
            )
        ).all()
    assert statuses == ["succeeded", "interrupted", "succeeded"]
    assert open_imports == []
    assert duplicate_sends(h) == []

    unchanged = h.run()
    assert unchanged.status == "succeeded", unchanged.error
    assert h.change_count(unchanged.run_id) == 0
