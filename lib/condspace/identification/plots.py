"""Figures of chapter 5 (imported on demand; the chapter calls ``plotting.use_style()`` first).

Kept inside :mod:`condspace.identification` so that :mod:`condspace.plotting` need not import
it; every function returns a ``matplotlib.figure.Figure`` and sets no title (captions live in the
chapter).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

METHOD_STYLES = {"classifier": "-", "DIC route": "--"}
SCENARIO_COLORS = {"random": "#0072B2", "dic_path": "#009E73"}
CHANCE_COLOR = "0.5"
TRUTH_COLOR = "#E69F00"  # orange: the ground truth, never a DIC or class colour


def plot_accuracy(tables: Mapping[tuple[str, str], pd.DataFrame]) -> Figure:
    """Top-1 and top-3 accuracy against the number of neurons per experiment.

    Args:
        tables: (method, scenario) → DataFrame with columns n, top1, top3, chance_top1, chance_top3.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6), sharey=True, constrained_layout=True)
    for ax, k in zip(axes, ("top1", "top3"), strict=True):
        chance_done = set()
        for (method, scenario), t in tables.items():
            if t.empty:
                continue
            ax.plot(t["n"], t[k], METHOD_STYLES.get(method, ":"), marker="o",
                    color=SCENARIO_COLORS.get(scenario, "k"), label=f"{method}, {scenario.replace('_', '-')}")
            if scenario not in chance_done:
                ax.plot(t["n"], t[f"chance_{k}"], ":", color=SCENARIO_COLORS.get(scenario, CHANCE_COLOR), alpha=0.6,
                        label=f"chance, {scenario.replace('_', '-')}")
                chance_done.add(scenario)
        ax.set_xscale("log")
        ns = sorted({int(n) for t in tables.values() for n in t["n"]})
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.minorticks_off()
        ax.set_xlabel("neurons per experiment n")
        ax.set_ylabel(f"{'top-1' if k == 'top1' else 'top-3'} accuracy")
        ax.set_ylim(0, 1.02)
    handles, labels = axes[0].get_legend_handles_labels()
    _ = fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False, fontsize="small")
    return fig


def plot_confusion(confusion: Any, labels: Sequence[str], groups: Any = None) -> Figure:
    """Row-normalised confusion (true hypothesis × top-1 prediction); groups outlined on the diagonal.

    Hypotheses are ordered by group so that each identifiability group is a block.
    """
    c = np.asarray(confusion, float)
    order = np.arange(c.shape[0]) if groups is None else np.argsort(np.asarray(groups), kind="stable")
    fig, ax = plt.subplots(figsize=(7.5, 6.5), constrained_layout=True)
    im = ax.imshow(c[np.ix_(order, order)], cmap="Blues", vmin=0, vmax=1)
    lab = np.asarray(labels)[order]
    ax.set_xticks(range(len(lab)), lab, rotation=90, fontsize="x-small")
    ax.set_yticks(range(len(lab)), lab, fontsize="x-small")
    ax.set_xlabel("predicted subset (top-1)")
    ax.set_ylabel("true subset")
    if groups is not None:
        g = np.asarray(groups)[order]
        start = 0
        for i in range(1, len(g) + 1):
            if i == len(g) or g[i] != g[start]:
                if i - start > 1:
                    ax.add_patch(plt.Rectangle((start - 0.5, start - 0.5), i - start, i - start, fill=False,
                                               edgecolor=TRUTH_COLOR, linewidth=1.5))
                start = i
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of the true subset's experiments")
    return fig


def plot_reliability(tables: Mapping[str, Any]) -> Figure:
    """Reliability diagram: accuracy against confidence of the top-1 subset, per bin.

    Args:
        tables: label → (bins, 3) [confidence, accuracy, count] from
            :func:`condspace.identification.expected_calibration_error`.
    """
    fig, ax = plt.subplots(figsize=(4.6, 4.2), constrained_layout=True)
    ax.plot([0, 1], [0, 1], ":", color=CHANCE_COLOR, label="perfect calibration")
    for name, t in tables.items():
        t = np.asarray(t)
        ok = t[:, 2] > 0
        ax.plot(t[ok, 0], t[ok, 1], marker="o", label=name)
    ax.set_xlabel("confidence of the top subset")
    ax.set_ylabel("fraction correct")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    _ = ax.legend(frameon=False, fontsize="small")
    return fig


def plot_ranking(ranking: pd.DataFrame, truth: str | None = None, top: int = 10) -> Figure:
    """Horizontal bars of the most probable subsets; the true one (if known) in orange."""
    r = ranking.head(top).iloc[::-1]
    colors = [TRUTH_COLOR if s == truth else "#0072B2" for s in r["subset"]]
    fig, ax = plt.subplots(figsize=(5.5, 0.32 * len(r) + 1.0), constrained_layout=True)
    ax.barh(r["subset"], r["probability"], color=colors)
    ax.set_xlabel("posterior probability P(S | all neurons)")
    ax.set_xlim(0, 1)
    return fig


def plot_marginals_by_n(marginals: pd.DataFrame, truth: Sequence[str] = ()) -> Figure:
    """P(c ∈ S) of each channel as neurons are added (columns: channels; index: n)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
    for ch in marginals.columns:
        ax.plot(marginals.index, marginals[ch], marker="o", linewidth=2.5 if ch in truth else 1.0,
                color=TRUTH_COLOR if ch in truth else None, label=ch + (" (true)" if ch in truth else ""))
    ax.set_xlabel("neurons used")
    ax.set_ylabel("P(channel targeted)")
    ax.set_ylim(0, 1.02)
    _ = ax.legend(frameon=False, fontsize="small", ncol=2)
    return fig
