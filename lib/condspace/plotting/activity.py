"""Voltage traces, activity-class fractions and feature distributions (chapters 1-2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from condspace.plotting.style import CLASS_ORDER, T_LABEL, V_LABEL, _figure, _vector, class_color, unit_label


# ----- voltage traces ------------------------------------------------------------------------
def plot_traces(t: Any, V: Any, labels: Sequence[str] | None = None, colors: Sequence[str] | None = None) -> Figure:
    """Stacked membrane-voltage traces, one panel per neuron, sharing the time axis.

    Args:
        t: (T,) time in ms.
        V: (T,) or (N, T) membrane voltage in mV (``SimulationResult.traces["V"]`` has this shape).
        labels: N labels shown in each panel (e.g. the activity class or an example name).
        colors: N colours (e.g. ``[CLASS_COLORS[c] for c in classes]``); black by default.

    Returns:
        The figure, N rows of axes labelled ``V (mV)`` over a shared ``t (ms)`` axis.

    Raises:
        ValueError: When the shapes of ``t``, ``V``, ``labels`` or ``colors`` do not match.
    """
    t = _vector(t, "t")
    V = np.asarray(V, dtype=float)
    if V.ndim == 1:
        V = V[None, :]
    if V.ndim != 2 or V.shape[1] != t.size:
        raise ValueError(f"V: expected shape ({t.size},) or (N, {t.size}) in mV to match t, got {np.shape(V)}")
    n = V.shape[0]
    for arg, seq in (("labels", labels), ("colors", colors)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{arg}: expected {n} entries (one per trace), got {len(seq)}")
    fig, axes = _figure(n, 1, sharex=True, figsize=(6.4, 0.4 + 1.1 * n))
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(t, V[i], color=colors[i] if colors is not None else "black", lw=0.8)
        ax.set_ylabel(V_LABEL)
        if labels is not None:
            ax.text(0.99, 0.95, str(labels[i]), transform=ax.transAxes, ha="right", va="top")
    axes[-1, 0].set_xlabel(T_LABEL)
    return fig


# ----- activity classes ----------------------------------------------------------------------
def plot_class_fractions(labels: Any, ax: plt.Axes | None = None) -> Figure:
    """Bar chart of the fraction of neurons in each activity class, counts on the bars.

    Silent, spiking and bursting are always shown (an empty class is information); "invalid"
    and any other label appear when present, in :data:`CLASS_ORDER` then alphabetical order.

    Args:
        labels: (N,) class label per neuron (strings, e.g. from the features module).
        ax: Axes to draw into; a new figure when None.

    Returns:
        The figure. Bar heights sum to 1.

    Raises:
        ValueError: When ``labels`` is empty or not 1-D.
    """
    arr = np.asarray(labels, dtype=object)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"labels: expected a non-empty 1-D array of class names, got shape {arr.shape}")
    arr = arr.astype(str)
    present = set(arr.tolist())
    classes = [c for c in CLASS_ORDER if c != "invalid" or c in present]
    classes += sorted(present - set(CLASS_ORDER))
    counts = np.array([(arr == c).sum() for c in classes])
    fractions = counts / arr.size
    if ax is None:
        fig, axes = _figure(figsize=(4.0, 3.0))
        ax = axes[0, 0]
    colors = [class_color(c, i) for i, c in enumerate(classes)]
    bars = ax.bar(classes, fractions, color=colors)
    ax.bar_label(bars, labels=[f"n={k}" for k in counts], padding=2)
    ax.set_ylim(0, max(1.0, fractions.max() * 1.15))
    ax.set_xlabel("activity class")
    ax.set_ylabel(f"fraction of neurons (N = {arr.size})")
    return ax.figure


# ----- feature distributions -----------------------------------------------------------------
def plot_feature_distributions(
    df: pd.DataFrame,
    columns: Sequence[str],
    by: str | None = "label",
    units: Mapping[str, str] | None = None,
    bins: int = 30,
) -> Figure:
    """Histograms of spike-train features, one panel per feature, one colour per activity class.

    Args:
        df: One row per neuron (``condspace.features.extract`` output): feature columns plus,
            optionally, the class column ``by``.
        columns: Feature columns to plot. Non-finite values (a burst feature of a tonic
            neuron) are left out; the legend gives the number of finite values per class.
        by: Column holding the activity class (``"label"`` in the features table; coloured with
            :data:`CLASS_COLORS`); None or a missing column draws one histogram per feature.
        units: Unit overrides for the axis labels (see :func:`unit_label`).
        bins: Number of bins, shared by the classes of one feature.

    Returns:
        The figure: x labels ``feature (unit)``, y labels ``neurons``.

    Raises:
        KeyError: When a column is not in ``df`` (the message lists the available columns).
        ValueError: When ``columns`` is empty or ``df`` is not a DataFrame.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df: expected a pandas DataFrame, got {type(df).__name__}")
    columns = list(columns)
    if not columns:
        raise ValueError("columns: give at least one feature column to plot")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"columns: {missing} not in df; available: {list(df.columns)}")
    if by is not None and by in df.columns:
        groups = [c for c in CLASS_ORDER if (df[by] == c).any()]
        groups += sorted(set(df[by].astype(str)) - set(CLASS_ORDER))
    else:
        groups, by = [None], None
    ncols = min(3, len(columns))
    nrows = -(-len(columns) // ncols)
    fig, axes = _figure(nrows, ncols, figsize=(3.0 * ncols, 2.4 * nrows))
    for k, (col, ax) in enumerate(zip(columns, axes.flat, strict=False)):
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        finite = np.isfinite(values)
        edges = np.histogram_bin_edges(values[finite], bins=bins) if finite.any() else np.linspace(0, 1, bins + 1)
        for j, group in enumerate(groups):
            sel = finite if group is None else finite & (df[by].astype(str) == group).to_numpy()
            if group is None:
                color, name = "0.3", "all"
            else:
                color, name = class_color(group, j), group
            ax.hist(values[sel], bins=edges, histtype="stepfilled", alpha=0.5, color=color,
                    edgecolor=color, label=f"{name} (n={int(sel.sum())})")
        ax.set_xlabel(unit_label(col, units))
        ax.set_ylabel("neurons")
        if k == 0:
            ax.legend()
    for ax in axes.flat[len(columns):]:
        ax.set_visible(False)
    return fig


