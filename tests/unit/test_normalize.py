from __future__ import annotations

import pytest
from hypothesis import given, settings
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


_LOCAL = st.lists(st.sampled_from(["a", "Z", "0", ".", "-", "+", "é", " ", '"', "@"]), max_size=4)
_LABEL = st.lists(st.sampled_from(["a", "Z", "0", "-", "_", ".", "e\u0301", "\x1c"]), max_size=4)
_EMAIL_LIKE = st.builds(
    lambda pad, local, domain, tld: f"{pad}{''.join(local)}@{''.join(domain)}.{tld}{pad}",
    st.sampled_from(["", " ", "\t", "\x1c", "İ"]),
    _LOCAL,
    _LABEL,
    st.sampled_from(["com", "CO", "c", "1x", "-x", "x-", "İo"]),
)
_RAW = st.one_of(st.none(), st.text(max_size=30), st.emails(), *[_EMAIL_LIKE] * 6)

EDGE_CASES = [
    ".a@a.com",
    "a.@a.com",
    "a..b@a.com",
    "a@-a.com",
    "a@a-.com",
    "a@a.1x",
    "a@a.x1",
    "a@a.c",
    "a@a..com",
    "a@.a.com",
    "a@a.com.",
    "\x1ca@b.com\x1f",
    " A@B.COM\t",
    "a@b.co-",
    "a@_.com",
    "a@b._c",
    "\u0130@b.com",
    "a@b.com\n",
    "a\n@b.com",
    "a,b@c.com",
    "a@b@c.com",
    "a" * 64 + "@" + "b" * 185 + ".com",
    "a" * 64 + "@" + "b" * 186 + ".com",
]


@pytest.mark.parametrize("raw", EDGE_CASES)
def test_chunk_agrees_with_normalize_email_on_edge_cases(raw: str) -> None:
    email, reason = normalize_email(raw)
    chunk = normalize_chunk([raw])
    assert chunk.emails == ([] if email is None else [email])
    assert chunk.invalid == ({} if reason is None else {reason: 1})


@settings(max_examples=300)
@given(st.lists(_RAW, max_size=40))
def test_chunk_agrees_with_normalize_email_row_by_row(raw: list[str | None]) -> None:
    expected_emails: list[str] = []
    invalid: dict[str, int] = {}
    for value in raw:
        email, reason = normalize_email(value)
        if email is None:
            assert reason is not None
            invalid[reason] = invalid.get(reason, 0) + 1
        elif email not in expected_emails:
            expected_emails.append(email)
    chunk = normalize_chunk(raw)
    assert chunk.emails == expected_emails
    assert chunk.invalid == invalid
    assert chunk.duplicates_in_chunk == len(raw) - sum(invalid.values()) - len(expected_emails)
