"""Crontab day-of-week fields mean what crontab(5) says, whatever APScheduler numbers from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audience_sync.crontab import cron_trigger, crontab_weekdays

NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
START = datetime(2030, 1, 1, tzinfo=UTC)  # a Tuesday


def reference_days(field: str) -> set[int]:
    """crontab(5) for the day-of-week field, spelled out independently: 0-7 with 7 = Sunday."""
    selected: set[int] = set()
    for item in field.split(","):
        if "/" in item:
            span, step = item.split("/")[0], int(item.split("/")[1])
        else:
            span, step = item, 1
        if span == "*":
            candidates = list(range(0, 8))
        elif "-" in span:
            low, high = (number_of(x) for x in span.split("-"))
            candidates = list(range(low, high + 1))
        elif "/" in item:
            candidates = list(range(number_of(span), 8))
        else:
            candidates = [number_of(span)]
        for index, day in enumerate(candidates):
            if index % step == 0:
                selected.add(0 if day == 7 else day)
    return selected


def number_of(token: str) -> int:
    return NAMES.index(token.lower()) if token.lower() in NAMES else int(token)


def fired_weekdays(field: str) -> set[int]:
    """The crontab days (0 = Sunday) on which APScheduler fires ``0 9 * * FIELD`` in two weeks."""
    trigger = cron_trigger(f"0 9 * * {field}", UTC)
    days: set[int] = set()
    previous = None
    now = START
    while True:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None or fire >= START + timedelta(days=14):
            return days
        days.add(fire.isoweekday() % 7)
        previous = fire
        now = fire + timedelta(seconds=1)


day_token = st.one_of(
    st.integers(0, 7).map(str),
    st.sampled_from(NAMES).map(lambda n: n if len(n) % 2 else n.upper()),
)


@st.composite
def items(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["star", "single", "range"]))
    step = draw(st.one_of(st.none(), st.integers(1, 8)))
    if kind == "star":
        span = "*"
    elif kind == "single":
        span = draw(day_token)
    else:
        low, high = sorted([draw(st.integers(0, 7)), draw(st.integers(0, 7))])
        span = f"{low}-{high}"
    return span if step is None else f"{span}/{step}"


fields = st.lists(items(), min_size=1, max_size=4).map(",".join)


@given(fields)
def test_weekday_expansion_matches_crontab(field: str) -> None:
    assert crontab_weekdays(field) == reference_days(field)


@given(fields)
def test_apscheduler_fires_on_exactly_the_crontab_days(field: str) -> None:
    assert fired_weekdays(field) == reference_days(field)


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("0-3", {0, 1, 2, 3}),  # Sunday to Wednesday: rejected before
        ("*/2", {0, 2, 4, 6}),  # Sunday, Tuesday, Thursday, Saturday
        ("1-5", {1, 2, 3, 4, 5}),
        ("mon-fri", {1, 2, 3, 4, 5}),
        ("5-7", {5, 6, 0}),
        ("7", {0}),
        ("Sat,sun", {6, 0}),
        ("1-7/3", {1, 4, 0}),
    ],
)
def test_known_fields(field: str, days: set[int]) -> None:
    assert crontab_weekdays(field) == days
    assert fired_weekdays(field) == days


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("8", "out of range 0-7"),
        ("5-1", "runs backwards"),
        ("*/0", "at least 1"),
        ("mon-", "not 0-7 or a day name"),
        ("funday", "not 0-7 or a day name"),
        ("1,,2", "not 0-7 or a day name"),
        ("", "empty"),
    ],
)
def test_bad_fields_are_refused_with_the_reason(field: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        crontab_weekdays(field)
