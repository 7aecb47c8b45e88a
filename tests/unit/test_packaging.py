"""The wheel lists its packages explicitly (migrations are mapped in from the top level), so a
new subpackage must be added to pyproject.toml; this catches a missing one without a build."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_for_the_wheel() -> None:
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(settings["tool"]["setuptools"]["packages"])
    mapped = set(settings["tool"]["setuptools"]["package-dir"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "audience_sync").rglob("__init__.py")
    }
    assert found | mapped == listed
