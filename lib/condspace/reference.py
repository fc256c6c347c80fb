"""A per-neuron SciPy reference for the batched integrator.

The right-hand side is derived from the same cell declaration as the batched engine (no second
copy of the equations), so comparing :func:`simulate_scipy` with :func:`condspace.simulate`
tests the integration scheme, not a transcription.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from condspace import cells as _cells
from condspace._engine import SPIKE_REARM, SPIKE_THRESHOLD
from condspace.channels import CellType
from condspace.kinetics import initial_state
from condspace.plan import cell_plan


def _layout(cell: CellType):
    slots = cell_plan(cell).factors  # the engines' layout (condspace.plan)
    plain = [s for s in slots if s.kind != "scheme"]
    schemes = [s for s in slots if s.kind == "scheme"]
    return plain, schemes


def initial_vector(cell: CellType) -> np.ndarray:
    """Initial state [V, plain gates..., scheme states (all but the first of each)..., (Ca)]."""
    init = initial_state(cell)
    y = [init["V"], *init["gates"]]
    for occ in init["schemes"]:
        y.extend(occ.values())
    if cell.calcium is not None:
        y.append(init["ca"])
    return np.asarray(y, dtype=float)


def rhs(cell: str | CellType, g: Any, current: float = 0.0):
    """The ODE right-hand side f(t, y) of one neuron, for ``scipy.integrate.solve_ivp``.

    Args:
        cell: Cell type or name.
        g: One conductance vector (n_channels,), mS/cm², in ``cell.conductance_names`` order.
        current: Constant applied current (µA/cm²).
    """
    cell = _cells.get(cell)
    g = np.asarray(g, dtype=float)
    plain, schemes = _layout(cell)
    n_plain = len(plain)
    E = np.array([ch.reversal for ch in cell.channels])
    pool = cell.calcium

    def f(t: float, y: np.ndarray) -> np.ndarray:
        V = y[0]
        ca = y[-1] if pool is not None else None
        dy = np.zeros_like(y)
        open_frac = np.ones(len(cell.channels))
        for k, s in enumerate(plain):
            x = y[1 + k]
            gate = s.gate
            xinf = gate.inf(np, V, ca) if gate.uses_calcium else gate.inf(np, V)
            if gate.tau is None:  # instantaneous: the state variable is unused, x = x∞
                x = xinf
            else:
                dy[1 + k] = (xinf - x) / gate.tau(np, V)
            open_frac[s.channel] *= x ** gate.power
        pos = 1 + n_plain
        for s in schemes:
            sch = s.gate
            names = list(sch.states)
            occ = dict(zip(names[1:], y[pos:pos + len(names) - 1], strict=True))
            occ[names[0]] = 1.0 - sum(occ.values())
            d = dict.fromkeys(names, 0.0)
            for tr in sch.transitions:
                flux = tr.rate(np, V) * occ[tr.source]
                d[tr.source] -= flux
                d[tr.target] += flux
            dy[pos:pos + len(names) - 1] = [d[nm] for nm in names[1:]]
            open_frac[s.channel] *= occ[sch.open_state] ** sch.power
            pos += len(names) - 1
        geff = g[:-1] * open_frac
        i_ion = geff @ (V - E) + g[-1] * (V - cell.leak_reversal)
        dy[0] = (current - i_ion) / cell.capacitance
        if pool is not None:
            i_ca = sum(geff[c] * (V - E[c]) for c, ch in enumerate(cell.channels) if ch.carries_calcium)
            dy[-1] = (-pool.alpha * i_ca - ca + pool.beta) / pool.tau
        return dy

    return f


def simulate_scipy(cell: str | CellType, g: Any, *, t_max: float | None = None, transient: float | None = None,
                   method: str = "LSODA", rtol: float = 1e-8, atol: float = 1e-10,
                   current: float = 0.0, max_step: float = np.inf) -> np.ndarray:
    """Spike times (ms, after ``transient``) of one neuron integrated by ``solve_ivp``.

    Spikes are upward crossings of +10 mV, re-armed by a downward crossing of 0 mV (the same
    rule as :func:`condspace.simulate`), located by solve_ivp's event finder. ``t_max`` and
    ``transient`` (ms) default to the cell's protocol.
    """
    from scipy.integrate import solve_ivp  # noqa: PLC0415

    cell = _cells.get(cell)
    t_max = cell.protocol["t_max"] if t_max is None else t_max
    transient = cell.protocol["transient"] if transient is None else transient

    def up(t, y):
        return y[0] - SPIKE_THRESHOLD

    def down(t, y):
        return y[0] - SPIKE_REARM

    up.direction, down.direction = 1.0, -1.0
    sol = solve_ivp(rhs(cell, g, current), (0.0, t_max), initial_vector(cell), method=method, rtol=rtol,
                    atol=atol, events=(up, down), max_step=max_step)
    if sol.status < 0:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    ups, downs = sol.t_events
    # Apply the hysteresis: an up-crossing counts only after a down-crossing below 0 mV (armed at
    # start since V0 < 0).
    events = sorted([(t, 1) for t in ups] + [(t, 0) for t in downs])
    armed, spikes = cell.V0 < SPIKE_REARM, []
    for t, is_up in events:
        if is_up and armed:
            spikes.append(t)
            armed = False
        elif not is_up:
            armed = True
    s = np.asarray(spikes)
    return s[s >= transient]
