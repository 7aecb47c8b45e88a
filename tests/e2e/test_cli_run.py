"""The console script against a server at the configured URLs, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.harness import CLIENT_ID, CLIENT_SECRET, Harness

MEMBERS = [f"cli{i}@example.com" for i in range(5)]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audience_sync", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


CREDENTIALS = {"LISTRAK_CLIENT_ID": CLIENT_ID, "LISTRAK_CLIENT_SECRET": CLIENT_SECRET}


def test_db_upgrade_then_run_syncs_and_exits_zero(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    h.add_contacts(subscribed=MEMBERS)
    h.add_audience("vip", 300, MEMBERS)
    config = str(h.write_config())

    upgraded = cli("--config", config, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    result = cli("--config", config, "--quiet", "run", env=CREDENTIALS)
    assert result.returncode == 0, result.stderr
    assert "vip: members 5, turned on 5" in result.stdout
    assert h.members_on("vip") == set(MEMBERS)
    assert CLIENT_SECRET not in result.stdout + result.stderr


def test_run_against_out_of_date_schema_says_upgrade(
    tmp_path: Path, sqlite_harness: Harness
) -> None:
    sqlite_harness.add_audience("vip", 300, MEMBERS)
    result = cli("--config", str(sqlite_harness.write_config()), "run", env=CREDENTIALS)
    assert result.returncode == 1
    assert "run `audience-sync db upgrade`" in result.stderr


def test_missing_credentials_exit_2(sqlite_harness: Harness) -> None:
    sqlite_harness.add_contacts(subscribed=MEMBERS)
    sqlite_harness.add_audience("vip", 300, MEMBERS)
    config = str(sqlite_harness.write_config())
    assert cli("--config", config, "db", "upgrade").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTRAK_")}
    result = subprocess.run(
        [sys.executable, "-m", "audience_sync", "--config", config, "run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "LISTRAK_CLIENT_ID and LISTRAK_CLIENT_SECRET must be set" in result.stderr


def test_invalid_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[audiences]]\nkey = "vip"\nlist_id = "x"\n', encoding="utf-8")
    result = cli("--config", str(path), "plan")
    assert result.returncode == 2
    assert "audiences[0].list_id: Input should be a valid integer" in result.stderr
    assert "audiences[0].source: required key is missing" in result.stderr


def test_wrong_secret_exits_2_with_the_credentials_hint_and_without_echoing_it(
    sqlite_harness: Harness,
) -> None:
    h = sqlite_harness
    h.add_contacts(subscribed=MEMBERS)
    h.add_audience("vip", 300, MEMBERS)
    config = str(h.write_config())
    assert cli("--config", config, "db", "upgrade").returncode == 0
    wrong = "definitely-wrong-secret-value"
    result = cli(
        "--config",
        config,
        "run",
        env={"LISTRAK_CLIENT_ID": CLIENT_ID, "LISTRAK_CLIENT_SECRET": wrong},
    )
    assert result.returncode == 2
    assert result.stderr.endswith(
        "\nerror: Listrak refused the client credentials (401 ERROR_INVALID_CREDENTIALS); check "
        "LISTRAK_CLIENT_ID and LISTRAK_CLIENT_SECRET in the environment, and that the "
        "integration's API access is not paused\n"
    )
    assert "Traceback" not in result.stderr
    assert wrong not in result.stdout + result.stderr
    assert h.members_on("vip") == set()


def test_second_run_while_one_is_active_exits_4_naming_it(sqlite_harness: Harness) -> None:
    from audience_sync.state import ledger
    from audience_sync.state.lock import RunLock
    from audience_sync.state.statuses import RunTrigger

    h = sqlite_harness
    h.add_contacts(subscribed=MEMBERS)
    h.add_audience("vip", 300, MEMBERS)
    config = str(h.write_config())
    with h.engine.begin() as conn:
        run_id = ledger.create_run(conn, trigger=RunTrigger.SCHEDULED)
    with RunLock(h.engine) as lock:
        lock.attach_run(run_id)
        result = cli("--config", config, "run", env=CREDENTIALS)
    assert result.returncode == 4
    assert f"error: another run is in progress (run {run_id}, started " in result.stderr
    assert h.members_on("vip") == set()
