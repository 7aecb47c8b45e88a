"""What every step of a run shares: the config, the state database, Listrak and the run lock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.engine import Engine
from tqdm import tqdm

from audience_sync.config import AppConfig, AudienceSettings, TraitSettings
from audience_sync.guards import GuardVerdict
from audience_sync.listrak.client import ListrakClient
from audience_sync.state.changes import ResolvedTally
from audience_sync.state.diff import PlanCounts

ClientFactory = Callable[[], ListrakClient]


class HeldLock(Protocol):
    def ensure_held(self) -> None: ...


@dataclass
class AudienceRun:
    """One audience's unit of work within a run: what was planned, and what went wrong."""

    settings: AudienceSettings | TraitSettings
    audience_id: int
    plan: PlanCounts | None = None
    verdict: GuardVerdict | None = None
    error: str | None = None
    # An import of an earlier run still open at Listrak: this audience plans nothing this run.
    waiting_on: str | None = None
    # Its plan acts on a snapshot: once done, that snapshot becomes the desired state.
    acts_on_snapshot: bool = False

    @property
    def key(self) -> str:
        return self.settings.key

    @property
    def is_trait(self) -> bool:
        return isinstance(self.settings, TraitSettings)

    @property
    def has_changes(self) -> bool:
        return self.plan is not None and (self.plan.planned_on + self.plan.planned_off) > 0

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass
class RunContext:
    config: AppConfig
    engine: Engine
    run_id: int
    installation_id: str
    client_factory: ClientFactory
    lock: HeldLock | None = None
    show_progress: bool = False
    sleep: Callable[[float], None] = time.sleep
    _client: ListrakClient | None = field(default=None, repr=False)
    # What Listrak resolved of this run's changes, as its imports are settled.
    resolved: ResolvedTally = field(default_factory=ResolvedTally)

    @property
    def client(self) -> ListrakClient:
        if self._client is None:
            self._client = self.client_factory()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def before_post(self) -> None:
        """Nothing goes out to Listrak once this run has lost its lock."""
        if self.lock is not None:
            self.lock.ensure_held()

    def bar(self, desc: str, unit: str) -> tqdm[Any]:
        return tqdm(
            desc=desc, unit=unit, unit_scale=True, disable=not self.show_progress, leave=False
        )
