"""The run's and an audience's changes counted from what the run settled (the settling
statements' row counts) instead of reading every change's status: the same counts as the scan,
and the scan whenever the tally does not account for every change."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from audience_sync.state import changes, ledger
from audience_sync.state.statuses import ChangeStatus, RunStatus, RunTrigger
from audience_sync.state.tables import run_changes, sync_runs
from tests.state.settling import settle_run

VOCABULARY = changes.ResultVocabulary(accepted=["Updated"], skipped=["NotSubscribed"])


def planned_run(engine: Engine, emails_by_audience: dict[str, list[str]]) -> tuple[int, list[int]]:
    with engine.begin() as conn:
        run_id = ledger.create_run(conn, trigger=RunTrigger.MANUAL)
        audience_ids = []
        for key, emails in emails_by_audience.items():
            audience_id = ledger.upsert_audience(conn, key=key, list_id=1, field_id=2, source="t")
            ledger.start_run_audience(conn, run_id, audience_id, source="t")
            conn.execute(
                insert(run_changes),
                [
                    {"run_id": run_id, "audience_id": audience_id, "email": email}
                    | {"action": "on", "status": "planned"}
                    for email in emails
                ],
            )
            audience_ids.append(audience_id)
    return run_id, audience_ids


def recorded(engine: Engine, run_id: int) -> tuple[int, int, int, int]:
    with engine.connect() as conn:
        row = conn.execute(
            select(
                sync_runs.c.planned_count,
                sync_runs.c.confirmed_count,
                sync_runs.c.skipped_count,
                sync_runs.c.failed_count,
            ).where(sync_runs.c.id == run_id)
        ).one()
    return (int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def scanned(engine: Engine, run_id: int) -> tuple[int, int, int, int]:
    with engine.connect() as conn:
        counts = changes.count_by_status(conn, run_id=run_id)
    return (
        sum(counts.values()),
        counts.get(ChangeStatus.CONFIRMED, 0),
        counts.get(ChangeStatus.SKIPPED, 0),
        counts.get(ChangeStatus.FAILED, 0),
    )


def no_scan(*args: object, **kwargs: object) -> dict[ChangeStatus, int]:
    raise AssertionError("the statuses were read although the tally accounts for every change")


def test_a_run_all_settled_records_its_counts_from_the_tally(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, (vip, news) = planned_run(
        engine, {"vip": ["a@x.com", "b@x.com", "c@x.com"], "news": ["d@x.com", "e@x.com"]}
    )
    tally = changes.ResolvedTally()
    outcome = settle_run(
        engine, run_id=run_id, audience_id=vip, vocabulary=VOCABULARY, results=None
    )
    tally.add(vip, outcome.settled)
    outcome = settle_run(
        engine,
        run_id=run_id,
        audience_id=news,
        vocabulary=VOCABULARY,
        results=[("d@x.com", "Updated"), ("e@x.com", "NotSubscribed")],
        file_name="news.csv",
    )
    tally.add(news, outcome.settled)
    expected = scanned(engine, run_id)
    assert expected == (5, 4, 1, 0)

    monkeypatch.setattr(changes, "count_by_status", no_scan)
    with engine.begin() as conn:
        assert changes.unresolved(conn, run_id, vip, tally) == {}
        assert changes.unresolved(conn, run_id, news, tally) == {}
        ledger.finish_run(conn, run_id, status=RunStatus.SUCCEEDED, tally=tally)
    assert recorded(engine, run_id) == expected


def test_a_run_with_unresolved_changes_reads_them_from_the_table(engine: Engine) -> None:
    run_id, (vip, news) = planned_run(
        engine, {"vip": ["a@x.com", "b@x.com", "c@x.com"], "news": ["d@x.com"]}
    )
    tally = changes.ResolvedTally()
    outcome = settle_run(
        engine,
        run_id=run_id,
        audience_id=vip,
        vocabulary=VOCABULARY,
        results=[("a@x.com", "Updated"), ("b@x.com", "Mystery")],
    )
    tally.add(vip, outcome.settled)  # news never sent: still planned
    with engine.begin() as conn:
        assert changes.unresolved(conn, run_id, vip, tally) == {ChangeStatus.FAILED: 2}
        assert changes.unresolved(conn, run_id, news, tally) == {ChangeStatus.PLANNED: 1}
        ledger.finish_run(conn, run_id, status=RunStatus.FAILED, tally=tally)
    assert recorded(engine, run_id) == scanned(engine, run_id) == (4, 1, 0, 2)


def test_a_tally_short_of_the_changes_still_counts_them_all(engine: Engine) -> None:
    """Changes resolved outside the tally (here: settled without adding to it) are counted
    from the table, never reported unresolved."""
    run_id, (vip,) = planned_run(engine, {"vip": ["a@x.com", "b@x.com"]})
    settle_run(engine, run_id=run_id, audience_id=vip, vocabulary=VOCABULARY, results=None)
    tally = changes.ResolvedTally()
    with engine.begin() as conn:
        assert changes.unresolved(conn, run_id, vip, tally) == {}
        ledger.finish_run(conn, run_id, status=RunStatus.SUCCEEDED, tally=tally)
    assert recorded(engine, run_id) == (2, 2, 0, 0)
