"""The ``audience-sync`` group: global options, and the one error path every command ends in.

Exit codes: 0 success, 1 run failed, 2 usage or config error, 3 guard abort,
4 another run in progress, 130 interrupted (Ctrl-C). Every failure ends in one ``error: ...``
line on stderr (see :mod:`audience_sync.cli.failures`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

from audience_sync.cli.failures import EXIT_FAILED, Failure, failure_for, format_failure
from audience_sync.cli.state import CliState
from audience_sync.logs import configure_logging

logger = logging.getLogger(__name__)


class AudienceSyncGroup(click.Group):
    """Every failure ends in one ``error: ...`` line (a JSON object with ``--log-format json``)
    and the documented exit code; a traceback only with ``--log-level DEBUG``."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            returned = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            _show_click_failure(exc)
            sys.exit(exc.exit_code)
        except click.Abort as exc:
            failure = Failure("aborted", EXIT_FAILED)
            if isinstance(exc.__cause__, KeyboardInterrupt):
                failure = failure_for(exc.__cause__)
            _echo_failure(failure, _log_format(None))
            sys.exit(failure.exit_code)
        sys.exit(returned if isinstance(returned, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except (Exception, KeyboardInterrupt) as exc:
            logger.debug("cli.failed", exc_info=exc)
            failure = failure_for(exc)
            _echo_failure(failure, _log_format(ctx))
            raise click.exceptions.Exit(failure.exit_code) from None


def _log_format(ctx: click.Context | None) -> str:
    if ctx is None:
        return "text"
    return str(ctx.find_root().params.get("log_format") or "text")


def _echo_failure(failure: Failure, log_format: str) -> None:
    click.echo(format_failure(failure, log_format=log_format), err=True)


def _show_click_failure(exc: click.ClickException) -> None:
    """Click's usage errors keep their usage hint in text mode; the last line is ours."""
    ctx = getattr(exc, "ctx", None)
    log_format = _log_format(ctx)
    if log_format == "text" and isinstance(exc, click.UsageError) and ctx is not None:
        hint = f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help."
        click.echo(f"{ctx.get_usage()}\n{hint}\n", err=True)
    _echo_failure(Failure(exc.format_message(), exc.exit_code), log_format)


@click.group(cls=AudienceSyncGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Config file (default: $AUDIENCE_SYNC_CONFIG, else ./audience-sync.toml).",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.version_option(package_name="audience_sync")
@click.pass_context
def main(
    ctx: click.Context, config_path: str | None, log_format: str, log_level: str, quiet: bool
) -> None:
    """Keep Listrak CheckBox profile fields in step with Segment Engage audiences."""
    configure_logging(level=log_level, fmt=log_format)
    ctx.obj = CliState(config_path=config_path, quiet=quiet)
    ctx.call_on_close(ctx.obj.close)


def _register_commands() -> None:
    from audience_sync.cli import (
        alerts_commands,
        imports_commands,
        ops_commands,
        sync_commands,
    )
    from audience_sync.sandbox.cli import sandbox_command

    for module in (sync_commands, ops_commands, imports_commands, alerts_commands):
        for command in module.COMMANDS:
            main.add_command(command)
    main.add_command(sandbox_command)


_register_commands()
