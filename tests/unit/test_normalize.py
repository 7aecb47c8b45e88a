from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audience_sync.normalize import mask_email, normalize_chunk, normalize_email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Alice@Example.COM ", "alice@example.com"),
        ("bob+tag@shop.co.uk", "bob+tag@shop.co.uk"),
        ("Ze\u0301@example.com", "z\u00e9@example.com"),  # NFC composes e + combining acute
    ],
)
def test_canonical_form(raw: str, expected: str) -> None:
    assert normalize_email(raw) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty"),
        ("   ", "empty"),
        ("no-at-sign", "not_one_at_sign"),
        ("a@b@c.com", "not_one_at_sign"),
        ("@example.com", "bad_local_part"),
        ("a b@example.com", "bad_local_part"),
        ("alice@localhost", "bad_domain"),
        ("alice@exa..mple.com", "bad_domain"),
        ("a" * 250 + "@example.com", "too_long"),
    ],
)
def test_invalid_addresses_have_a_reason(raw: str | None, reason: str) -> None:
    assert normalize_email(raw) == (None, reason)


def test_chunk_collapses_duplicates_and_counts_rejects() -> None:
    chunk = normalize_chunk(["A@x.com", "a@x.com ", "bad", None, "b@x.com"])
    assert chunk.emails == ["a@x.com", "b@x.com"]
    assert chunk.duplicates_in_chunk == 1
    assert chunk.invalid == {"not_one_at_sign": 1, "empty": 1}


@given(st.emails())
def test_normalisation_is_idempotent(raw: str) -> None:
    email, _ = normalize_email(raw)
    if email is not None:
        assert normalize_email(email) == (email, None)


def test_mask_hides_the_local_part() -> None:
    assert mask_email("alice@example.com") == "a***@example.com"
    assert "alice" not in mask_email("alice@example.com")
