"""A cell declaration drawn: its channel table and its gating functions x_∞(V), τ(V).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from condspace import cells
from condspace.channels import CellType, Channel, KineticScheme
from condspace.kinetics import scheme_steady_state
from condspace.plotting.style import CONDUCTANCE_UNIT, STYLE_PATH, V_LABEL, _figure, _vector

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
        _range_text(cell, n) for n in table.index]
    return table


def _range_text(cell, name: str) -> str:
    """The range column of one conductance: its box, its fixed value, and its prior if that is inferred too."""
    if name in cell.fixed:
        text = f"fixed {cell.fixed[name]:g}"
        if name in cell.inferred_fixed:
            lo, hi = cell.inferred_fixed[name]
            text += f" (inferred over {lo:g} – {hi:g})"
        return text
    return f"{cell.box[name][0]:g} – {cell.box[name][1]:g}" if name in cell.box else ""


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


