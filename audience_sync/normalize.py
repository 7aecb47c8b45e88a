"""Email canonical form and validity: pure functions, no I/O.

The canonical form of an address is its trimmed, Unicode NFC, lowercase local part, an at-sign
and its domain in IDNA 2008 ASCII form (A-labels): ``User@Bücher.DE`` and
``user@xn--bcher-kva.de`` are both ``user@xn--bcher-kva.de``, one member. The ASCII form is what
every mail system and Listrak accept whatever their Unicode support.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import idna

if TYPE_CHECKING:  # imported when used: commands that never normalise stay light
    import pyarrow as pa

MAX_EMAIL_LENGTH = 254
MAX_DOMAIN_LENGTH = 253
_LOCAL_PART = re.compile(r"^[^\s@\"(),:;<>\[\\\]]+$")
# Letters, digits and inner hyphens, at most 63 octets (RFC 1035's LDH rule).
_LDH_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_TOP_LABEL = re.compile(r"^[a-z][a-z0-9-]+$")
# Control (NUL, ...), format (U+200B zero-width space, U+00AD soft hyphen, ...) and surrogates:
# invisible, and NUL and surrogates cannot even be stored in PostgreSQL or written as UTF-8.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


def normalize_email(raw: str | None) -> tuple[str | None, str | None]:
    """Return ``(email, None)`` for a usable address or ``(None, reason)`` for an unusable one.

    Reasons: ``empty``, ``control_or_format_character``, ``too_long``, ``not_one_at_sign``,
    ``bad_local_part``, ``bad_host_label`` (an empty label, a leading or trailing hyphen, a
    character other than letter, digit or hyphen, more than 63 octets, or a label IDNA 2008
    refuses) and ``bad_domain`` (one label only, or a top-level label that is too short or
    starts with a digit).
    """
    if raw is None:
        return None, "empty"
    email = unicodedata.normalize("NFC", raw.strip()).lower()
    if not email:
        return None, "empty"
    if any(unicodedata.category(c) in _UNPRINTABLE_CATEGORIES for c in email):
        return None, "control_or_format_character"
    if len(email) > MAX_EMAIL_LENGTH:
        return None, "too_long"
    if email.count("@") != 1:
        return None, "not_one_at_sign"
    local, domain = email.split("@")
    if (
        not local
        or not _LOCAL_PART.match(local)
        or local.startswith(".")
        or local.endswith(".")
        or ".." in local
    ):
        return None, "bad_local_part"
    labels = [_ascii_label(label) for label in domain.split(".")]
    if any(label is None for label in labels):
        return None, "bad_host_label"
    ascii_domain = ".".join(label for label in labels if label is not None)
    if len(labels) < 2 or not _TOP_LABEL.match(labels[-1] or ""):
        return None, "bad_domain"
    if len(ascii_domain) > MAX_DOMAIN_LENGTH:
        return None, "bad_domain"
    email = f"{local}@{ascii_domain}"
    if len(email) > MAX_EMAIL_LENGTH:
        return None, "too_long"
    return email, None


@functools.lru_cache(maxsize=1 << 16)
def _ascii_label(label: str) -> str | None:
    """A host label (lowercase, NFC) in its ASCII form, or ``None`` if it is not a valid one.

    Cached: IDNA costs tens of microseconds a label, and members share a few domains.
    """
    if label.isascii():
        if not _LDH_LABEL.match(label):
            return None
        if not label.startswith("xn--"):
            return label
        try:  # an A-label must decode and encode back to itself
            return label if idna.alabel(idna.ulabel(label)).decode("ascii") == label else None
        except (idna.IDNAError, UnicodeError):
            return None
    try:
        return idna.alabel(label).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None


@dataclass
class NormalizedChunk:
    """The usable emails of one chunk (deduplicated within it) and counts of rejects by reason."""

    emails: list[str] = field(default_factory=list)
    invalid: dict[str, int] = field(default_factory=dict)
    duplicates_in_chunk: int = 0


@dataclass
class NormalizedBatch:
    """The canonical forms of one Arrow batch's usable values and counts of rejects by reason.

    ``emails`` is a string array in input order, *not* deduplicated (the planner's engine
    dedupes); ``invalid`` counts the rejected values by :func:`normalize_email`'s reasons.
    """

    emails: pa.Array
    invalid: dict[str, int] = field(default_factory=dict)


def normalize_batch(raw: pa.Array) -> NormalizedBatch:
    """Normalise an Arrow string (or large string) array of raw values, nulls allowed.

    Exactly :func:`normalize_email` on each value: plain ASCII addresses are recognised and
    canonicalised by Arrow compute kernels, and only the other values (Unicode, IDN, blanks,
    nulls, rejects) become Python strings and go through :func:`normalize_email` one by one.
    """
    aligned = normalize_aligned(raw)
    if not aligned.invalid and aligned.emails.null_count == 0:
        return aligned
    return NormalizedBatch(emails=aligned.emails.drop_null(), invalid=aligned.invalid)


def normalize_aligned(raw: pa.Array) -> NormalizedBatch:
    """:func:`normalize_batch` keeping the input's positions: a rejected value is a null at
    its place (for sources with a column per email, such as a computed trait's value)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(raw, pa.ChunkedArray):
        raw = raw.combine_chunks()
    if pa.types.is_dictionary(raw.type):
        raw = raw.dictionary_decode()
    canonical = pc.ascii_lower(pc.ascii_trim_whitespace(raw))
    other = pc.invert(_simple_mask(raw, canonical))
    positions = pc.indices_nonzero(other)
    if len(positions) == 0:
        return NormalizedBatch(emails=canonical)
    # Each distinct value once (blanks and repeats are common), nulls apart.
    others = raw.take(positions).dictionary_encode()
    results = [normalize_email(value) for value in others.dictionary.to_pylist()]
    invalid: dict[str, int] = {}
    for entry in pc.value_counts(others.indices).to_pylist():
        index, count = entry["values"], entry["counts"]
        reason = normalize_email(None)[1] if index is None else results[index][1]
        if reason is not None:
            invalid[reason] = invalid.get(reason, 0) + count
    forms = pa.array([email for email, _ in results], type=canonical.type).take(others.indices)
    replaced = pc.replace_with_mask(canonical, other, forms)
    return NormalizedBatch(emails=replaced, invalid=invalid)


def normalize_chunk(raw_emails: Iterable[str | None]) -> NormalizedChunk:
    """Normalise a chunk of raw addresses, dropping invalid ones (counted) and repeats.

    :func:`normalize_batch` (so :func:`normalize_email` on each value) and then a
    first-seen-wins dedupe within the chunk.
    """
    import pyarrow as pa

    raw = list(raw_emails)
    batch = normalize_batch(pa.array(raw, type=pa.string()))
    result = NormalizedChunk(invalid=batch.invalid)
    seen: set[str] = set()
    for email in batch.emails.to_pylist():
        if email in seen:
            result.duplicates_in_chunk += 1
        else:
            seen.add(email)
            result.emails.append(email)
    return result


# A strict subset of what normalize_email accepts, in RE2 syntax: dot-separated atoms, an
# at-sign, and host labels of letters, digits and single inner hyphens (so no "xn--" label,
# which would need IDNA checks), the last starting with a letter and two or more long. With
# pure ASCII, the length limit and no label over 63 octets it implies validity, and then the
# canonical form is the ASCII-trimmed, ASCII-lowercased value (NFC changes no ASCII text, an
# LDH label is its own A-label, and Arrow trims a subset of the characters str.strip does).
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9]|-[a-z0-9])*"
_SIMPLE_EMAIL = rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[a-z](?:[a-z0-9]|-[a-z0-9])+$"
_LONG_LABEL = r"@(?:[a-z0-9-]*\.)*[a-z0-9-]{64}"
_LONG_LABEL_MIN_LENGTH = 1 + 64


def _simple_mask(values: pa.Array, canonical: pa.Array) -> pa.Array:
    """Whether each value is a simple ASCII address (``canonical`` then is its canonical form);
    false for nulls."""
    import pyarrow.compute as pc

    length = pc.binary_length(canonical)
    return pc.and_(
        pc.and_(pc.string_is_ascii(values), pc.less_equal(length, MAX_EMAIL_LENGTH)),
        pc.and_(
            pc.match_substring_regex(canonical, _SIMPLE_EMAIL),
            pc.invert(_has_long_label(canonical, length)),
        ),
    ).fill_null(False)


def _has_long_label(canonical: pa.Array, length: pa.Array) -> pa.Array:
    """``_LONG_LABEL`` matched against each value. A match takes an at-sign and 64 octets, so
    only values that long are searched: nearly none, where searching all cost as much as the
    ``_SIMPLE_EMAIL`` match."""
    import pyarrow as pa
    import pyarrow.compute as pc

    long_enough = pc.greater_equal(length, _LONG_LABEL_MIN_LENGTH).fill_null(False)
    positions = pc.indices_nonzero(long_enough)
    found = pa.nulls(len(canonical), pa.bool_()).fill_null(False)
    if len(positions) == 0:
        return found
    searched = pc.match_substring_regex(canonical.take(positions), _LONG_LABEL)
    return pc.replace_with_mask(found, long_enough, searched)


def mask_email(email: str) -> str:
    """Mask an address for logs: first character of the local part and the domain."""
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"
