"""The commands that do not handle computed traits yet (``verify``, ``verify --repair``,
``run --reconcile``) refuse a config with ``[[traits]]`` (exit 2) instead of leaving the
traits out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from audience_sync.config import load_config
from audience_sync.errors import TraitsNotSyncedError
from audience_sync.verify import VerifyJob
from tests.traits.test_trait_config import LTV, write

SCHEDULE = '\n[schedule]\nevery = "3h"\n'


@pytest.mark.parametrize("args", [["verify"], ["verify", "--repair"], ["run", "--reconcile"]])
def test_commands_without_traits_refuse_them_with_exit_2(tmp_path: Path, args: list[str]) -> None:
    path = write(tmp_path, LTV.format(field=300))
    path.write_text(SCHEDULE + path.read_text(), encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "audience_sync", "--config", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},  # no Listrak credentials: refused before reading them
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "computed trait" in result.stderr
    assert "does not" in result.stderr
    assert "[[traits]]" in result.stderr
    # refused before anything happens: no state database was created
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_verify_job_refuses_traits(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, LTV.format(field=300)))

    def no_client() -> object:
        raise AssertionError("never asked for")

    with pytest.raises(TraitsNotSyncedError, match=r"\(lifetime_value\)") as caught:
        VerifyJob(config, client_factory=no_client)
    assert caught.value.exit_code == 2
