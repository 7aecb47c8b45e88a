"""``audience-sync alerts test``: send a test message to every configured webhook."""

from __future__ import annotations

import click

from audience_sync.cli.state import CliState, pass_state


@click.group("alerts")
def alerts_group() -> None:
    """Failure alerts to the webhooks in [alerts]."""


@alerts_group.command("test")
@pass_state
def alerts_test(state: CliState) -> None:
    """Send a test alert to every webhook in [alerts] webhook_urls; exit 1 if any fails."""
    from audience_sync.alerts import send_test

    config = state.config
    if not config.settings.alerts.webhook_urls:
        raise click.UsageError(
            f'no webhooks configured in {config.path}: set [alerts] webhook_urls = ["https://..."]'
        )
    deliveries = send_test(config)
    for delivery in deliveries:
        if delivery.status == "delivered":
            click.echo(f"{delivery.receiver}: delivered")
        else:
            click.echo(f"{delivery.receiver}: FAILED: {delivery.error}", err=True)
    if any(d.status != "delivered" for d in deliveries):
        raise click.exceptions.Exit(1)


COMMANDS = (alerts_group,)
