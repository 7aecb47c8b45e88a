"""The sync commands: ``db``, ``run``, ``plan``, ``setup`` and ``demo``."""

from __future__ import annotations

import logging
from pathlib import Path

import click
from click.core import ParameterSource

from audience_sync.cli.state import CliState, pass_state, print_run
from audience_sync.config import load_credentials
from audience_sync.errors import CommandFailedError, TraitsNotSyncedError
from audience_sync.listrak.client import ListrakClient
from audience_sync.redaction import one_line
from audience_sync.report import (
    PLAN_GUARD_WOULD_ABORT,
    AudiencePlan,
    format_plan,
    format_run,
    plan_exit_code,
    summarize_run,
)
from audience_sync.state import migrate
from audience_sync.state.statuses import RunStatus, RunTrigger


@click.group()
def db() -> None:
    """Manage the state database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_state
def db_upgrade(state: CliState, revision: str) -> None:
    """Create or migrate the state database to the newest schema."""
    engine = state.state_engine()
    fresh = migrate.current_revision(engine) is None
    migrate.upgrade(engine, revision)
    click.echo(f"state database at revision {migrate.current_revision(engine)}")
    elsewhere = migrate.state_elsewhere(engine) if fresh else []
    if elsewhere:
        click.echo(
            f"note: this installation starts empty; state tables also exist in schema "
            f"{', '.join(elsewhere)} (changing [state] schema does not move them)",
            err=True,
        )


@db.command("current")
@pass_state
def db_current(state: CliState) -> None:
    """Print the schema revision of the state database and the newest one."""
    engine = state.state_engine()
    current = migrate.current_revision(engine) or "none (empty database)"
    click.echo(f"current: {current}\nhead:    {migrate.head_revision()}")


@click.command()
@click.option("--full", is_flag=True, help="Send every current member 'on', whatever the state.")
@click.option("--force", is_flag=True, help="Override the guards (empty snapshot, mass removal).")
@click.option(
    "--reconcile",
    is_flag=True,
    help="Read Listrak's values back; also send 'off' to contacts on there but not members.",
)
@pass_state
def run(state: CliState, full: bool, force: bool, reconcile: bool) -> None:
    """Sync every audience and computed trait: read, diff, submit the changes, confirm what
    Listrak accepted."""
    if reconcile and state.config.settings.traits:
        raise TraitsNotSyncedError(
            f"{state.config.path} configures [[traits]]: --reconcile reads back CheckBox "
            "values only and does not reconcile computed traits yet; run without --reconcile"
        )
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
        raise CommandFailedError(f"run {outcome.run_id} {outcome.status}: {outcome.error}")


@click.command()
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
            trait=a.is_trait,
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


@click.command()
@click.option("--write", is_flag=True, help="Store the field ids in the config file.")
@pass_state
def setup(state: CliState, write: bool) -> None:
    """Create (or verify) each audience's CheckBox profile field in Listrak, and each trait's
    typed field (Text, Numeric or Date created; RadioButton verified)."""
    from audience_sync.setup_fields import setup_fields, write_field_ids

    config = state.config
    with ListrakClient.build(config.settings.listrak, load_credentials()) as client:
        results = setup_fields(config, client)
    for result in results:
        where = f"list {result.list_id}, profile field {result.field_id}"
        if result.problem:
            click.echo(f"{result.audience}: FAILED: {one_line(result.problem)}", err=True)
        else:
            kind = f", {result.data_type}" if result.kind == "trait" else ""
            click.echo(f"{result.audience}: {result.action} ({where}{kind})")
    if write:
        written = write_field_ids(config.path, results)
        click.echo(f"wrote {written} profile_field_id value(s) to {config.path}")
    failed = [r.audience for r in results if r.problem]
    if failed:
        raise CommandFailedError(f"setup failed for {', '.join(failed)}")


@click.command()
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


COMMANDS = (db, run, plan, setup, demo)
