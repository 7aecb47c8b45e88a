"""The ``audience-sync`` command: a few lines over the library per command.

Exit codes: 0 success, 1 run failed, 2 usage or config error, 3 guard abort,
4 another run in progress.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from sqlalchemy.engine import Engine

from audience_sync.config import AppConfig, load_config, load_credentials
from audience_sync.errors import AudienceSyncError
from audience_sync.listrak.client import ListrakClient
from audience_sync.logs import configure_logging, redact
from audience_sync.pipeline import SyncJob
from audience_sync.report import format_run, summarize_run
from audience_sync.sandbox.cli import sandbox_command
from audience_sync.state import migrate
from audience_sync.state.db import make_engine, utcnow
from audience_sync.state.statuses import RunStatus, RunTrigger


@dataclass
class CliState:
    config_path: str | None
    quiet: bool
    _config: AppConfig | None = None

    @property
    def config(self) -> AppConfig:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def job(self, *, talks_to_listrak: bool = True) -> SyncJob:
        return SyncJob(
            self.config,
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
        return make_engine(self.config.state_url)

    @property
    def show_progress(self) -> bool:
        return not self.quiet and sys.stderr.isatty()


class AudienceSyncGroup(click.Group):
    """Turns the package's errors into a one-line message and the documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AudienceSyncError as exc:
            click.echo(f"error: {redact(str(exc))}", err=True)
            ctx.exit(exc.exit_code)


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


@main.group()
def db() -> None:
    """Manage the state database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_state
def db_upgrade(state: CliState, revision: str) -> None:
    """Create or migrate the state database to the newest schema."""
    engine = make_engine(state.config.state_url)
    migrate.upgrade(engine, revision)
    click.echo(f"state database at revision {migrate.current_revision(engine)}")


@db.command("current")
@pass_state
def db_current(state: CliState) -> None:
    """Print the schema revision of the state database and the newest one."""
    engine = make_engine(state.config.state_url)
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
            trigger=RunTrigger.FULL if full else RunTrigger.MANUAL,
            full=full,
            force=force,
            reconcile=reconcile,
        )
    finally:
        print_run(job)
    if outcome.status != RunStatus.SUCCEEDED:
        sys.exit(1)


@main.command()
@click.option("--full", is_flag=True, help="Plan as a full sync would.")
@pass_state
def plan(state: CliState, full: bool) -> None:
    """Show what a run would change; sends nothing to Listrak."""
    job = state.job(talks_to_listrak=False)
    outcome = job.run(full=full, dry_run=True, force=True)
    click.echo(format_run(summarize_run(job.engine, outcome.run_id)))
    click.echo(f"(planned only: nothing was sent; see run {outcome.run_id} in the ledger)")


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
            click.echo(f"{result.audience}: FAILED: {result.problem}", err=True)
        else:
            click.echo(f"{result.audience}: {result.action} ({where})")
    if write:
        written = write_field_ids(config.path, results)
        click.echo(f"wrote {written} profile_field_id value(s) to {config.path}")
    failed = [r.audience for r in results if r.problem]
    if failed:
        raise click.exceptions.Exit(1)


@main.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo"),
    show_default=True,
    help="Where the demo writes its config, member files and state database.",
)
@click.pass_context
def demo(ctx: click.Context, workdir: Path) -> None:
    """Run the job twice against a local sandbox with sample audiences."""
    from audience_sync.demo import run_demo

    parent = ctx.parent
    if parent is not None and parent.get_parameter_source("log_level") == ParameterSource.DEFAULT:
        logging.getLogger("audience_sync").setLevel(logging.WARNING)

    run_demo(workdir, echo=click.echo)


def print_run(job: SyncJob) -> None:
    """The summary of the run this job started (nothing when it never got the lock)."""
    if job.last_run_id is not None:
        click.echo(format_run(summarize_run(job.engine, job.last_run_id)))


def _register_operating_commands() -> None:
    from audience_sync.ops_cli import COMMANDS

    for command in COMMANDS:
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
    from audience_sync.open_imports import abandon

    lease = state.config.settings.sync.lock_lease_seconds
    given_up = abandon(state.engine, import_id, lease_seconds=lease)
    click.echo(
        f"abandoned import {given_up.id} ({given_up.audience}, {given_up.file_name}); "
        "the next run sends its changes again"
    )
