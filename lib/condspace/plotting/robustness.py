"""How robust is the posterior? The figure of ``benchmarks/robustness.py``'s table (chapter 2).

The table has one row per misspecified recording (``kind``: baseline, integrator, noise, jitter,
missed, duration; ``class``: spiking or bursting; ``predictive``, ``hpd_rank`` and, for refined
recordings, ``refined`` and ``predictive_refined``); see the benchmark's docstring.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from condspace.plotting.style import class_color

ROBUSTNESS_PANELS: dict[str, tuple[tuple[str, ...], str | None, str]] = {
    "integrator": (("baseline", "integrator"), None, "integrator"),
    "noise": (("integrator", "noise"), "noise_std", "noise std after filtering (µA/cm²)"),
    "jitter": (("integrator", "jitter"), "jitter_ms", "jitter half-width (ms)"),
    "missed spikes": (("integrator", "missed"), "missed_fraction", "fraction of spikes deleted"),
    "duration": (("duration",), "strength", "recording length (s)"),
}
"""Perturbation → (kinds drawn, column on the x axis, axis label). Every perturbation but the
duration starts from the clean recording of the reference integrator, so each panel shows the
step from it."""

HPD_LEVELS = (0.5, 0.9)


def robustness_panel_rows(table: pd.DataFrame, kinds: tuple[str, ...], column: str | None) -> pd.DataFrame:
    """The rows of one panel with their x value in a column ``x``.

    Args:
        table: The benchmark's table.
        kinds: The ``kind`` values the panel draws.
        column: The column on the x axis; None for the integrator panel (x = 0 for the training
            simulator, 1 for the reference integrator).
    """
    rows = table[table["kind"].isin(kinds)].copy()
    rows["x"] = (rows["integrator"] == "reference").astype(float) if column is None else rows[column]
    return rows


def _predictive_panel(ax: Any, rows: pd.DataFrame, threshold: float) -> None:
    for label in ("spiking", "bursting"):
        color = class_color(label)
        mean = rows[rows["class"] == label].groupby("x")["predictive"].mean()
        ax.plot(mean.index, mean.to_numpy(), "o-", color=color, label=f"{label}, amortised (mean)")
        # Refined recordings one by one, an arrow from the amortised to the refined fraction: a
        # file may refine only some recordings, so a mean over them would not compare with the line.
        refined = rows[(rows["class"] == label) & rows["refined"].eq(True)]
        for _, r in refined.iterrows():
            ax.annotate("", xy=(r["x"], r["predictive_refined"]), xytext=(r["x"], r["predictive"]),
                        arrowprops={"arrowstyle": "->", "color": color, "lw": 1.0})
        if len(refined):
            ax.plot([], [], marker=r"$\uparrow$", ls="none", color=color, label=f"{label}, one recording refined")
    ax.axhline(threshold, color="0.6", lw=0.8, ls=":")


def _rank_panel(ax: Any, rows: pd.DataFrame) -> None:
    ax.scatter(rows["x"], rows["hpd_rank"], s=10, alpha=0.5, color=[class_color(c) for c in rows["class"]])
    scored = rows[rows["hpd_rank"].notna()]
    for level, style in zip(HPD_LEVELS, ("v-", "^-"), strict=True):
        covered = (scored["hpd_rank"] < level).groupby(scored["x"]).mean()
        ax.plot(covered.index, covered.to_numpy(), style, color="black", ms=4, lw=0.8,
                label=f"share in the {level:.0%} HPD region")
        ax.axhline(level, color="0.8", lw=0.6)


def plot_robustness(table: pd.DataFrame, threshold: float = 0.8) -> plt.Figure:
    """Predictive-check fraction (top) and HPD rank of the truth (bottom) against each perturbation.

    Args:
        table: ``benchmarks/robustness.py``'s table (read with ``comment="#"``).
        threshold: The predictive-check threshold, drawn dotted.

    Returns:
        The figure: one column per entry of :data:`ROBUSTNESS_PANELS`.
    """
    fig, axes = plt.subplots(2, len(ROBUSTNESS_PANELS), figsize=(12.0, 5.2), sharey="row", squeeze=False)
    for col, (title, (kinds, column, xlabel)) in enumerate(ROBUSTNESS_PANELS.items()):
        rows = robustness_panel_rows(table, kinds, column)
        top, bottom = axes[0, col], axes[1, col]
        _predictive_panel(top, rows, threshold)
        _rank_panel(bottom, rows)
        top.set(title=title, ylim=(-0.03, 1.03))
        top.tick_params(labelbottom=False)  # the x axis is labelled once, under the bottom row
        bottom.set(xlabel=xlabel, ylim=(-0.03, 1.03))
        if column is None:
            for ax in (top, bottom):
                ax.set_xticks([0, 1], ["training\nsimulator", "reference"])
                ax.set_xlim(-0.4, 1.4)
            bottom.set_xlabel("")
    axes[0, 0].set_ylabel("predictive check")
    axes[1, 0].set_ylabel("HPD rank of the truth")
    axes[0, 0].legend(fontsize="x-small")
    axes[1, 0].legend(fontsize="x-small", loc="lower left", framealpha=0.9)
    return fig
