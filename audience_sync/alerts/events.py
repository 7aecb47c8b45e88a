"""Which alert events a finished run raises. Pure: facts and settings in, event names out."""

from __future__ import annotations

from audience_sync.alerts.facts import RunFacts
from audience_sync.config import AlertSettings
from audience_sync.state.statuses import RunStatus

RUN_FAILED = "run_failed"
RUN_PARTLY_FAILED = "run_partly_failed"
GUARD_ABORT = "guard_abort"
AUDIENCE_FAILING = "audience_failing"
IMPORT_ABANDONED = "import_abandoned"
DRIFT = "drift"
RECOVERED = "recovered"
TEST = "test"

EVENTS = (
    RUN_FAILED,
    RUN_PARTLY_FAILED,
    GUARD_ABORT,
    AUDIENCE_FAILING,
    IMPORT_ABANDONED,
    DRIFT,
    RECOVERED,
    TEST,
)


def run_events(facts: RunFacts, settings: AlertSettings) -> list[str]:
    """A failed run alerts once one of its audiences has not synced ``after_failures`` runs in a
    row (a run that failed before any audience started always alerts)."""
    found: list[str] = []
    threshold = settings.after_failures
    if facts.status == RunStatus.ABORTED:
        found.append(GUARD_ABORT)
    elif facts.status == RunStatus.FAILED:
        failing = [a for a in facts.audiences if a.streak >= threshold]
        if not facts.audiences:
            found.append(RUN_FAILED)
        elif failing:
            synced = [a for a in facts.audiences if a.streak == 0]
            found.append(RUN_PARTLY_FAILED if synced else RUN_FAILED)
            if threshold > 1:
                found.append(AUDIENCE_FAILING)
    if facts.abandoned:
        found.append(IMPORT_ABANDONED)
    if any(d.drift for d in facts.drift):
        found.append(DRIFT)
    if settings.on_recovery and facts.status == RunStatus.SUCCEEDED and recovered(facts, threshold):
        found.append(RECOVERED)
    return found


def recovered(facts: RunFacts, threshold: int) -> bool:
    """This run synced what an alert was sent about: an audience past the threshold, or a run
    a guard aborted."""
    if facts.previous_status == RunStatus.ABORTED:
        return True
    return any(a.streak == 0 and a.previous_streak >= threshold for a in facts.audiences)


def failing_audiences(facts: RunFacts, threshold: int) -> list[str]:
    return [a.key for a in facts.audiences if a.streak >= threshold]
