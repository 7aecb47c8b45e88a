"""Every notebook in notebooks/ runs top to bottom against a freshly made demo database."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import install as install_kernelspec
from nbclient import NotebookClient

from audience_sync.analysis import DB_ENV_VAR, Ledger
from audience_sync.demo import run_demo

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_SECONDS = 120


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_demo(tmp_path_factory.mktemp("demo"), echo=lambda _line: None)


@pytest.fixture(scope="session")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A ``python3`` kernel spec that runs this interpreter, whatever else is installed."""
    prefix = tmp_path_factory.mktemp("jupyter")
    install_kernelspec(kernel_name="python3", prefix=str(prefix))
    return str(prefix / "share" / "jupyter")


@pytest.fixture
def kernel_env(jupyter_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_PATH", jupyter_path)
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.delenv("CONTACT_EMAIL", raising=False)


def execute(path: Path, cwd: Path) -> nbformat.NotebookNode:
    notebook: nbformat.NotebookNode = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_SECONDS,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    return notebook


def test_there_are_the_three_notebooks() -> None:
    assert {p.name for p in NOTEBOOKS} == {
        "inspect_last_run.ipynb",
        "audience_trends.ipynb",
        "contact_history.ipynb",
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_against_the_database_the_env_var_names(
    path: Path, demo_db: Path, kernel_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DB_ENV_VAR, str(demo_db))
    executed = execute(path, cwd=NOTEBOOK_DIR)
    ledger_repr = executed.cells[1].outputs[0]["data"]["text/plain"]
    assert str(demo_db) in ledger_repr
    assert all(c.execution_count for c in executed.cells if c.cell_type == "code")


def test_notebook_finds_the_demo_database_by_default(
    tmp_path: Path, demo_db: Path, kernel_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Laid out like the repository: notebooks/ beside the demo/ that `make demo` leaves."""
    monkeypatch.delenv(DB_ENV_VAR, raising=False)
    (tmp_path / "demo").mkdir()
    shutil.copy(demo_db, tmp_path / "demo" / "audience-sync.db")
    (tmp_path / "notebooks").mkdir()
    notebook = tmp_path / "notebooks" / "inspect_last_run.ipynb"
    shutil.copy(NOTEBOOK_DIR / notebook.name, notebook)
    executed = execute(notebook, cwd=notebook.parent)
    ledger_repr = executed.cells[1].outputs[0]["data"]["text/plain"]
    assert str((tmp_path / "demo" / "audience-sync.db").resolve()) in ledger_repr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs_and_tells_a_story(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code
    assert all(c.outputs == [] and c.execution_count is None for c in code), (
        f"{path.name} has outputs; clear them before committing"
    )
    assert sum(c.cell_type == "markdown" for c in notebook.cells) >= 3


def test_readme_example_shows_the_last_runs_diff(
    tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (NOTEBOOK_DIR.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Analysing runs in notebooks", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    *statements, last_line = snippet.strip().splitlines()
    assert len([line for line in statements if line.strip()]) <= 2
    (tmp_path / "demo").mkdir()
    shutil.copy(demo_db, tmp_path / "demo" / "audience-sync.db")
    monkeypatch.chdir(tmp_path)

    namespace: dict[str, object] = {}
    exec("\n".join(statements), namespace)  # noqa: S102 - the README's own example
    diff = eval(last_line.split("#", 1)[0], namespace)  # noqa: S307
    ledger = namespace["ledger"]
    assert isinstance(ledger, Ledger)
    ledger.close()

    assert set(diff["run_id"]) == {2}
    assert {"audience", "email", "action", "status", "reason"} <= set(diff.columns)
    assert set(diff["status"]) == {"confirmed", "skipped"}
