"""Parse human durations such as ``"24h"``, ``"90m"``, ``"1h30m"`` or plain seconds."""

from __future__ import annotations

import math
import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
MAX_DURATION = timedelta(days=3650)
_EXPECTED = "expected a duration such as '24h', '90m' or a number of seconds"


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """``"3h"`` -> 3 hours; numbers are seconds; at most :data:`MAX_DURATION`.

    Raises ValueError on anything else. The message does not repeat the value: the caller
    (pydantic, via the config's error format) shows what was given.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(_EXPECTED)
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower().replace(" ", "")
        if not text or _PART.sub("", text):
            raise ValueError(_EXPECTED)
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    if math.isnan(seconds):
        raise ValueError(_EXPECTED)
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError("a duration cannot be longer than 3650 days")
    return timedelta(seconds=seconds)
