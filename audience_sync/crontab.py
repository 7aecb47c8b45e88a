"""Standard crontab expressions for APScheduler 3, whose ``from_crontab`` numbers weekdays from
Monday (0 = Monday) where crontab numbers them from Sunday (0 and 7 = Sunday)."""

from __future__ import annotations

import re
from datetime import tzinfo

from apscheduler.triggers.cron import CronTrigger

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NUMBER = re.compile(r"(?<![/\d])\d+")


def weekday_names(field: str) -> str:
    """``"1-5"`` -> ``"mon-fri"``, ``"0"`` -> ``"sun"``; steps (``*/2``) stay numbers."""
    if field in ("0-6", "0-7", "1-7"):
        return "*"

    def name(match: re.Match[str]) -> str:
        number = int(match.group(0))
        if number > 7:
            raise ValueError(f"day of week {number} is out of range 0-7")
        return _DAY_NAMES[number]

    return _DAY_NUMBER.sub(name, field)


def cron_trigger(expression: str, timezone: tzinfo) -> CronTrigger:
    """Raises ValueError naming what is wrong with the expression."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    minute, hour, day, month, day_of_week = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=weekday_names(day_of_week),
        timezone=timezone,
    )
