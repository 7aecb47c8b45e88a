"""The CLI's one error line: what a failure says and which exit code it ends with (pure).

Text mode: ``error: <message>``. JSON mode (``--log-format json``): one object
``{"level": "error", "event": "error", "message": ..., "exit_code": ...}``. Every message is
redacted; only a config error keeps its line breaks (it lists one problem per line).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from audience_sync.errors import AudienceSyncError, ConfigError
from audience_sync.redaction import one_line, redact

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Failure:
    message: str
    exit_code: int


def failure_for(exc: BaseException) -> Failure:
    """What to tell the user about an exception that ended a command."""
    if isinstance(exc, ConfigError):
        return Failure(redact(str(exc)).strip(), exc.exit_code)
    if isinstance(exc, AudienceSyncError):
        return Failure(one_line(str(exc), limit=2000), exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        return Failure("interrupted", EXIT_INTERRUPTED)
    # The message of an unexpected exception may hold data (an address, a row): never shown.
    return Failure(
        f"unexpected {type(exc).__name__}; rerun with --log-level DEBUG for details", EXIT_FAILED
    )


def format_failure(failure: Failure, *, log_format: str) -> str:
    if log_format == "json":
        return json.dumps(
            {
                "level": "error",
                "event": "error",
                "message": failure.message,
                "exit_code": failure.exit_code,
            }
        )
    return f"error: {failure.message}"


__all__ = ["Failure", "failure_for", "format_failure"]
