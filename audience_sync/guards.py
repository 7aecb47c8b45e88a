"""Pure safety rules checked after planning and before anything is sent."""

from __future__ import annotations

from dataclasses import dataclass

from audience_sync.config import GuardSettings
from audience_sync.state.snapshot import PlanCounts


@dataclass(frozen=True)
class GuardVerdict:
    ok: bool
    reason: str | None = None


def check_guards(plan: PlanCounts, guards: GuardSettings) -> GuardVerdict:
    if plan.snapshot == 0 and not guards.allow_empty:
        return GuardVerdict(
            False,
            f"the snapshot is empty ({plan.confirmed_on_before} members confirmed on); "
            "set allow_empty = true if the audience really is empty",
        )
    if plan.confirmed_on_before:
        fraction = plan.planned_off / plan.confirmed_on_before
        if fraction > guards.max_removed_fraction:
            return GuardVerdict(
                False,
                f"{plan.planned_off} of {plan.confirmed_on_before} confirmed members would be "
                f"removed ({fraction:.1%} > max_removed_fraction "
                f"{guards.max_removed_fraction:.0%})",
            )
    return GuardVerdict(True)
