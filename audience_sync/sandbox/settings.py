"""Start-up settings of the sandbox and the fault knobs that can be changed while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - a well-known sandbox credential


@dataclass(frozen=True)
class FailNext:
    """Answer the next ``count`` matching Listrak requests with ``status`` (429 or 5xx).

    Without ``path_contains`` only Email API requests match; the token endpoint matches only
    when ``path_contains`` names part of its path (for example ``"OAuth2"``).
    """

    count: int
    status: int = 500
    method: str | None = None
    path_contains: str | None = None
    # The error code of the answer's envelope; by default the one Listrak gives that status.
    # With a code, a 400 can stand for an error about one contact (ERROR_*_EMAIL_ADDRESS).
    code: str | None = None


@dataclass(frozen=True)
class DropNextPost:
    """Process the next ``count`` matching POSTs, then drop the connection without an answer."""

    count: int
    path_contains: str | None = None


@dataclass(frozen=True)
class Faults:
    """Every fault knob; ``None`` rules mean the fault is off."""

    token_lifetime_seconds: float = 900.0
    import_delay_seconds: float = 0.2
    max_body_bytes: int | None = None
    api_paused: bool = False
    beta_route_enabled: bool = True
    fail_next: FailNext | None = None
    drop_next_post: DropNextPost | None = None
    # Imports whose file name contains this text never finish (they stay "Processing").
    stall_imports_named: str | None = None


@dataclass(frozen=True)
class SandboxSettings:
    """How a sandbox starts: credentials, initial fault knobs and optional seed data.

    ``seed`` has the shape documented in :meth:`SandboxWorld.load_seed`.
    """

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    faults: Faults = field(default_factory=Faults)
    seed: dict[str, Any] | None = None
