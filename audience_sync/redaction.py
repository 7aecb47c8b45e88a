"""One redaction for every error text that is printed, logged or stored (pure, no I/O).

``redact`` masks email addresses and removes bearer tokens, secrets, URL passwords and the SQL
and bound parameters SQLAlchemy appends to its messages. ``one_line`` does the same and folds the
text into a single printable line, for table cells, error columns and the CLI's ``error:`` line.
"""

from __future__ import annotations

import re

from audience_sync.normalize import mask_email

_NOT_IN_ADDRESS = r"\s@,;:<>()\[\]\"/\\"
EMAIL_PATTERN = re.compile(
    rf"(?!\*+@)[^{_NOT_IN_ADDRESS}]+@(?:[^{_NOT_IN_ADDRESS}'.]+\.)+(?:xn--[A-Za-z0-9-]+|[^\W\d_]{{2,}})"
)
BEARER_PATTERN = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]+")
SECRET_PATTERN = re.compile(
    r"(?i)((?:client_secret|access_token|refresh_token|password|secret|token)\"?'?\s*[:=]\s*"
    r"\"?'?)[^\s&\"',})\]]+"
)
URL_PASSWORD_PATTERN = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@]*:)[^\s@/]+@")
# SQLAlchemy appends "[SQL: ...]", "[parameters: ...]" and a background link to its messages.
SQL_TAIL_PATTERN = re.compile(r"\s*\[(?:SQL|parameters|generated in)[: ].*\Z", re.DOTALL)
SQL_BACKGROUND_PATTERN = re.compile(r"\s*\(Background on this error at: [^)]*\)")
LINE_BREAKS = re.compile(r"\s*[\r\n\u2028\u2029\x0b\x0c\x85]+\s*")

MAX_LINE = 500


def redact(text: str) -> str:
    """Text safe to show or store: no email in clear, no secret, token, password or SQL."""
    text = SQL_TAIL_PATTERN.sub(" [SQL not shown]", text)
    text = SQL_BACKGROUND_PATTERN.sub("", text)
    text = BEARER_PATTERN.sub(r"\1[redacted]", text)
    text = URL_PASSWORD_PATTERN.sub(r"\1***@", text)
    text = SECRET_PATTERN.sub(r"\1[redacted]", text)
    return EMAIL_PATTERN.sub(lambda m: mask_email(m.group(0)), text)


def one_line(text: str, *, limit: int = MAX_LINE) -> str:
    """``redact`` plus a single printable line: line breaks folded, other control and format
    characters escaped, at most ``limit`` characters."""
    folded = LINE_BREAKS.sub(" | ", redact(text).strip())
    printable = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in folded)
    if len(printable) > limit:
        return printable[: limit - 3] + "..."
    return printable


def one_line_or_none(text: str | None) -> str | None:
    return None if text is None else one_line(text)


__all__ = ["one_line", "one_line_or_none", "redact"]
