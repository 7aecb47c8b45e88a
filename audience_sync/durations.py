"""Parse human durations such as ``"24h"``, ``"90m"``, ``"1h30m"`` or plain seconds."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """``"3h"`` -> 3 hours; numbers are seconds. Raises ValueError on anything else."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '24h', '90m' or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower().replace(" ", "")
        if not text or _PART.sub("", text):
            raise ValueError(
                f"expected a duration such as '24h', '90m' or a number of seconds, got {value!r}"
            )
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return timedelta(seconds=seconds)
