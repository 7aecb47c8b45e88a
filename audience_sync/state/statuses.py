"""Every status the ledger stores, as string enums: the values are what the database holds
(each column has a CHECK constraint built from its enum, see :mod:`.tables`), and a member
compares equal to its value, so readers of raw rows and CLI choices keep working."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """``sync_runs.status``."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"  # a guard stopped it before anything was sent
    PLANNED = "planned"  # a dry run: planned, never sent
    INTERRUPTED = "interrupted"  # its process died; a later run resolved what it left


class RunTrigger(StrEnum):
    """``sync_runs.trigger``: what started the run."""

    SCHEDULED = "scheduled"
    MANUAL = "manual"
    FULL = "full"
    PLAN = "plan"  # a dry run
    REPAIR = "repair"  # ``verify --repair``


class AudienceStatus(StrEnum):
    """``run_audiences.status``: one audience's progress within a run."""

    READING = "reading"
    PLANNED = "planned"
    WAITING = "waiting"  # an earlier run's import is still open at Listrak
    SUBMITTED = "submitted"
    DONE = "done"
    FAILED = "failed"
    ABORTED = "aborted"


class ChangeStatus(StrEnum):
    """``run_changes.status``: one contact's change within a run."""

    PLANNED = "planned"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    SKIPPED = "skipped"
    FAILED = "failed"
    ABORTED = "aborted"  # a guard stopped the run


class ChangeAction(StrEnum):
    """``run_changes.action`` and ``parked_contacts.action``: the CheckBox value to send
    (audiences), or a computed trait's value to set (``run_changes.value``) or clear."""

    ON = "on"
    OFF = "off"
    SET = "set"
    CLEAR = "clear"


class AudienceKind(StrEnum):
    """``audiences.kind``: an audience (a CheckBox field) or a computed trait (a typed field)."""

    AUDIENCE = "audience"
    TRAIT = "trait"


class ImportStatus(StrEnum):
    """``listrak_imports.status``: one import part's life at Listrak."""

    POSTING = "posting"  # recorded, POST not (yet) answered
    SUBMITTED = "submitted"
    FINISHED = "finished"
    FAILED = "failed"
    LOST = "lost"  # never reached Listrak, or Listrak no longer knows it
    ABANDONED = "abandoned"  # still unfinished after ``abandon_after``


class DeliveryStatus(StrEnum):
    """``alert_deliveries.status``: what became of one alert sent to one receiver."""

    PENDING = "pending"  # only while sending; never stored
    DELIVERED = "delivered"
    FAILED = "failed"


FINAL_RUN_STATUSES = frozenset(RunStatus) - {RunStatus.RUNNING}
OPEN_IMPORT_STATUSES = (ImportStatus.POSTING, ImportStatus.SUBMITTED)
# Changes of a run that Listrak has not confirmed or skipped (yet).
UNRESOLVED_CHANGE_STATUSES = (ChangeStatus.PLANNED, ChangeStatus.SUBMITTED, ChangeStatus.FAILED)
