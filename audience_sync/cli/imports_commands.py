"""``imports``: the imports posted to Listrak and not yet resolved; ``imports abandon ID``."""

from __future__ import annotations

import click

from audience_sync.cli.state import CliState, pass_state
from audience_sync.state.db import utcnow


@click.group(invoke_without_command=True)
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


COMMANDS = (imports,)
