"""A per-neuron SciPy reference for the batched integrator.

The right-hand side is derived from the same cell declaration as the batched engine (no second
copy of the equations), so comparing :func:`simulate_scipy` with :func:`condspace.simulate`
tests the integration scheme, not a transcription.

The applied current may depend on time (a callable ``I(t)``, e.g. :func:`sampled_current` of a
noise trace), so recordings with a noise current can be made by an integrator other than the
training simulator's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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


class _ScalarMath:
    """The array functions the rate functions call (``xp``), for one Python float.

    The reference integrates one neuron, so every rate is a scalar; NumPy's per-call overhead on
    scalars (``np.clip`` above all) made most of the right-hand side's cost. The functions the
    declared cells use are computed on floats; any other name (a user's cell may call
    ``xp.tanh``) is NumPy's, so nothing a rate function can call is missing
    (tests/test_misspecified.py compares both forms on every cell).
    """

    abs = staticmethod(abs)
    max = staticmethod(max)

    @staticmethod
    def exp(x: float) -> float:
        try:
            return math.exp(x)
        except OverflowError:  # NumPy's answer, without its warning
            return math.inf

    @staticmethod
    def clip(x: float, lo: float, hi: float) -> float:
        return min(max(x, lo), hi)

    @staticmethod
    def iscomplexobj(x: Any) -> bool:
        return isinstance(x, complex)

    @staticmethod
    def where(cond: bool, a: Any, b: Any) -> Any:
        return a if cond else b

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


SCALAR_MATH = _ScalarMath()


def sampled_current(values: Any, dt: float, t0: float = 0.0) -> Callable[[float], float]:
    """A current sampled every ``dt`` ms from ``t0``, as a piecewise-linear function of time.

    Args:
        values: (n,) current samples (µA/cm²), ``values[k]`` at ``t0 + k·dt``.
        dt: Sampling step (ms), > 0.
        t0: Time of the first sample (ms).

    Returns:
        ``I(t)`` (µA/cm²), linear between samples and held at the end values outside them.
    """
    values = np.asarray(values, dtype=float).ravel()
    if values.size < 2 or not np.all(np.isfinite(values)):
        raise ValueError(f"values: need at least 2 finite samples, got {values.size} "
                         f"({int(np.sum(~np.isfinite(values)))} non-finite)")
    if not dt > 0:
        raise ValueError(f"dt must be > 0 ms, got {dt}")
    last = values.size - 1
    samples = values.tolist()  # Python floats: indexing them is cheaper than a NumPy scalar

    def current(t: float) -> float:
        u = (t - t0) / dt
        if u <= 0.0:
            return samples[0]
        if u >= last:
            return samples[last]
        k = int(u)
        frac = u - k
        return samples[k] + frac * (samples[k + 1] - samples[k])

    return current


def initial_vector(cell: CellType) -> np.ndarray:
    """Initial state [V, plain gates..., scheme states (all but the first of each)..., (Ca)]."""
    init = initial_state(cell)
    y = [init["V"], *init["gates"]]
    for occ in init["schemes"]:
        y.extend(occ.values())
    if cell.calcium is not None:
        y.append(init["ca"])
    return np.asarray(y, dtype=float)


def rhs(cell: str | CellType, g: Any, current: float | Callable[[float], float] = 0.0, *, xp: Any = None):
    """The ODE right-hand side f(t, y) of one neuron, for ``scipy.integrate.solve_ivp``.

    Args:
        cell: Cell type or name.
        g: One conductance vector (n_channels,), mS/cm², in ``cell.conductance_names`` order.
        current: Applied current (µA/cm²): a constant, or a function ``I(t)`` of time in ms
            (e.g. :func:`sampled_current`).
        xp: Module the rate functions compute with: ``None`` (default) evaluates them on Python
            floats (:data:`SCALAR_MATH`, fast), ``numpy`` on NumPy scalars.
    """
    cell = _cells.get(cell)
    xp = SCALAR_MATH if xp is None else xp
    if callable(current):
        applied = current
    else:
        level = float(current)

        def applied(t: float) -> float:
            return level
    g = [float(v) for v in np.asarray(g, dtype=float).ravel()]
    g_channels, g_leak = g[:-1], g[-1]
    plain, schemes = _layout(cell)
    n_plain, n_channels = len(plain), len(cell.channels)
    E = [float(ch.reversal) for ch in cell.channels]
    calcium_channels = [c for c, ch in enumerate(cell.channels) if ch.carries_calcium]
    pool = cell.calcium

    # Python floats throughout: one neuron's state is a dozen numbers, for which NumPy's per-call
    # overhead costs more than the arithmetic.
    def f(t: float, y: np.ndarray) -> np.ndarray:
        state = y.tolist()
        V = state[0]
        ca = state[-1] if pool is not None else None
        dy = [0.0] * len(state)
        open_frac = [1.0] * n_channels
        for k, s in enumerate(plain):
            x = state[1 + k]
            gate = s.gate
            xinf = gate.inf(xp, V, ca) if gate.uses_calcium else gate.inf(xp, V)
            if gate.tau is None:  # instantaneous: the state variable is unused, x = x∞
                x = xinf
            else:
                dy[1 + k] = (xinf - x) / gate.tau(xp, V)
            open_frac[s.channel] *= x ** gate.power
        pos = 1 + n_plain
        for s in schemes:
            sch = s.gate
            names = list(sch.states)
            occ = dict(zip(names[1:], state[pos:pos + len(names) - 1], strict=True))
            occ[names[0]] = 1.0 - sum(occ.values())
            d = dict.fromkeys(names, 0.0)
            for tr in sch.transitions:
                flux = tr.rate(xp, V) * occ[tr.source]
                d[tr.source] -= flux
                d[tr.target] += flux
            dy[pos:pos + len(names) - 1] = [d[nm] for nm in names[1:]]
            open_frac[s.channel] *= occ[sch.open_state] ** sch.power
            pos += len(names) - 1
        geff = [gc * o for gc, o in zip(g_channels, open_frac, strict=True)]
        i_ion = sum(gc * (V - e) for gc, e in zip(geff, E, strict=True)) + g_leak * (V - cell.leak_reversal)
        dy[0] = (applied(t) - i_ion) / cell.capacitance
        if pool is not None:
            i_ca = sum(geff[c] * (V - E[c]) for c in calcium_channels)
            dy[-1] = (-pool.alpha * i_ca - ca + pool.beta) / pool.tau
        return np.array(dy, dtype=float)

    return f


def simulate_scipy(cell: str | CellType, g: Any, *, t_max: float | None = None, transient: float | None = None,
                   method: str = "LSODA", rtol: float = 1e-8, atol: float = 1e-10,
                   current: float | Callable[[float], float] = 0.0, max_step: float = np.inf,
                   t_start: float = 0.0, initial: Any = None) -> np.ndarray:
    """Spike times (ms, after ``transient``) of one neuron integrated by ``solve_ivp``.

    Spikes are upward crossings of +10 mV, re-armed by a downward crossing of 0 mV (the same
    rule as :func:`condspace.simulate`), located by solve_ivp's event finder. ``t_max`` and
    ``transient`` (ms) default to the cell's protocol. ``current`` is a constant (µA/cm²) or a
    function of time (ms); with a sampled noise current, pass its sampling step as ``max_step``
    so that no step jumps over the input's changes.

    ``t_start`` and ``initial`` continue an integration from a state (:func:`state_at`) instead
    of starting at rest at t = 0; the spike detector starts armed when V is below 0 mV there.
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
    y0 = initial_vector(cell) if initial is None else np.asarray(initial, dtype=float)
    sol = solve_ivp(rhs(cell, g, current), (float(t_start), t_max), y0, method=method, rtol=rtol,
                    atol=atol, events=(up, down), max_step=max_step)
    if sol.status < 0:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    ups, downs = sol.t_events
    # Apply the hysteresis: an up-crossing counts only after a down-crossing below 0 mV (armed at
    # start since V0 < 0).
    events = sorted([(t, 1) for t in ups] + [(t, 0) for t in downs])
    armed, spikes = y0[0] < SPIKE_REARM, []
    for t, is_up in events:
        if is_up and armed:
            spikes.append(t)
            armed = False
        elif not is_up:
            armed = True
    s = np.asarray(spikes)
    return s[s >= transient]


def state_at(cell: str | CellType, g: Any, t: float, *, method: str = "LSODA", rtol: float = 1e-8,
             atol: float = 1e-10) -> np.ndarray:
    """The state vector (layout of :func:`initial_vector`) of one neuron at time ``t`` (ms) from rest,
    no applied current; continue from it with ``simulate_scipy(..., t_start=t, initial=state)``."""
    from scipy.integrate import solve_ivp  # noqa: PLC0415

    cell = _cells.get(cell)
    sol = solve_ivp(rhs(cell, g), (0.0, float(t)), initial_vector(cell), method=method, rtol=rtol, atol=atol)
    if sol.status < 0:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return sol.y[:, -1].copy()
