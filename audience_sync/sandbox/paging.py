"""Listrak's ``cursor``/``count`` paging: ``Start`` and opaque cursors, at most 5000 a page."""

from __future__ import annotations

import base64
import binascii

from .problems import invalid_parameter

DEFAULT_COUNT = 1000
MAX_COUNT = 5000
START = "Start"
_PREFIX = "offset:"


def parse_count(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_COUNT
    try:
        count = int(raw)
    except ValueError as exc:
        raise invalid_parameter("count must be an integer.") from exc
    if not 1 <= count <= MAX_COUNT:
        raise invalid_parameter(f"count must be between 1 and {MAX_COUNT}.")
    return count


def parse_cursor(raw: str | None) -> int:
    """The offset a cursor stands for; ``Start`` (or none) is the first page."""
    if raw is None or raw == "" or raw == START:
        return 0
    try:
        text = base64.urlsafe_b64decode(raw.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise invalid_parameter("cursor is not a cursor this API issued.") from exc
    if not text.startswith(_PREFIX) or not text[len(_PREFIX) :].isdigit():
        raise invalid_parameter("cursor is not a cursor this API issued.")
    return int(text[len(_PREFIX) :])


def make_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{offset}".encode("ascii")).decode("ascii")
