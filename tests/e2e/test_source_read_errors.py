"""A source that cannot be read fails only its audience; the others sync in the same run."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from sqlalchemy import select

from audience_sync.state.tables import audiences, run_audiences
from tests.harness import CLIENT_ID, CLIENT_SECRET, Harness

GOOD = [f"good{i}@example.com" for i in range(20)]
BAD = [f"bad{i}@example.com" for i in range(3000)]
CSV_GZ = gzip.compress(("email\n" + "".join(f"{e}\n" for e in BAD)).encode())


def truncated(h: Harness) -> str:
    (h.root / "exports").mkdir(exist_ok=True)
    (h.root / "exports" / "bad.csv.gz").write_bytes(CSV_GZ[: len(CSV_GZ) // 2])
    return "exports/bad.csv.gz"


def corrupt(h: Harness) -> str:
    data = bytearray(CSV_GZ)
    data[10] = 0b111  # the first deflate block claims the reserved type 3
    (h.root / "exports").mkdir(exist_ok=True)
    (h.root / "exports" / "bad.csv.gz").write_bytes(bytes(data))
    return "exports/bad.csv.gz"


BREAKERS: dict[str, tuple[Callable[[Harness], str], str]] = {
    "truncated": (truncated, "the file ends early (truncated, or still being written)"),
    "corrupt": (corrupt, "the gzip data is corrupt"),
}


def audience_rows(h: Harness, run_id: int) -> dict[str, tuple[str, str | None]]:
    with h.engine.connect() as conn:
        rows = conn.execute(
            select(audiences.c.key, run_audiences.c.status, run_audiences.c.error)
            .join(audiences, audiences.c.id == run_audiences.c.audience_id)
            .where(run_audiences.c.run_id == run_id)
        )
        return {r.key: (r.status, r.error) for r in rows}


def two_audiences(h: Harness, breaker: Callable[[Harness], str]) -> None:
    h.add_contacts(subscribed=GOOD + BAD[:10])
    h.add_audience("good", 300, GOOD)
    h.add_audience("bad", 301, [])
    h.sources["bad"] = f'{{ kind = "csv", path = "{breaker(h)}" }}'


@pytest.mark.parametrize("kind", list(BREAKERS))
def test_an_unreadable_gzip_export_fails_only_its_audience_with_the_file_named(
    harness: Harness, kind: str
) -> None:
    h = harness
    breaker, cause = BREAKERS[kind]
    two_audiences(h, breaker)
    outcome = h.run()
    rows = audience_rows(h, outcome.run_id)
    assert rows["good"] == ("done", None)
    assert h.members_on("good") == set(GOOD)
    assert rows["bad"] == ("failed", f"audience 'bad': cannot read exports/bad.csv.gz: {cause}")
    assert h.members_on("bad") == set()


def test_the_cli_prints_the_failed_file_and_no_traceback(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    two_audiences(h, truncated)
    config = str(h.write_config())
    env = {**os.environ, "LISTRAK_CLIENT_ID": CLIENT_ID, "LISTRAK_CLIENT_SECRET": CLIENT_SECRET}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "audience_sync", "--config", config, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    assert cli("db", "upgrade").returncode == 0
    result = cli("--quiet", "run")
    output = result.stdout + result.stderr
    assert h.members_on("good") == set(GOOD)
    assert "cannot read exports/bad.csv.gz: the file ends early" in output
    assert "Traceback" not in output
    assert "Aborted!" not in output
    assert "bad1@example.com" not in output
    assert result.returncode == 1
