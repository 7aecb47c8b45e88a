"""``[planner] snapshot_cache`` over whole runs against the sandbox: a run keeps its snapshot,
the next plan reads the desired set from the file the database names, and anything else (a
dry run's or an aborted run's snapshot, a damaged or missing file) is never trusted: the
desired set is read from the database and every plan stays right."""

from __future__ import annotations

import logging
import stat

import pytest
from sqlalchemy import select

from audience_sync.errors import GuardError
from audience_sync.state.tables import run_audiences
from tests.harness import Harness

KEY = "first_time_shopper"
MEMBERS = [f"member{i:03d}@example.com" for i in range(40)]
JOINER = "joiner@example.com"
CACHE_TOML = '[planner]\nsnapshot_cache = "snapshots"'


@pytest.fixture
def cached(harness: Harness) -> Harness:
    harness.add_contacts(subscribed=[*MEMBERS, JOINER])
    harness.add_audience(KEY, 200, MEMBERS)
    harness.extra_toml = CACHE_TOML
    return harness


def cache_files(h: Harness) -> list[str]:
    return sorted(p.name for p in (h.root / "snapshots").glob("*"))


def recorded_file(h: Harness, run_id: int) -> str:
    with h.engine.connect() as conn:
        audience_id, size, fingerprint = conn.execute(
            select(
                run_audiences.c.audience_id,
                run_audiences.c.snapshot_count,
                run_audiences.c.snapshot_fingerprint,
            ).where(run_audiences.c.run_id == run_id)
        ).one()
    return f"audience-{audience_id}-{size}-{fingerprint}.parquet"


def desired_read_from(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        getattr(r, "source", "") for r in caplog.records if r.getMessage() == "planner.desired_read"
    ]


@pytest.fixture
def plan_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="audience_sync.plan")
    return caplog


def run_with_a_leaver_and_a_joiner(
    h: Harness, plan_log: pytest.LogCaptureFixture
) -> tuple[int, list[str]]:
    """The first member leaves and the joiner joins: a run sends and confirms exactly those
    two changes. Returns the run's id and where its plan read the desired set from."""
    h.set_members(KEY, [*MEMBERS[1:], JOINER])
    plan_log.clear()
    outcome = h.run()
    assert h.change_statuses(outcome.run_id) == {
        MEMBERS[0]: ("off", "confirmed", None),
        JOINER: ("on", "confirmed", None),
    }
    assert h.members_on(KEY) == {*MEMBERS[1:], JOINER}
    return outcome.run_id, desired_read_from(plan_log)


def test_the_next_plan_reads_the_desired_set_from_the_kept_snapshot(
    cached: Harness, plan_log: pytest.LogCaptureFixture
) -> None:
    first = cached.run()
    assert first.status == "succeeded"
    assert cache_files(cached) == [recorded_file(cached, first.run_id)]
    assert desired_read_from(plan_log) == ["database"]
    # The files hold members' addresses.
    folder = cached.root / "snapshots"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / cache_files(cached)[0]).stat().st_mode) == 0o600

    second, read_from = run_with_a_leaver_and_a_joiner(cached, plan_log)
    assert read_from == ["snapshot cache"]

    plan_log.clear()
    third = cached.run()
    assert desired_read_from(plan_log) == ["snapshot cache"]
    assert cached.change_count(third.run_id) == 0
    # The first run's file went once the second run's snapshot was the applied one.
    assert cache_files(cached) == [recorded_file(cached, second)]


def test_a_dry_run_keeps_nothing_and_an_aborted_run_is_never_read(
    cached: Harness, plan_log: pytest.LogCaptureFixture
) -> None:
    first = cached.run()
    kept = recorded_file(cached, first.run_id)

    cached.set_members(KEY, [*MEMBERS[1:], JOINER])
    planned = cached.run(dry_run=True)
    assert planned.status == "planned"
    assert cache_files(cached) == [kept]

    # Most members gone: the guard aborts the run after it planned (and kept its snapshot);
    # its deltas are never applied, so the database still names the first run's snapshot.
    cached.set_members(KEY, MEMBERS[:5])
    job = cached.job()
    with pytest.raises(GuardError):
        job.run()
    assert job.last_run_id is not None
    assert recorded_file(cached, job.last_run_id) in cache_files(cached)

    _, read_from = run_with_a_leaver_and_a_joiner(cached, plan_log)
    assert read_from == ["snapshot cache"]


def test_a_damaged_or_missing_file_means_reading_the_database(
    cached: Harness, plan_log: pytest.LogCaptureFixture
) -> None:
    first = cached.run()
    kept = cached.root / "snapshots" / recorded_file(cached, first.run_id)
    kept.write_bytes(b"not parquet")

    second, read_from = run_with_a_leaver_and_a_joiner(cached, plan_log)
    assert read_from == ["database"]
    assert "planner.snapshot_cache_unreadable" in plan_log.messages

    (cached.root / "snapshots" / recorded_file(cached, second)).unlink()
    cached.set_members(KEY, MEMBERS)
    plan_log.clear()
    third = cached.run()
    assert desired_read_from(plan_log) == ["database"]
    assert cached.change_statuses(third.run_id) == {
        MEMBERS[0]: ("on", "confirmed", None),
        JOINER: ("off", "confirmed", None),
    }
    assert cached.members_on(KEY) == set(MEMBERS)
