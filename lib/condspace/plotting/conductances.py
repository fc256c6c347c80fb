"""Conductance sets: pairwise scatter of a population and degenerate pairs (chapters 1-2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from condspace.plotting.style import CONDUCTANCE_UNIT, HIGHLIGHT_COLOR, T_LABEL, V_LABEL, _figure, _vector, unit_label


# ----- conductances --------------------------------------------------------------------------
def _conductance_name(name: str) -> str:
    return name if name.startswith("g_") else f"g_{name}"


def plot_conductance_pairs(
    g: Any,
    names: Sequence[str],
    highlight: Any = None,
    log: bool = False,
    kind: str = "scatter",
) -> Figure:
    """Degeneracy at a glance: pairwise scatter (corner plot) or parallel coordinates of ḡ.

    Args:
        g: (N, k) maximal conductances in mS/cm² (or a DataFrame with ``names`` as columns).
        names: k conductance names (``"g_Na"`` or ``"Na"``), the column order of ``g``.
        highlight: Rows to draw on top in orange: a boolean mask (N,) or integer indices
            (e.g. the published example appended as the last row).
        log: Logarithmic conductance axes (all finite values must then be > 0).
        kind: ``"scatter"`` (k×k lower-triangle grid, histograms on the diagonal) or
            ``"parallel"`` (one line per neuron, each conductance divided by its population
            median, so every channel shares one fold-change axis).

    Returns:
        The figure; axis labels ``g_X (mS/cm²)`` (scatter) or ``g / population median of g (fold)`` (parallel).

    Raises:
        ValueError: For mismatched shapes, an unknown ``kind``, bad ``highlight`` indices, or
            non-positive values with ``log=True``.
        KeyError: When ``g`` is a DataFrame without one of the ``names`` columns.
    """
    names = [_conductance_name(str(n)) for n in names]
    if isinstance(g, pd.DataFrame):
        missing = [n for n in names if n not in g.columns]
        if missing:
            raise KeyError(f"names: {missing} not in the columns of g; available: {list(g.columns)}")
        g = g[names].to_numpy(dtype=float)
    G = np.asarray(g, dtype=float)
    if G.ndim != 2 or G.shape[1] != len(names) or G.shape[0] == 0:
        raise ValueError(f"g: expected shape (N, {len(names)}) to match names, got {np.shape(G)}")
    if kind not in ("scatter", "parallel"):
        raise ValueError(f"kind={kind!r}: use 'scatter' or 'parallel'")
    mask = np.zeros(G.shape[0], dtype=bool)
    if highlight is not None:
        h = np.asarray(highlight)
        if h.dtype == bool:
            if h.shape != (G.shape[0],):
                raise ValueError(f"highlight: a boolean mask must have shape ({G.shape[0]},), got {h.shape}")
            mask = h
        else:
            idx = np.atleast_1d(h).astype(int)
            if idx.size and (idx.min() < -G.shape[0] or idx.max() >= G.shape[0]):
                raise ValueError(f"highlight: indices must lie in [0, {G.shape[0]}), got {idx.tolist()}")
            mask[idx] = True
    finite = G[np.isfinite(G)]
    if log and np.any(finite <= 0):
        bad = [n for j, n in enumerate(names) if np.any(G[np.isfinite(G[:, j]), j] <= 0)]
        raise ValueError(f"log=True needs g > 0; {bad} contain zeros or negative values (use log=False)")
    if kind == "parallel":
        return _parallel(G, names, mask, log)
    return _corner(G, names, mask, log)


def _corner(G: np.ndarray, names: list[str], mask: np.ndarray, log: bool) -> Figure:
    k = len(names)
    fig, axes = _figure(k, k, figsize=(1.6 * k + 0.6, 1.6 * k + 0.6))
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                col = G[np.isfinite(G[:, j]), j]
                edges = np.geomspace(col.min(), col.max(), 25) if log and col.size else 25
                ax.hist(col, bins=edges, color="0.5")
                ax.set_yticks([])
            else:
                ax.scatter(G[~mask, j], G[~mask, i], s=3, color="0.35", alpha=0.5, linewidths=0)
                if mask.any():
                    ax.scatter(G[mask, j], G[mask, i], s=14, color=HIGHLIGHT_COLOR, zorder=3)
                if log:
                    ax.set_yscale("log")
                ax.set_ylabel(unit_label(names[i]) if j == 0 else "")
            if log:
                ax.set_xscale("log")
            ax.set_xlabel(unit_label(names[j]) if i == k - 1 else "")
            if i < k - 1:
                ax.tick_params(labelbottom=False)
            if j > 0:
                ax.tick_params(labelleft=False)
    return fig


def _parallel(G: np.ndarray, names: list[str], mask: np.ndarray, log: bool) -> Figure:
    with np.errstate(invalid="ignore", divide="ignore"):
        fold = G / np.nanmedian(G, axis=0)
    x = np.arange(len(names))
    fig, axes = _figure(figsize=(max(4.0, 0.8 * len(names) + 1.5), 3.2))
    ax = axes[0, 0]
    ax.plot(x, fold[~mask].T, color="0.35", alpha=min(1.0, 20 / max(1, (~mask).sum())), lw=0.6)
    if mask.any():
        ax.plot(x, fold[mask].T, color=HIGHLIGHT_COLOR, lw=1.5, zorder=3)
    if log:
        ax.set_yscale("log")
    ax.set_xticks(x, names, rotation=45 if len(names) > 5 else 0)
    ax.set_xlabel("conductance")
    ax.set_ylabel("g / population median of g (fold)")
    return fig


def plot_degenerate_pairs(
    t: Any,
    V: Any,
    g: Any,
    names: Sequence[str],
    t_window: tuple[float, float] | None = None,
    box: Mapping[str, tuple[float, float]] | None = None,
) -> Figure:
    """Pairs of neurons that fire alike with different conductances: traces left, ḡ right.

    Rows ``2p`` and ``2p + 1`` of ``V`` and ``g`` form pair ``p``.

    Args:
        t: (T,) time in ms.
        V: (2P, T) membrane voltage in mV, the two neurons of each pair on consecutive rows.
        g: (2P, k) maximal conductances in mS/cm², same row order.
        names: k conductance names (``"g_Na"`` or ``"Na"``).
        t_window: (start, end) in ms of the traces to show; all of ``t`` by default.
        box: Optional literature ranges (``cell.box``); then each conductance is shown as a
            fraction of its range's upper bound instead of in mS/cm².

    Returns:
        P rows of two panels: overlaid traces (``t (ms)``, ``V (mV)``) and, per channel, both
        neurons' conductances on a log axis (``g (mS/cm²)`` or ``g / range maximum (–)``).

    Raises:
        ValueError: When the shapes do not match or the number of rows is odd.
    """
    t = _vector(t, "t")
    V = np.asarray(V, dtype=float)
    names = [_conductance_name(str(n)) for n in names]
    G = np.asarray(g, dtype=float)
    if V.ndim != 2 or V.shape[1] != t.size or V.shape[0] % 2 or V.shape[0] == 0:
        raise ValueError(f"V: expected shape (2P, {t.size}) (pairs on consecutive rows, mV), got {V.shape}")
    if G.shape != (V.shape[0], len(names)):
        raise ValueError(f"g: expected shape ({V.shape[0]}, {len(names)}) to match V and names, got {G.shape}")
    if box is not None:
        missing = [n for n in names if n not in box]
        upper = np.array([box[n][1] if n in box else np.nan for n in names])
        G = G / upper
        if missing:  # fixed conductances have no range: shown at no position rather than a made-up one
            G[:, [names.index(n) for n in missing]] = np.nan
    window = np.ones(t.size, dtype=bool) if t_window is None else (t >= t_window[0]) & (t <= t_window[1])
    if not window.any():
        raise ValueError(f"t_window={t_window}: no time points of t ({t[0]}–{t[-1]} ms) inside")
    n_pairs = V.shape[0] // 2
    fig, axes = _figure(n_pairs, 2, figsize=(9.0, 2.2 * n_pairs + 0.4), width_ratios=(2.2, 1.0))
    pair_colors = ("black", HIGHLIGHT_COLOR)
    x = np.arange(len(names))
    for p in range(n_pairs):
        ax_v, ax_g = axes[p]
        for k in range(2):
            row = 2 * p + k
            ax_v.plot(t[window], V[row, window], color=pair_colors[k], lw=0.8, alpha=0.85, label=f"neuron {'ab'[k]}")
            ax_g.plot(x, G[row], "o", color=pair_colors[k], ms=5)
        ax_g.vlines(x, np.fmin(G[2 * p], G[2 * p + 1]), np.fmax(G[2 * p], G[2 * p + 1]), color="0.6", lw=1)
        ax_g.set_yscale("log")
        ax_g.set_xticks(x, names, rotation=60, fontsize=8)
        ax_v.set_ylabel(V_LABEL)
        ax_g.set_ylabel("g / range maximum (–)" if box is not None else f"g ({CONDUCTANCE_UNIT})")
        if p == 0:
            ax_v.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2)
    axes[-1, 0].set_xlabel(T_LABEL)
    return fig


