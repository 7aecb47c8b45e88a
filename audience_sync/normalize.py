"""Email canonical form and validity: pure functions, no I/O."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

MAX_EMAIL_LENGTH = 254
_LOCAL_PART = re.compile(r"^[^\s@\"(),:;<>\[\\\]]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([^\s@.\-][^\s@.]*\.)+[^\s@.\-\d][^\s@.]+$")


def normalize_email(raw: str | None) -> tuple[str | None, str | None]:
    """Return ``(email, None)`` for a usable address or ``(None, reason)`` for an unusable one.

    The canonical form is trimmed, Unicode NFC and lowercase.
    """
    if raw is None:
        return None, "empty"
    email = unicodedata.normalize("NFC", raw.strip()).lower()
    if not email:
        return None, "empty"
    if len(email) > MAX_EMAIL_LENGTH:
        return None, "too_long"
    if email.count("@") != 1:
        return None, "not_one_at_sign"
    local, domain = email.split("@")
    if not local or not _LOCAL_PART.match(local) or local.startswith(".") or local.endswith("."):
        return None, "bad_local_part"
    if ".." in email or not _DOMAIN.match(domain):
        return None, "bad_domain"
    return email, None


@dataclass
class NormalizedChunk:
    """The usable emails of one chunk (deduplicated within it) and counts of rejects by reason."""

    emails: list[str] = field(default_factory=list)
    invalid: dict[str, int] = field(default_factory=dict)
    duplicates_in_chunk: int = 0


def normalize_chunk(raw_emails: Iterable[str | None]) -> NormalizedChunk:
    """Normalise a chunk of raw addresses, dropping invalid ones (counted) and repeats.

    The same as :func:`normalize_email` on each value; plain ASCII addresses are recognised in
    bulk by Arrow and only the rest go through :func:`normalize_email` one by one.
    """
    raw = list(raw_emails)
    canonical, simple = _simple_ascii(raw)
    result = NormalizedChunk()
    seen: set[str] = set()
    for value, simple_form, is_simple in zip(raw, canonical, simple, strict=True):
        email, reason = (simple_form, None) if is_simple else normalize_email(value)
        if email is None:
            assert reason is not None
            result.invalid[reason] = result.invalid.get(reason, 0) + 1
        elif email in seen:
            result.duplicates_in_chunk += 1
        else:
            seen.add(email)
            result.emails.append(email)
    return result


# A strict subset of what normalize_email accepts, in RE2 syntax: dot-separated atoms, an
# at-sign, labels not starting with "-" and a final label of two or more not starting with a
# digit. Together with pure ASCII and the length limit it implies validity, and then the
# canonical form is the ASCII-trimmed, ASCII-lowercased value (NFC changes no ASCII text, and
# Arrow trims a subset of the characters str.strip does).
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_EMAIL = rf"^{_ATOM}(\.{_ATOM})*@([a-z0-9_][a-z0-9_-]*\.)+[a-z_][a-z0-9_-]+$"


def _simple_ascii(raw: list[str | None]) -> tuple[list[str | None], list[bool]]:
    """For each value: its canonical form if it is a simple ASCII address, and whether it is."""
    values = pa.array(raw, type=pa.string())
    canonical = pc.ascii_lower(pc.ascii_trim_whitespace(values))
    simple = pc.and_(
        pc.and_(
            pc.string_is_ascii(values), pc.less_equal(pc.binary_length(canonical), MAX_EMAIL_LENGTH)
        ),
        pc.match_substring_regex(canonical, _SIMPLE_EMAIL),
    ).fill_null(False)
    return canonical.to_pylist(), simple.to_pylist()


def mask_email(email: str) -> str:
    """Mask an address for logs: first character of the local part and the domain."""
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"
