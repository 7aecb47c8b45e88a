"""The one redaction every printed, logged or stored error goes through."""

from __future__ import annotations

import pytest

from audience_sync.cli.failures import Failure, failure_for, format_failure
from audience_sync.errors import ConfigError, StateError
from audience_sync.redaction import one_line, redact

SQLALCHEMY_MESSAGE = (
    "(sqlite3.OperationalError) database is locked\n"
    "[SQL: INSERT INTO listrak_imports (first_email, last_email) VALUES (?, ?)]\n"
    "[parameters: ('alice.smith@example.com', 'zed@example.org')]\n"
    "(Background on this error at: https://sqlalche.me/e/20/e3q8)"
)


def test_sql_and_parameters_are_cut_and_the_cause_kept() -> None:
    assert one_line(SQLALCHEMY_MESSAGE) == (
        "(sqlite3.OperationalError) database is locked [SQL not shown]"
    )


def test_parameters_without_sql_are_cut() -> None:
    assert redact("failed [parameters: {'email': 'bob@example.com'}]") == ("failed [SQL not shown]")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no member alice@example.com here", "no member a***@example.com here"),
        ("('o'brien@example.co.uk',)", "('***@example.co.uk',)"),
        ("x\u200b@example.com refused", "x***@example.com refused"),
        ("user@bücher.de", "u***@bücher.de"),
        ("user@xn--bcher-kva.de", "u***@xn--bcher-kva.de"),
    ],
)
def test_addresses_are_masked_like_the_logs_do(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "could not connect to postgresql://sync:hunter2@db.internal:5432/state",
            "could not connect to postgresql://sync:***@db.internal:5432/state",
        ),
        ("client_secret=abc123&grant_type=x", "client_secret=[redacted]&grant_type=x"),
        ('{"access_token": "tok-987"}', '{"access_token": "[redacted]"}'),
        ("Authorization: Bearer eyJhbGciOi.x.y", "Authorization: Bearer [redacted]"),
    ],
)
def test_passwords_secrets_and_tokens_are_removed(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_one_line_folds_breaks_and_escapes_control_characters() -> None:
    assert one_line("first\r\n  second\nthird\x00 end") == "first | second | third\\u0000 end"


def test_one_line_keeps_table_cells_short() -> None:
    assert one_line("x" * 1000, limit=20) == "x" * 17 + "..."


def test_state_error_line_is_the_message() -> None:
    failure = failure_for(StateError("state database sqlite:///x.db: database is locked"))
    assert format_failure(failure, log_format="text") == (
        "error: state database sqlite:///x.db: database is locked"
    )
    assert failure.exit_code == 1


def test_unexpected_exception_shows_its_type_never_its_text() -> None:
    failure = failure_for(ValueError("row 7: alice@example.com is odd"))
    assert failure == Failure("unexpected ValueError; rerun with --log-level DEBUG for details", 1)


def test_json_error_line_is_one_object() -> None:
    line = format_failure(Failure("disk full", 1), log_format="json")
    assert line == '{"level": "error", "event": "error", "message": "disk full", "exit_code": 1}'


def test_config_error_keeps_its_problem_list_but_is_redacted() -> None:
    failure = failure_for(ConfigError("invalid config in c.toml:\n  a: bad (password=pw1)"))
    assert failure == Failure("invalid config in c.toml:\n  a: bad (password=[redacted])", 2)


def test_interrupt_is_a_line_of_its_own() -> None:
    assert failure_for(KeyboardInterrupt()) == Failure("interrupted", 130)
