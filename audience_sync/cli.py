"""The ``audience-sync`` command: a few lines over the library per command.

Exit codes: 0 success, 1 run failed, 2 usage or config error, 3 guard abort,
4 another run in progress, 130 interrupted (Ctrl-C). Every failure ends in one ``error: ...``
line on stderr (see :mod:`audience_sync.cli_errors`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from sqlalchemy.engine import Engine

from audience_sync.cli_errors import EXIT_FAILED, Failure, failure_for, format_failure
from audience_sync.config import AppConfig, load_config, load_credentials
from audience_sync.errors import CommandFailedError
from audience_sync.listrak.client import ListrakClient
from audience_sync.logs import configure_logging
from audience_sync.pipeline import SyncJob
from audience_sync.redaction import one_line
from audience_sync.report import (
    PLAN_GUARD_WOULD_ABORT,
    AudiencePlan,
    format_plan,
    format_run,
    plan_exit_code,
    summarize_run,
)
from audience_sync.sandbox.cli import sandbox_command
from audience_sync.state import migrate
from audience_sync.state.db import existing_engine, make_engine, utcnow

logger = logging.getLogger(__name__)


@dataclass
class CliState:
    config_path: str | None
    quiet: bool
    _config: AppConfig | None = None
    _engines: list[Engine] = field(default_factory=list)

    @property
    def config(self) -> AppConfig:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def job(self, *, talks_to_listrak: bool = True) -> SyncJob:
        return SyncJob(
            self.config,
            engine=self.state_engine(),
            client_factory=self.client_factory(talks_to_listrak=talks_to_listrak),
            show_progress=self.show_progress,
        )

    def client_factory(self, *, talks_to_listrak: bool = True) -> Callable[[], ListrakClient]:
        """Credentials are checked up front, before any work, when the command needs them."""
        config = self.config
        credentials = load_credentials() if talks_to_listrak else None

        def client() -> ListrakClient:
            return ListrakClient.build(config.settings.listrak, credentials or load_credentials())

        return client

    @property
    def engine(self) -> Engine:
        """For commands that only read state: a missing SQLite file is an error (exit 2)."""
        return self._keep(existing_engine(self.config.state_url))

    def state_engine(self) -> Engine:
        """For commands that write state (a new SQLite file is created)."""
        return self._keep(make_engine(self.config.state_url))

    def _keep(self, engine: Engine) -> Engine:
        self._engines.append(engine)
        return engine

    def close(self) -> None:
        """Called when the command ends: no connection outlives it."""
        for engine in self._engines:
            engine.dispose()
        self._engines.clear()

    @property
    def show_progress(self) -> bool:
        return not self.quiet and sys.stderr.isatty()


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


pass_state = click.make_pass_decorator(CliState)


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


@main.group()
def db() -> None:
    """Manage the state database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_state
def db_upgrade(state: CliState, revision: str) -> None:
    """Create or migrate the state database to the newest schema."""
    engine = state.state_engine()
    migrate.upgrade(engine, revision)
    click.echo(f"state database at revision {migrate.current_revision(engine)}")


@db.command("current")
@pass_state
def db_current(state: CliState) -> None:
    """Print the schema revision of the state database and the newest one."""
    engine = state.state_engine()
    current = migrate.current_revision(engine) or "none (empty database)"
    click.echo(f"current: {current}\nhead:    {migrate.head_revision()}")


@main.command()
@click.option("--full", is_flag=True, help="Send every current member 'on', whatever the state.")
@click.option("--force", is_flag=True, help="Override the guards (empty snapshot, mass removal).")
@click.option(
    "--reconcile",
    is_flag=True,
    help="Read Listrak's values back; also send 'off' to contacts on there but not members.",
)
@pass_state
def run(state: CliState, full: bool, force: bool, reconcile: bool) -> None:
    """Sync every audience: read, diff, submit the changes, confirm what Listrak accepted."""
    job = state.job()
    try:
        outcome = job.run(
            trigger="full" if full else "manual", full=full, force=force, reconcile=reconcile
        )
    finally:
        print_run(job)
    if outcome.status != "succeeded":
        raise CommandFailedError(f"run {outcome.run_id} {outcome.status}: {outcome.error}")


@main.command()
@click.option("--full", is_flag=True, help="Plan as a full sync would.")
@pass_state
def plan(state: CliState, full: bool) -> None:
    """Show what a run would change; sends nothing to Listrak.

    Exits 3 when a guard would abort a real run, 1 when an audience could not be planned (its
    source failed, no profile_field_id), 0 otherwise.
    """
    job = state.job(talks_to_listrak=False)
    outcome = job.run(full=full, dry_run=True, force=True)
    plans = [
        AudiencePlan(
            key=a.settings.key,
            planned_on=a.plan.planned_on if a.plan else 0,
            planned_off=a.plan.planned_off if a.plan else 0,
            guard_reason=a.verdict.reason if a.verdict and not a.verdict.ok else None,
            error=a.error or (None if a.plan else "not planned"),
        )
        for a in outcome.audiences
    ]
    click.echo(format_run(summarize_run(job.engine, outcome.run_id)))
    click.echo(f"plan (nothing was sent; see run {outcome.run_id} in the ledger):")
    for line in format_plan(plans):
        click.echo(line)
    code = plan_exit_code(plans)
    if code == PLAN_GUARD_WOULD_ABORT:
        tripped = ", ".join(p.key for p in plans if p.guard_reason is not None)
        raise CommandFailedError(f"a guard would abort the run: {tripped}", exit_code=code)
    if code != 0:
        failed = ", ".join(p.key for p in plans if p.error is not None)
        raise CommandFailedError(f"could not plan: {failed}", exit_code=code)


@main.command()
@click.option("--write", is_flag=True, help="Store the field ids in the config file.")
@pass_state
def setup(state: CliState, write: bool) -> None:
    """Create (or verify) each audience's CheckBox profile field in Listrak."""
    from audience_sync.setup_fields import setup_fields, write_field_ids

    config = state.config
    with ListrakClient.build(config.settings.listrak, load_credentials()) as client:
        results = setup_fields(config, client)
    for result in results:
        where = f"list {result.list_id}, profile field {result.field_id}"
        if result.problem:
            click.echo(f"{result.audience}: FAILED: {one_line(result.problem)}", err=True)
        else:
            click.echo(f"{result.audience}: {result.action} ({where})")
    if write:
        written = write_field_ids(config.path, results)
        click.echo(f"wrote {written} profile_field_id value(s) to {config.path}")
    failed = [r.audience for r in results if r.problem]
    if failed:
        raise CommandFailedError(f"setup failed for {', '.join(failed)}")


@main.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo"),
    show_default=True,
    help="Where the demo writes its config, member files and state database.",
)
@click.option(
    "--force", is_flag=True, help="Use --workdir even if it is not empty and not the demo's."
)
@click.pass_context
def demo(ctx: click.Context, workdir: Path, force: bool) -> None:
    """Run the job twice against a local sandbox with sample audiences."""
    from audience_sync.demo import run_demo

    parent = ctx.parent
    if parent is not None and parent.get_parameter_source("log_level") == ParameterSource.DEFAULT:
        logging.getLogger("audience_sync").setLevel(logging.WARNING)

    run_demo(workdir, echo=click.echo, force=force)


def print_run(job: SyncJob) -> None:
    """The summary of the run this job started (nothing when it never got the lock)."""
    if job.last_run_id is not None:
        click.echo(format_run(summarize_run(job.engine, job.last_run_id)))


def _register_operating_commands() -> None:
    from audience_sync.alerts_cli import COMMANDS as ALERT_COMMANDS
    from audience_sync.ops_cli import COMMANDS

    for command in (*COMMANDS, *ALERT_COMMANDS):
        main.add_command(command)


main.add_command(sandbox_command)
_register_operating_commands()


@main.group(invoke_without_command=True)
@click.pass_context
def imports(ctx: click.Context) -> None:
    """List imports posted to Listrak and not yet resolved (audience, file, age, status)."""
    if ctx.invoked_subcommand is not None:
        return
    from audience_sync.open_imports import format_open, list_open, with_listrak_status

    state = ctx.find_object(CliState)
    assert state is not None
    found = list_open(state.engine)
    if found:
        found = with_listrak_status(found, state.client_factory())
    click.echo(format_open(found, now=utcnow()))


@imports.command("abandon")
@click.argument("import_id", metavar="ID", type=int)
@pass_state
def imports_abandon(state: CliState, import_id: int) -> None:
    """Give up open import ID: its changes are sent again by the next run."""
    from audience_sync.alerts import after_abandon
    from audience_sync.open_imports import abandon

    lease = state.config.settings.sync.lock_lease_seconds
    given_up = abandon(state.engine, import_id, lease_seconds=lease)
    after_abandon(state.config, state.engine, given_up.id)
    click.echo(
        f"abandoned import {given_up.id} ({given_up.audience}, {given_up.file_name}); "
        "the next run sends its changes again"
    )
