"""What a run did, per audience, read back from the ledger through
:mod:`audience_sync.state.ledger_queries` (used by the CLI, the demo, alerts and metrics)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from audience_sync.redaction import one_line, one_line_or_none
from audience_sync.state import ledger_queries
from audience_sync.state.statuses import AudienceKind, ChangeAction, ChangeStatus


@dataclass
class AudienceSummary:
    key: str
    status: str
    snapshot: int
    invalid: int
    turned_on: int = 0
    turned_off: int = 0
    unchanged: int = 0
    parked: int = 0
    pending: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    kind: str = AudienceKind.AUDIENCE.value  # a trait's on/off are values set/cleared


@dataclass
class RunSummary:
    run_id: int
    trigger: str
    status: str
    error: str | None
    audiences: list[AudienceSummary]


def summarize_run(engine: Engine, run_id: int) -> RunSummary:
    with engine.connect() as conn:
        run = conn.execute(ledger_queries.run(run_id)).one()
        rows = conn.execute(ledger_queries.run_audiences_of(run_id)).all()
        changes = conn.execute(ledger_queries.change_counts(run_id=run_id, audience=None)).all()
    summaries = []
    for row in rows:
        summary = AudienceSummary(
            key=row.audience,
            status=row.status,
            snapshot=row.snapshot,
            invalid=row.invalid,
            unchanged=row.unchanged,
            parked=row.parked,
            error=one_line_or_none(row.error),
            kind=row.kind,
        )
        for _run, audience, action, status, reason, count in changes:
            if audience != row.audience:
                continue
            if status == ChangeStatus.CONFIRMED:
                if action in (ChangeAction.ON, ChangeAction.SET):
                    summary.turned_on += count
                else:
                    summary.turned_off += count
            elif status == ChangeStatus.SKIPPED:
                key = one_line(reason or ChangeStatus.SKIPPED.value)
                summary.skipped[key] = summary.skipped.get(key, 0) + count
            elif status in (ChangeStatus.FAILED, ChangeStatus.ABORTED):
                key = one_line(reason or status)
                summary.failed[key] = summary.failed.get(key, 0) + count
            else:
                summary.pending += count
        summaries.append(summary)
    return RunSummary(run.run_id, run.trigger, run.status, one_line_or_none(run.error), summaries)


def format_run(summary: RunSummary) -> str:
    lines = [f"run {summary.run_id} ({summary.trigger}): {summary.status}"]
    if summary.error:
        lines.append(f"  error: {summary.error}")
    for a in summary.audiences:
        if a.kind == AudienceKind.TRAIT:
            counts = (
                f"  {a.key}: values {a.snapshot}, set {a.turned_on}, cleared {a.turned_off}, "
                f"unchanged {a.unchanged}, parked (not re-sent) {a.parked}"
                + (f", invalid emails or values {a.invalid}" if a.invalid else "")
            )
        else:
            counts = (
                f"  {a.key}: members {a.snapshot}, turned on {a.turned_on}, turned off "
                f"{a.turned_off}, unchanged {a.unchanged}, parked (not re-sent) {a.parked}"
                + (f", invalid emails {a.invalid}" if a.invalid else "")
            )
        lines.append(counts + (f", pending {a.pending}" if a.pending else ""))
        for reason, count in sorted(a.skipped.items()):
            lines.append(f"      skipped {count}: {reason}")
        for reason, count in sorted(a.failed.items()):
            lines.append(f"      not applied {count}: {reason}")
        if a.error:
            lines.append(f"      error: {a.error}")
    return "\n".join(lines)


@dataclass(frozen=True)
class AudiencePlan:
    """What ``plan`` found for one audience: its changes, or why there are none."""

    key: str
    planned_on: int = 0
    planned_off: int = 0
    guard_reason: str | None = None  # set when a guard would abort a real run
    error: str | None = None  # the audience could not be planned (source failed, ...)
    trait: bool = False  # a computed trait: planned_on/off are values to set/clear


PLAN_OK, PLAN_SOURCE_FAILED, PLAN_GUARD_WOULD_ABORT = 0, 1, 3


def format_plan(plans: list[AudiencePlan]) -> list[str]:
    lines = []
    for plan in plans:
        if plan.error is not None:
            lines.append(f"  {plan.key}: could not plan: {one_line(plan.error)}")
            continue
        guard = "ok" if plan.guard_reason is None else f"would abort: {plan.guard_reason}"
        would = (
            f"would set {plan.planned_on}, clear {plan.planned_off}"
            if plan.trait
            else f"would turn on {plan.planned_on}, turn off {plan.planned_off}"
        )
        lines.append(f"  {plan.key}: {would}; guard: {one_line(guard)}")
    return lines


def plan_exit_code(plans: list[AudiencePlan]) -> int:
    """3 when a guard would abort a real run (it would stop there), else 1 when an audience
    could not be planned, else 0."""
    if any(p.guard_reason is not None for p in plans):
        return PLAN_GUARD_WOULD_ABORT
    if any(p.error is not None for p in plans):
        return PLAN_SOURCE_FAILED
    return PLAN_OK


def to_json(summary: RunSummary) -> str:
    return json.dumps(
        {
            "run_id": summary.run_id,
            "trigger": summary.trigger,
            "status": summary.status,
            "error": summary.error,
            "audiences": [a.__dict__ for a in summary.audiences],
        },
        indent=2,
        sort_keys=True,
    )
