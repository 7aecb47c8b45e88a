"""Computed traits end to end against the sandbox, on SQLite and PostgreSQL, for each type:
first run, a changed value sends only the changed contacts, an unchanged rerun sends nothing,
invalid values are reported per contact and never sent, and clear_missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from audience_sync.state.statuses import RunStatus
from audience_sync.state.tables import audiences, memberships, run_audiences, run_changes
from tests.conftest import backend_url
from tests.harness import LIST_ID, Harness


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Both backends; PostgreSQL's cases run in `make test-slow`, which keeps `make test`
    under four minutes. CI runs both."""
    return backend_url(request)


FIELD_ID = 700


@dataclass(frozen=True)
class Case:
    data_type: str
    # raw values in the source -> what Listrak gets
    first: dict[str, str]
    sent: dict[str, str]
    # a second snapshot where exactly one contact's value changes
    changed_email: str
    changed_raw: str
    changed_sent: str
    invalid_raw: str
    invalid_reason: str
    extra: str = ""


CASES = [
    Case(
        "Text",
        {"a@x.com": "  shoes ", "b@x.com": "hats", "c@x.com": "bags"},
        {"a@x.com": "shoes", "b@x.com": "hats", "c@x.com": "bags"},
        "b@x.com",
        "scarves",
        "scarves",
        "x" * 60,
        "too_long",
        "max_length = 50",
    ),
    Case(
        "Numeric",
        {"a@x.com": "412.50", "b@x.com": "1e3", "c@x.com": "-0"},
        {"a@x.com": "412.5", "b@x.com": "1000", "c@x.com": "0"},
        "a@x.com",
        "99.90",
        "99.9",
        "lots",
        "not_a_number",
    ),
    Case(
        "Date",
        {"a@x.com": "2026-11-02", "b@x.com": "2026-01-31T23:00:00Z", "c@x.com": "2025-12-24"},
        {"a@x.com": "2026-11-02", "b@x.com": "2026-01-31", "c@x.com": "2025-12-24"},
        "c@x.com",
        "2026-02-01",
        "2026-02-01",
        "yesterday",
        "not_a_date",
    ),
    Case(
        "RadioButton",
        {"a@x.com": "gold", "b@x.com": "silver", "c@x.com": "gold"},
        {"a@x.com": "gold", "b@x.com": "silver", "c@x.com": "gold"},
        "c@x.com",
        "silver",
        "silver",
        "platinum",
        "not_a_choice",
        'choices = ["gold", "silver"]',
    ),
]


def _setup(harness: Harness, case: Case, *, clear_missing: bool = False) -> None:
    choices = ("gold", "silver") if case.data_type == "RadioButton" else ()
    harness.sandbox.world.add_field(
        LIST_ID,
        "trait",
        data_type=case.data_type,
        group_name="Engage Traits",
        field_id=FIELD_ID,
        max_length=50,
        choices=choices,
    )
    harness.extra_toml = "\n".join(
        [
            "[[traits]]",
            'key = "trait"',
            f"list_id = {LIST_ID}",
            f"profile_field_id = {FIELD_ID}",
            f'data_type = "{case.data_type}"',
            case.extra,
            f"clear_missing = {'true' if clear_missing else 'false'}",
            "guards = { max_changed_fraction = 0.5 }",
            'source = { kind = "csv", path = "traits/trait.csv", value_column = "value" }',
        ]
    )


def _write(root: Path, rows: dict[str, str]) -> None:
    folder = root / "traits"
    folder.mkdir(exist_ok=True)
    lines = ["email,value"] + [f'{e},"{v}"' for e, v in rows.items()]
    (folder / "trait.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _values(harness: Harness) -> dict[str, str]:
    return harness.sandbox.world.field_values(LIST_ID, FIELD_ID)


def _trait_changes(harness: Harness, run_id: int) -> dict[str, tuple[str, str, str | None]]:
    with harness.engine.connect() as conn:
        rows = conn.execute(
            select(
                run_changes.c.email, run_changes.c.action, run_changes.c.status, run_changes.c.value
            )
            .join(audiences, audiences.c.id == run_changes.c.audience_id)
            .where(run_changes.c.run_id == run_id, audiences.c.key == "trait")
        )
        return {r.email: (r.action, r.status, r.value) for r in rows}


def _confirmed(harness: Harness) -> dict[str, str]:
    with harness.engine.connect() as conn:
        rows = conn.execute(
            select(memberships.c.email, memberships.c.value)
            .join(audiences, audiences.c.id == memberships.c.audience_id)
            .where(audiences.c.key == "trait", memberships.c.value.is_not(None))
        )
        return dict(rows.all())


@pytest.mark.parametrize("case", CASES, ids=[c.data_type for c in CASES])
def test_a_trait_syncs_only_what_changed(harness: Harness, case: Case) -> None:
    contacts = ["a@x.com", "b@x.com", "c@x.com", "d@x.com"]
    harness.add_contacts(contacts)
    harness.add_audience("vip", 200, ["a@x.com"])  # audiences and traits side by side
    _setup(harness, case)

    # first run: every valid value sent; the invalid one reported and not sent
    _write(harness.root, {**case.first, "d@x.com": case.invalid_raw})
    first = harness.run()
    assert first.status == RunStatus.SUCCEEDED, first.error
    assert _values(harness) == case.sent
    assert _confirmed(harness) == case.sent
    planned = _trait_changes(harness, first.run_id)
    assert planned["d@x.com"] == ("set", "skipped", None)
    assert {e: s for e, (_, s, _) in planned.items()} == {
        "a@x.com": "confirmed",
        "b@x.com": "confirmed",
        "c@x.com": "confirmed",
        "d@x.com": "skipped",
    }
    with harness.engine.connect() as conn:
        invalid_reasons = conn.execute(
            select(run_audiences.c.invalid_reasons)
            .join(audiences, audiences.c.id == run_audiences.c.audience_id)
            .where(run_audiences.c.run_id == first.run_id, audiences.c.key == "trait")
        ).scalar_one()
        reason = conn.execute(
            select(run_changes.c.reason)
            .join(audiences, audiences.c.id == run_changes.c.audience_id)
            .where(
                run_changes.c.run_id == first.run_id,
                run_changes.c.email == "d@x.com",
                audiences.c.key == "trait",
            )
        ).scalar_one()
    assert f"value:{case.invalid_reason}" in str(invalid_reasons)
    assert reason == f"invalid value: {case.invalid_reason}"

    # an unchanged rerun sends nothing
    imports = harness.import_count()
    again = harness.run()
    assert again.status == RunStatus.SUCCEEDED, again.error
    assert harness.import_count() == imports
    assert {e: a for e, (a, s, _) in _trait_changes(harness, again.run_id).items()} == {
        "d@x.com": "set"  # still reported invalid, still not sent
    }

    # one value changes: only that contact is sent
    _write(harness.root, {**case.first, case.changed_email: case.changed_raw})
    third = harness.run()
    assert third.status == RunStatus.SUCCEEDED, third.error
    assert _trait_changes(harness, third.run_id) == {
        case.changed_email: ("set", "confirmed", case.changed_sent)
    }
    assert _values(harness) == {**case.sent, case.changed_email: case.changed_sent}
    assert harness.import_count() == imports + 1

    # a contact that drops out keeps its value (clear_missing defaults to false)
    dropped = dict(case.first)
    dropped.pop("a@x.com")
    _write(harness.root, {**dropped, case.changed_email: case.changed_raw})
    fourth = harness.run()
    assert fourth.status == RunStatus.SUCCEEDED, fourth.error
    assert _trait_changes(harness, fourth.run_id) == {}
    assert "a@x.com" in _values(harness)
