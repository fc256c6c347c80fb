"""Derived kinetics of a declared cell: flattened gates, steady states, initial state.

Everything here is computed from the :class:`~condspace.channels.CellType` declaration alone,
so the simulator and the DIC engine never special-case a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from condspace.channels import CellType, Gate, KineticScheme


@dataclass(frozen=True)
class GateSlot:
    """One gating factor of one channel, as the engines see it.

    Attributes:
        channel: Index of the channel in ``cell.channels``.
        gate: The declared :class:`Gate` or :class:`KineticScheme`.
        label: ``"channel.gate"`` (e.g. ``"Na.m"``), the key of timescale weights.
        kind: ``"hh"`` (τ(V), x∞(V)), ``"calcium"`` (x∞ depends on [Ca]), ``"instant"``
            (no τ) or ``"scheme"`` (kinetic scheme).
    """

    channel: int
    gate: Gate | KineticScheme
    label: str = ""  # "Na.m": channel name and gate name

    @property
    def kind(self) -> str:
        g = self.gate
        if isinstance(g, KineticScheme):
            return "scheme"
        if g.uses_calcium:
            return "calcium"
        return "instant" if g.tau is None else "hh"

    @property
    def power(self) -> int:
        return self.gate.power


def gate_slots(cell: CellType) -> tuple[GateSlot, ...]:
    """Every gating factor of the cell, in channel order then declaration order."""
    return tuple(GateSlot(ci, g, f"{ch.name}.{g.name}") for ci, ch in enumerate(cell.channels) for g in ch.gates)


def scheme_steady_state(xp: Any, scheme: KineticScheme, V: Any) -> dict[str, Any]:
    """Steady-state occupancies of a kinetic scheme at voltage(s) ``V``.

    Solves Q·p = 0 with Σp = 1 (the generator's first balance equation replaced by
    conservation), batched over ``V``; works for complex ``V`` (complex-step derivatives).

    Returns:
        State name → occupancy, each with the shape of ``V``.
    """
    V = xp.asarray(V)
    n = len(scheme.states)
    pos = {s: i for i, s in enumerate(scheme.states)}
    Q = xp.zeros(V.shape + (n, n), dtype=V.dtype if xp.iscomplexobj(V) else float)
    for t in scheme.transitions:
        r = t.rate(xp, V)
        i, j = pos[t.source], pos[t.target]
        Q[..., j, i] = Q[..., j, i] + r  # inflow to target from source
        Q[..., i, i] = Q[..., i, i] - r  # outflow from source
    Q[..., 0, :] = 1.0
    rhs = xp.zeros(V.shape + (n,), dtype=Q.dtype)
    rhs[..., 0] = 1.0
    p = xp.linalg.solve(Q, rhs[..., None])[..., 0]
    return {s: p[..., pos[s]] for s in scheme.states}


def scheme_generator(xp: Any, scheme: KineticScheme, V: Any) -> Any:
    """Generator matrix Q(V) of a kinetic scheme, dp/dt = Q·p: shape V.shape + (n, n), 1/ms."""
    V = xp.asarray(V)
    n = len(scheme.states)
    pos = {s: i for i, s in enumerate(scheme.states)}
    Q = xp.zeros(V.shape + (n, n), dtype=V.dtype)
    for t in scheme.transitions:
        r = t.rate(xp, V)
        i, j = pos[t.source], pos[t.target]
        Q[..., j, i] += r
        Q[..., i, i] -= r
    return Q


def scheme_propagator(xp: Any, scheme: KineticScheme, V: Any, dt: float) -> Any:
    """expm(Q(V)·dt): the exact one-step propagator of the occupancies at frozen V.

    Column sums are 1 (probability is conserved). Computed with SciPy's batched ``expm`` on
    the host (used to build rate tables and by the ``exact`` reference method).

    Returns:
        Array of shape V.shape + (n, n).
    """
    from scipy.linalg import expm  # noqa: PLC0415

    V_host = np.asarray(V.get() if hasattr(V, "get") else V, dtype=float)
    M = expm(scheme_generator(np, scheme, V_host) * dt)
    return xp.asarray(M)


def gate_steady_state(xp: Any, slot: GateSlot, V: Any, ca: Any = None) -> Any:
    """Steady state of one gating factor (for a scheme: its open-state occupancy)."""
    g = slot.gate
    if isinstance(g, KineticScheme):
        return scheme_steady_state(xp, g, V)[g.open_state]
    if g.uses_calcium:
        if ca is None:
            raise ValueError(f"gate {g.name} depends on [Ca]; pass ca")
        return g.inf(xp, V, ca)
    return g.inf(xp, V)


def initial_state(cell: CellType) -> dict[str, Any]:
    """The declared initial state: V0, every gate at steady state at V0 (schemes as declared).

    Returns:
        ``{"V": float, "gates": list of float per HH/calcium/instant slot (slot order),
        "schemes": list of dict state → occupancy per scheme slot, "ca": float or None}``.
    """
    V0 = np.asarray(cell.V0, dtype=float)
    ca0 = cell.calcium.initial if cell.calcium is not None else None
    gates, schemes = [], []
    for slot in gate_slots(cell):
        if slot.kind == "scheme":
            sch = slot.gate
            occ = sch.initial if sch.initial is not None else {
                k: float(v) for k, v in scheme_steady_state(np, sch, V0).items()}
            schemes.append({s: float(occ[s]) for s in sch.states[1:]})
        else:
            gates.append(float(gate_steady_state(np, slot, V0, ca0)))
    return {"V": float(cell.V0), "gates": gates, "schemes": schemes, "ca": ca0}
