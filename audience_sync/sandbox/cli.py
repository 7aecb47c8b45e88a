"""``sandbox``: run the Listrak sandbox in the foreground (registered by the main CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .settings import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DropNextPost,
    FailNext,
    Faults,
    SandboxSettings,
)


@click.command(name="sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, help="Port; 0 picks a free one.")
@click.option("--client-id", default=DEFAULT_CLIENT_ID, show_default=True)
@click.option("--client-secret", default=DEFAULT_CLIENT_SECRET, help="Accepted client secret.")
@click.option(
    "--seed",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSON: {"lists": [{"listId", "listName", "fields": [...], "contacts": [...]}]}.',
)
@click.option("--token-lifetime", type=float, default=900.0, show_default=True, help="Seconds.")
@click.option("--import-delay", type=float, default=0.2, show_default=True, help="Seconds.")
@click.option("--max-body-bytes", type=int, help="Larger request bodies answer 404.")
@click.option("--api-paused", is_flag=True, help="Refuse every request, token requests too.")
@click.option("--beta-route/--no-beta-route", default=True, show_default=True)
@click.option("--fail-next", type=int, default=0, help="Fail the next N API requests.")
@click.option(
    "--fail-status",
    type=click.IntRange(429, 599),
    default=500,
    show_default=True,
    help="Status of --fail-next failures (429 or 5xx).",
)
@click.option("--fail-method", help="Only fail requests with this method.")
@click.option("--fail-path-contains", help="Only fail requests whose path contains this.")
@click.option("--drop-next-post", type=int, default=0, help="Drop the answers of N POSTs.")
@click.option("--drop-path-contains", help="Only drop POSTs whose path contains this.")
def sandbox_command(
    host: str,
    port: int,
    client_id: str,
    client_secret: str,
    seed: Path | None,
    token_lifetime: float,
    import_delay: float,
    max_body_bytes: int | None,
    api_paused: bool,
    beta_route: bool,
    fail_next: int,
    fail_status: int,
    fail_method: str | None,
    fail_path_contains: str | None,
    drop_next_post: int,
    drop_path_contains: str | None,
) -> None:
    """Run a local stand-in for Listrak's Email REST API until interrupted."""
    from .server import serve

    if fail_status != 429 and fail_status < 500:
        raise click.BadParameter("must be 429 or 5xx", param_hint="--fail-status")
    faults = Faults(
        token_lifetime_seconds=token_lifetime,
        import_delay_seconds=import_delay,
        max_body_bytes=max_body_bytes,
        api_paused=api_paused,
        beta_route_enabled=beta_route,
        fail_next=(
            FailNext(fail_next, fail_status, fail_method, fail_path_contains) if fail_next else None
        ),
        drop_next_post=DropNextPost(drop_next_post, drop_path_contains) if drop_next_post else None,
    )
    seed_data = json.loads(seed.read_text(encoding="utf-8")) if seed else None
    settings = SandboxSettings(
        client_id=client_id, client_secret=client_secret, faults=faults, seed=seed_data
    )
    serve(settings, host=host, port=port)
