"""What a user sees when something fails: one ``error:`` line, the documented exit code, and
the plan, verify, status and history output that tells the truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update
from sqlalchemy.engine import make_url

from audience_sync.cli import main
from audience_sync.cli.state import CliState
from audience_sync.demo import MARKER, check_workdir
from audience_sync.state import ledger
from audience_sync.state.statuses import RunTrigger
from audience_sync.state.tables import sync_runs
from tests.harness import CLIENT_ID, CLIENT_SECRET, LIST_ID, Harness

MEMBERS = [f"out{i:02d}@example.com" for i in range(10)]
CREDENTIALS = {"LISTRAK_CLIENT_ID": CLIENT_ID, "LISTRAK_CLIENT_SECRET": CLIENT_SECRET}
UNEXPECTED = "error: unexpected ValueError; rerun with --log-level DEBUG for details\n"


def invoke(h: Harness | None, *args: str) -> Result:
    prefix = ["--config", str(h.root / "audience-sync.toml")] if h is not None else []
    return CliRunner().invoke(main, [*prefix, *args], env=CREDENTIALS)


def ready(h: Harness, members: list[str] = MEMBERS) -> None:
    h.add_contacts(subscribed=MEMBERS)
    h.add_audience("vip", 300, members)
    h.write_config()
    h.engine  # noqa: B018 - migrates the state database


@pytest.fixture
def crashing_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug inside a command: an exception whose message holds an address."""

    def job(self: CliState, *, talks_to_listrak: bool = True) -> None:
        raise ValueError("row 7: alice@example.com has a bad value")

    monkeypatch.setattr(CliState, "job", job)


# --- one error path -----------------------------------------------------------------------


def test_unexpected_exception_is_one_line_without_its_text(
    sqlite_harness: Harness, crashing_job: None
) -> None:
    ready(sqlite_harness)
    result = invoke(sqlite_harness, "run")
    assert result.exit_code == 1
    assert result.stderr == UNEXPECTED
    assert result.stdout == ""


def test_json_mode_error_is_one_json_object(sqlite_harness: Harness, crashing_job: None) -> None:
    ready(sqlite_harness)
    result = invoke(sqlite_harness, "--log-format", "json", "run")
    assert result.exit_code == 1
    assert [json.loads(line) for line in result.stderr.splitlines()] == [
        {
            "level": "error",
            "event": "error",
            "message": "unexpected ValueError; rerun with --log-level DEBUG for details",
            "exit_code": 1,
        }
    ]


def test_debug_shows_the_traceback_redacted(sqlite_harness: Harness, crashing_job: None) -> None:
    ready(sqlite_harness)
    result = invoke(sqlite_harness, "--log-level", "DEBUG", "run")
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "a***@example.com" in result.stderr
    assert "alice@example.com" not in result.stderr
    assert result.stderr.endswith("\n" + UNEXPECTED)


def test_ctrl_c_is_one_line_not_aborted(
    sqlite_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready(sqlite_harness)

    def job(self: CliState, *, talks_to_listrak: bool = True) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(CliState, "job", job)
    result = invoke(sqlite_harness, "run")
    assert result.exit_code == 130
    assert result.stderr == "error: interrupted\n"


def test_an_escaping_eof_is_an_error_line_not_aborted(
    sqlite_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready(sqlite_harness)

    def job(self: CliState, *, talks_to_listrak: bool = True) -> None:
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    monkeypatch.setattr(CliState, "job", job)
    for log_format, expected in (
        ("text", "error: unexpected EOFError; rerun with --log-level DEBUG for details\n"),
        (
            "json",
            '{"level": "error", "event": "error", "message": "unexpected EOFError; rerun with '
            '--log-level DEBUG for details", "exit_code": 1}\n',
        ),
    ):
        result = invoke(sqlite_harness, "--log-format", log_format, "run")
        assert result.exit_code == 1
        assert result.stderr == expected


def test_json_mode_usage_error_is_one_json_object(sqlite_harness: Harness) -> None:
    ready(sqlite_harness)
    result = invoke(sqlite_harness, "--log-format", "json", "show", "abc")
    assert result.exit_code == 2
    assert json.loads(result.stderr) == {
        "level": "error",
        "event": "error",
        "message": "Invalid value for 'RUN': 'abc' is not a valid integer.",
        "exit_code": 2,
    }


def test_state_database_in_a_missing_directory_is_named(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    ready(h)
    h.state_url = f"sqlite:///{h.root}/nowhere/state.db"
    h.write_config()
    result = invoke(h, "db", "upgrade")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: state database {h.state_url}: directory {h.root}/nowhere does not exist\n"
    )


def test_status_on_a_missing_sqlite_file_says_so_and_creates_nothing(
    sqlite_harness: Harness,
) -> None:
    h = sqlite_harness
    h.state_url = f"sqlite:///{h.root}/absent.db"
    h.add_audience("vip", 300, MEMBERS)
    h.write_config()
    for command in ("status", "history"):
        result = invoke(h, command)
        assert result.exit_code == 2
        assert result.stderr == (
            f"error: state database {h.state_url}: no such file "
            "(`audience-sync db upgrade` creates it; check [state] url)\n"
        )
    assert not (h.root / "absent.db").exists()


# --- plan -----------------------------------------------------------------------------------


def plan_lines(result: Result) -> list[str]:
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("plan (nothing was sent"))
    return lines[start + 1 :]


def test_plan_splits_on_and_off_and_says_the_guard_is_ok(harness: Harness) -> None:
    ready(harness)
    result = invoke(harness, "plan")
    assert result.exit_code == 0, result.output
    assert plan_lines(result) == ["  vip: would turn on 10, turn off 0; guard: ok"]


def test_plan_exits_3_when_a_guard_would_abort(harness: Harness) -> None:
    ready(harness)
    assert invoke(harness, "run").exit_code == 0
    harness.set_members("vip", MEMBERS[:2])
    result = invoke(harness, "plan")
    assert result.exit_code == 3, result.output
    assert plan_lines(result) == [
        "  vip: would turn on 0, turn off 8; guard: would abort: 8 of 10 confirmed members "
        "would be removed (80.0% > max_removed_fraction 20%)"
    ]
    assert result.stderr.splitlines()[-1] == "error: a guard would abort the run: vip"
    assert harness.members_on("vip") == set(MEMBERS), "plan sent nothing"


def test_plan_exits_1_when_a_source_failed(harness: Harness) -> None:
    ready(harness)
    harness.sources["gone"] = '{ kind = "csv", path = "members/gone.csv" }'
    harness.audiences["gone"] = 301
    harness.write_config()
    result = invoke(harness, "plan")
    assert result.exit_code == 1, result.output
    assert plan_lines(result) == [
        "  vip: would turn on 10, turn off 0; guard: ok",
        "  gone: could not plan: audience 'gone': no file matches 'members/gone.csv'",
    ]
    assert result.stderr.splitlines()[-1] == "error: could not plan: gone"


# --- verify ---------------------------------------------------------------------------------


def test_verify_exits_1_naming_an_audience_it_could_not_compare(harness: Harness) -> None:
    ready(harness)
    result = invoke(harness, "verify")
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        "vip: no snapshot yet (run a sync first); not compared",
        "not compared: vip",
    ]
    assert result.stderr.splitlines()[-1] == "error: verify: could not compare vip"


def test_verify_exits_0_only_when_everything_was_compared(harness: Harness) -> None:
    ready(harness)
    assert invoke(harness, "run").exit_code == 0
    result = invoke(harness, "verify")
    assert result.exit_code == 0, result.output
    assert "not compared" not in result.stdout


# --- status and history of a run whose process died --------------------------------------


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_status_and_history_show_a_dead_run_as_interrupted(harness: Harness) -> None:
    ready(harness)
    assert invoke(harness, "run").exit_code == 0
    with harness.engine.begin() as conn:
        run_id = ledger.create_run(conn, trigger=RunTrigger.MANUAL)
        conn.execute(update(sync_runs).where(sync_runs.c.id == run_id).values(pid=dead_pid()))
        audience_id = ledger.upsert_audience(
            conn, key="vip", list_id=LIST_ID, field_id=300, source="csv"
        )
        ledger.start_run_audience(conn, run_id, audience_id, source="csv")
    status = invoke(harness, "status")
    assert status.exit_code == 0, status.output
    vip = next(line for line in status.stdout.splitlines() if line.startswith("vip:"))
    assert vip.startswith(f"vip: last run {run_id} (manual) interrupted (process gone) at ")
    history = invoke(harness, "history")
    newest = history.stdout.splitlines()[1]
    assert newest.split()[:3] == [str(run_id), "manual", "interrupted"]
    assert newest.endswith("process gone; the next run resolves it")


def test_a_live_run_still_shows_as_running(harness: Harness) -> None:
    ready(harness)
    with harness.engine.begin() as conn:
        run_id = ledger.create_run(conn, trigger=RunTrigger.MANUAL)  # this test's process: alive
    history = invoke(harness, "history")
    assert history.stdout.splitlines()[1].split()[:3] == [str(run_id), "manual", "running"]


# --- demo workdir ----------------------------------------------------------------------------


def test_demo_refuses_a_directory_it_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "audience-sync.toml").write_text("# production\n", encoding="utf-8")
    (tmp_path / "members").mkdir()
    result = invoke(None, "demo", "--workdir", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: demo workdir {tmp_path} is not empty and was not created by the demo; choose "
        "another --workdir, or pass --force to let the demo replace its audience-sync.toml, "
        "audience-sync.db* and members/\n"
    )
    assert (tmp_path / "audience-sync.toml").read_text(encoding="utf-8") == "# production\n"
    assert (tmp_path / "members").is_dir()


def test_demo_reuses_its_own_directory_and_accepts_force(tmp_path: Path) -> None:
    check_workdir(tmp_path / "new", force=False)  # missing: fine
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / MARKER).write_text("", encoding="utf-8")
    (ours / "audience-sync.db").write_bytes(b"")
    check_workdir(ours, force=False)
    legacy = tmp_path / "legacy"  # made by a demo from before the marker
    legacy.mkdir()
    (legacy / "audience-sync.toml").write_text(
        "# Written by `audience-sync demo`: a loopback sandbox stands in for Listrak.\n",
        encoding="utf-8",
    )
    check_workdir(legacy, force=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "audience-sync.toml").write_text("# production\n", encoding="utf-8")
    check_workdir(foreign, force=True)


# --- Listrak's reason -------------------------------------------------------------------------


def test_refused_import_shows_listraks_message(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    h.add_contacts(subscribed=MEMBERS)
    h.audiences["ghost"] = 999  # no such profile field on the list: Listrak refuses the import
    h.set_members("ghost", MEMBERS)
    h.write_config()
    h.engine  # noqa: B018 - migrates the state database
    result = invoke(h, "run")
    assert result.exit_code == 1
    refused = (
        "Listrak answered 400 ERROR_INVALID_PARAMETER to POST /email/v1/List/100/ListImport: "
        "fileMappings: segmentationFieldId 999 is not a profile field of this list."
    )
    assert f"      error: {refused}" in result.stdout.splitlines()
    assert result.stderr.splitlines()[-1] == (
        f"error: run 1 failed: 0 of 1 audiences synced; not synced: ghost: {refused}"
    )


def test_unreachable_postgresql_is_one_line_naming_it(
    sqlite_harness: Harness, pg_database_url: str
) -> None:
    h = sqlite_harness
    h.add_audience("vip", 300, MEMBERS)
    h.state_url = make_url(pg_database_url).set(port=1).render_as_string(hide_password=False)
    h.write_config()
    result = invoke(h, "status")
    assert result.exit_code == 1
    assert result.stderr == f"error: state database {h.state_url}: connection refused\n"


def test_history_and_show_redact_an_error_stored_before_redaction(harness: Harness) -> None:
    ready(harness)
    assert invoke(harness, "run").exit_code == 0
    with harness.engine.begin() as conn:  # as an older version stored it
        conn.execute(
            update(sync_runs).values(
                error="(sqlite3.OperationalError) database is locked\n"
                "[SQL: UPDATE run_changes SET reason=?]\n[parameters: ('dan@example.com',)]"
            )
        )
    history = invoke(harness, "history")
    assert len(history.stdout.splitlines()) == 2, "one header, one run: the layout holds"
    assert history.stdout.splitlines()[1].endswith(
        "  (sqlite3.OperationalError) database is locked [SQL not shown]"
    )
    show = invoke(harness, "show", "1")
    assert show.stdout.splitlines()[1] == (
        "  error: (sqlite3.OperationalError) database is locked [SQL not shown]"
    )
