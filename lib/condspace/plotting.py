"""Figures for the book: one style file, fixed colours, axis labels with units.

Plots sit at the end of the data flow: every helper takes plain NumPy arrays or a pandas
DataFrame (what the other modules return) and imports nothing from simulate, features,
inference, dics, populations or neuromodulation; only the cell declarations
(:mod:`condspace.cells`, with :mod:`condspace.channels` and :mod:`condspace.kinetics`) are read,
to tabulate and draw a cell's channels. Each helper returns the
:class:`matplotlib.figure.Figure`; captions belong in the notebook cell metadata, not in titles.

The colours never change between chapters:

* :data:`DIC_COLORS` for the fast, slow and ultraslow dynamic input conductances;
* :data:`CLASS_COLORS` for the activity classes silent, spiking, bursting and invalid.

>>> from condspace import plotting
>>> plotting.use_style()
>>> fig = plotting.plot_dic_curves(V, gf, gs, gu, vth=-50.5)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from condspace import cells
from condspace.channels import CellType, Channel, KineticScheme
from condspace.kinetics import scheme_steady_state

STYLE_PATH = Path(__file__).with_name("condspace.mplstyle")

# Okabe-Ito colours (colour-blind safe). Fast = vermillion, slow = blue, ultraslow = green.
DIC_COLORS: dict[str, str] = {"fast": "#D55E00", "slow": "#0072B2", "ultraslow": "#009E73"}
DIC_SYMBOLS: dict[str, str] = {"fast": "g_f", "slow": "g_s", "ultraslow": "g_u"}

# Activity classes in their reading order; "invalid" = the simulation blew up (SimulationResult.ok False).
CLASS_COLORS: dict[str, str] = {"silent": "#999999", "spiking": "#56B4E9", "bursting": "#CC79A7", "invalid": "#000000"}
CLASS_ORDER: tuple[str, ...] = ("silent", "spiking", "bursting", "invalid")
HIGHLIGHT_COLOR = "#E69F00"  # orange: never a DIC or class colour

V_LABEL = "V (mV)"
T_LABEL = "t (ms)"
CONDUCTANCE_UNIT = "mS/cm²"
DIC_UNIT = "× g_leak"  # DICs are normalised by the leak conductance (SCIENCE.md §3)

# Units of quantities the chapters plot, by exact name. unit_label falls back to name rules.
# Feature names follow condspace.features.FEATURES ("–" = dimensionless).
UNITS: dict[str, str] = {
    "g_f": DIC_UNIT, "g_s": DIC_UNIT, "g_u": DIC_UNIT, "g_in": DIC_UNIT,
    "V_th": "mV", "V": "mV", "t": "ms",
    "cv_isi": "–", "duty_cycle": "–", "spikes_per_burst": "spikes", "n_spikes": "spikes",
    "n_bursts": "bursts", "burstiness": "Hz/s",
}


def use_style() -> None:
    """Apply the condspace matplotlib style (call once near the top of a chapter)."""
    plt.style.use(STYLE_PATH)


def class_color(label: str, fallback_index: int = 0) -> str:
    """Colour of an activity class; labels outside :data:`CLASS_COLORS` take a neutral cycle colour."""
    if label in CLASS_COLORS:
        return CLASS_COLORS[label]
    extra = ["#E69F00", "#F0E442", "#56B4E9", "#009E73"]
    return extra[fallback_index % len(extra)]


def unit_label(name: str, units: Mapping[str, str] | None = None) -> str:
    """Axis label ``"name (unit)"`` for a quantity.

    Looks the unit up in ``units`` first, then in :data:`UNITS`, then by name: ``g_*``
    conductances are mS/cm²; names with ``freq`` or ending in ``_hz`` are Hz; names ending in
    ``_ms``, starting with ``isi`` or containing ``duration``/``period`` are ms. Without a unit
    the bare name is returned, so a missing unit is visible on the figure rather than invented.

    Args:
        name: Quantity or column name (``"g_Na"``, ``"spiking_freq_hz"``).
        units: Optional name → unit overrides (``"–"`` for dimensionless).
    """
    unit = (units or {}).get(name, UNITS.get(name))
    low = name.lower()
    if unit is None:
        if name.startswith("g_"):
            unit = CONDUCTANCE_UNIT
        elif "freq" in low or low.endswith("_hz"):
            unit = "Hz"
        elif low.endswith("_ms") or low.startswith("isi") or "duration" in low or "period" in low:
            unit = "ms"
    return f"{name} ({unit})" if unit else name


def _figure(nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Figure, np.ndarray]:
    with plt.style.context(STYLE_PATH):
        fig, axes = plt.subplots(nrows, ncols, squeeze=False, **kw)
        # The first figure of a session loads the backend; in a notebook the inline backend then
        # switches interactive mode on. Leaving the style context would restore the old rcParams
        # and switch it off again, and no later figure would be shown: keep what was set here.
        interactive = plt.isinteractive()
    plt.interactive(interactive)
    return fig, axes


def _vector(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D array, got shape {arr.shape}")
    return arr


# ----- the cell declaration ------------------------------------------------------------------
_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _gating_product(channel: Channel) -> str:
    parts = []
    for gate in channel.gates:
        exp = "" if gate.power == 1 else str(gate.power).translate(_SUPERSCRIPT)
        parts.append(f"{gate.name}{exp}")
    return "·".join(parts)


def channel_table(cell: str | CellType) -> pd.DataFrame:
    """The channels of a cell type as a table (one row per conductance, leak last).

    Args:
        cell: A registered name (``"stg"``, ``"da"``) or a :class:`~condspace.channels.CellType`.

    Returns:
        DataFrame indexed by conductance name (``g_Na``, …) with the gating product, the
        reversal potential ``E (mV)``, the literature range ``range (mS/cm²)`` (or the fixed
        value), the gates' kinds and the calcium role.
    """
    cell = cells.get(cell)
    rows = []
    for channel in cell.channels:
        kinds = []
        for gate in channel.gates:
            if isinstance(gate, KineticScheme):
                kinds.append(f"{gate.name}: {len(gate.states)}-state scheme ({gate.timescale})")
            elif gate.tau is None:
                kinds.append(f"{gate.name}: instantaneous")
            elif gate.uses_calcium:
                kinds.append(f"{gate.name}: depends on V and [Ca]")
            else:
                kinds.append(f"{gate.name}: τ(V)")
        rows.append({"channel": channel.name, "gating": _gating_product(channel), "E (mV)": channel.reversal,
                     "gates": "; ".join(kinds), "calcium": "carries Ca²⁺" if channel.carries_calcium else ""})
    rows.append({"channel": "leak", "gating": "1", "E (mV)": cell.leak_reversal, "gates": "", "calcium": ""})
    table = pd.DataFrame(rows, index=pd.Index(cell.conductance_names, name="conductance"))
    table[f"range ({CONDUCTANCE_UNIT})"] = [
        f"fixed {cell.fixed[n]:g}" if n in cell.fixed else (f"{cell.box[n][0]:g} – {cell.box[n][1]:g}" if n in cell.box
                                                             else "")
        for n in table.index]
    return table


def _scheme_tau(scheme: KineticScheme, V: np.ndarray) -> np.ndarray:
    """Slowest relaxation time (ms) of a kinetic scheme: −1 / (largest non-zero eigenvalue of Q)."""
    pos = {name: i for i, name in enumerate(scheme.states)}
    Q = np.zeros(V.shape + (len(pos), len(pos)))
    for tr in scheme.transitions:
        rate = np.asarray(tr.rate(np, V), dtype=float)
        Q[..., pos[tr.target], pos[tr.source]] += rate
        Q[..., pos[tr.source], pos[tr.source]] -= rate
    eig = np.sort(np.linalg.eigvals(Q).real, axis=-1)  # one eigenvalue is 0 (conservation)
    return -1.0 / eig[..., -2]


def plot_gating(cell: str | CellType, V: Any = None, ca: float | None = None) -> Figure:
    """Steady states x∞(V) and time constants τ(V) of every gate of a cell type.

    Args:
        cell: A registered name or a :class:`~condspace.channels.CellType`.
        V: (M,) voltages in mV; −100 to +40 mV by default.
        ca: [Ca] (µM) for calcium-dependent steady states; the cell's initial [Ca] by default.

    Returns:
        Two panels sharing ``V (mV)``: ``x∞ (–)`` and ``τ (ms)`` on a log axis. A kinetic
        scheme shows its open-state occupancy and its slowest relaxation time; instantaneous
        gates have no τ curve.
    """
    cell = cells.get(cell)
    V = np.linspace(-100.0, 40.0, 561) if V is None else _vector(V, "V")
    if ca is None and cell.calcium is not None:
        ca = cell.calcium.initial
    fig, axes = _figure(1, 2, figsize=(9.0, 3.6), sharex=True)
    ax_inf, ax_tau = axes[0]
    with plt.style.context(STYLE_PATH):
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, channel in enumerate(cell.channels):
        color = colors[k % len(colors)]
        for j, gate in enumerate(channel.gates):
            style = ("-", "--", ":")[j % 3]
            label = f"{channel.name} {gate.name}"
            if isinstance(gate, KineticScheme):
                x_inf = scheme_steady_state(np, gate, V)[gate.open_state]
                tau = _scheme_tau(gate, V)
            elif gate.uses_calcium:
                x_inf, tau = gate.inf(np, V, ca), gate.tau(np, V)
                label += f" ([Ca] = {ca:g} µM)"
            else:
                x_inf = gate.inf(np, V)
                tau = None if gate.tau is None else gate.tau(np, V) * np.ones_like(V)
            ax_inf.plot(V, x_inf, color=color, ls=style, label=label)
            if tau is not None:
                ax_tau.plot(V, tau, color=color, ls=style, label=label)
    ax_inf.set_xlabel(V_LABEL)
    ax_inf.set_ylabel("steady state x∞ (–)")
    ax_tau.set_xlabel(V_LABEL)
    ax_tau.set_ylabel("time constant τ (ms)")
    ax_tau.set_yscale("log")
    ax_tau.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


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


# ----- dynamic input conductances ------------------------------------------------------------
def plot_dic_curves(
    V: Any,
    gf: Any,
    gs: Any,
    gu: Any,
    vth: float | None = None,
    normalised: bool = True,
    ax: plt.Axes | None = None,
) -> Figure:
    """Fast, slow and ultraslow DICs against voltage, with the threshold voltage V_th marked.

    Args:
        V: (M,) voltages in mV.
        gf: (M,) fast DIC of one neuron, or (N, M) for a population (drawn as the median
            with a 10–90 % band).
        gs: Slow DIC, same shape as ``gf``.
        gu: Ultraslow DIC, same shape as ``gf``.
        vth: Threshold voltage in mV (a dashed vertical line); None or NaN draws none
            (V_th does not exist for every neuron: the legend then says so).
        normalised: True when the DICs are multiples of g_leak (the default everywhere),
            False for mS/cm².
        ax: Axes to draw into; a new figure when None.

    Returns:
        The figure; x label ``V (mV)``, y label ``DIC (× g_leak)`` or ``DIC (mS/cm²)``.

    Raises:
        ValueError: When a DIC array does not match ``V``.
    """
    V = _vector(V, "V")
    if ax is None:
        fig, axes = _figure(figsize=(5.0, 3.4))
        ax = axes[0, 0]
    ax.axhline(0.0, color="0.6", lw=0.6, zorder=0)
    for arg, curve, scale in (("gf", gf, "fast"), ("gs", gs, "slow"), ("gu", gu, "ultraslow")):
        y = np.asarray(curve, dtype=float)
        if y.ndim not in (1, 2) or y.shape[-1] != V.size:
            raise ValueError(f"{arg}: expected shape ({V.size},) or (N, {V.size}) to match V, got {y.shape}")
        color, label = DIC_COLORS[scale], f"{DIC_SYMBOLS[scale]} ({scale})"
        if y.ndim == 1:
            ax.plot(V, y, color=color, label=label)
        else:
            lo, med, hi = np.nanpercentile(y, [10, 50, 90], axis=0)
            ax.plot(V, med, color=color, label=f"{label}, median of {y.shape[0]}")
            ax.fill_between(V, lo, hi, color=color, alpha=0.2, linewidth=0)
    if vth is not None and np.isfinite(vth):
        ax.axvline(vth, color="black", ls="--", lw=0.8, label=f"V_th = {vth:.2f} mV")
    elif vth is not None:
        ax.plot([], [], " ", label="no V_th (g_in has no zero crossing)")
    ax.set_xlabel(V_LABEL)
    ax.set_ylabel(f"DIC ({DIC_UNIT})" if normalised else f"DIC ({CONDUCTANCE_UNIT})")
    ax.legend()
    return ax.figure


__all__ = [
    "CLASS_COLORS", "CLASS_ORDER", "DIC_COLORS", "HIGHLIGHT_COLOR", "STYLE_PATH", "UNITS", "channel_table",
    "class_color", "plot_class_fractions", "plot_conductance_pairs", "plot_degenerate_pairs", "plot_dic_curves",
    "plot_feature_distributions", "plot_gating", "plot_traces", "unit_label", "use_style",
]


# ===== DIC figures of chapter 3 (dynamic input conductances) ===================================
# Added by the chapter-3 helper: DIC curves of several neurons, the (g_s, g_u) plane, activity maps.
DIC_AXIS_LABELS: dict[str, str] = {"g_f": f"g_f ({DIC_UNIT})", "g_s": f"g_s ({DIC_UNIT})", "g_u": f"g_u ({DIC_UNIT})"}


def plot_dic_curves_grid(V: Any, dics: Any, vth: Any, labels: Sequence[str], classes: Sequence[str] | None = None,
                         ncols: int = 3, ylim: tuple[float, float] | None = None) -> Figure:
    """DIC curves g_f, g_s, g_u (V) of several neurons, one panel each (:func:`plot_dic_curves`).

    Args:
        V: (M,) voltages in mV.
        dics: (N, M, 3) DICs (× g_leak) of N neurons: g_f, g_s, g_u on the last axis.
        vth: (N,) threshold voltages in mV (NaN: no threshold).
        labels: N panel labels (e.g. the names of published sets).
        classes: Optional N activity classes, written under each label in the class colour.
        ncols: Panels per row.
        ylim: Shared y limits (× g_leak). Far above threshold the DICs grow by orders of
            magnitude; limits around their values at V_th keep the threshold region readable.

    Returns:
        The figure; shared ``V (mV)`` x axis and ``DIC (× g_leak)`` y axis; one legend above the panels.

    Raises:
        ValueError: When the shapes of ``dics``, ``vth``, ``labels`` or ``classes`` do not match.
    """
    V = _vector(V, "V")
    D = np.asarray(dics, dtype=float)
    if D.ndim != 3 or D.shape[1:] != (V.size, 3) or D.shape[0] == 0:
        raise ValueError(f"dics: expected shape (N, {V.size}, 3) (g_f, g_s, g_u per voltage), got {D.shape}")
    n = D.shape[0]
    vth = np.asarray(vth, dtype=float).reshape(-1)
    labels = [str(x) for x in labels]  # positional access, whatever the index of a Series
    classes = None if classes is None else [str(x) for x in classes]
    for arg, seq in (("vth", vth), ("labels", labels), ("classes", classes)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{arg}: expected {n} entries (one per neuron), got {len(seq)}")
    ncols = max(1, min(int(ncols), n))
    nrows = -(-n // ncols)
    fig, axes = _figure(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows + 0.3), sharex=True, sharey=True)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_visible(False)
            continue
        plot_dic_curves(V, D[i, :, 0], D[i, :, 1], D[i, :, 2], vth=vth[i], ax=ax)
        text = f"{labels[i]}\nV_th = {vth[i]:.2f} mV" if np.isfinite(vth[i]) else f"{labels[i]}\nno V_th"
        ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize=8)
        if classes is not None:
            ax.text(0.03, 0.75, classes[i], transform=ax.transAxes, va="top", fontsize=8, color=class_color(classes[i]))
        ax.get_legend().remove()
        if i % ncols:
            ax.set_ylabel("")
        if i < n - ncols:
            ax.set_xlabel("")
        else:
            ax.tick_params(labelbottom=True)  # no panel below: show this panel's voltage ticks
    if ylim is not None:
        axes.flat[0].set_ylim(*ylim)
    handles, names = axes.flat[0].get_legend_handles_labels()
    names = ["V_th" if name.startswith("V_th") else name for name in names]  # the value is in each panel
    fig.legend(handles, names, loc="outside upper center", ncols=len(handles))
    return fig


def plot_dic_plane(gs: Any, gu: Any, labels: Any = None, names: Sequence[str] | None = None,
                   ax: plt.Axes | None = None, size: float = 8.0) -> Figure:
    """Neurons as points in the (g_s, g_u) plane, coloured by activity class.

    The line g_s = 0 separates slow negative feedback (g_s > 0, tonic spiking) from slow positive
    feedback (g_s < 0, bursting) in the reading of Drion et al. 2015.

    Args:
        gs: (N,) slow DICs (× g_leak).
        gu: (N,) ultraslow DICs (× g_leak).
        labels: Optional (N,) activity classes (colours of :data:`CLASS_COLORS`, one legend entry each).
        names: Optional N names written next to the points (for a handful of published sets).
        ax: Axes to draw into; a new figure when None.
        size: Marker size.

    Returns:
        The figure; axes ``g_s (× g_leak)`` and ``g_u (× g_leak)``.

    Raises:
        ValueError: When the lengths of ``gs``, ``gu``, ``labels`` or ``names`` differ.
    """
    gs, gu = np.asarray(gs, dtype=float).reshape(-1), np.asarray(gu, dtype=float).reshape(-1)
    n = gs.size
    if gu.size != n:
        raise ValueError(f"gu: expected {n} values to match gs, got {gu.size}")
    lab = np.full(n, "", dtype=object) if labels is None else np.asarray(labels, dtype=object).reshape(-1)
    names = None if names is None else [str(x) for x in names]
    for arg, seq in (("labels", lab), ("names", names)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{arg}: expected {n} entries (one per point), got {len(seq)}")
    if ax is None:
        fig, axes = _figure(figsize=(4.6, 3.6))
        ax = axes[0, 0]
    ax.axvline(0.0, color="0.6", lw=0.8, ls="--", zorder=0)
    groups = [c for c in CLASS_ORDER if (lab == c).any()] + sorted(set(lab.astype(str)) - set(CLASS_ORDER) - {""})
    if (lab == "").any():
        groups.append("")
    for j, group in enumerate(groups):
        sel = lab == group
        color = "0.3" if group == "" else class_color(group, j)
        ax.scatter(gs[sel], gu[sel], s=size, marker="o", color=color, alpha=0.7 if n > 20 else 1.0, linewidths=0,
                   label=f"{group or 'neurons'} (n={int(sel.sum())})")
    if names is not None:
        for x, y, name in zip(gs, gu, names, strict=True):
            ax.annotate(str(name), (x, y), xytext=(4, 3), textcoords="offset points", fontsize=8)
    ax.set_xlabel(DIC_AXIS_LABELS["g_s"])
    ax.set_ylabel(DIC_AXIS_LABELS["g_u"])
    _keep_dic_scale(ax, gs, gu)
    ax.legend()
    return ax.figure


def _keep_dic_scale(ax: plt.Axes, gs: np.ndarray, gu: np.ndarray, min_span: float = 2.0) -> None:
    """Show at least ``min_span`` (× g_leak) on an axis whose points all but coincide.

    A population built by compensation sits on one DIC point: left to itself, Matplotlib zooms onto
    rounding noise (an axis of ±1e-11 with an offset label). Offsets are switched off on both axes.
    """
    ax.ticklabel_format(useOffset=False)
    ok = np.isfinite(gs) & np.isfinite(gu)
    if not ok.any():
        return
    x, y = gs[ok], gu[ok]
    corners = []
    if np.ptp(x) < min_span / 2:
        corners += [[x.mean() - min_span / 2, y[0]], [x.mean() + min_span / 2, y[0]]]
    if np.ptp(y) < min_span / 2:
        corners += [[x[0], y.mean() - min_span / 2], [x[0], y.mean() + min_span / 2]]
    if corners:  # widen the data limits, not the view: later lines (a path) still rescale it
        ax.update_datalim(np.array(corners))
        ax.autoscale_view()


def plot_dic_map(gs: Any, gu: Any, panels: Mapping[str, Any], units: Mapping[str, str] | None = None,
                 markers: Mapping[str, tuple[float, float]] | None = None, ncols: int = 3) -> Figure:
    """Quantities over a grid of (g_s, g_u) targets, one heat map per quantity.

    Args:
        gs: (n_s,) g_s grid values (× g_leak), increasing.
        gu: (n_u,) g_u grid values (× g_leak), increasing.
        panels: name → (n_u, n_s) values (rows follow ``gu``); NaN cells (nothing to show, e.g. no
            bursting neuron there) are left blank. Names starting with ``fraction`` are drawn on a
            fixed 0–1 colour scale.
        units: Unit overrides for the colour-bar labels (:func:`unit_label`; ``"–"`` for fractions).
        markers: Optional label → (g_s, g_u) points drawn on every panel (e.g. the spiking target).
        ncols: Panels per row.

    Returns:
        The figure; axes ``g_s (× g_leak)`` and ``g_u (× g_leak)``, each panel with a colour bar
        labelled ``name (unit)``.

    Raises:
        ValueError: When ``panels`` is empty or a panel's shape is not (n_u, n_s).
    """
    gs, gu = _vector(gs, "gs"), _vector(gu, "gu")
    if not panels:
        raise ValueError("panels: give at least one name → (n_u, n_s) array to draw")
    units = {"fraction": "–", **(units or {})}
    names = list(panels)
    ncols = max(1, min(int(ncols), len(names)))
    nrows = -(-len(names) // ncols)
    fig, axes = _figure(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows), sharex=True, sharey=True)
    edges_s, edges_u = _cell_edges(gs), _cell_edges(gu)
    for k, ax in enumerate(axes.flat):
        if k >= len(names):
            ax.set_visible(False)
            continue
        name = names[k]
        Z = np.asarray(panels[name], dtype=float)
        if Z.shape != (gu.size, gs.size):
            raise ValueError(f"panels[{name!r}]: expected shape ({gu.size}, {gs.size}) (rows g_u, columns g_s), "
                             f"got {Z.shape}")
        fraction = name.startswith("fraction")
        mesh = ax.pcolormesh(edges_s, edges_u, np.ma.masked_invalid(Z), vmin=0.0 if fraction else None,
                             vmax=1.0 if fraction else None, shading="flat")
        unit = units.get(name, units["fraction"] if fraction else None)
        fig.colorbar(mesh, ax=ax, label=unit_label(name, {name: unit} if unit else None))
        ax.axvline(0.0, color="white", lw=0.8, ls="--")
        for j, (label, (x, y)) in enumerate((markers or {}).items()):
            ax.plot(x, y, marker="os^D"[j % 4], ms=6, mfc="none", mec=HIGHLIGHT_COLOR, mew=1.5, ls="none",
                    label=label)
        if k == 0 and markers:
            ax.legend(loc="upper left", fontsize=8)
        if k % ncols == 0:
            ax.set_ylabel(DIC_AXIS_LABELS["g_u"])
        if k >= len(names) - ncols:
            ax.set_xlabel(DIC_AXIS_LABELS["g_s"])
            ax.tick_params(labelbottom=True)  # no panel below: show this panel's g_s ticks
    return fig


def _cell_edges(x: np.ndarray) -> np.ndarray:
    """Edges of the grid cells around the (increasing) values x, clipped to [x[0], x[-1]].

    Interior cells are centred on their value; the two outer cells end at the first and last
    value, so a coarse grid never draws beyond the range it sampled. One value gets width 1.
    """
    if x.size == 1:
        return np.array([x[0] - 0.5, x[0] + 0.5])
    if np.any(np.diff(x) <= 0):
        raise ValueError(f"grid values must increase, got {x.tolist()}")
    return np.concatenate([[x[0]], (x[1:] + x[:-1]) / 2, [x[-1]]])



__all__ += ["DIC_AXIS_LABELS", "plot_dic_curves_grid", "plot_dic_map", "plot_dic_plane"]


# ===== Neuromodulation figures of chapter 4 ======================================================
# Added by the neuromodulation helper: reachability maps with a path, per-neuron trajectories,
# additive vs multiplicative changes, and the cost of each channel pair. Plain arrays in, figures out.
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


__all__ += ["FOLD_LABEL", "REACHABILITY_CMAP", "plot_costs", "plot_modulation_scatter", "plot_reachability_maps",
            "plot_trajectories"]
