"""Logging: one logger tree (``audience_sync``), events with structured extras, text or JSON.

A filter on the handler masks email addresses and removes bearer tokens and secrets from every
record, including its extras, so nothing sensitive reaches a log line whatever the caller passed.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

from audience_sync.redaction import one_line, redact

# Libraries whose records go through the same handler (format and redaction); above DEBUG
# only their warnings show.
LIBRARY_LOGGERS = ("stamina", "apscheduler")

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = one_line(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, one_line(value))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class TextFormatter(logging.Formatter):
    """``time level event key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS
        )
        line = f"{self.formatTime(record)} {record.levelname:<7} {record.getMessage()}"
        if extras:
            line += f" {extras}"
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def configure_logging(
    *, level: str = "INFO", fmt: str = "text", stream: TextIO | None = None
) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    else:
        formatter = TextFormatter()
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    for name in ("audience_sync", *LIBRARY_LOGGERS):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.addHandler(handler)
        wanted: int = logging.getLevelName(level.upper())
        if name != "audience_sync" and wanted > logging.DEBUG:
            wanted = max(wanted, logging.WARNING)
        logger.setLevel(wanted)
        logger.propagate = False
    return handler
