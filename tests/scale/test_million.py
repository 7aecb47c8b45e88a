"""A 1,000,000-member audience plans and runs against the sandbox on both backends, with the
job process's peak memory under 1 GB (memory may be asserted; time may not)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audience_sync.sandbox import SandboxServer
from tests.harness import CLIENT_ID, CLIENT_SECRET, LIST_ID

MEMBERS = 1_000_000
UNSUBSCRIBED_EVERY = 1000  # a few skips force the per-contact results path
PEAK_LIMIT_BYTES = 1024**3


def run_job(config: Path, *args: str) -> tuple[int, int, str]:
    """Run the CLI as a child process; return (exit code, peak RSS in bytes, stderr)."""
    env = {**os.environ, "LISTRAK_CLIENT_ID": CLIENT_ID, "LISTRAK_CLIENT_SECRET": CLIENT_SECRET}
    with subprocess.Popen(
        [sys.executable, "-m", "audience_sync", "--quiet", "--config", str(config), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stderr is not None
        stderr = child.stderr.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_maxrss * 1024, stderr[-2000:]


@pytest.mark.slow
def test_one_million_members_plan_and_run(
    tmp_path: Path, sandbox: SandboxServer, database_url: str
) -> None:
    emails = (f"member{i:07d}@example.com" for i in range(MEMBERS))
    csv_path = tmp_path / "members.csv"
    with csv_path.open("w", encoding="utf-8") as out:
        out.write("email\n")
        out.writelines(f"{e}\n" for e in emails)
    world = sandbox.world
    field_id, _ = world.add_field(LIST_ID, "big_audience")
    world.upsert_contacts(
        LIST_ID,
        (
            {
                "emailAddress": f"member{i:07d}@example.com",
                "subscriptionState": "Unsubscribed"
                if i % UNSUBSCRIBED_EVERY == 0
                else "Subscribed",
            }
            for i in range(MEMBERS)
        ),
    )
    config = tmp_path / "audience-sync.toml"
    config.write_text(
        f"""[state]
url = "{database_url}"
[listrak]
api_url = "{sandbox.api_url}"
auth_url = "{sandbox.auth_url}"
poll_interval_seconds = 0.5
[[audiences]]
key = "big_audience"
list_id = {LIST_ID}
profile_field_id = {field_id}
source = {{ kind = "csv", path = "members.csv" }}
""",
        encoding="utf-8",
    )
    code, _, err = run_job(config, "db", "upgrade")
    assert code == 0, err

    code, plan_peak, err = run_job(config, "plan")
    assert code == 0, err
    assert plan_peak < PEAK_LIMIT_BYTES, f"plan peaked at {plan_peak / 2**20:.0f} MiB"

    code, run_peak, err = run_job(config, "run")
    assert code == 0, err
    assert run_peak < PEAK_LIMIT_BYTES, f"run peaked at {run_peak / 2**20:.0f} MiB"

    values = world.field_values(LIST_ID, field_id)
    expected_on = MEMBERS - MEMBERS // UNSUBSCRIBED_EVERY
    assert sum(1 for v in values.values() if v == "on") == expected_on
    assert len(values) == expected_on  # the unsubscribed were skipped, not set
