"""A Hypothesis state machine: member lists change, faults are injected, the job is killed and
run again, in any order. After every clean run Listrak holds exactly the desired membership for
subscribed contacts, the state equals what Listrak accepted, and the following run sends nothing.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from pathlib import Path
from typing import ClassVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from audience_sync.checkpoints import KILL_ENV, NAMES
from audience_sync.sandbox import SandboxServer
from audience_sync.sandbox.settings import DropNextPost, FailNext
from tests.crash.helpers import assert_in_step, run_cli
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


class CrashMachine(RuleBasedStateMachine):
    server: ClassVar[SandboxServer]
    kills: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        world = self.server.world
        world.reset()
        world.add_list(LIST_ID, "Main list")
        world.set_faults(**NO_FAULTS)
        self.root = Path(tempfile.mkdtemp(prefix="crash-machine-"))
        self.h = Harness(
            root=self.root, sandbox=self.server, state_url=f"sqlite:///{self.root}/state.db"
        )
        self.h.listrak_settings = {"max_import_bytes": 1001, "retry_attempts": 4}
        self.h.extra_toml = "[guards]\nmax_removed_fraction = 1.0\nallow_empty = true"
        self.h.add_contacts(subscribed=SUBSCRIBED, unsubscribed=UNSUBSCRIBED)
        self.desired: dict[str, list[str]] = {}
        for key, field_id in FIELDS.items():
            self.desired[key] = SUBSCRIBED[: len(SUBSCRIBED) // 2]
            self.h.add_audience(key, field_id, self.desired[key])

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
        self.server.world.set_faults(import_delay_seconds=0.5)
        result = run_cli(self.h, "--quiet", "run", env={KILL_ENV: boundary})
        self.server.world.set_faults(import_delay_seconds=0.05)
        if result.returncode < 0:
            CrashMachine.kills += 1
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


def test_any_sequence_of_changes_faults_and_kills_ends_in_step(
    sandbox_server: SandboxServer,
) -> None:
    CrashMachine.server = sandbox_server
    CrashMachine.kills = 0
    run_state_machine_as_test(
        CrashMachine,
        settings=settings(
            max_examples=12,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    assert CrashMachine.kills > 0, "no run was killed: the machine did not test resume"
