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


# The child reports its own high-water mark: ru_maxrss from os.wait4 would carry over the
# parent's (this test process holds a 1M-contact sandbox) because Linux keeps it across exec,
# while /proc/self/status VmHWM belongs to the new address space alone.
_REPORTING_MAIN = """
import atexit, os, sys

def report_peak():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                with open(os.environ["PEAK_RSS_FILE"], "w") as out:
                    out.write(line.split()[1])

atexit.register(report_peak)
from audience_sync.cli import main
sys.argv[0] = "audience-sync"
main()
"""


def run_job(config: Path, *args: str) -> tuple[int, int, str]:
    """Run the CLI as a child process; return (exit code, its peak RSS in bytes, stderr)."""
    peak_file = config.parent / "peak-rss-kib"
    env = {
        **os.environ,
        "LISTRAK_CLIENT_ID": CLIENT_ID,
        "LISTRAK_CLIENT_SECRET": CLIENT_SECRET,
        "PEAK_RSS_FILE": str(peak_file),
    }
    result = subprocess.run(
        [sys.executable, "-c", _REPORTING_MAIN, "--quiet", "--config", str(config), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    peak = int(peak_file.read_text()) * 1024
    return result.returncode, peak, result.stderr[-2000:]


@pytest.mark.slow
def test_one_million_members_plan_and_run(
    tmp_path: Path, listrak_account: SandboxServer, database_url: str
) -> None:
    emails = (f"member{i:07d}@example.com" for i in range(MEMBERS))
    csv_path = tmp_path / "members.csv"
    with csv_path.open("w", encoding="utf-8") as out:
        out.write("email\n")
        out.writelines(f"{e}\n" for e in emails)
    world = listrak_account.world
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
api_url = "{listrak_account.api_url}"
auth_url = "{listrak_account.auth_url}"
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
