"""What every command shares: the config, credentials, state engines and progress setting."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import click
from sqlalchemy.engine import Engine

from audience_sync.config import AppConfig, load_config, load_credentials
from audience_sync.listrak.client import ListrakClient
from audience_sync.pipeline import SyncJob
from audience_sync.report import format_run, summarize_run
from audience_sync.state.db import existing_engine, make_engine


@dataclass
class CliState:
    config_path: str | None
    quiet: bool
    _config: AppConfig | None = None
    _engines: list[Engine] = field(default_factory=list)

    @property
    def config(self) -> AppConfig:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def job(self, *, talks_to_listrak: bool = True) -> SyncJob:
        return SyncJob(
            self.config,
            engine=self.state_engine(),
            client_factory=self.client_factory(talks_to_listrak=talks_to_listrak),
            show_progress=self.show_progress,
        )

    def client_factory(self, *, talks_to_listrak: bool = True) -> Callable[[], ListrakClient]:
        """Credentials are checked up front, before any work, when the command needs them."""
        config = self.config
        credentials = load_credentials() if talks_to_listrak else None

        def client() -> ListrakClient:
            return ListrakClient.build(config.settings.listrak, credentials or load_credentials())

        return client

    @property
    def engine(self) -> Engine:
        """For commands that only read state: a missing SQLite file is an error (exit 2)."""
        return self._keep(existing_engine(self.config.state_url, schema=self.config.state_schema))

    def state_engine(self) -> Engine:
        """For commands that write state (a new SQLite file is created)."""
        return self._keep(make_engine(self.config.state_url, schema=self.config.state_schema))

    def _keep(self, engine: Engine) -> Engine:
        self._engines.append(engine)
        return engine

    def close(self) -> None:
        """Called when the command ends: no connection outlives it."""
        for engine in self._engines:
            engine.dispose()
        self._engines.clear()

    @property
    def show_progress(self) -> bool:
        return not self.quiet and sys.stderr.isatty()


pass_state = click.make_pass_decorator(CliState)


def print_run(job: SyncJob) -> None:
    """The summary of the run this job started (nothing when it never got the lock)."""
    if job.last_run_id is not None:
        click.echo(format_run(summarize_run(job.engine, job.last_run_id)))
