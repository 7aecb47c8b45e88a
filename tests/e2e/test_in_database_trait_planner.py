"""End to end on PostgreSQL: a computed trait planned inside the state database (``planner =
"in_database"``) next to a twin planned by the embedded planner from the same source query.

The twins read the same rows (messy addresses, an invalid value, a contact with two different
values, values written differently that format alike), so every run must write the same
ledger rows, counts and fingerprint for both, and leave the same confirmed state."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import event, select, text

from audience_sync.sandbox import SandboxServer
from audience_sync.state.tables import (
    audiences,
    run_audiences,
)
from tests.harness import LIST_ID, Harness
from tests.twins import HANDFUL, assert_twins_agree, outcome_of, rows_returned

TWINS = {"spend_embedded": ("embedded", 710), "spend_in_db": ("in_database", 711)}
PLAIN = [(f"m{i:03d}@example.com", str(i % 7)) for i in range(120)]
GONE = "gone@x.com"  # unsubscribed in Listrak: skipped, then parked
Row = tuple[str | None, str | None]
FIRST: list[Row] = [
    *PLAIN,
    ("a@x.com", "412.50"),
    (" A@X.com ", "412.5"),  # the same contact and, once formatted, the same value
    ("b@x.com", "1e3"),
    ("c@x.com", "lots"),  # not_a_number
    ("d@x.com", "5"),
    ("D@x.com", "6"),  # conflicting_values
    ("e@x.com", "7"),  # cleared once it leaves the source
    ("f@x.com", None),  # empty
    ("g@bücher.de", "0.10"),  # a residual email
    ("", "1"),
    (None, "1"),
    ("bad@@x.com", "1"),
    (GONE, "3"),
]
SECOND: list[Row] = [
    *[row for row in FIRST if row[0] != "e@x.com" and row[0] != "b@x.com"],
    ("b@x.com", "2000"),
]


@pytest.fixture
def pg_harness(
    tmp_path: Path, listrak_account: SandboxServer, pg_database_url: str
) -> Iterator[Harness]:
    h = Harness(root=tmp_path, sandbox=listrak_account, state_url=pg_database_url)
    with h.engine.begin() as conn:
        conn.execute(text("CREATE TABLE source_traits (email text, spend text)"))
    h.extra_toml = "\n".join(trait_toml(h, key, *twin) for key, twin in TWINS.items())
    h.add_audience("vip", 709, [PLAIN[0][0]])  # a config holds at least one audience
    yield h
    h.close()


def trait_toml(h: Harness, key: str, planner: str, field_id: int) -> str:
    h.sandbox.world.add_field(
        LIST_ID, key, data_type="Numeric", group_name="Engage Traits", field_id=field_id
    )
    return "\n".join(
        [
            "[[traits]]",
            f'key = "{key}"',
            f"list_id = {LIST_ID}",
            f"profile_field_id = {field_id}",
            'data_type = "Numeric"',
            f'planner = "{planner}"',
            "clear_missing = true",
            "guards = { max_changed_fraction = 1.0 }",
            f'source = {{ kind = "sql", url = "{h.state_url}", '
            'query = "SELECT email, spend FROM source_traits", value_column = "spend" }',
        ]
    )


def set_source(h: Harness, rows: Sequence[Row]) -> None:
    with h.engine.begin() as conn:
        conn.execute(text("DELETE FROM source_traits"))
        conn.execute(
            text("INSERT INTO source_traits (email, spend) VALUES (:e, :v)"),
            [{"e": e, "v": v} for e, v in rows],
        )


def test_both_planners_write_the_same_trait_plans_run_after_run(pg_harness: Harness) -> None:
    h = pg_harness
    h.add_contacts(
        subscribed=[e for e, _ in PLAIN]
        + [f"{c}@x.com" for c in "abcdef"]
        + ["g@xn--bcher-kva.de"],
        unsubscribed=[GONE],
    )
    set_source(h, FIRST)
    first = h.run()
    assert first.status == "succeeded", first.error
    seen = assert_twins_agree(h, first.run_id, TWINS)
    assert seen["counts"]["invalid_reasons"] == {
        "empty": 2,
        "not_one_at_sign": 1,
        "value:not_a_number": 1,
        "value:conflicting_values": 1,
        "value:empty": 1,
    }
    assert seen["counts"]["rows_read"] == len(FIRST)
    assert ("a@x.com", "set", "412.5", "confirmed", None) in seen["changes"]
    assert ("c@x.com", "set", None, "skipped", "invalid value: not_a_number") in seen["changes"]
    assert ("d@x.com", "set", None, "skipped", "invalid value: conflicting_values") in seen[
        "changes"
    ]
    assert ("g@xn--bcher-kva.de", "0.1", "0.1") in seen["members"]
    assert h.sandbox.world.field_values(LIST_ID, 711)["b@x.com"] == "1000"
    assert {row[0] for row in seen["parked"]} == {GONE}
    with h.engine.connect() as conn:
        notes = conn.execute(
            select(run_audiences.c.source_notes)
            .join(audiences, audiences.c.id == run_audiences.c.audience_id)
            .where(run_audiences.c.run_id == first.run_id, audiences.c.key == "spend_in_db")
        ).scalar_one()
    # in Python: the residual email and the distinct raw values only
    assert json.loads(notes) == {"rows": len(FIRST), "residual": 2, "distinct_values": 13}

    set_source(h, SECOND)
    second = h.run()
    assert second.status == "succeeded", second.error
    seen = assert_twins_agree(h, second.run_id, TWINS)
    assert seen["counts"]["parked_count"] == 1
    planned = {(c[0], c[1], c[2]) for c in seen["changes"] if c[3] != "skipped"}
    assert planned == {("b@x.com", "set", "2000"), ("e@x.com", "clear", None)}
    assert "e@x.com" not in h.sandbox.world.field_values(LIST_ID, 711)

    unchanged = h.run()
    assert unchanged.status == "succeeded", unchanged.error
    seen = assert_twins_agree(h, unchanged.run_id, TWINS)
    assert {c[3] for c in seen["changes"]} == {"skipped"}
    assert seen["deltas"] == set()

    full = h.run(full=True)
    assert full.status == "succeeded", full.error
    assert_twins_agree(h, full.run_id, TWINS)


def test_only_the_distinct_values_cross_into_the_job(pg_harness: Harness) -> None:
    h = pg_harness
    rows: list[Row] = [(f"p{i:05d}@Example.com", ("gold", "1.50", "2")[i % 3]) for i in range(4000)]
    h.extra_toml = trait_toml(h, "spend_in_db", "in_database", 711)  # no embedded twin
    # nor an embedded audience, whose state read is streamed (its row counts unknown)
    h.planners["vip"] = "in_database"
    h.sources["vip"] = (
        f'{{ kind = "sql", url = "{h.state_url}", query = "SELECT email FROM source_traits" }}'
    )
    set_source(h, rows)
    h.run(dry_run=True)  # migrations and the lock are set up before counting
    counts, listener = rows_returned(h.engine)
    try:
        planned = h.run(dry_run=True)
    finally:
        event.remove(h.engine, "after_cursor_execute", listener)
    outcome = outcome_of(h, planned.run_id, "spend_in_db")
    assert outcome["counts"]["snapshot_count"] == 4000 * 2 // 3
    assert outcome["counts"]["invalid_reasons"] == {"value:not_a_number": 4000 // 3 + 1}
    assert counts, "the listener saw the run's statements"
    assert all(n >= 0 for n in counts), "every count is known (no server-side cursor)"
    assert max(counts) <= HANDFUL  # three distinct values, no member row


def test_a_failing_trait_query_fails_only_its_trait_with_one_clean_line(
    pg_harness: Harness,
) -> None:
    h = pg_harness
    secret = "s3cret-tier"
    bad = (
        '\n[[traits]]\nkey = "broken"\nlist_id = 100\nprofile_field_id = 712\n'
        'data_type = "Text"\nplanner = "in_database"\n'
        f'source = {{ kind = "sql", url = "{h.state_url}", '
        """query = "SELECT email, spend FROM source_traits WHERE CAST(:tier AS integer) = 1", """
        f'params = {{ tier = "{secret}" }}, value_column = "spend" }}'
    )
    h.sandbox.world.add_field(LIST_ID, "broken", data_type="Text", field_id=712)
    h.extra_toml += bad
    h.add_contacts(subscribed=["a@x.com"])
    set_source(h, [("a@x.com", "5")])
    outcome = h.run()
    errors = {run.key: run.error for run in outcome.audiences}
    assert errors["spend_in_db"] is None
    message = errors["broken"]
    assert message is not None
    assert "trait 'broken': the source query failed in the state database" in message
    assert "\n" not in message
    assert "SELECT" not in message
    assert secret not in message
    assert "***" in message
    assert h.sandbox.world.field_values(LIST_ID, 711) == {"a@x.com": "5"}
