"""Formatting trait values for typed Listrak profile fields (audience_sync.traits.values)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_sync.traits.values import (
    DEFAULT_DATE_FORMAT,
    REASONS,
    FieldSpec,
    Formatted,
    format_array,
    format_value,
)

TEXT = FieldSpec("Text", max_length=10)
NUMERIC = FieldSpec("Numeric")
DATE = FieldSpec("Date")
US_DATE = FieldSpec("Date", date_format="%m/%d/%Y")
RADIO = FieldSpec("RadioButton", max_length=20, choices=("shoes", "bags"))
CHECKBOX = FieldSpec("CheckBox", max_length=3)
ALL_FIELDS = [TEXT, NUMERIC, DATE, US_DATE, RADIO, CHECKBOX, FieldSpec("Text")]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("412.50", "412.5"),
        ("1e3", "1000"),
        (1e3, "1000"),
        (412.5, "412.5"),
        (7, "7"),
        (" -0.0 ", "0"),
        ("+3.10", "3.1"),
        (".5", "0.5"),
        (Decimal("2.500"), "2.5"),
        ("1.2345678901234567890123456789012345", "1.2345678901234567890123456789012345"),
        (1e-7, "0.0000001"),
    ],
)
def test_numeric_is_a_canonical_decimal(raw: object, expected: str) -> None:
    assert format_value(NUMERIC, raw) == Formatted(expected)


@pytest.mark.parametrize(
    "raw", ["nan", "NaN", "inf", "-Infinity", float("inf"), True, "1_000", "12abc", "0x10", "1e"]
)
def test_numeric_rejects_what_is_not_a_finite_number(raw: object) -> None:
    assert format_value(NUMERIC, raw).reason == "not_a_number"


def test_numeric_rejects_absurd_exponents_as_too_long() -> None:
    assert format_value(NUMERIC, "1e999999").reason == "too_long"


@pytest.mark.parametrize("raw", [None, "", "   ", float("nan")])
@pytest.mark.parametrize("field", ALL_FIELDS)
def test_missing_values_are_empty(field: FieldSpec, raw: object) -> None:
    assert format_value(field, raw) == Formatted(None, "empty")


def test_text_is_stripped_but_never_truncated() -> None:
    assert format_value(TEXT, "  shoes ") == Formatted("shoes")
    assert format_value(TEXT, "x" * 10) == Formatted("x" * 10)
    assert format_value(TEXT, "x" * 11) == Formatted(None, "too_long")
    assert format_value(TEXT, 412.5) == Formatted("412.5")


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("2026-11-02", "2026-11-02"),
        ("2026-11-02T23:30:00-05:00", "2026-11-02"),
        ("2026-11-02T01:00:00Z", "2026-11-02"),
        (date(2026, 11, 2), "2026-11-02"),
        (datetime(2026, 11, 2, 8, tzinfo=UTC), "2026-11-02"),
    ],
)
def test_dates_keep_their_calendar_day(raw: object, iso: str) -> None:
    assert format_value(DATE, raw) == Formatted(iso)
    assert format_value(US_DATE, raw) == Formatted("11/02/2026")


def test_the_default_date_format_is_iso_8601() -> None:
    assert DEFAULT_DATE_FORMAT == "%Y-%m-%d"
    assert format_value(US_DATE, "11/02/2026") == Formatted("11/02/2026")
    assert format_value(DATE, "11/02/2026").reason == "not_a_date"
    for bad in ("2026-02-30", "tomorrow", 20261102):
        assert format_value(DATE, bad).reason == "not_a_date"


def test_radio_buttons_take_only_a_choice() -> None:
    assert format_value(RADIO, " shoes") == Formatted("shoes")
    assert format_value(RADIO, "Shoes").reason == "not_a_choice"
    assert format_value(FieldSpec("RadioButton"), "shoes").reason == "not_a_choice"


def test_checkboxes_and_unsupported_types() -> None:
    assert format_value(CHECKBOX, True) == Formatted("on")
    assert format_value(CHECKBOX, "false") == Formatted("off")
    assert format_value(CHECKBOX, "maybe").reason == "not_a_choice"
    assert format_value(FieldSpec("ContentBlock"), "x").reason == "unsupported_type"


def test_format_array_matches_format_value() -> None:
    raw = ["412.50", None, "x", "412.50", "1e3"]
    values, reasons = format_array(NUMERIC, pa.array(raw, type=pa.string()))
    expected = [format_value(NUMERIC, r) for r in raw]
    assert values.to_pylist() == [e.value for e in expected]
    assert reasons.to_pylist() == [e.reason for e in expected]


_RAW = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
    st.dates(),
    st.text(max_size=30),
    st.sampled_from(["shoes", "bags", " 412.50 ", "1e3", "2026-11-02", "on", "false"]),
)


@settings(derandomize=True, max_examples=300)
@given(field=st.sampled_from(ALL_FIELDS), raw=_RAW)
def test_formatting_is_idempotent_and_total(field: FieldSpec, raw: object) -> None:
    result = format_value(field, raw)
    assert (result.value is None) != (result.reason is None)
    if result.reason is not None:
        assert result.reason in REASONS
    else:
        assert result.value is not None
        assert format_value(field, result.value) == result
        assert field.max_length == 0 or len(result.value) <= field.max_length


@settings(derandomize=True, max_examples=300)
@given(st.decimals(allow_nan=False, allow_infinity=False, places=None))
def test_accepted_numbers_round_trip_exactly(number: Decimal) -> None:
    result = format_value(NUMERIC, number)
    if result.ok:
        assert result.value is not None
        assert Decimal(result.value) == number
        assert "e" not in result.value.lower()


@settings(derandomize=True, max_examples=300)
@given(st.dates(min_value=date(1000, 1, 1)))
def test_accepted_dates_round_trip(day: date) -> None:
    for field in (DATE, US_DATE):
        value = format_value(field, day).value
        assert value is not None
        assert datetime.strptime(value, field.date_format).date() == day


@settings(derandomize=True, max_examples=300)
@given(st.text(max_size=40))
def test_text_is_never_truncated(text: str) -> None:
    result = format_value(TEXT, text)
    if result.ok:
        assert result.value == text.strip()
    else:
        assert result.reason in ("empty", "too_long")
        assert result.reason == "empty" or len(text.strip()) > TEXT.max_length
