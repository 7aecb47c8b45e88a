"""Email canonical form and validity: pure functions, no I/O."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

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
    """Normalise a chunk of raw addresses, dropping invalid ones (counted) and repeats."""
    result = NormalizedChunk()
    seen: set[str] = set()
    for raw in raw_emails:
        email, reason = normalize_email(raw)
        if email is None:
            assert reason is not None
            result.invalid[reason] = result.invalid.get(reason, 0) + 1
        elif email in seen:
            result.duplicates_in_chunk += 1
        else:
            seen.add(email)
            result.emails.append(email)
    return result


def mask_email(email: str) -> str:
    """Mask an address for logs: first character of the local part and the domain."""
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"
