"""A test harness: a sandbox over real HTTP, member files, a config and the job wired to them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from audience_sync.config import AppConfig, Credentials, load_config
from audience_sync.listrak.client import ListrakClient
from audience_sync.pipeline import RunOutcome, SyncJob
from audience_sync.sandbox import SandboxServer
from audience_sync.state.tables import memberships, run_changes
from tests.migrated import migrated_engine

LIST_ID = 100
CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"
QUICK_IMPORT_SECONDS = 0.05  # how long the sandbox takes over an import in these tests

FAST_LISTRAK = {
    "poll_interval_seconds": 0.02,
    "retry_initial_wait_seconds": 0.01,
    "retry_max_wait_seconds": 0.05,
    "retry_attempts": 6,
}


@dataclass
class Harness:
    root: Path
    sandbox: SandboxServer
    state_url: str
    state_schema: str | None = None  # [state] schema (PostgreSQL)
    audiences: dict[str, int] = field(default_factory=dict)
    list_ids: dict[str, int] = field(default_factory=dict)  # audience key -> list, if not LIST_ID
    listrak_settings: dict[str, Any] = field(default_factory=dict)
    extra_toml: str = ""
    sources: dict[str, str] = field(default_factory=dict)  # audience key -> inline TOML table
    planners: dict[str, str] = field(default_factory=dict)  # audience key -> planner, if set
    _engine: Engine | None = None

    # --- Listrak side -------------------------------------------------------------------

    def add_contacts(
        self, subscribed: Iterable[str] = (), unsubscribed: Iterable[str] = ()
    ) -> None:
        contacts = [{"emailAddress": e, "subscriptionState": "Subscribed"} for e in subscribed]
        contacts += [{"emailAddress": e, "subscriptionState": "Unsubscribed"} for e in unsubscribed]
        self.sandbox.world.upsert_contacts(LIST_ID, contacts)

    def values(self, key: str) -> dict[str, str]:
        return self.sandbox.world.field_values(LIST_ID, self.audiences[key])

    def members_on(self, key: str) -> set[str]:
        return {email for email, value in self.values(key).items() if value == "on"}

    def import_count(self) -> int:
        return len(self.sandbox.world.stats()["imports"])

    # --- our side -------------------------------------------------------------------------

    def add_audience(self, key: str, field_id: int, members: Iterable[str]) -> None:
        self.sandbox.world.add_field(LIST_ID, key, field_id=field_id)
        self.audiences[key] = field_id
        self.set_members(key, members)

    def set_members(self, key: str, members: Iterable[str]) -> None:
        folder = self.root / "members"
        folder.mkdir(exist_ok=True)
        (folder / f"{key}.csv").write_text(
            "email\n" + "".join(f"{m}\n" for m in members), encoding="utf-8"
        )

    def config_text(self) -> str:
        listrak = {**FAST_LISTRAK, **self.listrak_settings}
        lines = [
            "[state]",
            f'url = "{self.state_url}"',
            *([f'schema = "{self.state_schema}"'] if self.state_schema else []),
            "[listrak]",
            f'api_url = "{self.sandbox.api_url}"',
            f'auth_url = "{self.sandbox.auth_url}"',
            *(f"{k} = {_toml(v)}" for k, v in listrak.items()),
            self.extra_toml,
        ]
        for key, field_id in self.audiences.items():
            lines += [
                "[[audiences]]",
                f'key = "{key}"',
                f"list_id = {self.list_ids.get(key, LIST_ID)}",
                f"profile_field_id = {field_id}",
                *([f'planner = "{self.planners[key]}"'] if key in self.planners else []),
                "source = "
                + self.sources.get(key, f'{{ kind = "csv", path = "members/{key}.csv" }}'),
            ]
        return "\n".join(lines) + "\n"

    def write_config(self) -> Path:
        path = self.root / "audience-sync.toml"
        path.write_text(self.config_text(), encoding="utf-8")
        return path

    def config(self) -> AppConfig:
        return load_config(self.write_config())

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = migrated_engine(self.state_url, schema=self.state_schema)
        return self._engine

    def job(self, **client_options: Any) -> SyncJob:
        """``client_options`` go to ``ListrakClient.build`` (for example ``event_hooks``)."""
        config = self.config()
        return SyncJob(
            config,
            engine=self.engine,
            client_factory=lambda: ListrakClient.build(
                config.settings.listrak,
                Credentials(client_id=CLIENT_ID, client_secret=CLIENT_SECRET),
                **client_options,
            ),
        )

    def run(self, client_options: dict[str, Any] | None = None, **kwargs: Any) -> RunOutcome:
        return self.job(**(client_options or {})).run(**kwargs)

    def confirmed(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            query = select(memberships.c.email, memberships.c.value).where(
                memberships.c.value.is_not(None)
            )
            return dict(conn.execute(query).all())

    def change_statuses(self, run_id: int) -> dict[str, tuple[str, str, str | None]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    run_changes.c.email,
                    run_changes.c.action,
                    run_changes.c.status,
                    run_changes.c.reason,
                ).where(run_changes.c.run_id == run_id)
            )
            return {r.email: (r.action, r.status, r.reason) for r in rows}

    def change_count(self, run_id: int) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(run_changes.c.run_id == run_id)
                ).scalar_one()
            )

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)
