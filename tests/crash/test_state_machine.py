"""A Hypothesis state machine: member lists change, faults are injected, the job is killed and
run again, in any order. After every clean run Listrak holds exactly the desired membership for
subscribed contacts, the state equals what Listrak accepted, and the following run sends nothing.

Every example starts with a run killed at one of the boundaries, so resume is always exercised:
the first run has every member to send, and the faults it runs under make the boundary certain
to be reached (imports held open for ``polling``, a dropped answer for ``answer_lost``). The
examples are derandomized, so every run of the suite tests the same sequences.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import create_engine, make_url, text

from audience_sync.checkpoints import KILL_ENV, NAMES
from audience_sync.sandbox import SandboxServer
from audience_sync.sandbox.settings import DropNextPost, FailNext
from tests.crash.helpers import (
    assert_in_step,
    hold_imports,
    release_imports,
    run_cli,
    wait_for_killed_lock_holder,
)
from tests.harness import LIST_ID, Harness

SUBSCRIBED = [f"c{i:02d}@example.com" for i in range(24)]
UNSUBSCRIBED = ["gone0@example.com", "gone1@example.com"]
UNKNOWN = ["stranger@example.com"]
UNIVERSE = SUBSCRIBED + UNSUBSCRIBED + UNKNOWN
FIELDS = {"vip": 300, "lapsed": 301}
NO_FAULTS = {
    "fail_next": None,
    "drop_next_post": None,
    "max_body_bytes": None,
    "token_lifetime_seconds": 900.0,
    "import_delay_seconds": 0.05,
}

members = st.sets(st.sampled_from(UNIVERSE)).map(sorted)


def empty_state(database_url: str, root: Path) -> str:
    """A state URL with nothing in it: a new SQLite file under ``root``, or the PostgreSQL
    test database with its schema dropped (after ending sessions a killed run may have left)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{root}/state.db"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    return database_url


class CrashMachine(RuleBasedStateMachine):
    server: ClassVar[SandboxServer]
    database_url: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        world = self.server.world
        world.reset()
        world.add_list(LIST_ID, "Main list")
        world.set_faults(**NO_FAULTS)
        self.root = Path(tempfile.mkdtemp(prefix="crash-machine-"))
        self.h = Harness(
            root=self.root,
            sandbox=self.server,
            state_url=empty_state(self.database_url, self.root),
        )
        self.h.listrak_settings = {"max_import_bytes": 1001, "retry_attempts": 4}
        # Plans read the desired set from the snapshot cache once a run kept one.
        self.h.extra_toml = (
            "[guards]\nmax_removed_fraction = 1.0\nallow_empty = true"
            '\n[planner]\nsnapshot_cache = "snapshots"'
        )
        self.h.add_contacts(subscribed=SUBSCRIBED, unsubscribed=UNSUBSCRIBED)
        self.desired: dict[str, list[str]] = {}
        for key, field_id in FIELDS.items():
            self.desired[key] = SUBSCRIBED[: len(SUBSCRIBED) // 2]
            self.h.add_audience(key, field_id, self.desired[key])
        self.h.engine  # noqa: B018 - migrates the state database

    def run_killed_at(self, boundary: str) -> subprocess.CompletedProcess[str]:
        """A run told to kill itself at ``boundary``, with the fault that boundary needs; imports
        held open are released afterwards so no later run waits for them."""
        world = self.server.world
        if boundary == "polling":
            hold_imports(world)
        if boundary == "answer_lost":
            world.set_faults(drop_next_post=DropNextPost(1, path_contains="ListImport"))
        try:
            result = run_cli(self.h, "--quiet", "run", env={KILL_ENV: boundary})
        finally:
            release_imports(world)
        wait_for_killed_lock_holder(self.h)
        return result

    @initialize(boundary=st.sampled_from(NAMES))
    def first_run_killed(self, boundary: str) -> None:
        result = self.run_killed_at(boundary)
        assert result.returncode == -signal.SIGKILL, (boundary, result.returncode, result.stderr)

    # --- the world changes -----------------------------------------------------------------

    @rule(key=st.sampled_from(sorted(FIELDS)), emails=members)
    def change_members(self, key: str, emails: list[str]) -> None:
        self.desired[key] = emails
        self.h.set_members(key, emails)

    @rule(status=st.sampled_from([429, 500]), count=st.integers(1, 3))
    def error_burst(self, status: int, count: int) -> None:
        self.server.world.set_faults(fail_next=FailNext(count, status=status))

    @rule()
    def drop_import_answer(self) -> None:
        self.server.world.set_faults(drop_next_post=DropNextPost(1, path_contains="ListImport"))

    @rule()
    def short_lived_tokens(self) -> None:
        self.server.world.set_faults(token_lifetime_seconds=0.2)

    @rule()
    def size_limit(self) -> None:
        self.server.world.set_faults(max_body_bytes=1200)

    # --- the job ---------------------------------------------------------------------------

    @rule()
    def run_with_whatever_faults(self) -> None:
        outcome = self.h.run()
        assert outcome.status in ("succeeded", "failed")

    @rule(boundary=st.sampled_from(NAMES))
    def killed_run(self, boundary: str) -> None:
        result = self.run_killed_at(boundary)
        # A run with nothing to send never reaches the later boundaries and ends normally.
        assert result.returncode in (-signal.SIGKILL, 0, 1), result.stderr

    @rule()
    def clean_run(self) -> None:
        self.server.world.set_faults(**NO_FAULTS)
        outcome = self.h.run()
        assert outcome.status == "succeeded", outcome.error
        assert_in_step(self.h, self.desired)
        imports = self.h.import_count()
        following = self.h.run()
        assert following.status == "succeeded"
        assert self.h.change_count(following.run_id) == 0
        assert self.h.import_count() == imports

    def teardown(self) -> None:
        try:
            self.clean_run()
        finally:
            self.h.close()
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.mark.slow  # 35-50 s per backend: run by `make test-slow` and .ci/run
def test_any_sequence_of_changes_faults_and_kills_ends_in_step(
    sandbox_server: SandboxServer, database_url: str
) -> None:
    CrashMachine.server = sandbox_server
    CrashMachine.database_url = database_url
    run_state_machine_as_test(
        CrashMachine,
        settings=settings(
            max_examples=8,
            stateful_step_count=6,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
