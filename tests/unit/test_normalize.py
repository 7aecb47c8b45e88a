from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_sync.normalize import mask_email, normalize_batch, normalize_chunk, normalize_email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Alice@Example.COM ", "alice@example.com"),
        ("bob+tag@shop.co.uk", "bob+tag@shop.co.uk"),
        ("Ze\u0301@example.com", "z\u00e9@example.com"),  # NFC composes e + combining acute
        ("user@b\u00fccher.de", "user@xn--bcher-kva.de"),
        ("User@B\u00dcCHER.DE", "user@xn--bcher-kva.de"),
        ("user@XN--BCHER-KVA.DE", "user@xn--bcher-kva.de"),
        ("a@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444", "a@xn--e1afmkfd.xn--p1ai"),
        ("a@ab--cd.com", "a@ab--cd.com"),
        ("a@" + "b" * 63 + ".com", "a@" + "b" * 63 + ".com"),
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
        ("a" * 250 + "@example.com", "too_long"),
        ("a..b@example.com", "bad_local_part"),
        ("alice@a.1x", "bad_domain"),
    ],
)
def test_invalid_addresses_have_a_reason(raw: str | None, reason: str) -> None:
    assert normalize_email(raw) == (None, reason)


@pytest.mark.parametrize(
    "raw",
    [
        "weird@example.com\x00",
        "a\x00b@example.com",
        "ab\u200b@example.com",  # zero-width space
        "a\u00adb@example.com",  # soft hyphen
        "ab@exam\u200dple.com",  # zero-width joiner
        "\ufeffab@example.com",  # byte order mark inside the value
        "a\x7fb@example.com",
        "a\x1bb@example.com",
    ],
)
def test_control_and_format_characters_are_rejected_with_their_own_reason(raw: str) -> None:
    assert normalize_email(raw) == (None, "control_or_format_character")
    assert normalize_chunk([raw]).invalid == {"control_or_format_character": 1}


@pytest.mark.parametrize(
    "raw",
    [
        "x@example-.com",
        "x@-example.com",
        "x@exam_ple.com",
        "x@exa..mple.com",
        "x@.example.com",
        "x@example.com.",
        "x@" + "b" * 64 + ".com",
        "x@exa!mple.com",
        "x@xn--zz.com",  # not valid Punycode
        "x@xn--a.com",
        "x@\uff45x.com",  # fullwidth letter: IDNA 2008 disallows it
        "x@\u0300ab.com",  # a label starting with a combining mark
    ],
)
def test_invalid_host_labels_are_rejected_with_their_own_reason(raw: str) -> None:
    assert normalize_email(raw) == (None, "bad_host_label")
    assert normalize_chunk([raw]).invalid == {"bad_host_label": 1}


def test_unicode_and_ascii_forms_of_a_domain_are_one_member() -> None:
    chunk = normalize_chunk(["user@b\u00fccher.de", "user@xn--bcher-kva.de", "USER@B\u00dcCHER.de"])
    assert chunk.emails == ["user@xn--bcher-kva.de"]
    assert chunk.duplicates_in_chunk == 2


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
_LABEL = st.lists(
    st.sampled_from(
        [
            "a",
            "Z",
            "0",
            "-",
            "_",
            ".",
            "e\u0301",
            "\x1c",
            "\u00fc",
            "xn--",
            "\u200b",
            "\x00",
            "b" * 30,
        ]
    ),
    max_size=4,
)
_EMAIL_LIKE = st.builds(
    lambda pad, local, domain, tld: f"{pad}{''.join(local)}@{''.join(domain)}.{tld}{pad}",
    st.sampled_from(["", " ", "\t", "\x1c", "İ"]),
    _LOCAL,
    _LABEL,
    st.sampled_from(["com", "CO", "c", "1x", "-x", "x-", "İo", "xn--p1ai", "de", "x--y"]),
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
    "a@" + "b" * 63 + ".com",
    "a@" + "b" * 64 + ".com",
    "a@" + "b" * 63 + "." + "c" * 64,
    "a@b.c-d",
    "a@b--c.com",
    "a@xn--bcher-kva.de",
    "a@b\u00fccher.de",
    "a@exam_ple.com",
    "a@b.c_d",
    "a\x00@b.com",
    "a@b.com\x00",
    "a@b.com\u200b",
    "",
    "   ",
    "\u3000a@b.com",
    "a@B\u00dcCHER.DE",
    "a@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444",
    "a@XN--BCHER-KVA.DE",
    "a@" + "b" * 63 + "." + "c" * 63,
    "a" * 200 + "@" + "b" * 63 + ".com",
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


def expected_batch(raw: list[str | None]) -> tuple[list[str], dict[str, int]]:
    """What normalize_email says value by value: the valid forms in order, repeats kept."""
    emails: list[str] = []
    invalid: dict[str, int] = {}
    for value in raw:
        email, reason = normalize_email(value)
        if email is None:
            assert reason is not None
            invalid[reason] = invalid.get(reason, 0) + 1
        else:
            emails.append(email)
    return emails, invalid


def test_batch_agrees_with_normalize_email_on_edge_cases_in_one_batch() -> None:
    raw: list[str | None] = [None, *EDGE_CASES, *EDGE_CASES]
    batch = normalize_batch(pa.array(raw, type=pa.string()))
    assert (batch.emails.to_pylist(), batch.invalid) == expected_batch(raw)


def test_batch_keeps_repeats_and_input_order() -> None:
    batch = normalize_batch(
        pa.array(["B@x.com", "user@b\u00fccher.de", "b@x.com ", None, "a@x.com"])
    )
    assert batch.emails.to_pylist() == [
        "b@x.com",
        "user@xn--bcher-kva.de",
        "b@x.com",
        "a@x.com",
    ]
    assert batch.invalid == {"empty": 1}


def test_batch_of_simple_addresses_only_and_empty_batch() -> None:
    assert normalize_batch(pa.array([" A@B.COM"])).emails.to_pylist() == ["a@b.com"]
    empty = normalize_batch(pa.array([], type=pa.string()))
    assert (empty.emails.to_pylist(), empty.invalid) == ([], {})


@settings(max_examples=300, derandomize=True)
@given(
    st.lists(_RAW, max_size=40),
    st.sampled_from([pa.string(), pa.large_string()]),
    st.integers(min_value=0, max_value=3),
)
def test_batch_agrees_with_normalize_email_row_by_row(
    raw: list[str | None], string_type: pa.DataType, offset: int
) -> None:
    """Also on large strings and on a slice (an array whose data starts at an offset)."""
    array = pa.array([None] * offset + raw, type=string_type).slice(offset)
    batch = normalize_batch(array)
    assert batch.emails.type == string_type
    assert (batch.emails.to_pylist(), batch.invalid) == expected_batch(raw)
