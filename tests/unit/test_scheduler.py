"""The schedule as APScheduler runs it, driven by a controllable clock.

The real scheduler logic (due-time computation, coalescing, max instances, misfire check in the
executor) runs unchanged; only ``datetime.now`` inside APScheduler is replaced by the test's
clock, and the test calls the scheduler's processing step where the blocking scheduler would wake.
Jobs run on APScheduler's real thread pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.events import (
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
)
from apscheduler.schedulers.base import BaseScheduler

from audience_sync.config import ScheduleSettings
from audience_sync.crontab import weekday_names
from audience_sync.errors import GuardError, RunInProgressError
from audience_sync.scheduler import JOB_ID, ScheduledRun, add_sync_job

T0 = datetime(2030, 1, 1, 0, 0, tzinfo=UTC)


class Clock:
    now = T0


class FakeDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]  # stands in for datetime.now
        return Clock.now.astimezone(tz) if tz is not None else Clock.now


class SteppedScheduler(BaseScheduler):  # type: ignore[misc]  # APScheduler 3 has no type hints
    """A scheduler that processes due jobs only when the test says so."""

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)

    def wakeup(self) -> None:
        pass

    def step(self, to: datetime) -> None:
        Clock.now = to
        self._process_jobs()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> type[Clock]:
    Clock.now = T0
    monkeypatch.setattr("apscheduler.schedulers.base.datetime", FakeDatetime)
    monkeypatch.setattr("apscheduler.executors.base.datetime", FakeDatetime)
    return Clock


class Recorder:
    """The job under schedule: counts runs and concurrency; can be held open by a gate."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.active = 0
        self.max_active = 0
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()

    def __call__(self) -> None:
        with self.lock:
            self.calls += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        self.started.set()
        self.gate.wait(30)
        with self.lock:
            self.active -= 1


def start(
    settings: ScheduleSettings, job: Callable[[], None]
) -> tuple[SteppedScheduler, list[Any]]:
    scheduler = SteppedScheduler(timezone=UTC)
    events: list[Any] = []
    scheduler.add_listener(
        events.append,
        EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES,
    )
    add_sync_job(scheduler, settings, job, now=Clock.now)
    scheduler.start()
    return scheduler, events


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def finished(events: list[Any], code: int) -> int:
    return sum(1 for e in events if isinstance(e, JobEvent) and e.code == code)


def test_runs_missed_while_down_are_coalesced_into_one(clock: type[Clock]) -> None:
    job = Recorder()
    scheduler, events = start(ScheduleSettings(every=timedelta(hours=3)), job)
    try:
        assert scheduler.get_job(JOB_ID).next_run_time == T0 + timedelta(hours=3)
        scheduler.step(T0 + timedelta(hours=9, minutes=30))  # due at 3h, 6h and 9h
        wait_for(lambda: finished(events, EVENT_JOB_EXECUTED) == 1, "the run")
        assert job.calls == 1
        (submitted,) = [e for e in events if e.code == EVENT_JOB_SUBMITTED]
        assert submitted.scheduled_run_times == [T0 + timedelta(hours=9)]
        assert scheduler.get_job(JOB_ID).next_run_time == T0 + timedelta(hours=12)
    finally:
        scheduler.shutdown()


def test_a_run_still_going_is_never_started_twice(clock: type[Clock]) -> None:
    job = Recorder()
    job.gate.clear()
    scheduler, events = start(ScheduleSettings(every=timedelta(hours=3)), job)
    try:
        scheduler.step(T0 + timedelta(hours=3))
        assert job.started.wait(10)
        scheduler.step(T0 + timedelta(hours=6))  # due again while the first is running
        scheduler.step(T0 + timedelta(hours=9))
        assert finished(events, EVENT_JOB_MAX_INSTANCES) == 2
        job.gate.set()
        wait_for(lambda: finished(events, EVENT_JOB_EXECUTED) == 1, "the first run")
        scheduler.step(T0 + timedelta(hours=12))
        wait_for(lambda: finished(events, EVENT_JOB_EXECUTED) == 2, "the next run")
        assert job.calls == 2
        assert job.max_active == 1
    finally:
        scheduler.shutdown()


def test_misfire_grace_is_the_configured_one_not_one_second(clock: type[Clock]) -> None:
    job = Recorder()
    settings = ScheduleSettings(cron="0 */3 * * *", misfire_grace=timedelta(hours=1))
    scheduler, events = start(settings, job)
    try:
        scheduler.step(T0 + timedelta(hours=3, minutes=30))  # 30 minutes late: still runs
        wait_for(lambda: finished(events, EVENT_JOB_EXECUTED) == 1, "the late run")
        scheduler.step(T0 + timedelta(hours=8))  # due at 06:00, 2 hours late: skipped
        wait_for(lambda: finished(events, EVENT_JOB_MISSED) == 1, "the missed run")
        assert job.calls == 1
        assert scheduler.get_job(JOB_ID).next_run_time == T0 + timedelta(hours=9)
    finally:
        scheduler.shutdown()


def test_cron_weekdays_are_crontab_ones(clock: type[Clock]) -> None:
    assert weekday_names("1-5") == "mon,tue,wed,thu,fri"
    assert weekday_names("0,6") == "sun,sat"
    assert weekday_names("7") == "sun"
    assert weekday_names("*/2") == "sun,tue,thu,sat"
    assert weekday_names("0-3") == "sun,mon,tue,wed"
    assert weekday_names("5-7") == "sun,fri,sat"
    assert weekday_names("0-6") == "*"
    monday = ScheduleSettings(cron="0 6 * * 1")
    scheduler, _ = start(monday, Recorder())
    try:
        # 2030-01-01 is a Tuesday; crontab's 1 is Monday, 2030-01-07.
        assert scheduler.get_job(JOB_ID).next_run_time == datetime(2030, 1, 7, 6, tzinfo=UTC)
    finally:
        scheduler.shutdown()


class FakeJob:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error
        self.triggers: list[str] = []

    def run(self, *, trigger: str = "manual") -> Any:
        self.triggers.append(trigger)
        if self.error is not None:
            raise self.error
        return type("Outcome", (), {"run_id": 7, "status": "succeeded"})()


@pytest.mark.parametrize(
    ("error", "event"),
    [
        (None, "schedule.run_done"),
        (RunInProgressError("another run is in progress (run 3, started now)"), "schedule.skipped"),
        (GuardError("run 4 aborted by a guard"), "schedule.guard_abort"),
        (RuntimeError("boom"), "schedule.run_crashed"),
    ],
)
def test_scheduled_run_logs_and_never_raises(
    error: BaseException | None, event: str, caplog: pytest.LogCaptureFixture
) -> None:
    job = FakeJob(error)
    with caplog.at_level("INFO", logger="audience_sync.scheduler"):
        ScheduledRun(job)()
    assert job.triggers == ["scheduled"]
    assert event in [r.getMessage() for r in caplog.records]
