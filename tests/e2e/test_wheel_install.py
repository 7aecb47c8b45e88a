"""A wheel installed into a fresh virtualenv migrates the state database and syncs.

The wheel is built from a copy of the sources (so the work tree gets no build/ folder) and
installed without dependencies into a venv of its own; the dependencies come from this test's
environment through a ``.pth`` line placed after the venv's own site-packages, so the
installed wheel, not the work tree, is what ``import audience_sync`` finds there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from audience_sync.state import migrate
from tests.harness import CLIENT_ID, CLIENT_SECRET, Harness

REPO = Path(__file__).resolve().parents[2]
MEMBERS = [f"wheel{i}@example.com" for i in range(4)]

pytestmark = pytest.mark.slow  # builds and installs a wheel: about 40 s on two cores


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={k: v for k, v in (env or os.environ).items() if k != "PYTHONPATH"},
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{args[:3]} exited {result.returncode}:\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh venv holding only the built wheel."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("audience_sync", "migrations"):
        shutil.copytree(REPO / folder, source / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    wheelhouse = root / "wheelhouse"
    _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheelhouse, source, cwd=root
    )
    (wheel,) = wheelhouse.glob("audience_sync-*.whl")

    venv = root / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root)
    python = venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python)
    _run(*pip, "install", "--no-deps", "--no-index", "-q", wheel, cwd=root)
    site = Path(
        _run(
            python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=root
        ).strip()
    )
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")

    where = _run(python, "-c", "import audience_sync; print(audience_sync.__file__)", cwd=root)
    assert Path(where.strip()).is_relative_to(venv), where
    return venv / "bin"


def test_the_installed_wheel_upgrades_the_database_and_syncs(
    installed: Path, harness: Harness
) -> None:
    harness.add_contacts(subscribed=MEMBERS)
    harness.add_audience("vip", 300, MEMBERS)
    config = harness.write_config()
    cli = installed / "audience-sync"
    env = {**os.environ, "LISTRAK_CLIENT_ID": CLIENT_ID, "LISTRAK_CLIENT_SECRET": CLIENT_SECRET}

    _run(cli, "--config", config, "db", "upgrade", cwd=harness.root)
    current = _run(cli, "--config", config, "db", "current", cwd=harness.root)
    assert migrate.head_revision() in current
    output = _run(cli, "--config", config, "--quiet", "run", cwd=harness.root, env=env)

    assert "vip: members 4, turned on 4" in output
    assert harness.members_on("vip") == set(MEMBERS)


def test_the_installed_wheel_carries_the_published_listrak_document(installed: Path) -> None:
    probe = (
        "from audience_sync.sandbox.contract import body_validator, document\n"
        "body_validator('/List/{listId}/ListImport', 'POST')\n"
        "print(document()['swagger'])\n"
    )
    assert _run(installed / "python", "-c", probe, cwd=installed).strip() == "2.0"
