"""Pure safety rules checked after planning and before anything is sent."""

from __future__ import annotations

from dataclasses import dataclass

from audience_sync.config import GuardSettings, TraitGuardSettings
from audience_sync.state.diff import PlanCounts


@dataclass(frozen=True)
class GuardVerdict:
    ok: bool
    reason: str | None = None


def check_guards(
    plan: PlanCounts, guards: GuardSettings, *, on_in_listrak: int | None = None
) -> GuardVerdict:
    """``on_in_listrak``: when Listrak's values were read back (reconcile, repair), removals are
    measured against the larger of the confirmed members and the contacts on in Listrak."""
    if plan.snapshot == 0 and not guards.allow_empty:
        return GuardVerdict(
            False,
            f"the snapshot is empty ({plan.confirmed_on_before} members confirmed on); "
            "set allow_empty = true if the audience really is empty",
        )
    base, what = plan.confirmed_on_before, "confirmed members"
    if on_in_listrak is not None and on_in_listrak > base:
        base, what = on_in_listrak, "members on in Listrak"
    if base:
        fraction = plan.planned_off / base
        if fraction > guards.max_removed_fraction:
            return GuardVerdict(
                False,
                f"{plan.planned_off} of {base} {what} would be "
                f"removed ({fraction:.1%} > max_removed_fraction "
                f"{guards.max_removed_fraction:.0%})",
            )
    return GuardVerdict(True)


def check_trait_guards(
    *, valid: int, confirmed: int, changed: int, guards: TraitGuardSettings
) -> GuardVerdict:
    """A computed trait: an empty snapshot (no valid value) stops it unless ``allow_empty``;
    so does changing or clearing more than ``max_changed_fraction`` of its confirmed values.
    A contact's first value is not a change, so a first run is never stopped by the fraction."""
    if valid == 0 and not guards.allow_empty:
        return GuardVerdict(
            False,
            f"the source has no valid value ({confirmed} values confirmed); "
            "set allow_empty = true if that is right",
        )
    if confirmed:
        fraction = changed / confirmed
        if fraction > guards.max_changed_fraction:
            return GuardVerdict(
                False,
                f"{changed} of {confirmed} confirmed values would change or be cleared "
                f"({fraction:.1%} > max_changed_fraction {guards.max_changed_fraction:.0%})",
            )
    return GuardVerdict(True)
