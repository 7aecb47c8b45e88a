"""The analysis API over ledgers real runs left behind, opened the ways an analyst would."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine

from audience_sync import analysis, report, runlog
from audience_sync.errors import StateError
from tests.harness import Harness

KEY = "vip_customer"
FIRST = [f"member{i:02d}@example.com" for i in range(20)]
SECOND = [*FIRST[2:], "late@example.com"]  # 10% leave, under the removal guard
UNSUBSCRIBED = "gone@example.com"


def two_runs(h: Harness) -> tuple[int, int, set[str]]:
    h.add_contacts(subscribed=[*FIRST, "late@example.com"], unsubscribed=[UNSUBSCRIBED])
    h.add_audience(KEY, 200, [*FIRST, UNSUBSCRIBED])
    first = h.run()
    on_after_first = h.members_on(KEY)
    h.set_members(KEY, SECOND)
    second = h.run()
    return first.run_id, second.run_id, on_after_first


def test_membership_and_changes_match_what_listrak_and_the_state_hold(harness: Harness) -> None:
    first, second, on_after_first = two_runs(harness)
    with analysis.open(harness.state_url) as ledger:
        assert set(ledger.membership(KEY, as_of_run=first)["email"]) == on_after_first
        current = set(ledger.membership(KEY)["email"])
        assert current == harness.members_on(KEY)
        assert current == {e for e, v in harness.confirmed().items() if v == "on"}

        last = ledger.changes("last")
        assert {
            email: (action, status, None if pd.isna(reason) else reason)
            for email, action, status, reason in last[
                ["email", "action", "status", "reason"]
            ].values.tolist()
        } == harness.change_statuses(second)
        assert set(last["audience"]) == {KEY}

        skipped = ledger.skipped(first)
        assert skipped[["email", "reason"]].values.tolist() == [[UNSUBSCRIBED, "NotSubscribed"]]
        assert ledger.audience_sizes()["members"].tolist() == [len(FIRST), len(SECOND)]
        imports = ledger.imports()
        assert imports["confirmed"].tolist() == [len(FIRST), 3]
        assert imports["rows"].tolist() == [len(FIRST) + 1, 3]


def test_history_and_the_run_report_count_what_the_analysis_api_counts(harness: Harness) -> None:
    """``history``, the run report and the analysis API read one read model of the ledger:
    for the same runs they give the same counts."""
    first, second, _ = two_runs(harness)
    history = runlog.history(harness.engine, limit=10)
    columns = ["run_id", "trigger", "status", "planned", "confirmed", "skipped", "failed"]
    with analysis.open(harness.state_url) as ledger:
        runs = ledger.runs()
        counts = ledger.change_counts()
    assert [[row[c] for c in columns] for row in reversed(history)] == runs[columns].values.tolist()
    assert [row["run_id"] for row in history] == [second, first]
    for run_id in (first, second):
        (summary,) = report.summarize_run(harness.engine, run_id).audiences
        of_run = counts[(counts["run_id"] == run_id) & (counts["audience"] == summary.key)]
        by_status = of_run.groupby(["status", "action"])["contacts"].sum().to_dict()
        assert summary.turned_on == by_status.get(("confirmed", "on"), 0)
        assert summary.turned_off == by_status.get(("confirmed", "off"), 0)
        assert sum(summary.skipped.values()) == by_status.get(("skipped", "on"), 0) + (
            by_status.get(("skipped", "off"), 0)
        )
    assert summary.turned_on + summary.turned_off > 0  # the second run changed something


def test_open_takes_a_config_path_or_a_sqlite_file(sqlite_harness: Harness) -> None:
    first, _second, _ = two_runs(sqlite_harness)
    config_path = sqlite_harness.write_config()
    db_file = Path(sqlite_harness.state_url.removeprefix("sqlite:///"))
    for target in (config_path, str(db_file)):
        with analysis.open(target) as ledger:
            assert ledger.runs()["run_id"].tolist()[0] == first


def test_open_refuses_a_missing_file_or_an_unmigrated_database(tmp_path: Path) -> None:
    with pytest.raises(StateError, match=r"no state database at .*make demo"):
        analysis.open(tmp_path / "nothing.db")
    with pytest.raises(StateError, match="no state database"):
        analysis.open(f"sqlite:///{tmp_path}/nothing.db")
    assert not (tmp_path / "nothing.db").exists()

    empty = tmp_path / "empty.db"
    create_engine(f"sqlite:///{empty}").connect().close()
    with pytest.raises(StateError, match="db upgrade"):
        analysis.open(empty)
