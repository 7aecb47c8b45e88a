"""The analysis API over a hand-written ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import matplotlib
import pandas as pd
import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from audience_sync.analysis import Ledger, NotInLedgerError
from audience_sync.state.db import utcnow
from audience_sync.state.tables import (
    audiences,
    listrak_imports,
    memberships,
    parked_contacts,
    run_changes,
    sync_runs,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch, Rectangle


@dataclass
class Book:
    """Writes ledger rows the way the pipeline would leave them."""

    engine: Engine
    audience_ids: dict[str, int] = field(default_factory=dict)
    imports: int = 0

    def audience(self, key: str) -> int:
        with self.engine.begin() as conn:
            now = utcnow()
            result = conn.execute(
                insert(audiences).values(
                    key=key, list_id=1, profile_field_id=2, created_at=now, updated_at=now
                )
            )
        assert result.inserted_primary_key is not None
        self.audience_ids[key] = int(result.inserted_primary_key[0])
        return self.audience_ids[key]

    def run(self, trigger: str = "manual", status: str = "succeeded") -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(sync_runs).values(
                    trigger=trigger, status=status, started_at=utcnow(), host="h", pid=1
                )
            )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])

    def changes(
        self,
        run_id: int,
        key: str,
        rows: list[tuple[str, str, str, str | None]],
        summary: dict[str, int] | None = None,
    ) -> int:
        """One import for ``rows`` of (email, action, status, reason); returns its id."""
        self.imports += 1
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(listrak_imports).values(
                    run_id=run_id,
                    audience_id=self.audience_ids[key],
                    list_id=1,
                    field_id=2,
                    part=1,
                    route="list_import",
                    file_name=f"import{self.imports}.csv",
                    first_email="a",
                    last_email="z",
                    row_count=len(rows),
                    byte_count=10 * len(rows),
                    status="finished",
                    summary=json.dumps(summary) if summary else None,
                    created_at=utcnow(),
                )
            )
            assert result.inserted_primary_key is not None
            import_id = int(result.inserted_primary_key[0])
            conn.execute(
                insert(run_changes),
                [
                    {
                        "run_id": run_id,
                        "audience_id": self.audience_ids[key],
                        "email": email,
                        "action": action,
                        "status": status,
                        "reason": reason,
                        "import_id": import_id,
                    }
                    for email, action, status, reason in rows
                ],
            )
        return import_id

    def park(self, run_id: int, key: str, email: str, reason: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(parked_contacts).values(
                    audience_id=self.audience_ids[key],
                    email=email,
                    action="on",
                    reason=reason,
                    run_id=run_id,
                    parked_at=utcnow(),
                )
            )

    def confirm(self, run_id: int, key: str, email: str, value: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(memberships).values(
                    audience_id=self.audience_ids[key],
                    email=email,
                    value=value,
                    confirmed_run_id=run_id,
                    confirmed_at=utcnow(),
                )
            )


@dataclass
class Story:
    ledger: Ledger
    runs: list[int]


@pytest.fixture
def story(engine: Engine) -> Iterator[Story]:
    """Four runs of ``vip`` and ``new``.

    run 1: a, b on; c skipped (NotSubscribed, still parked); d failed
    run 2: b off; d on; a re-sent on by a full sync; e skipped (NotOnList, no longer parked)
    run 3: a plan: f planned, nothing confirmed
    run 4: b on again; a off skipped (so a stays a member)
    ``new``: x on in run 2
    """
    book = Book(engine)
    book.audience("vip")
    book.audience("new")
    r1, r2, r3, r4 = book.run(), book.run("full"), book.run("plan", "planned"), book.run()
    book.changes(
        r1,
        "vip",
        [
            ("a@example.com", "on", "confirmed", None),
            ("b@example.com", "on", "confirmed", None),
            ("c@example.com", "on", "skipped", "NotSubscribed"),
            ("d@example.com", "on", "failed", "import failed"),
        ],
        summary={"processedCount": 4, "skippedCount": 1},
    )
    book.park(r1, "vip", "c@example.com", "NotSubscribed")
    book.changes(
        r2,
        "vip",
        [
            ("a@example.com", "on", "confirmed", None),
            ("b@example.com", "off", "confirmed", None),
            ("d@example.com", "on", "confirmed", None),
            ("e@example.com", "on", "skipped", "NotOnList"),
        ],
    )
    book.changes(r2, "new", [("x@example.com", "on", "confirmed", None)])
    with engine.begin() as conn:
        conn.execute(
            insert(run_changes).values(
                run_id=r3,
                audience_id=book.audience_ids["vip"],
                email="f@example.com",
                action="on",
                status="planned",
            )
        )
    book.changes(
        r4,
        "vip",
        [
            ("b@example.com", "on", "confirmed", None),
            ("a@example.com", "off", "skipped", "Suppressed"),
        ],
    )
    for email in ("a@example.com", "b@example.com", "d@example.com"):
        book.confirm(r4, "vip", email, "on")
    ledger = Ledger(engine)
    yield Story(ledger, [r1, r2, r3, r4])
    plt.close("all")


def members(frame: pd.DataFrame) -> set[str]:
    return set(frame["email"])


def test_runs_are_listed_oldest_first_with_utc_timestamps(story: Story) -> None:
    runs = story.ledger.runs()
    assert list(runs["run_id"]) == story.runs
    assert list(runs["trigger"]) == ["manual", "full", "plan", "manual"]
    assert str(runs["started_at"].dt.tz) == "UTC"
    assert story.ledger.last_run() == story.runs[-1]


def test_changes_of_the_last_run_with_audience_key_and_import(story: Story) -> None:
    last = story.ledger.changes("last")
    assert last[["audience", "email", "action", "status"]].values.tolist() == [
        ["vip", "a@example.com", "off", "skipped"],
        ["vip", "b@example.com", "on", "confirmed"],
    ]
    assert list(last["reason"].fillna("-")) == ["Suppressed", "-"]
    assert set(last["run_id"]) == {story.runs[-1]}
    assert last["import_file"].notna().all()


def test_changes_filter_by_run_audience_action_and_status(story: Story) -> None:
    ledger = story.ledger
    r1, r2, *_ = story.runs
    assert len(ledger.changes()) == 4 + 5 + 1 + 2
    assert members(ledger.changes(r2, audience="new")) == {"x@example.com"}
    assert members(ledger.changes(r2, audience="vip", action="off")) == {"b@example.com"}
    assert members(ledger.changes(audience="vip", status="failed")) == {"d@example.com"}
    assert members(ledger.changes(r1, status="confirmed")) == {"a@example.com", "b@example.com"}
    assert ledger.changes(story.runs[2])["import_file"].isna().all()


def test_unknown_run_or_audience_is_named_not_answered_empty(story: Story) -> None:
    with pytest.raises(NotInLedgerError, match="no run 99"):
        story.ledger.changes(99)
    with pytest.raises(NotInLedgerError, match=r"no audience 'vpi'.*known: new, vip"):
        story.ledger.changes(audience="vpi")
    with pytest.raises(NotInLedgerError, match="no audience"):
        story.ledger.membership("vpi")
    with pytest.raises(TypeError, match="run must be"):
        story.ledger.changes("first")  # type: ignore[arg-type]  # the wrong type on purpose


def test_membership_as_of_each_run_rebuilt_from_confirmed_changes(story: Story) -> None:
    ledger = story.ledger
    r1, r2, r3, r4 = story.runs
    assert members(ledger.membership("vip", as_of_run=r1)) == {"a@example.com", "b@example.com"}
    assert members(ledger.membership("vip", as_of_run=r2)) == {"a@example.com", "d@example.com"}
    assert members(ledger.membership("vip", as_of_run=r3)) == {"a@example.com", "d@example.com"}
    now = ledger.membership("vip")
    assert members(now) == {"a@example.com", "b@example.com", "d@example.com"}
    assert dict(zip(now["email"], now["confirmed_run_id"], strict=True)) == {
        "a@example.com": r2,
        "b@example.com": r4,
        "d@example.com": r2,
    }
    assert members(ledger.membership("vip", as_of_run="last")) == members(now)
    assert members(ledger.membership("new", as_of_run=r1)) == set()
    assert members(ledger.membership("new")) == {"x@example.com"}


def test_audience_sizes_count_flips_only_and_agree_with_membership(story: Story) -> None:
    sizes = story.ledger.audience_sizes()
    table = sizes.pivot(index="run_id", columns="audience", values="members")
    assert table.to_dict("list") == {"new": [0, 1, 1, 1], "vip": [2, 2, 2, 3]}
    for audience, run_id, members in sizes[["audience", "run_id", "members"]].values.tolist():
        rebuilt = story.ledger.membership(audience, as_of_run=run_id)
        assert len(rebuilt) == members


def test_skipped_contacts_with_reason_and_whether_still_parked(story: Story) -> None:
    skipped = story.ledger.skipped()
    assert skipped[["email", "reason", "still_parked"]].to_dict("records") == [
        {"email": "c@example.com", "reason": "NotSubscribed", "still_parked": True},
        {"email": "e@example.com", "reason": "NotOnList", "still_parked": False},
        {"email": "a@example.com", "reason": "Suppressed", "still_parked": False},
    ]
    assert skipped["parked_by_run"].dtype == "Int64"
    assert members(story.ledger.skipped(reason="NotOnList")) == {"e@example.com"}
    assert members(story.ledger.skipped("last")) == {"a@example.com"}


def test_skip_reasons_are_counted_per_run_and_audience(story: Story) -> None:
    reasons = story.ledger.skip_reasons()
    assert list(reasons.columns) == ["run_id", "audience", "action", "reason", "contacts"]
    assert reasons[["run_id", "reason", "contacts"]].values.tolist() == [
        [story.runs[0], "NotSubscribed", 1],
        [story.runs[1], "NotOnList", 1],
        [story.runs[3], "Suppressed", 1],
    ]


def test_imports_carry_the_outcome_of_their_changes(story: Story) -> None:
    imports = story.ledger.imports()
    first = imports.iloc[0]
    assert (first["confirmed"], first["skipped"], first["failed"]) == (2, 1, 1)
    assert first["summary"] == {"processedCount": 4, "skippedCount": 1}
    assert imports.iloc[1]["summary"] is None
    assert list(story.ledger.imports(story.runs[1], audience="new")["confirmed"]) == [1]
    assert story.ledger.imports(story.runs[2]).empty


def test_contact_history_and_state_normalise_the_email(story: Story) -> None:
    history = story.ledger.contact_history("  B@Example.COM ")
    assert history[["run_id", "action", "status"]].values.tolist() == [
        [story.runs[0], "on", "confirmed"],
        [story.runs[1], "off", "confirmed"],
        [story.runs[3], "on", "confirmed"],
    ]
    state = story.ledger.contact_state("C@example.com").set_index("audience")
    assert state.loc["vip", "parked_reason"] == "NotSubscribed"
    assert state["confirmed_value"].isna()["vip"]
    assert state.loc["new"].isna().all()
    assert story.ledger.contact_state("a@example.com").set_index("audience").loc[
        "vip", "confirmed_value"
    ] == ("on")


def bar_height(patch: Patch) -> float:
    assert isinstance(patch, Rectangle)
    return patch.get_height()


def test_plot_changes_draws_confirmed_on_up_and_off_down_per_run(story: Story) -> None:
    ax = story.ledger.plot_changes("vip")
    heights = [bar_height(patch) for patch in ax.patches]
    # four runs of "turned on" bars, then four of "turned off" (negative)
    assert heights == [2, 2, 0, 1, 0, -1, 0, 0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(r) for r in story.runs]
    all_audiences = story.ledger.plot_changes()
    assert [bar_height(p) for p in all_audiences.patches][:4] == [2, 3, 0, 1]


def test_plot_audience_size_draws_one_line_per_audience(story: Story) -> None:
    _, ax = plt.subplots()
    assert story.ledger.plot_audience_size(ax=ax) is ax
    lines = {
        str(line.get_label()): np.asarray(line.get_ydata()).tolist() for line in ax.get_lines()
    }
    assert lines == {"new": [0, 1, 1, 1], "vip": [2, 2, 2, 3]}


def test_an_empty_ledger_has_no_last_run(engine: Engine) -> None:
    ledger = Ledger(engine)
    assert ledger.runs().empty
    assert ledger.audience_sizes().empty
    with pytest.raises(NotInLedgerError, match="no runs yet"):
        ledger.changes("last")
