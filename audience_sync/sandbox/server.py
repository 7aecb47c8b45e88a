"""Running the sandbox over real HTTP: in a background thread for tests, or in the foreground."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

import uvicorn

from .app import create_app
from .settings import SandboxSettings
from .world import SandboxWorld

STARTUP_TIMEOUT_SECONDS = 10.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0
_POLL_SECONDS = 0.01


class SandboxServer:
    """A sandbox on ``host`` (port 0 picks a free port), started and stopped as a context."""

    def __init__(
        self,
        settings: SandboxSettings | None = None,
        *,
        world: SandboxWorld | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.world = world or SandboxWorld(settings)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.world), log_level="warning", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self.base_url + "/email/v1"

    @property
    def auth_url(self) -> str:
        return self.base_url + "/OAuth2/Token"

    @property
    def admin_url(self) -> str:
        return self.base_url + "/_sandbox"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"listrak-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("The Listrak sandbox failed to start.")
            if time.monotonic() > deadline:
                raise TimeoutError("The Listrak sandbox did not start in time.")
            self._thread.join(_POLL_SECONDS)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(SHUTDOWN_TIMEOUT_SECONDS)
            self._thread = None
        self._socket.close()

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    settings: SandboxSettings | None = None, host: str = "127.0.0.1", port: int = 8080
) -> None:
    """Run a sandbox until interrupted, after printing one line with its URLs."""
    with SandboxServer(settings, host=host, port=port) as server:
        print(
            f"Listrak sandbox ready: api {server.api_url} auth {server.auth_url} "
            f"admin {server.admin_url}",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
