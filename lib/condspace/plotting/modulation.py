"""Neuromodulation: reachability maps with a path, trajectories, fold changes, costs (chapter 4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from condspace.plotting.dynamic_conductances import _cell_edges
from condspace.plotting.style import CONDUCTANCE_UNIT, DIC_AXIS_LABELS, DIC_UNIT, HIGHLIGHT_COLOR, _figure, _vector

REACHABILITY_CMAP = "viridis"  # fraction of the population reaching a target, fixed scale 0–1
FOLD_LABEL = "fold change ḡ / ḡ_baseline (–)"


def _plain_log(axis: Any) -> None:
    """Log axis ticks at 1, 2, 5 × 10^k written as plain numbers (fold changes read better so)."""
    from matplotlib import ticker  # noqa: PLC0415

    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _channel_colors(names: Sequence[str]) -> dict[str, str]:
    """One fixed colour per channel name (the style's cycle, in the order the names are given)."""
    cycle = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
    return {n: cycle[i % len(cycle)] for i, n in enumerate(names)}


def plot_reachability_maps(gs: Any, gu: Any, fractions: Mapping[str, Any], path: Any = None,
                           reasons: Mapping[str, str] | None = None, ncols: int = 7) -> Figure:
    """Small multiples: the fraction of a population that reaches each (g_s, g_u) target, per channel pair.

    Args:
        gs: (n_s,) g_s grid (× g_leak), increasing.
        gu: (n_u,) g_u grid (× g_leak), increasing.
        fractions: pair label (e.g. ``"CaS+H"``) → (n_u, n_s) reachable fraction in [0, 1] (rows follow ``gu``).
        path: Optional (n_points, 2) path (g_s, g_u) drawn on every panel (start ○, end ▶).
        reasons: Optional pair label → ``"singular"``/``"ok"``; singular pairs are marked in their panel.
        ncols: Panels per row.

    Returns:
        The figure: one panel per pair on a shared 0–1 colour scale (one colour bar), axes
        ``g_s (× g_leak)`` and ``g_u (× g_leak)``.

    Raises:
        ValueError: When ``fractions`` is empty, a panel's shape is not (n_u, n_s) or ``path`` is not (n, 2).
    """
    gs, gu = _vector(gs, "gs"), _vector(gu, "gu")
    if not fractions:
        raise ValueError("fractions: give at least one pair label → (n_u, n_s) array")
    pts = None
    if path is not None:
        pts = np.asarray(path, dtype=float)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"path: expected (n_points, 2) rows (g_s, g_u), got shape {pts.shape}")
    names = list(fractions)
    ncols = max(1, min(int(ncols), len(names)))
    nrows = -(-len(names) // ncols)
    fig, axes = _figure(nrows, ncols, figsize=(1.9 * ncols + 0.9, 1.45 * nrows + 0.6), sharex=True, sharey=True)
    edges_s, edges_u = _cell_edges(gs), _cell_edges(gu)
    mesh = None
    for k, ax in enumerate(axes.flat):
        if k >= len(names):
            ax.set_visible(False)
            continue
        name = names[k]
        Z = np.asarray(fractions[name], dtype=float)
        if Z.shape != (gu.size, gs.size):
            raise ValueError(f"fractions[{name!r}]: expected shape ({gu.size}, {gs.size}) (rows g_u, columns g_s), "
                             f"got {Z.shape}")
        mesh = ax.pcolormesh(edges_s, edges_u, Z, vmin=0.0, vmax=1.0, cmap=REACHABILITY_CMAP, shading="flat",
                             rasterized=True)
        ax.axvline(0.0, color="white", lw=0.6, ls="--")
        if pts is not None:
            ax.plot(pts[:, 0], pts[:, 1], color=HIGHLIGHT_COLOR, lw=1.5)
            ax.plot(*pts[0], marker="o", ms=4, mfc="none", mec=HIGHLIGHT_COLOR, mew=1.2, ls="none")
            ax.plot(*pts[-1], marker=">", ms=4, color=HIGHLIGHT_COLOR, ls="none")
        singular = reasons is not None and reasons.get(name) == "singular"
        ax.text(0.03, 0.97, name + (" (singular)" if singular else ""), transform=ax.transAxes, ha="left", va="top",
                fontsize=8, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75})
        if k % ncols == 0:
            ax.set_ylabel(DIC_AXIS_LABELS["g_u"], fontsize=8)
        if k >= len(names) - ncols:
            ax.set_xlabel(DIC_AXIS_LABELS["g_s"], fontsize=8)
            ax.tick_params(labelbottom=True)
        ax.tick_params(labelsize=7)
    fig.colorbar(mesh, ax=axes, label="reachable fraction (–)", shrink=0.8)
    return fig


def plot_trajectories(x: Any, g: Any, names: Sequence[str], x_label: str = f"g_s along the path ({DIC_UNIT})",
                      max_neurons: int = 40, seed: int = 0) -> Figure:
    """Per-neuron conductance trajectories along a path, absolute (top) and as fold changes (bottom).

    Args:
        x: (n_points,) position along the path (e.g. its g_s, or arc length), in the unit of ``x_label``.
        g: (n_points, N, k) conductances (mS/cm²) of the k modulated channels; NaN (unreachable) is not drawn.
        names: k channel names.
        x_label: Label of the x axis, with its unit.
        max_neurons: Neurons drawn as thin lines (a random subset); the median uses all.
        seed: Seed of the subset.

    Returns:
        The figure: one column per channel; thin lines are neurons, the thick line is the population
        median. Fold changes are relative to each neuron's value at the first point (log axis when
        they span more than a factor 3). The path's start is on the left.

    Raises:
        ValueError: When shapes do not match.
    """
    x = _vector(x, "x")
    G = np.asarray(g, dtype=float)
    if G.ndim != 3 or G.shape[0] != x.size or G.shape[2] != len(names):
        raise ValueError(f"g: expected shape ({x.size}, N, {len(names)}) (points, neurons, channels), got {G.shape}")
    N = G.shape[1]
    show = np.random.default_rng(seed).permutation(N)[:max_neurons]
    colors = _channel_colors(names)
    fig, axes = _figure(2, len(names), figsize=(3.2 * len(names), 4.8), sharex=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        fold = np.where(G[:1] > 0, G / G[:1], np.nan)
    for j, name in enumerate(names):
        for row, (values, label) in enumerate(((G[:, :, j], f"ḡ_{name} ({CONDUCTANCE_UNIT})"),
                                                (fold[:, :, j], f"ḡ_{name} / ḡ_{name},start (–)"))):
            ax = axes[row, j]
            ax.plot(x, values[:, show], color=colors[name], lw=0.5, alpha=0.35)
            with np.errstate(invalid="ignore"):
                ax.plot(x, np.nanmedian(np.where(np.isfinite(values), values, np.nan), axis=1), color="black",
                        lw=2.0, label="median")
            ax.set_ylabel(label)
            if row == 1:
                finite = values[np.isfinite(values) & (values > 0)]
                if finite.size and finite.max() / finite.min() > 3.0:
                    ax.set_yscale("log")
                    _plain_log(ax.yaxis)
                ax.set_xlabel(x_label)
                ax.axhline(1.0, color="0.6", lw=0.8, ls="--")
        axes[0, j].legend(loc="best", fontsize=8)
    if x[-1] < x[0]:
        axes[0, 0].invert_xaxis()  # shared x: the path reads from left to right
    return fig


def plot_modulation_scatter(before: Any, after: Any, names: Sequence[str]) -> Figure:
    """Change of each modulated conductance against its starting value, one point per neuron.

    A purely additive modulation (the same Δḡ for every neuron) would lie on the horizontal line at
    the mean Δḡ; a purely multiplicative one (the same fold change) on the line through the origin
    with the median fold change. Neuron-specific modulation lies on neither.

    Args:
        before: (N, k) starting conductances (mS/cm²).
        after: (N, k) modulated conductances (mS/cm²); rows with NaN are skipped.
        names: k channel names.

    Returns:
        The figure, one panel per channel: x ``ḡ before (mS/cm²)``, y ``Δḡ (mS/cm²)``.

    Raises:
        ValueError: When shapes do not match.
    """
    B, A = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if B.ndim != 2 or B.shape != A.shape or B.shape[1] != len(names):
        raise ValueError(f"before/after: expected two (N, {len(names)}) arrays, got {B.shape} and {A.shape}")
    colors = _channel_colors(names)
    fig, axes = _figure(1, len(names), figsize=(3.4 * len(names), 3.2))
    for j, name in enumerate(names):
        ax = axes[0, j]
        ok = np.isfinite(A[:, j]) & np.isfinite(B[:, j]) & (B[:, j] > 0)
        b, d = B[ok, j], A[ok, j] - B[ok, j]
        ax.scatter(b, d, s=6, color=colors[name], alpha=0.6, linewidths=0, label="neurons")
        if ok.any():
            grid = np.linspace(0.0, b.max() * 1.05, 50)
            ax.plot(grid, np.full_like(grid, d.mean()), color="0.3", ls="--", lw=1.0, label="additive (mean Δḡ)")
            fold = np.median(A[ok, j] / b)
            ax.plot(grid, (fold - 1.0) * grid, color="black", ls=":", lw=1.2, label=f"multiplicative (×{fold:.2f})")
        ax.axhline(0.0, color="0.8", lw=0.6)
        ax.set_xlabel(f"ḡ_{name} before ({CONDUCTANCE_UNIT})")
        ax.set_ylabel(f"Δḡ_{name} ({CONDUCTANCE_UNIT})")
        ax.legend(loc="best", fontsize=7)
    return fig


def plot_costs(table: pd.DataFrame, channels: Sequence[str] | None = None) -> Figure:
    """The cost of each channel pair: median fold change of each modulated channel, with its IQR.

    Args:
        table: Long table with columns ``pair``, ``channel``, ``median``, ``q25``, ``q75`` (fold
            changes, –) and optionally ``reachable_fraction``; one row per (pair, channel).
        channels: Channel order for the colours (default: order of appearance).

    Returns:
        The figure: one row per pair (in table order), a point per channel at its median fold
        change with a bar from q25 to q75, on a log axis; the dashed line is no change (×1).

    Raises:
        ValueError: When a required column is missing or the table is empty.
    """
    need = {"pair", "channel", "median", "q25", "q75"}
    if not need <= set(table.columns) or table.empty:
        raise ValueError(f"table: needs rows with columns {sorted(need)}, got {list(table.columns)}")
    pairs = list(dict.fromkeys(table["pair"]))
    chans = list(channels) if channels is not None else list(dict.fromkeys(table["channel"]))
    colors = _channel_colors(chans)
    fig, axes = _figure(figsize=(6.4, 0.6 + 0.32 * len(pairs)))
    ax = axes[0, 0]
    y = {p: i for i, p in enumerate(pairs)}
    seen = set()
    for row in table.itertuples():
        yy = y[row.pair] + (0.12 if row.channel == str(row.pair).split("+")[-1] else -0.12)
        label = row.channel if row.channel not in seen else None
        seen.add(row.channel)
        ax.errorbar(row.median, yy, xerr=[[row.median - row.q25], [row.q75 - row.median]], fmt="o", ms=4,
                    color=colors.get(row.channel, "black"), lw=1.0, label=label)
    ax.axvline(1.0, color="0.6", ls="--", lw=0.8)
    ax.set_xscale("log")
    _plain_log(ax.xaxis)
    ax.set_yticks(range(len(pairs)))
    ticks = pairs
    if "reachable_fraction" in table.columns:
        frac = table.groupby("pair", sort=False)["reachable_fraction"].first()
        ticks = [f"{p} ({frac[p]:.0%})" for p in pairs]
    ax.set_yticklabels(ticks)
    ax.invert_yaxis()
    ax.set_xlabel(FOLD_LABEL)
    ax.legend(loc="best", fontsize=8, ncols=2)
    return fig


