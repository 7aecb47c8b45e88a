"""A local stand-in for Listrak's Email REST API, with an admin API and fault injection."""

from .app import create_app
from .server import SandboxServer, serve
from .settings import DropNextPost, FailNext, Faults, SandboxSettings
from .world import SandboxWorld

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
