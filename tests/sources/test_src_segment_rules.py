"""The per-profile membership rules, and the SQL that applies them at scale, held equal."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert
from sqlalchemy import table as sa_table
from sqlalchemy.sql import column

from audience_sync.sources.segment_events_sql import counts_query, events_table, members_query
from audience_sync.sources.segment_rules import (
    Decision,
    FlatEvent,
    decide_profile,
    flatten_message,
    is_membership,
    parse_timestamp,
)
from audience_sync.sources.specs import EventColumns

KEY = "fts"


def row(
    message_id: str | None,
    value: bool | None,
    timestamp: int | None,
    *,
    received_at: int | None = None,
    email: str | None = None,
    type_: str = "identify",
    event: str | None = None,
    user_id: str | None = "u1",
    audience_key: str | None = KEY,
) -> FlatEvent:
    return FlatEvent(
        message_id=message_id,
        user_id=user_id,
        anonymous_id=None,
        type=type_,
        event=event,
        audience_key=audience_key if value is not None else None,
        value=value,
        email=email,
        timestamp=timestamp,
        received_at=timestamp if received_at is None else received_at,
    )


class TestParseTimestamp:
    def test_offsets_fractions_and_naive_utc(self) -> None:
        base = parse_timestamp("2024-01-02T03:04:05Z")
        assert base is not None
        assert parse_timestamp("2024-01-02T03:04:05.250Z") == base + 250_000
        assert parse_timestamp("2024-01-02T05:04:05+02:00") == base
        assert parse_timestamp("2024-01-02T03:04:05") == base
        assert parse_timestamp("2024-01-02T03:04:05.123456789Z") == base + 123_456

    def test_unusable_values(self) -> None:
        for value in (None, "", "  ", "yesterday", 1704164645, True):
            assert parse_timestamp(value) is None


class TestFlatten:
    def test_track_entered_with_context_email(self) -> None:
        message = {
            "type": "track",
            "event": "Audience Entered",
            "messageId": "m1",
            "userId": "u1",
            "properties": {"audience_key": KEY, KEY: True},
            "context": {"traits": {"email": "A@x.com"}},
            "timestamp": "2024-01-01T00:00:00Z",
            "receivedAt": "2024-01-01T00:00:02Z",
        }
        flat = flatten_message(message, KEY)
        assert flat is not None
        assert (flat.value, flat.email, flat.profile, flat.audience_key) == (
            True,
            "A@x.com",
            "u1",
            KEY,
        )
        assert flat.received_at == (flat.timestamp or 0) + 2_000_000

    def test_track_value_falls_back_to_the_event_name(self) -> None:
        message: dict[str, Any] = {
            "type": "track",
            "event": "Audience Exited",
            "properties": {"audience_key": KEY, KEY: "no"},
        }
        flat = flatten_message(
            {**message, "properties": {**message["properties"], "email": "p@x"}}, KEY
        )
        assert flat is not None
        assert (flat.value, flat.email) == (False, "p@x")

    def test_other_audience_or_event_states_nothing(self) -> None:
        other = {
            "type": "track",
            "event": "Audience Entered",
            "properties": {"audience_key": "x", KEY: True},
        }
        wrong_event = {
            "type": "track",
            "event": "Order Completed",
            "properties": {"audience_key": KEY, KEY: True},
        }
        not_boolean = {"type": "identify", "traits": {KEY: "true"}}
        for message in (other, wrong_event, not_boolean):
            assert flatten_message(message, KEY) is None

    def test_email_only_message_is_kept_for_its_email(self) -> None:
        flat = flatten_message(
            {"type": "identify", "anonymousId": "a1", "traits": {"email": " e@x "}}, KEY
        )
        assert flat is not None
        assert (flat.value, flat.audience_key, flat.profile, flat.email) == (
            None,
            None,
            "a1",
            " e@x ",
        )

    def test_email_places_in_order(self) -> None:
        message = {
            "type": "identify",
            "context": {"traits": {"email": "ctx@x"}},
            "traits": {"email": "traits@x", KEY: True},
            "properties": {"email": "props@x"},
        }
        assert (flatten_message(message, KEY) or row(None, None, None)).email == "ctx@x"
        del message["context"]
        assert (flatten_message(message, KEY) or row(None, None, None)).email == "traits@x"


class TestDecideProfile:
    def test_latest_timestamp_wins_regardless_of_order(self) -> None:
        events = [row("m2", False, 20), row("m1", True, 10, email="e@x")]
        assert decide_profile(events, KEY) == Decision(member=False, email="e@x")

    def test_received_at_breaks_timestamp_ties(self) -> None:
        events = [row("m1", True, 10, received_at=12), row("m2", False, 10, received_at=11)]
        assert decide_profile(events, KEY) == Decision(member=True, email=None)

    def test_missing_timestamp_uses_received_at(self) -> None:
        events = [row("m1", True, 10), row("m2", False, None, received_at=30)]
        assert decide_profile(events, KEY) == Decision(member=False, email=None)

    def test_events_without_any_time_are_ignored(self) -> None:
        events = [row("m1", True, 10), row("m2", False, None, received_at=None)]
        events[1] = FlatEvent(**{**events[1].__dict__, "received_at": None})
        assert decide_profile(events, KEY) == Decision(member=True, email=None)

    def test_winner_email_first_else_latest_email(self) -> None:
        with_own = [row("m1", True, 10, email="own@x"), row("m9", None, 50, email="new@x")]
        assert decide_profile(with_own, KEY) == Decision(member=True, email="own@x")
        without_own = [
            row("m1", True, 10),
            row("m8", None, 5, email="old@x"),
            row("m9", None, 50, email="new@x"),
        ]
        assert decide_profile(without_own, KEY) == Decision(member=True, email="new@x")

    def test_no_membership_row_means_no_decision(self) -> None:
        assert decide_profile([row("m1", None, 1, email="e@x")], KEY) is None

    def test_first_received_copy_of_a_message_counts(self) -> None:
        # m1 was delivered twice; the replay (received at 30) must not outrank m2.
        events = [
            row("m1", True, 10, received_at=30),
            row("m1", True, 10, received_at=11),
            row("m2", False, 10, received_at=20),
        ]
        assert decide_profile(events, KEY) == Decision(member=False, email=None)


EMAILS = st.sampled_from([None, "a@x.com", "B@x.com"])
TIMES = st.one_of(st.none(), st.integers(0, 3))


@st.composite
def flat_events(draw: st.DrawFn, profiles: tuple[str, ...] = ("u1",)) -> FlatEvent:
    kind = draw(st.sampled_from(["identify", "entered", "exited", "email_only", "other_event"]))
    value = None if kind == "email_only" else draw(st.booleans())
    type_, event = {
        "identify": ("identify", None),
        "entered": ("track", "Audience Entered"),
        "exited": ("track", "Audience Exited"),
        "email_only": ("identify", None),
        "other_event": ("track", "Order Completed"),
    }[kind]
    return FlatEvent(
        message_id=draw(st.sampled_from([None, "m1", "m2", "m3", "m4", "m5"])),
        user_id=draw(st.sampled_from(profiles)),
        anonymous_id=None,
        type=type_,
        event=event,
        audience_key=None if value is None else draw(st.sampled_from([KEY, KEY, "other"])),
        value=value,
        email=draw(EMAILS),
        timestamp=draw(TIMES),
        received_at=draw(TIMES),
    )


class TestProperties:
    @given(st.lists(flat_events(), max_size=12), st.randoms(use_true_random=False))
    def test_order_does_not_matter(self, events: list[FlatEvent], rnd: random.Random) -> None:
        shuffled = events[:]
        rnd.shuffle(shuffled)
        assert decide_profile(shuffled, KEY) == decide_profile(events, KEY)

    @given(st.lists(flat_events(), min_size=1, max_size=12), st.data())
    def test_repeating_a_message_changes_nothing(
        self, events: list[FlatEvent], data: st.DataObject
    ) -> None:
        repeated = data.draw(st.sampled_from(events))
        assert decide_profile([*events, repeated], KEY) == decide_profile(events, KEY)

    @settings(max_examples=150, deadline=None)
    @given(st.lists(flat_events(("u1", "u2", "u3")), max_size=25))
    def test_sql_agrees_with_the_pure_rules(self, events: list[FlatEvent]) -> None:
        by_profile: dict[str | None, list[FlatEvent]] = defaultdict(list)
        for event in events:
            by_profile[event.profile].append(event)
        expected = set()
        for profile, rows in by_profile.items():
            decision = decide_profile(rows, KEY)
            if decision is not None and decision.member:
                expected.add((profile, decision.email))
        found, counts = run_sql(events)
        assert found == expected
        usable = [
            e for e in events if is_membership(e, KEY) and e.profile and e.order_time is not None
        ]
        with_id = {(e.profile, e.message_id) for e in usable if e.message_id is not None}
        assert counts["duplicate_messages"] == sum(1 for e in usable if e.message_id) - len(with_id)
        assert counts["profiles"] == len({e.profile for e in usable})
        assert counts["membership_events"] == sum(1 for e in events if is_membership(e, KEY))


def run_sql(events: list[FlatEvent]) -> tuple[set[tuple[str, str | None]], dict[str, int]]:
    columns = EventColumns()
    names = list(columns.model_dump().values())
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as db:
            db.exec_driver_sql(f"create table events ({', '.join(names)})")
            if events:
                target = sa_table("events", *(column(n) for n in names))
                db.execute(
                    insert(target), [dict(zip(names, e.as_row(), strict=True)) for e in events]
                )
            query = members_query(events_table("events", columns), columns, KEY)
            found = {(r.profile, r.email) for r in db.execute(query)}
            counts = db.execute(counts_query(events_table("events", columns), columns, KEY)).one()
    finally:
        engine.dispose()
    return found, dict(counts._mapping)
