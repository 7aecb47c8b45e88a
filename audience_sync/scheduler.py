"""The unattended schedule: APScheduler 3 wiring around :class:`ScheduledRun`.

One job, ``max_instances=1`` (a run still going when the next is due is not started twice),
``coalesce=True`` (runs missed while the process was down or busy collapse into one), and
``misfire_grace_time`` from ``[schedule] misfire_grace``. Across processes the run lock keeps a
manual run and a scheduled run apart: the loser logs ``schedule.skipped`` and waits for its next
time. SIGTERM/SIGINT stop the scheduler; a run in progress is finished first.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from datetime import datetime
from types import FrameType
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    EVENT_SCHEDULER_STARTED,
    SchedulerEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import delete, insert, update
from sqlalchemy.engine import Engine

from audience_sync.config import ScheduleSettings
from audience_sync.crontab import cron_trigger
from audience_sync.errors import (
    AudienceSyncError,
    ConfigError,
    GuardError,
    RunInProgressError,
)
from audience_sync.state.db import utcnow
from audience_sync.state.statuses import RunTrigger
from audience_sync.state.tables import scheduler_state

logger = logging.getLogger("audience_sync.scheduler")

JOB_ID = "audience-sync"
STATE_NAME = "schedule"


class Runnable(Protocol):
    def run(self, *, trigger: RunTrigger = ...) -> Any: ...


def describe(settings: ScheduleSettings) -> str:
    if settings.cron is not None:
        return f"cron {settings.cron!r} ({settings.timezone})"
    if settings.every is not None:
        return f"every {settings.every}"
    return "none"


def build_trigger(settings: ScheduleSettings, *, now: datetime) -> BaseTrigger:
    zone = ZoneInfo(settings.timezone)
    if settings.cron is not None:
        return cron_trigger(settings.cron, zone)
    if settings.every is not None:
        return IntervalTrigger(
            seconds=settings.every.total_seconds(), start_date=now + settings.every, timezone=zone
        )
    raise ConfigError('no schedule configured: set [schedule] every = "3h" or cron = "0 */3 * * *"')


def add_sync_job(
    scheduler: BaseScheduler,
    settings: ScheduleSettings,
    func: Callable[[], None],
    *,
    now: datetime,
    run_now: bool = False,
) -> Job:
    options: dict[str, Any] = {}
    if run_now:
        options["next_run_time"] = now
    return scheduler.add_job(
        func,
        trigger=build_trigger(settings, now=now),
        id=JOB_ID,
        name="audience-sync run",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(settings.misfire_grace.total_seconds())),
        replace_existing=True,
        **options,
    )


class ScheduledRun:
    """The scheduled job: one sync run; nothing it raises stops the scheduler."""

    def __init__(self, job: Runnable) -> None:
        self._job = job
        self._running = threading.Lock()

    def __call__(self) -> None:
        with self._running:
            try:
                outcome = self._job.run(trigger=RunTrigger.SCHEDULED)
                logger.info(
                    "schedule.run_done",
                    extra={"run_id": outcome.run_id, "status": outcome.status},
                )
            except RunInProgressError as exc:
                logger.warning("schedule.skipped", extra={"reason": str(exc)})
            except GuardError as exc:
                logger.error("schedule.guard_abort", extra={"error": str(exc)})
            except AudienceSyncError as exc:
                logger.error("schedule.run_failed", extra={"error": str(exc)})
            except Exception as exc:
                # Its message may hold data; the traceback is for --log-level DEBUG only.
                logger.error("schedule.run_crashed", extra={"error": type(exc).__name__})
                logger.debug("schedule.run_crashed.traceback", exc_info=exc)

    def wait_idle(self) -> None:
        """Return once no run of this process is in progress."""
        with self._running:
            return


class StateRecorder:
    """Keeps ``scheduler_state`` current, so ``status`` can name the next scheduled run."""

    def __init__(self, engine: Engine, scheduler: BaseScheduler, schedule: str) -> None:
        self._engine = engine
        self._scheduler = scheduler
        self._schedule = schedule

    def start(self) -> None:
        now = utcnow()
        with self._engine.begin() as conn:
            conn.execute(delete(scheduler_state).where(scheduler_state.c.name == STATE_NAME))
            conn.execute(
                insert(scheduler_state).values(
                    name=STATE_NAME,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    schedule=self._schedule[:200],
                    started_at=now,
                    next_run_at=None,
                    updated_at=now,
                )
            )
        self._scheduler.add_listener(
            self._on_event,
            EVENT_SCHEDULER_STARTED
            | EVENT_JOB_SUBMITTED
            | EVENT_JOB_MAX_INSTANCES
            | EVENT_JOB_MISSED,
        )

    def stop(self) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(scheduler_state).where(scheduler_state.c.name == STATE_NAME))

    def _next_run(self) -> datetime | None:
        job = self._scheduler.get_job(JOB_ID)
        value = getattr(job, "next_run_time", None) if job is not None else None
        return value if isinstance(value, datetime) else None

    def _on_event(self, event: SchedulerEvent) -> None:
        next_run = self._next_run()
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    update(scheduler_state)
                    .where(scheduler_state.c.name == STATE_NAME)
                    .values(next_run_at=next_run, updated_at=utcnow())
                )
        except Exception as exc:
            logger.error("schedule.state_not_recorded", extra={"error": _error_text(exc)})
            logger.debug("schedule.state_not_recorded.traceback", exc_info=exc)
        if event.code == EVENT_SCHEDULER_STARTED:
            logger.info(
                "schedule.started", extra={"schedule": self._schedule, "next_run_at": str(next_run)}
            )
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            logger.warning("schedule.skipped", extra={"reason": "the previous run is still going"})
        elif event.code == EVENT_JOB_MISSED:
            logger.warning("schedule.missed", extra={"reason": "later than misfire_grace"})


class Stopper:
    """SIGTERM/SIGINT: stop scheduling; the run in progress finishes (a second signal says so)."""

    def __init__(self, scheduler: BaseScheduler) -> None:
        self._scheduler = scheduler
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            logger.warning(
                "schedule.still_stopping",
                extra={"signal": name, "note": "waiting for the current run to finish"},
            )
            return
        self.requested = True
        logger.info("schedule.stopping", extra={"signal": name})
        self._scheduler.shutdown(wait=False)


def serve(
    settings: ScheduleSettings,
    job: Runnable,
    engine: Engine,
    *,
    run_now: bool = False,
) -> None:
    """Block until SIGTERM/SIGINT, running ``job`` on the schedule; then wait for the current
    run (if any) to finish, so no step is left half-recorded."""
    zone = ZoneInfo(settings.timezone)
    scheduler = BlockingScheduler(
        timezone=zone, executors={"default": ThreadPoolExecutor(max_workers=1)}
    )
    runner = ScheduledRun(job)
    add_sync_job(scheduler, settings, runner, now=datetime.now(zone), run_now=run_now)
    recorder = StateRecorder(engine, scheduler, describe(settings))
    stopper = Stopper(scheduler)
    previous = {sig: signal.signal(sig, stopper) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        recorder.start()
        scheduler.start()
        runner.wait_idle()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        recorder.stop()
    logger.info("schedule.stopped")


def _error_text(exc: Exception) -> str:
    """An AudienceSyncError's (redacted) message; only the type of anything else."""
    return str(exc) if isinstance(exc, AudienceSyncError) else type(exc).__name__
