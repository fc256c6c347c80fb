"""Dynamic input conductances: DIC curves, the (g_s, g_u) plane and activity maps (chapter 3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from condspace.plotting.style import (
    CLASS_ORDER,
    CONDUCTANCE_UNIT,
    DIC_AXIS_LABELS,
    DIC_COLORS,
    DIC_SYMBOLS,
    DIC_UNIT,
    HIGHLIGHT_COLOR,
    V_LABEL,
    _figure,
    _vector,
    class_color,
    unit_label,
)


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



