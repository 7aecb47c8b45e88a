"""Matplotlib charts drawn from the analysis DataFrames; each returns the Axes it drew on."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes

from audience_sync.state.statuses import ChangeAction, ChangeStatus

ON_COLOUR = "#2a9d8f"
OFF_COLOUR = "#e76f51"


def turned_on_off(counts: pd.DataFrame) -> pd.DataFrame:
    """Confirmed ``on`` and ``off`` changes per run from ``Ledger.change_counts()`` rows."""
    confirmed = counts[counts["status"] == ChangeStatus.CONFIRMED]
    table = confirmed.pivot_table(
        index="run_id", columns="action", values="contacts", aggfunc="sum", fill_value=0
    )
    on, off = ChangeAction.ON.value, ChangeAction.OFF.value
    return table.reindex(columns=[on, off], fill_value=0).rename(
        columns={on: "turned_on", off: "turned_off"}
    )


def plot_changes(per_run: pd.DataFrame, *, title: str, ax: Axes | None = None) -> Axes:
    """Bars per run: contacts turned on above the axis, turned off below it."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    positions = range(len(per_run))
    ax.bar(positions, per_run["turned_on"], color=ON_COLOUR, label="turned on")
    ax.bar(positions, -per_run["turned_off"], color=OFF_COLOUR, label="turned off")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(list(positions), [str(run) for run in per_run.index])
    ax.set_xlabel("run")
    ax.set_ylabel("contacts (off below 0)")
    ax.set_title(title)
    ax.legend()
    return ax


def plot_audience_size(sizes: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """One line per audience: confirmed members after each run."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    wide = sizes.pivot(index="run_id", columns="audience", values="members")
    for audience in wide.columns:
        ax.plot(wide.index, wide[audience], marker="o", label=str(audience))
    ax.set_xticks(list(wide.index))
    ax.set_xlabel("run")
    ax.set_ylabel("members confirmed by Listrak")
    ax.set_title("Audience size after each run")
    ax.legend()
    return ax
