"""A local stand-in for Listrak's Email REST API, with an admin API and fault injection.

Its web stack (starlette, uvicorn) loads only when the server or app is used, so that
registering the ``sandbox`` command costs the production CLI nothing.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .settings import DropNextPost, FailNext, Faults, SandboxSettings

if TYPE_CHECKING:
    from .app import create_app
    from .server import SandboxServer, serve
    from .world import SandboxWorld

_LAZY = {
    "create_app": ".app",
    "SandboxServer": ".server",
    "serve": ".server",
    "SandboxWorld": ".world",
}

__all__ = [
    "DropNextPost",
    "FailNext",
    "Faults",
    "SandboxServer",
    "SandboxSettings",
    "SandboxWorld",
    "create_app",
    "serve",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)
