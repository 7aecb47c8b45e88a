"""Operating commands: ``schedule``, ``verify``, ``status``, ``history`` and ``show``."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import click

from audience_sync.cli.state import CliState, pass_state, print_run
from audience_sync.errors import CommandFailedError
from audience_sync.runlog import (
    ChangeRow,
    changes,
    format_changes,
    format_history,
    format_status,
    history,
    run_exists,
    status,
    write_csv,
)
from audience_sync.scheduler import describe, serve
from audience_sync.state.migrate import ensure_current
from audience_sync.state.statuses import ChangeAction, ChangeStatus, RunStatus
from audience_sync.verify import VerifyJob, VerifyReport, format_report

CHANGE_STATUSES = [status.value for status in ChangeStatus]


@click.command()
@click.option(
    "--run-now", is_flag=True, help="Start the first run at once, not at the first due time."
)
@pass_state
def schedule(state: CliState, run_now: bool) -> None:
    """Run the sync unattended on [schedule] every/cron until SIGTERM or Ctrl-C.

    One run at a time; runs missed while the process was down or busy collapse into one; a run
    later than [schedule] misfire_grace is skipped. A stop signal lets the current run finish.
    """
    settings = state.config.settings.schedule
    if settings.every is None and settings.cron is None:
        raise click.UsageError(
            f'no schedule configured in {state.config.path}: set [schedule] every = "3h" '
            'or cron = "0 */3 * * *"'
        )
    job = state.job()
    ensure_current(job.engine)
    click.echo(f"scheduling audience-sync {describe(settings)}; stop with SIGTERM or Ctrl-C")
    serve(settings, job, job.engine, run_now=run_now)


@click.command()
@click.option("--repair", is_flag=True, help="Send the fixes as a run (trigger 'repair').")
@click.option("--force", is_flag=True, help="With --repair: override the guards.")
@pass_state
def verify(state: CliState, repair: bool, force: bool) -> None:
    """Compare Listrak's actual values with confirmed state and the latest snapshot.

    Prints the drift per audience (counts and a sample). Exits 1 when there is any drift, or
    when an audience could not be compared (no profile_field_id, no sync yet): only exit 0
    means every audience was compared and matched.
    """
    job = VerifyJob(
        state.config,
        engine=state.state_engine(),
        client_factory=state.client_factory(),
        show_progress=state.show_progress,
    )
    if not repair:
        report = job.verify()
        click.echo(format_report(report))
        problems = []
        if report.drift_total:
            click.echo(f"drift: {report.drift_total} contact(s); `verify --repair` fixes it")
            problems.append(f"drift in {report.drift_total} contact(s)")
        if report.not_compared:
            click.echo(f"not compared: {', '.join(report.not_compared)}")
            problems.append(f"could not compare {', '.join(report.not_compared)}")
        if problems:
            raise CommandFailedError("verify: " + "; ".join(problems))
        return
    try:
        report = job.repair(force=force)
    finally:
        if getattr(job, "checks", None):
            click.echo(format_report(VerifyReport(audiences=job.checks)))
        print_run(job)
    assert report.run is not None
    if report.run.status != RunStatus.SUCCEEDED:
        run = report.run
        raise CommandFailedError(f"repair run {run.run_id} {run.status}: {run.error}")


@click.command("status")
@pass_state
def status_command(state: CliState) -> None:
    """Last run per audience, the next scheduled run, pending and skipped counts."""
    engine = state.engine
    ensure_current(engine)
    keys = [a.key for a in state.config.settings.audiences]
    click.echo(
        format_status(
            status(engine, keys), schedule_configured=describe(state.config.settings.schedule)
        )
    )


@click.command("history")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True)
@pass_state
def history_command(state: CliState, limit: int) -> None:
    """The runs, newest first, with their counts."""
    engine = state.engine
    ensure_current(engine)
    click.echo(format_history(history(engine, limit=limit)))


@click.command()
@click.argument("run_id", metavar="RUN", type=int)
@click.option("--audience", help="Only this audience key.")
@click.option("--action", type=click.Choice([action.value for action in ChangeAction]))
@click.option("--status", "change_status", type=click.Choice(CHANGE_STATUSES))
@click.option("--limit", "-n", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--csv", "as_csv", is_flag=True, help="Every matching change as CSV on stdout.")
@pass_state
def show(
    state: CliState,
    run_id: int,
    audience: str | None,
    action: str | None,
    change_status: str | None,
    limit: int,
    as_csv: bool,
) -> None:
    """The changes of one run (email, audience, action, status, reason)."""
    engine = state.engine
    ensure_current(engine)
    if not run_exists(engine, run_id):
        raise click.BadParameter(f"there is no run {run_id} (see `audience-sync history`)")
    if audience is not None:
        state.config.audience(audience)

    def matching(limit: int | None = None) -> Iterator[ChangeRow]:
        return changes(
            engine, run_id, audience=audience, action=action, status=change_status, limit=limit
        )

    if as_csv:
        write_csv(matching(), sys.stdout)
        return
    from audience_sync.report import format_run, summarize_run

    click.echo(format_run(summarize_run(engine, run_id)))
    shown = 0
    for line in format_changes(matching(limit + 1)):
        shown += 1
        if shown > limit:
            click.echo(f"  ... more than {limit}; use --limit or --csv")
            break
        click.echo(line)
    if shown == 0:
        click.echo("  no changes match")


COMMANDS = (schedule, verify, status_command, history_command, show)
