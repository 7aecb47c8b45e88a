"""The sandbox's Starlette application: Listrak routes behind the gate, plus the admin API."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from . import admin, api
from .gate import ListrakGate, hide_deliberate_drops
from .problems import ApiError
from .responses import on_api_error, on_http_exception, on_unhandled
from .settings import SandboxSettings
from .world import SandboxWorld


def create_app(
    world: SandboxWorld | None = None, settings: SandboxSettings | None = None
) -> Starlette:
    """Build the app around ``world`` (or a new world from ``settings``)."""
    world = world or SandboxWorld(settings)
    routes = [*api.ROUTES, *admin.ROUTES]
    hide_deliberate_drops()
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                ListrakGate,
                world=world,
                routes=api.ROUTES,
                api_prefix=api.API_PREFIX,
                token_path=api.TOKEN_PATH,
            )
        ],
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_exception,
            Exception: on_unhandled,
        },
    )
    app.state.world = world
    return app
