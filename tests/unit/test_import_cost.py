"""The production import path stays light: no web stack, no pandas, until a command needs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "starlette",
    "uvicorn",
    "pandas",
    "pyarrow",
    "adbc_driver_manager",
    "adbc_driver_sqlite",
    "adbc_driver_postgresql",
)

SCRIPT = """
import json, sys
from audience_sync.cli import main
try:
    main(sys.argv[1:], prog_name="audience-sync")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "loaded": sorted(sys.modules)}))
"""


def loaded_after(*args: str) -> tuple[int, set[str]]:
    """Run the CLI with ``args`` in a fresh interpreter; its exit code and imported modules."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, check=True
    )
    answer = json.loads(result.stdout.splitlines()[-1])
    return answer["code"], set(answer["loaded"])


def top_level(modules: set[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


@pytest.mark.parametrize("args", [("--help",), ("sandbox", "--help")])
def test_help_loads_no_web_stack_and_no_pandas(args: tuple[str, ...]) -> None:
    code, loaded = loaded_after(*args)
    assert code == 0
    assert "audience_sync.cli" in loaded  # the probe ran the real CLI
    assert top_level(loaded) & set(HEAVY) == set()


def test_config_loads_no_source_readers() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, audience_sync.config; print(json.dumps(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = set(json.loads(result.stdout))
    assert "audience_sync.sources.specs" in loaded
    assert top_level(loaded) & set(HEAVY) == set()
    assert "audience_sync.sources.files" not in loaded
