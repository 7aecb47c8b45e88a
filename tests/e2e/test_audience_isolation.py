"""Audiences stand alone: a failure, a stuck import or a forgotten import in one audience never
holds back the others, and is recorded on that audience with Listrak's reason."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from audience_sync.sandbox.settings import DropNextPost, FailNext
from audience_sync.state import migrate
from audience_sync.state.db import as_utc, utcnow
from audience_sync.state.tables import listrak_imports, metadata
from tests.conftest import backend_url
from tests.crash.helpers import assert_in_step, confirmed_by_audience, run_cli
from tests.harness import LIST_ID, QUICK_IMPORT_SECONDS, Harness


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Both backends; PostgreSQL's cases (the slowest here) run in `make test-slow`,
    which keeps `make test` under four minutes. CI runs both."""
    return backend_url(request)


KEYS = ("alpha", "beta", "gamma")
FIELDS = {"alpha": 501, "beta": 502, "gamma": 503}
MEMBERS = {key: [f"{key}{i:02d}@example.com" for i in range(20)] for key in KEYS}
EVERYONE = [m for members in MEMBERS.values() for m in members]
POLL_DEADLINE_SECONDS = 30.0


def three_audiences(h: Harness) -> None:
    assert h.engine is not None  # migrated
    h.add_contacts(subscribed=EVERYONE)
    for key in KEYS:
        h.add_audience(key, FIELDS[key], MEMBERS[key])


def assert_fully_on(h: Harness, *keys: str) -> None:
    for key in keys:
        assert h.members_on(key) == set(MEMBERS[key]), key
        assert confirmed_by_audience(h, key) == dict.fromkeys(MEMBERS[key], "on"), key


def assert_alpha_failed(h: Harness, run: str, *expected: str) -> None:
    """`run` exits 1 and its summary, `history` and `show` name alpha and the reason."""
    assert run.splitlines()[0].endswith(": failed")
    alpha = next(line for line in run.splitlines() if line.strip().startswith("alpha:"))
    assert "turned on 0" in alpha
    for reason in expected:
        assert reason in run
    history = run_cli(h, "history")
    assert history.returncode == 0
    latest = history.stdout.splitlines()[1]
    assert "failed" in latest
    assert "2 of 3 audiences synced" in latest
    assert "alpha" in latest
    run_id = run.splitlines()[0].split()[1]
    shown = run_cli(h, "show", run_id, "--audience", "alpha")
    assert shown.returncode == 0, shown.stderr
    for reason in expected:
        assert reason in shown.stdout


def test_a_profile_field_listrak_does_not_have_fails_only_its_audience(harness: Harness) -> None:
    h = harness
    three_audiences(h)
    h.audiences["alpha"] = 999  # the config names a field this list does not have
    result = run_cli(h, "run")
    assert result.returncode == 1, result.stderr
    assert_fully_on(h, "beta", "gamma")
    assert not confirmed_by_audience(h, "alpha")
    assert_alpha_failed(h, result.stdout, "400 ERROR_INVALID_PARAMETER")


def test_a_list_listrak_does_not_have_fails_only_its_audience(harness: Harness) -> None:
    h = harness
    three_audiences(h)
    h.list_ids["alpha"] = 999
    result = run_cli(h, "run")
    assert result.returncode == 1, result.stderr
    assert_fully_on(h, "beta", "gamma")
    assert_alpha_failed(h, result.stdout, "Listrak has no list 999")


def test_an_import_still_running_at_the_timeout_fails_only_its_audience(harness: Harness) -> None:
    h = harness
    three_audiences(h)
    h.listrak_settings["import_timeout"] = "1s"
    h.sandbox.world.set_faults(stall_imports_named="_run1_alpha_")
    result = run_cli(h, "run")
    assert result.returncode == 1, result.stderr
    assert_fully_on(h, "beta", "gamma")
    assert_alpha_failed(h, result.stdout, "still Processing after 0:00:01")

    # Listrak finishes it later: the next run settles it inside the run and sends nothing new.
    h.sandbox.world.set_faults(stall_imports_named=None)
    imports_before = h.import_count()
    outcome = h.run()
    assert outcome.status == "succeeded"
    assert h.import_count() == imports_before
    assert_fully_on(h, "alpha", "beta", "gamma")
    assert resolutions(h) == [("finished", 1, outcome.run_id)]


def test_an_import_listrak_forgot_after_a_kill_is_recorded_lost_and_sent_again(
    harness: Harness,
) -> None:
    h = harness
    three_audiences(h)
    killed = run_cli(h, "run", env={"AUDIENCE_SYNC_KILL_AT": "posted"})
    assert killed.returncode == -9
    restart_sandbox_empty(h)
    rerun = run_cli(h, "run")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_in_step(h, MEMBERS)
    assert [status for status, *_ in resolutions(h)] == ["lost"]
    history = run_cli(h, "history")
    latest, interrupted = history.stdout.splitlines()[1:3]
    assert "succeeded" in latest
    assert "resolved 1 earlier import: 1 lost" in latest
    assert "interrupted" in interrupted


def test_an_import_that_never_finishes_is_abandoned_and_others_sync_meanwhile(
    harness: Harness,
) -> None:
    h = harness
    three_audiences(h)
    h.listrak_settings["import_timeout"] = "1s"
    h.listrak_settings["abandon_after"] = "1h"
    h.sandbox.world.set_faults(stall_imports_named="_run1_alpha_")
    first = h.run()
    assert first.status == "failed"
    assert_fully_on(h, "beta", "gamma")

    # Before abandon_after: alpha waits for its open import, the others keep syncing.
    h.set_members("beta", MEMBERS["beta"][:-2])
    h.set_members("alpha", MEMBERS["alpha"][:-1])
    second = h.run()
    assert second.status == "failed"
    assert [a.waiting_on is not None for a in second.audiences] == [True, False, False]
    assert h.members_on("beta") == set(MEMBERS["beta"][:-2])
    assert confirmed_by_audience(h, "alpha") == {}
    assert [status for status, *_ in resolutions(h)] == ["submitted"]

    # Past abandon_after: the import is given up and alpha's changes are sent again.
    h.listrak_settings["abandon_after"] = "1s"
    poll_until(lambda: oldest_import_age(h) > timedelta(seconds=1))
    third = h.run()
    assert third.status == "succeeded", third.error
    assert h.members_on("alpha") == set(MEMBERS["alpha"][:-1])
    assert confirmed_by_audience(h, "alpha") == dict.fromkeys(MEMBERS["alpha"][:-1], "on")
    assert resolutions(h)[0] == ("abandoned", first.run_id, third.run_id)


def test_a_recreated_state_database_never_confirms_from_an_old_import(harness: Harness) -> None:
    """Run ids restart with a new state database; a lost POST answer must not be resolved to
    the old database's import of the same run number."""
    h = harness
    h.add_contacts(subscribed=MEMBERS["alpha"])
    h.add_audience("alpha", FIELDS["alpha"], MEMBERS["alpha"])
    assert h.run().status == "succeeded"
    gone = MEMBERS["alpha"][:5]
    h.add_contacts(unsubscribed=gone)
    h.sandbox.world.set_field_values(LIST_ID, FIELDS["alpha"], dict.fromkeys(gone))
    recreate_state_database(h)
    h.sandbox.world.set_faults(drop_next_post=DropNextPost(count=1, path_contains="ListImport"))
    outcome = h.run()
    assert outcome.run_id == 1
    assert outcome.status == "succeeded"
    confirmed = confirmed_by_audience(h, "alpha")
    assert set(confirmed) == set(MEMBERS["alpha"]) - set(gone)
    assert_in_step(h, {"alpha": MEMBERS["alpha"]})


# --- helpers ---------------------------------------------------------------------------------


def resolutions(h: Harness) -> list[tuple[str, int, int | None]]:
    """(status, run that posted it, run that resolved it) of imports some later run resolved
    or that are still open."""
    with h.engine.connect() as conn:
        rows = conn.execute(
            select(
                listrak_imports.c.status,
                listrak_imports.c.run_id,
                listrak_imports.c.resolved_run_id,
            )
            .where(
                (listrak_imports.c.resolved_run_id.is_not(None))
                | listrak_imports.c.status.in_(("posting", "submitted"))
            )
            .order_by(listrak_imports.c.id)
        ).all()
    return [(r.status, r.run_id, r.resolved_run_id) for r in rows]


def oldest_import_age(h: Harness) -> timedelta:
    with h.engine.connect() as conn:
        created = conn.execute(
            select(listrak_imports.c.created_at).order_by(listrak_imports.c.id).limit(1)
        ).scalar_one()
    return utcnow() - as_utc(created)


def poll_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + POLL_DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def restart_sandbox_empty(h: Harness) -> None:
    """The sandbox restarts without its imports; the account's lists, fields and contacts are
    set up again as they were."""
    world = h.sandbox.world
    world.reset()
    world.add_list(LIST_ID, "Main list")
    world.set_faults(import_delay_seconds=QUICK_IMPORT_SECONDS)
    h.add_contacts(subscribed=EVERYONE)
    for key in KEYS:
        world.add_field(LIST_ID, key, field_id=FIELDS[key])


def recreate_state_database(h: Harness) -> None:
    """Everything dropped and migrated again: a new installation, run ids from 1."""
    with h.engine.begin() as conn:
        conn.execute(text("DROP VIEW snapshot_deltas"))  # the migrations made it, not metadata
        metadata.drop_all(conn)
        conn.execute(text("DROP TABLE alembic_version"))
    migrate.upgrade(h.engine)


def test_imports_lists_an_open_import_and_abandon_gives_it_up(harness: Harness) -> None:
    h = harness
    three_audiences(h)
    h.listrak_settings["import_timeout"] = "1s"
    h.sandbox.world.set_faults(stall_imports_named="_run1_alpha_")
    assert h.run().status == "failed"

    listed = run_cli(h, "imports")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["id", "audience", "run", "age", "listrak", "file"]
    import_id, audience, run_id, _age, listrak_status, file_name = row.split()
    assert (audience, run_id, listrak_status) == ("alpha", "1", "Processing")
    assert "_run1_alpha_" in file_name

    given_up = run_cli(h, "imports", "abandon", import_id)
    assert given_up.returncode == 0, given_up.stderr
    assert given_up.stdout.startswith(f"abandoned import {import_id} (alpha, {file_name})")
    assert run_cli(h, "imports").stdout.strip() == "no open imports"
    again = run_cli(h, "imports", "abandon", import_id)
    assert again.returncode == 2
    assert f"there is no open import {import_id}" in again.stderr

    assert h.run().status == "succeeded"
    assert_fully_on(h, "alpha", "beta", "gamma")


def test_a_refusal_about_one_contact_fails_only_its_audience(harness: Harness) -> None:
    """Listrak's contact-level 400s (skippable errors) used to end the whole run."""
    h = harness
    three_audiences(h)
    h.listrak_settings["submit_via"] = "segmentation_field_api"
    h.sandbox.world.set_faults(
        fail_next=FailNext(
            count=1,
            status=400,
            code="ERROR_NOT_SUBSCRIBED_EMAIL_ADDRESS",
            method="POST",
            path_contains="SegmentationField",
        )
    )
    outcome = h.run()
    assert outcome.status == "failed"
    assert [a.key for a in outcome.audiences if a.failed] == ["alpha"]
    alpha = outcome.audiences[0]
    assert alpha.error is not None
    assert "400 ERROR_NOT_SUBSCRIBED_EMAIL_ADDRESS" in alpha.error
    assert_fully_on(h, "beta", "gamma")
    assert resolutions(h) == []  # the refused batch was not left open

    assert h.run().status == "succeeded"
    assert_fully_on(h, "alpha", "beta", "gamma")


def test_a_planner_out_of_memory_fails_the_audiences_with_one_clear_reason(
    harness: Harness,
) -> None:
    """DuckDB refusing to plan within ``[planner] memory_limit`` is an audience's failure with
    a reason that says what to change, never a traceback or a run that stops mid-way."""
    h = harness
    three_audiences(h)
    h.extra_toml = '[planner]\nmemory_limit = "1MB"'
    result = run_cli(h, "run")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    reason = "planning ran out of memory within [planner] memory_limit = '1MB'"
    for key in KEYS:
        line = next(x for x in result.stdout.splitlines() if x.strip().startswith(f"{key}:"))
        assert "turned on 0" in line, line
        assert not confirmed_by_audience(h, key)
    assert reason in result.stdout
    history = run_cli(h, "history")
    assert "0 of 3 audiences synced" in history.stdout.splitlines()[1]

    h.extra_toml = ""
    assert run_cli(h, "run").returncode == 0
    assert_fully_on(h, *KEYS)
