"""Standard crontab expressions for APScheduler 3, whose ``from_crontab`` numbers weekdays from
Monday (0 = Monday) where crontab numbers them from Sunday (0 and 7 = Sunday).

The day-of-week field is expanded here to the explicit set of crontab days and handed to
APScheduler as day names, so no numbering, range or step is ever interpreted by APScheduler.
"""

from __future__ import annotations

from datetime import tzinfo

from apscheduler.triggers.cron import CronTrigger

DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_ALL_DAYS = frozenset(range(7))


def crontab_weekdays(field: str) -> frozenset[int]:
    """The days a crontab day-of-week field selects, 0 = Sunday ... 6 = Saturday.

    The field is a comma-separated list of ``*``, ``N`` or ``N-M``, each optionally followed
    by ``/STEP``; ``N`` is 0-7 (7 = Sunday) or a day name (``sun`` ... ``sat``); ``N/STEP``
    means ``N-7/STEP``. Raises ValueError naming what is wrong.
    """
    if not field:
        raise ValueError("the day-of-week field is empty")
    days: set[int] = set()
    for item in field.split(","):
        days |= _item_days(item)
    return frozenset(days)


def _item_days(item: str) -> set[int]:
    span, slash, step_text = item.partition("/")
    step = _step(step_text, item) if slash else 1
    if span == "*":
        first, last = 0, 6
    elif "-" in span:
        low, _, high = span.partition("-")
        first, last = _day(low, item), _day(high, item)
        if first > last:
            raise ValueError(f"day-of-week range {item!r} runs backwards")
    else:
        first = _day(span, item)
        last = 7 if slash else first
    return {day % 7 for day in range(first, last + 1, step)}


def _step(text: str, item: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) == 0:
        raise ValueError(f"day-of-week step in {item!r} must be a whole number of at least 1")
    return int(text)


def _day(text: str, item: str) -> int:
    """0-7 as written (7 stays 7 so that ``5-7`` is a valid range)."""
    lowered = text.lower()
    if lowered in DAY_NAMES:
        return DAY_NAMES.index(lowered)
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"day of week {text!r} in {item!r} is not 0-7 or a day name")
    number = int(text)
    if number > 7:
        raise ValueError(f"day of week {number} is out of range 0-7")
    return number


def weekday_names(field: str) -> str:
    """The field as APScheduler day names: ``"1-5"`` -> ``"mon,tue,wed,thu,fri"``,
    ``"*/2"`` -> ``"sun,tue,thu,sat"``; every day -> ``"*"``."""
    days = crontab_weekdays(field)
    if days == _ALL_DAYS:
        return "*"
    return ",".join(DAY_NAMES[day] for day in sorted(days))


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
