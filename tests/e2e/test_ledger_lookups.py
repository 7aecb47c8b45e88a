"""The ledger's changes are reached through its indexes, never by reading the whole ledger: it
grows by every change of every run, so a statement that scans it gets slower with each run.
Checked with SQLite's query plans of every statement a sync (and one contact's history) runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from audience_sync.state import ledger_queries
from tests.harness import Harness

SUBSCRIBED = [f"member{i:03d}@example.com" for i in range(30)]
UNSUBSCRIBED = "gone@example.com"


@contextmanager
def ledger_scans(engine: Engine) -> Iterator[list[str]]:
    """The statements run on ``engine`` meanwhile whose plan reads all of ``run_changes``."""
    scans: list[str] = []

    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "run_changes" not in statement or not isinstance(parameters, (tuple, list)):
            return
        if statement.lstrip().upper().startswith(("EXPLAIN", "PRAGMA")):
            return
        plan = conn.connection.driver_connection.execute(
            f"EXPLAIN QUERY PLAN {statement}", parameters
        ).fetchall()
        for detail in (row[3] for row in plan):
            if detail.startswith("SCAN run_changes"):
                scans.append(f"{detail}: {' '.join(statement.split())[:200]}")

    event.listen(engine, "before_cursor_execute", explain)
    try:
        yield scans
    finally:
        event.remove(engine, "before_cursor_execute", explain)


def test_no_statement_of_a_sync_or_a_contact_lookup_scans_the_ledger(
    sqlite_harness: Harness,
) -> None:
    h = sqlite_harness
    h.add_contacts(subscribed=SUBSCRIBED, unsubscribed=[UNSUBSCRIBED])
    h.add_audience("shoppers", 200, [*SUBSCRIBED, UNSUBSCRIBED])
    with ledger_scans(h.engine) as scans:
        first = h.run()  # the unsubscribed contact is skipped and parked
        h.set_members("shoppers", SUBSCRIBED[5:])  # five leave, the parked one too
        second = h.run()
        with h.engine.connect() as conn:
            history = conn.execute(
                ledger_queries.contact_history(email=SUBSCRIBED[0], audience=None)
            ).all()
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert [(row.run_id, row.action, row.status) for row in history] == [
        (first.run_id, "on", "confirmed"),
        (second.run_id, "off", "confirmed"),
    ]
    assert scans == []
