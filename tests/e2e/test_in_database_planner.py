"""End to end on PostgreSQL: an audience planned inside the state database (``planner =
"in_database"``) next to a twin planned by the embedded planner from the same source query.

The twins read the same rows (messy addresses, repeats, blanks, a contact Listrak skips and so
parks), so every run must write the same ledger rows, counts and fingerprint for both, and
leave the same confirmed state. The in-database planner must not fetch member rows: every
row-returning statement the job sends through its engine is counted."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text

from audience_sync.normalize import normalize_email
from audience_sync.sandbox import SandboxServer
from audience_sync.state.tables import (
    run_audiences,
    run_changes,
)
from tests.harness import LIST_ID, Harness
from tests.twins import HANDFUL, assert_twins_agree, rows_returned

PLAIN = [f"m{i:04d}@example.com" for i in range(300)]
GONE = "gone@example.com"  # unsubscribed in Listrak: skipped, then parked
MESSY: list[str | None] = [
    " Alice@Example.COM ",
    "alice@example.com",
    "ALICE@example.com\t",
    "bob@Bücher.de",
    "bob@xn--bcher-kva.de",
    "\x1cpad@example.com",
    "",
    None,
    "   ",
    "bad@@example.com",
    "no-at-sign",
    "x@y",
]
TWINS = {"vip_embedded": ("embedded", 400), "vip_in_db": ("in_database", 401)}


@pytest.fixture
def pg_harness(
    tmp_path: Path, listrak_account: SandboxServer, pg_database_url: str
) -> Iterator[Harness]:
    h = Harness(root=tmp_path, sandbox=listrak_account, state_url=pg_database_url)
    h.extra_toml = "[guards]\nmax_removed_fraction = 1.0"
    with h.engine.begin() as conn:
        conn.execute(text("CREATE TABLE source_members (grp text, email text)"))
    yield h
    h.close()


def sql_source(h: Harness, group: str, query: str | None = None) -> str:
    query = query or "SELECT email FROM source_members WHERE grp = :grp"
    return (
        f'{{ kind = "sql", url = "{h.state_url}", query = "{query}", '
        f'params = {{ grp = "{group}" }} }}'
    )


def add_audience(h: Harness, key: str, field_id: int, planner: str, source: str) -> None:
    h.sandbox.world.add_field(LIST_ID, key, field_id=field_id)
    h.audiences[key] = field_id
    h.sources[key] = source
    h.planners[key] = planner


def set_source(h: Harness, group: str, values: Sequence[str | None]) -> None:
    with h.engine.begin() as conn:
        conn.execute(text("DELETE FROM source_members WHERE grp = :g"), {"g": group})
        if values:
            conn.execute(
                text("INSERT INTO source_members (grp, email) VALUES (:g, :e)"),
                [{"g": group, "e": v} for v in values],
            )


def canonical(values: Sequence[str | None]) -> set[str]:
    return {e for e, _ in map(normalize_email, values) if e is not None}


def test_both_planners_write_the_same_plans_run_after_run(pg_harness: Harness) -> None:
    h = pg_harness
    first_members = [*PLAIN[:200], *PLAIN[:10], *MESSY, GONE]
    h.add_contacts(subscribed=canonical([*PLAIN, *MESSY]), unsubscribed=[GONE])
    for key, (planner, field_id) in TWINS.items():
        add_audience(h, key, field_id, planner, sql_source(h, "vip"))

    set_source(h, "vip", first_members)
    first = h.run()
    assert first.status == "succeeded", first.error
    seen = assert_twins_agree(h, first.run_id, TWINS)
    assert seen["counts"]["invalid_reasons"] == {
        "empty": 3,
        "not_one_at_sign": 2,
        "bad_domain": 1,
    }
    assert seen["counts"]["rows_read"] == len(first_members)
    assert (GONE, "on", None, "skipped", "NotSubscribed") in seen["changes"]
    assert h.members_on("vip_in_db") == canonical(first_members) - {GONE}

    churned = [*PLAIN[50:], *MESSY[:3], GONE]
    set_source(h, "vip", churned)
    second = h.run()
    assert second.status == "succeeded", second.error
    seen = assert_twins_agree(h, second.run_id, TWINS)
    assert seen["counts"]["parked_count"] == 1
    assert {c[1] for c in seen["changes"]} == {"on", "off"}
    assert h.members_on("vip_in_db") == canonical(churned) - {GONE}

    unchanged = h.run()
    assert unchanged.status == "succeeded", unchanged.error
    seen = assert_twins_agree(h, unchanged.run_id, TWINS)
    assert seen["changes"] == set()

    full = h.run(full=True)
    assert full.status == "succeeded", full.error
    seen = assert_twins_agree(h, full.run_id, TWINS)
    assert len(seen["changes"]) == len(canonical(churned))


def plan_counted(h: Harness, values: Sequence[str | None]) -> tuple[list[int], dict[str, Any]]:
    add_audience(h, "vip_in_db", 401, "in_database", sql_source(h, "vip"))
    set_source(h, "vip", values)
    h.run(dry_run=True)  # migrations and the lock are set up before counting
    counts, listener = rows_returned(h.engine)
    try:
        planned = h.run(dry_run=True)
    finally:
        event.remove(h.engine, "after_cursor_execute", listener)
    with h.engine.connect() as conn:
        row = conn.execute(
            select(run_audiences.c.snapshot_count, run_audiences.c.source_notes).where(
                run_audiences.c.run_id == planned.run_id
            )
        ).one()
    return counts, {"snapshot": row.snapshot_count, "notes": json.loads(row.source_notes)}


def test_planning_in_the_database_fetches_no_member_row(pg_harness: Harness) -> None:
    members = [f"p{i:05d}@Example.com " for i in range(5000)] + ["", None, "  \t"]
    counts, plan = plan_counted(pg_harness, members)
    assert plan["snapshot"] == 5000
    assert plan["notes"] == {"rows": 5003, "residual": 0}
    assert counts, "the listener saw the run's statements"
    assert all(n >= 0 for n in counts), "every count is known (no server-side cursor)"
    assert max(counts) <= HANDFUL


def test_only_the_residual_values_are_fetched(pg_harness: Harness) -> None:
    residual = [f"user{i}@bücher{i % 3}.de" for i in range(25)]
    members = [f"p{i:05d}@example.com" for i in range(3000)] + residual + residual
    counts, plan = plan_counted(pg_harness, members)
    assert plan["snapshot"] == 3025
    assert plan["notes"] == {"rows": 3050, "residual": 25}
    assert [n for n in counts if n > HANDFUL] == [25]


def test_a_failing_source_query_fails_only_its_audience_with_one_clean_line(
    pg_harness: Harness,
) -> None:
    h = pg_harness
    h.add_contacts(subscribed=PLAIN[:5])
    secret = "s3cret-group-value"
    # PostgreSQL's message quotes the value that is not an integer: it must be masked.
    bad_query = "SELECT email FROM source_members WHERE CAST(:grp AS integer) = 1"
    add_audience(h, "broken", 402, "in_database", sql_source(h, secret, bad_query))
    add_audience(h, "missing", 403, "in_database", sql_source(h, "x", "SELECT email FROM nowhere"))
    add_audience(h, "fine", 404, "in_database", sql_source(h, "fine"))
    set_source(h, "fine", PLAIN[:5])
    outcome = h.run()
    errors = {run.key: run.error for run in outcome.audiences}
    assert errors["fine"] is None
    assert h.members_on("fine") == set(PLAIN[:5])
    for key in ("broken", "missing"):
        message = errors[key]
        assert message is not None
        assert f"audience {key!r}: the source query failed in the state database" in message
        assert "\n" not in message
        assert "SELECT" not in message
        assert secret not in message
    assert "***" in str(errors["broken"])
    assert "nowhere" in str(errors["missing"])
    with h.engine.connect() as conn:
        assert set(conn.execute(select(run_changes.c.email)).scalars()) == set(PLAIN[:5])


def test_planning_in_the_database_with_the_state_in_its_own_schema(
    tmp_path: Path, listrak_account: SandboxServer, pg_database_url: str
) -> None:
    """State tables in ``[state] schema``, the source table in ``public``: the planner's SQL
    finds both through the search path, and writes into the schema's tables only."""
    h = Harness(
        root=tmp_path, sandbox=listrak_account, state_url=pg_database_url, state_schema="sync"
    )
    try:
        with h.engine.begin() as conn:
            conn.execute(text("CREATE TABLE public.source_members (grp text, email text)"))
        members = [f"s{i:03d}@example.com" for i in range(40)]
        h.add_contacts(subscribed=members)
        add_audience(h, "vip_in_db", 401, "in_database", sql_source(h, "vip"))
        set_source(h, "vip", members)
        result = h.run()
        assert result.status == "succeeded", result.error
        assert h.members_on("vip_in_db") == set(members)
        with h.engine.connect() as conn:
            where = conn.execute(
                text(
                    "SELECT table_schema FROM information_schema.tables "
                    "WHERE table_name IN ('memberships', 'source_members') ORDER BY table_name"
                )
            ).scalars()
            assert list(where) == ["sync", "public"]
    finally:
        h.close()
