"""``run --reconcile`` does not reconcile computed traits yet: with ``[[traits]]`` configured it
refuses (exit 2) instead of reconciling the audiences and leaving the traits out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.traits.test_trait_config import LTV, write


def test_run_reconcile_refuses_traits_with_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, LTV.format(field=300))
    before = sorted(p.name for p in tmp_path.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "audience_sync", "--config", str(path), "run", "--reconcile"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},  # no Listrak credentials: refused before reading them
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "does not reconcile computed traits yet" in result.stderr
    assert "[[traits]]" in result.stderr
    # refused before anything happens: no state database was created
    assert sorted(p.name for p in tmp_path.iterdir()) == before
