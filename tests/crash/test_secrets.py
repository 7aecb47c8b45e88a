"""The client secret and bearer tokens never reach logs, errors, the state database or any
command's output; emails are masked in logs; config and source values cannot inject SQL."""

from __future__ import annotations

import json
import secrets
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from audience_sync.config import Credentials
from audience_sync.errors import ListrakError
from audience_sync.listrak.client import ListrakClient
from audience_sync.pipeline import SyncJob
from audience_sync.sandbox import SandboxServer, SandboxSettings
from audience_sync.sandbox.settings import DropNextPost, FailNext, Faults
from audience_sync.state.tables import metadata
from tests.crash.helpers import run_cli
from tests.harness import CLIENT_ID, LIST_ID, Harness

SECRET = f"never-show-{secrets.token_hex(12)}"
MEMBERS = [f"private.person{i}@example.com" for i in range(12)]
UNSUBSCRIBED = "left.us@example.com"


@pytest.fixture
def secret_sandbox() -> Iterator[tuple[SandboxServer, list[str]]]:
    """A sandbox with its own secret, and every bearer token it issued."""
    # Imports outlast tokens, so every run that sends something must refresh its token while
    # it polls, however fast the machine.
    settings = SandboxSettings(
        client_secret=SECRET, faults=Faults(import_delay_seconds=1.0, token_lifetime_seconds=0.4)
    )
    with SandboxServer(settings) as server:
        server.world.add_list(LIST_ID, "Main list")
        issued: list[str] = []
        issue = server.world.issue_token

        def recording(client_id: str, client_secret: str) -> tuple[str, float]:
            token, lifetime = issue(client_id, client_secret)
            issued.append(token)
            return token, lifetime

        server.world.issue_token = recording  # type: ignore[method-assign]  # records every token
        yield server, issued


@pytest.fixture
def h(tmp_path: Path, secret_sandbox: tuple[SandboxServer, list[str]]) -> Iterator[Harness]:
    harness = Harness(
        root=tmp_path, sandbox=secret_sandbox[0], state_url=f"sqlite:///{tmp_path}/state.db"
    )
    harness.extra_toml = "[guards]\nmax_removed_fraction = 1.0"
    harness.add_contacts(subscribed=MEMBERS, unsubscribed=[UNSUBSCRIBED])
    harness.add_audience("vip", 300, [*MEMBERS[:8], UNSUBSCRIBED])
    harness.engine  # noqa: B018 - migrates the state database
    yield harness
    harness.close()


ENV = {"LISTRAK_CLIENT_ID": CLIENT_ID, "LISTRAK_CLIENT_SECRET": SECRET}


def assert_clean(text: str, tokens: list[str], where: str) -> None:
    assert SECRET not in text, f"client secret in {where}"
    for token in tokens:
        assert token not in text, f"bearer token in {where}"


def state_dump(h: Harness) -> str:
    parts: list[str] = []
    with h.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.extend(str(value) for value in row)
    return "\n".join(parts)


@pytest.mark.slow  # about 30 s: run by `make test-slow` and .ci/run
def test_secret_and_tokens_never_in_output_logs_or_state(
    h: Harness, secret_sandbox: tuple[SandboxServer, list[str]]
) -> None:
    world = secret_sandbox[0].world
    tokens = secret_sandbox[1]
    outputs: dict[str, str] = {}

    def cli(name: str, *args: str) -> int:
        result = run_cli(h, "--quiet", "--log-level", "DEBUG", *args, env=ENV)
        outputs[name] = result.stdout + result.stderr
        return result.returncode

    assert cli("db upgrade", "db", "upgrade") == 0
    assert cli("plan", "plan") == 0
    world.set_faults(
        fail_next=FailNext(2, status=429), drop_next_post=DropNextPost(1, "ListImport")
    )
    assert cli("run text", "run") == 0
    h.set_members("vip", MEMBERS[4:])
    world.set_faults(fail_next=FailNext(2, status=500, method="GET"))
    assert cli("run json", "--log-format", "json", "run") == 0
    h.set_members("vip", MEMBERS)
    world.set_faults(api_paused=True)
    assert cli("run refused", "--log-format", "json", "run") == 2  # refused credentials
    world.set_faults(api_paused=False)
    assert cli("db current", "db", "current") == 0

    assert len(tokens) >= 4, "short-lived tokens: each sending run refreshed its token"
    assert h.members_on("vip") == set(MEMBERS[4:])
    for name, text in outputs.items():
        assert_clean(text, tokens, name)
    assert_clean(state_dump(h), tokens, "the state database")

    json_lines = [
        json.loads(line) for line in outputs["run json"].splitlines() if line.startswith("{")
    ]
    assert any(line.get("message") == "import.settled" for line in json_lines)
    for name in ("run text", "run json", "run refused"):
        for email in [*MEMBERS, UNSUBSCRIBED]:
            assert email not in outputs[name], f"unmasked email in the logs of {name}"


@pytest.mark.parametrize(
    ("faults", "warm"),
    [
        ({"api_paused": True}, True),
        ({"fail_next": FailNext(50, status=500)}, True),
        ({"fail_next": FailNext(50, status=429, path_contains="OAuth2")}, False),
    ],
    ids=["refused", "server-errors", "token-throttled"],
)
def test_secret_and_tokens_never_in_exceptions(
    h: Harness,
    secret_sandbox: tuple[SandboxServer, list[str]],
    faults: dict[str, object],
    warm: bool,
) -> None:
    server, tokens = secret_sandbox
    h.listrak_settings = {"retry_attempts": 2}
    config = h.config()

    def client() -> ListrakClient:
        credentials = Credentials(client_id=CLIENT_ID, client_secret=SECRET)
        return ListrakClient.build(config.settings.listrak, credentials)

    with client() as direct:
        if warm:
            direct.get_list(LIST_ID)  # holds a bearer token from here on
        server.world.set_faults(**faults)
        with pytest.raises(ListrakError) as caught:
            direct.get_list(LIST_ID)
    texts = [str(caught.value), repr(caught.value), *traceback.format_exception(caught.value)]

    job = SyncJob(config, engine=h.engine, client_factory=client)
    try:
        outcome = job.run()
    except ListrakError as exc:
        texts += [str(exc), repr(exc), *traceback.format_exception(exc)]
    else:
        assert outcome.status == "failed"
        texts.append(str(outcome.error))
    assert_clean("\n".join(texts), tokens, "an exception")
    assert_clean(repr(config), tokens, "the config's repr")
    assert_clean(state_dump(h), tokens, "the state database")


def test_config_values_cannot_inject_sql(h: Harness) -> None:
    h.audiences = {"vip'; DROP TABLE sync_runs; --": 300}
    result = run_cli(h, "plan", env=ENV)
    assert result.returncode == 2
    assert "audiences[0].key" in result.stderr


def test_source_values_are_bound_not_spliced(h: Harness) -> None:
    hostile = ["o'brien@example.com", "o'brien'or'1'='1@example.com", "x@example.com"]
    h.add_contacts(subscribed=hostile)
    h.set_members("vip", hostile)
    result = run_cli(h, "--quiet", "run", env=ENV)
    assert result.returncode == 0, result.stderr
    assert h.members_on("vip") == set(hostile)
    assert h.confirmed() == dict.fromkeys(hostile, "on")
