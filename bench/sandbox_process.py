"""The Listrak sandbox in its own process, so its in-memory contacts never count in the job's RSS.

The child seeds its world directly (no HTTP) from the workload's contact file, then serves on a
free loopback port until the parent closes the pipe.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

LIST_ID = 100
FIELD_ID = 200
SEED_BATCH = 100_000
START_TIMEOUT_SECONDS = 1800.0


@dataclass(frozen=True)
class SandboxInfo:
    base_url: str
    seed_seconds: float
    rss_mb: float

    @property
    def api_url(self) -> str:
        return self.base_url + "/email/v1"

    @property
    def auth_url(self) -> str:
        return self.base_url + "/OAuth2/Token"


def _serve(contacts_csv: str, audience_key: str, import_delay: float, pipe: Connection) -> None:
    import psutil
    from workload import contact_batches_from

    from audience_sync.sandbox import SandboxServer
    from audience_sync.sandbox.settings import Faults, SandboxSettings

    started = time.perf_counter()
    settings = SandboxSettings(faults=Faults(import_delay_seconds=import_delay))
    with SandboxServer(settings) as server:
        world = server.world
        world.add_list(LIST_ID, "Benchmark list")
        world.add_field(LIST_ID, audience_key, field_id=FIELD_ID)
        for batch in contact_batches_from(Path(contacts_csv), SEED_BATCH):
            world.upsert_contacts(LIST_ID, ({"emailAddress": e} for e in batch))
        rss = psutil.Process().memory_info().rss / 2**20
        pipe.send((server.base_url, time.perf_counter() - started, rss))
        while True:
            try:
                message = pipe.recv()
            except EOFError:
                return
            if message == "rss":
                pipe.send(psutil.Process().memory_info().rss / 2**20)


def handling_seconds(info: SandboxInfo) -> dict[str, float]:
    """The sandbox's own time so far per route (``"POST /email/v1/List/{listId}/ListImport"``),
    from each request's body received to its answer sent."""
    response = httpx.get(info.base_url + "/_sandbox/stats", timeout=60)
    response.raise_for_status()
    return {key: float(value) for key, value in response.json()["handling_seconds"].items()}


def stage_of_route(key: str) -> str | None:
    """The job's stage that waits on the sandbox's handling of a route; None for the status
    polls, whose time (applying the import included) is already inside *await*."""
    if key.endswith("/Status"):
        return None
    if key.endswith(("/Summary", "/{importFileId}/Contact")):
        return "confirm"
    if key.startswith("POST /OAuth2"):
        return "other"
    return "submit"


class SandboxProcess:
    def __init__(self, contacts_csv: Path, audience_key: str, *, import_delay: float = 0.05):
        context = mp.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(str(contacts_csv), audience_key, import_delay, child),
            name="bench-sandbox",
            daemon=True,
        )
        self._child = child
        self.info: SandboxInfo | None = None

    def __enter__(self) -> SandboxInfo:
        self._process.start()
        self._child.close()
        if not self._pipe.poll(START_TIMEOUT_SECONDS):
            raise TimeoutError("the sandbox process did not start in time")
        base_url, seconds, rss = self._pipe.recv()
        self.info = SandboxInfo(base_url, seconds, rss)
        return self.info

    def rss_mb(self) -> float:
        self._pipe.send("rss")
        return float(self._pipe.recv())

    def stats(self) -> dict[str, Any]:
        assert self.info is not None
        response = httpx.get(self.info.base_url + "/_sandbox/stats", timeout=60)
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._pipe.close()
        self._process.join(30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(10)
