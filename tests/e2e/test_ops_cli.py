"""The operating commands as a user runs them: exit codes, exact messages, help, logs, bars."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from audience_sync.cli import main
from audience_sync.sandbox.settings import FailNext
from audience_sync.state.lock import RunLock
from tests.harness import CLIENT_ID, CLIENT_SECRET, LIST_ID, Harness

MEMBERS = [f"ops{i:02d}@example.com" for i in range(10)]
CREDENTIALS = {"LISTRAK_CLIENT_ID": CLIENT_ID, "LISTRAK_CLIENT_SECRET": CLIENT_SECRET}


def invoke(h: Harness | None, *args: str, env: dict[str, str] | None = None) -> Result:
    prefix = ["--config", str(h.root / "audience-sync.toml")] if h is not None else []
    return CliRunner().invoke(main, [*prefix, *args], env={**CREDENTIALS, **(env or {})})


def ready(h: Harness) -> None:
    h.add_contacts(subscribed=MEMBERS)
    h.add_audience("vip", 300, MEMBERS)
    h.write_config()
    h.engine  # noqa: B018 - migrates the state database


def every_command(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*path, name))
        if isinstance(command, click.Group):
            found += every_command(command, (*path, name))
    return found


@pytest.mark.parametrize("path", every_command(main), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    assert f"Usage: main {' '.join(path)}" in result.stdout
    described = result.stdout.split("\n\n")[1].strip()
    assert len(described) > 20, f"{path} needs a description"


def test_expected_commands_exist() -> None:
    assert {"schedule", "verify", "status", "history", "show", "run"} <= set(main.commands)


# --- exit codes and exact error text ------------------------------------------------------


def test_exit_0_then_status_history_show(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    ready(h)
    result = invoke(h, "run")
    assert result.exit_code == 0, result.output
    status = invoke(h, "status")
    assert status.exit_code == 0
    assert re.search(
        r"^vip: last run 1 \(manual\) succeeded at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, audience done; "
        r"confirmed on 10, pending 0, skipped \(parked\) 0$",
        status.stdout,
        re.MULTILINE,
    )
    assert "next scheduled run: none (no schedule configured)" in status.stdout

    history = invoke(h, "history")
    assert history.exit_code == 0
    lines = history.stdout.splitlines()
    assert lines[0].split() == [
        "run", "trigger", "status", "started", "(UTC)", "took", "planned", "confirmed",
        "skipped", "failed", "error",
    ]  # fmt: skip
    assert lines[1].split()[:3] == ["1", "manual", "succeeded"]
    assert lines[1].split()[-4:] == ["10", "10", "0", "0"]

    shown = invoke(h, "show", "1", "--action", "on", "--limit", "3")
    assert shown.exit_code == 0
    assert "run 1 (manual): succeeded" in shown.stdout
    assert "ops00@example.com" in shown.stdout
    assert "... more than 3; use --limit or --csv" in shown.stdout

    exported = invoke(h, "show", "1", "--csv", "--status", "confirmed")
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [r["email"] for r in rows] == MEMBERS
    assert rows[0] == {
        "run_id": "1",
        "audience": "vip",
        "email": "ops00@example.com",
        "action": "on",
        "status": "confirmed",
        "reason": "",
    }
    none = invoke(h, "show", "1", "--action", "off")
    assert "  no changes match" in none.stdout


def test_exit_1_when_the_run_fails(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    ready(h)
    (h.root / "members" / "vip.csv").unlink()
    result = invoke(h, "run")
    assert result.exit_code == 1
    assert "run 1 (manual): failed" in result.stdout


def test_exit_2_on_usage_errors_with_exact_text(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    ready(h)
    missing = invoke(h, "show", "99")
    assert missing.exit_code == 2
    assert missing.stderr.endswith(
        "\nerror: Invalid value: there is no run 99 (see `audience-sync history`)\n"
    )
    not_a_number = invoke(h, "show", "abc")
    assert not_a_number.exit_code == 2
    assert not_a_number.stderr.endswith(
        "\nerror: Invalid value for 'RUN': 'abc' is not a valid integer.\n"
    )
    assert invoke(h, "run").exit_code == 0
    no_such = invoke(h, "show", "1", "--audience", "nope")
    assert no_such.exit_code == 2
    assert no_such.stderr == f"error: no audience 'nope' in {h.root / 'audience-sync.toml'}\n"
    no_schedule = invoke(h, "schedule")
    assert no_schedule.exit_code == 2
    assert (
        f"error: no schedule configured in {h.root / 'audience-sync.toml'}: set [schedule] "
        'every = "3h" or cron = "0 */3 * * *"'
    ) in no_schedule.stderr
    bad_cron = h.root / "bad.toml"
    bad_cron.write_text(h.config_text() + '[schedule]\ncron = "0 3 * *"\n', encoding="utf-8")
    bad = CliRunner().invoke(main, ["--config", str(bad_cron), "status"])
    assert bad.exit_code == 2
    assert bad.stderr == (
        f"error: invalid config in {bad_cron}:\n  schedule.cron: expected 5 fields (minute hour "
        "day-of-month month day-of-week), got 4 (got '0 3 * *')\n"
    )


def test_exit_2_when_two_audiences_write_one_field(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    h.audiences = {"vip": 300, "lapsed": 301, "winback": 300}
    config = h.write_config()
    for command in (["run"], ["plan"], ["status"]):
        result = invoke(h, *command)
        assert result.exit_code == 2, command
        assert result.stderr == (
            f"error: invalid config in {config}:\n  audiences: audiences 'vip' and 'winback' "
            f"both write list {LIST_ID} profile field 300; give each audience its own field\n"
        )
    assert h.import_count() == 0


def test_exit_3_on_a_guard_abort_with_exact_text(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    ready(h)
    assert invoke(h, "run").exit_code == 0
    imports = h.import_count()
    h.set_members("vip", MEMBERS[:5])
    result = invoke(h, "run")
    assert result.exit_code == 3
    assert result.stderr.splitlines()[-1] == (
        "error: run 2 aborted by a guard, nothing was sent: vip: 5 of 10 confirmed members "
        "would be removed (50.0% > max_removed_fraction 20%) (use --force to override)"
    )
    assert "run 2 (manual): aborted" in result.stdout
    assert h.import_count() == imports
    assert invoke(h, "run", "--force").exit_code == 0


def test_exit_4_when_another_run_holds_the_lock(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    ready(h)
    with RunLock(h.engine):
        for command in (["run"], ["verify"], ["verify", "--repair"]):
            result = invoke(h, *command)
            assert result.exit_code == 4, command
            assert re.fullmatch(
                r"error: another run is in progress \(run starting, started "
                r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)\n",
                result.stderr,
            )
    assert h.import_count() == 0


def test_verify_exit_codes_and_repair(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    ready(h)
    assert invoke(h, "run").exit_code == 0
    clean = invoke(h, "verify")
    assert clean.exit_code == 0
    assert "vip (list 100, field 300): no drift" in clean.stdout

    h.sandbox.world.set_field_values(LIST_ID, 300, {MEMBERS[3]: "off"})
    drifted = invoke(h, "verify")
    assert drifted.exit_code == 1
    assert "member, off or empty in Listrak: 1 (fix: on)" in drifted.stdout
    assert "drift: 1 contact(s); `verify --repair` fixes it" in drifted.stdout

    repaired = invoke(h, "verify", "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert "run 2 (repair): succeeded" in repaired.stdout
    assert h.values("vip")[MEMBERS[3]] == "on"
    assert invoke(h, "verify").exit_code == 0
    newest = invoke(h, "history").stdout.splitlines()[1]
    assert newest.split()[:3] == ["2", "repair", "succeeded"]


# --- logs and progress bars ---------------------------------------------------------------


def test_json_logs_are_json_and_leak_no_email_or_secret(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    ready(h)
    h.sandbox.world.set_faults(fail_next=FailNext(count=1, status=500, method="GET"))
    config = str(h.root / "audience-sync.toml")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "audience_sync",
            "--config",
            config,
            "--log-format",
            "json",
            "--log-level",
            "DEBUG",
            "run",
            "--full",
            "--reconcile",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **CREDENTIALS},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    events = {r["message"] for r in records}
    assert {"run.started", "audience.planned", "import.submitted", "run.finished"} <= events
    assert "readback.list_read" in events
    assert "stamina.retry_scheduled" in events, "library records are JSON too"
    assert all({"asctime", "levelname", "name"} <= r.keys() for r in records)
    for member in MEMBERS:
        assert member not in result.stderr
    assert CLIENT_SECRET not in result.stderr
    assert "Bearer " not in result.stderr


def run_in_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; returns its exit code and terminal output."""
    leader, follower = pty.openpty()
    # A terminal of 0 columns (the default here) makes tqdm draw empty bars.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "audience_sync", *args],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env={**os.environ, **env},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return process.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


def test_progress_bars_on_a_terminal_and_hidden_with_quiet(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    ready(h)
    config = ["--config", str(h.root / "audience-sync.toml"), "--log-level", "ERROR"]
    code, shown = run_in_terminal([*config, "run", "--reconcile"], CREDENTIALS)
    assert code == 0
    assert "read list 100" in shown
    assert "read vip" in shown
    assert "imports:" in shown  # one bar for every audience's imports, awaited together
    code, quiet = run_in_terminal([*config, "--quiet", "run", "--reconcile"], CREDENTIALS)
    assert code == 0
    assert "read list" not in quiet
    assert "read vip" not in quiet
    # Not a terminal (CliRunner captures stderr): no bars either.
    piped = invoke(h, "--log-level", "ERROR", "run", "--reconcile")
    assert piped.exit_code == 0
    assert piped.stderr == ""


def test_help_mentions_exit_codes_in_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for code, meaning in [
        ("0", "success"),
        ("1", "the run failed"),
        ("2", "usage or configuration error"),
        ("3", "a guard aborted the run"),
        ("4", "another run is in progress"),
    ]:
        assert f"| {code} | {meaning}" in readme
    for command in ("schedule", "verify", "status", "history", "show"):
        assert f"### `audience-sync {command}" in readme
