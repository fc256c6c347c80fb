"""The sensitivity matrix S(V) and the DICs S(V)·ḡ of any declared cell (see :mod:`condspace.dics`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from condspace.backend import array_module
from condspace.channels import CellType
from condspace.kinetics import GateSlot, scheme_steady_state
from condspace.plan import CellPlan, cell_plan
from condspace.simulate import conductance_matrix

COMPLEX_STEP = 1e-20
"""Imaginary step h of the complex-step derivatives (mV or µM); any h ≪ 1e-8 is exact to rounding."""


# ----- small helpers -------------------------------------------------------------------------------
def _cstep(values: Any) -> tuple[Any, Any]:
    """(value, derivative) from a complex-step evaluation f(x + ih)."""
    return values.real, values.imag / COMPLEX_STEP


def _ipow(x: Any, p: int) -> Any:
    """x**p for a small non-negative integer p by repeated squaring (fast for complex arrays too)."""
    out, base = None, x
    while p:
        if p & 1:
            out = base if out is None else out * base
        p >>= 1
        if p:
            base = base * base
    return 1.0 if out is None else out


def _slope_of_current(G: Any, V: Any, E: float) -> Any:
    """d/dV [G(V)·(V − E)] = G'·(V − E) + G from a complex-step value G(V + ih) (real arithmetic)."""
    return G.imag * ((V - E) / COMPLEX_STEP) + G.real


def _tau(xp: Any, ref: Any, V: Any) -> Any:
    return ref(xp, V) if callable(ref) else ref


def timescale_weight(xp: Any, tau: Any, tau_a: Any, tau_b: Any) -> Any:
    """Log-interpolated timescale weight w(τ; τ_a, τ_b) of Drion et al. 2015.

    w = 1 for τ ≤ τ_a, (ln τ_b − ln τ)/(ln τ_b − ln τ_a) for τ_a < τ ≤ τ_b, 0 for τ > τ_b.

    Args:
        xp: Array module.
        tau: Time constant(s) of the gating variable (ms), any shape.
        tau_a: Lower boundary time constant(s) (ms), broadcastable.
        tau_b: Upper boundary time constant(s) (ms), broadcastable.

    Returns:
        Weights in [0, 1], broadcast shape.
    """
    la, lb = xp.log(xp.asarray(tau_a, dtype=float)), xp.log(xp.asarray(tau_b, dtype=float))
    return _log_weight(xp, xp.log(xp.asarray(tau, dtype=float)), la, lb)


def _log_weight(xp: Any, lt: Any, la: Any, lb: Any) -> Any:
    """w from logarithms: clip((ln τ_b − ln τ)/(ln τ_b − ln τ_a), 0, 1) covers all three branches
    when τ_a < τ_b; where τ_b ≤ τ_a the middle branch is empty and w is the step 1[τ ≤ τ_a]."""
    span = lb - la
    ok = span > 0
    w = xp.clip((lb - lt) / xp.where(ok, span, 1.0), 0.0, 1.0)
    if bool(xp.all(ok)):
        return w
    return xp.where(ok, w, (lt <= la) * 1.0)


class _Refs:
    """ln τ_f, ln τ_s, ln τ_u at V, computed once per evaluation."""

    def __init__(self, xp: Any, plan: CellPlan, V: Any) -> None:
        self.xp = xp
        self.l = [xp.log(xp.asarray(_tau(xp, r, V), dtype=float)) for r in plan.references]

    def weights(self, tau: Any) -> tuple[Any, Any]:
        """(w_fs, w_su) of a path with time constant(s) tau (ms)."""
        xp = self.xp
        lt = xp.log(xp.asarray(tau, dtype=float))
        return _log_weight(xp, lt, self.l[0], self.l[1]), _log_weight(xp, lt, self.l[1], self.l[2])


_FIXED = {"fast": (1.0, 1.0), "slow": (0.0, 1.0), "ultraslow": (0.0, 0.0)}


def _path_weights(xp: Any, factor: GateSlot, V: Any, refs: _Refs) -> tuple[Any, Any]:
    """(w_fs, w_su) of the direct voltage path of one factor at V."""
    gate = factor.gate
    if gate.timescale is not None:
        return _FIXED[gate.timescale]
    if factor.kind == "instant":
        return _FIXED["fast"]
    return refs.weights(gate.tau(xp, V))


def _path_weights_calcium(plan: CellPlan, refs: _Refs) -> tuple[Any, Any]:
    """(w_fs, w_su) of a calcium path: weighted with the pool time constant."""
    return refs.weights(plan.cell.calcium.tau)


def timescale_weights(cell: CellType | str, V: Any, backend: Any = "numpy") -> dict[str, tuple[Any, Any]]:
    """The weights (w_fs, w_su) of every feedback path of a cell at V.

    Args:
        cell: Cell type or its registry name.
        V: Membrane potential(s) (mV), any shape.
        backend: ``"numpy"`` (default), ``"cupy"``, ``"auto"``, a Backend, or the array module of
            arrays already on a device (see :func:`condspace.backend.array_module`).

    Returns:
        ``"<channel>.<gate>"`` → (w_fs, w_su), each broadcastable to V's shape; calcium paths of
        calcium-dependent gates appear as ``"<channel>.<gate>[Ca]"``. The fast, slow and ultraslow
        row weights of a path are w_fs, w_su − w_fs and 1 − w_su.
    """
    plan = cell_plan(cell)
    xp = array_module(backend)
    V = xp.asarray(V, dtype=float)
    refs = _Refs(xp, plan, V)
    out = {}
    for f in plan.factors:
        out[f.label] = _path_weights(xp, f, V, refs)
        if f.kind == "calcium":
            out[f.label + "[Ca]"] = _path_weights_calcium(plan, refs)
    return out


# ----- the sensitivity matrix ----------------------------------------------------------------------
def _gate_values(plan: CellPlan, xp: Any, Vc: Any) -> dict[int, Any]:
    """Complex steady states x∞(V + ih) of every factor that depends on V only."""
    vals = {}
    for k, f in enumerate(plan.factors):
        if f.kind == "scheme":
            vals[k] = scheme_steady_state(xp, f.gate, Vc)[f.gate.open_state]
        elif f.kind != "calcium":
            vals[k] = xp.asarray(f.gate.inf(xp, Vc)) + 0j
    return vals


def _calcium_current(plan: CellPlan, xp: Any, Vc: Any, vals: dict[int, Any], gcols: Any) -> Any:
    """Σ_c ḡ_c G_c∞(V)(V − E_c) over the calcium-carrying channels (complex, µA/cm²)."""
    total = 0.0
    for c in plan.carriers:
        G = 1.0
        for k in plan.per_channel[c]:
            G = G * _ipow(vals[k], plan.factors[k].power)
        total = total + gcols[c] * G * (Vc - plan.reversal[c])
    return total


def _require_g(plan: CellPlan, gcols: Any, what: str) -> None:
    if gcols is None:
        cell = plan.cell
        dep = ", ".join(cell.channels[j].name for j in plan.ca_dependent)
        carriers = ", ".join(cell.channels[c].name for c in plan.carriers)
        raise ValueError(f"{what}: cell {cell.name!r} has calcium-dependent channels ({dep}) whose steady state "
                         f"depends on ḡ of {carriers} through [Ca]∞(V); pass the conductances g")


def sensitivity_columns(plan: CellPlan, xp: Any, V: Any, gcols: Any = None) -> list[tuple[Any, Any, Any]]:
    """Per-unit-ḡ sensitivity columns (fast, slow, ultraslow) of every channel at real V.

    Args:
        plan: Compiled cell.
        xp: Array module.
        V: Real voltages (mV), shape B.
        gcols: Per-channel conductances (sequence of arrays broadcastable to B), needed only for
            calcium-dependent channels; ``None`` otherwise.

    Returns:
        One (S_f, S_s, S_u) tuple per channel, leak last, each broadcastable to B.
    """
    Vc = V + 1j * COMPLEX_STEP
    vals = _gate_values(plan, xp, Vc)
    x = {k: v.real for k, v in vals.items()}
    dx = {k: v.imag / COMPLEX_STEP for k, v in vals.items()}
    dxdca, dca = {}, None
    if plan.ca_dependent:
        _require_g(plan, gcols, "sensitivity")
        pool = plan.cell.calcium
        ca, dca = _cstep(pool.beta - pool.alpha * _calcium_current(plan, xp, Vc, vals, gcols))
        for k, f in enumerate(plan.factors):
            if f.kind == "calcium":
                x[k], dx[k] = _cstep(f.gate.inf(xp, Vc, ca))  # direct path, [Ca] held fixed
                dxdca[k] = f.gate.inf(xp, V, ca + 1j * COMPLEX_STEP).imag / COMPLEX_STEP
    refs = _Refs(xp, plan, V)
    w_ca = _path_weights_calcium(plan, refs) if plan.ca_dependent else None
    cols = []
    for j, idx in enumerate(plan.per_channel):
        powered = [_ipow(x[k], plan.factors[k].power) for k in idx]
        G = powered[0]
        for p in powered[1:]:
            G = G * p
        drive = V - plan.reversal[j]
        f_row, s_row, u_row = G, 0.0, 0.0
        for pos, k in enumerate(idx):
            fac = plan.factors[k]
            dGdx = fac.power * _ipow(x[k], fac.power - 1)  # ∂G/∂x: the other factors multiply in below
            for q, other in enumerate(powered):
                if q != pos:
                    dGdx = dGdx * other
            paths = [(dGdx * drive * dx[k], _path_weights(xp, fac, V, refs))]
            if k in dxdca:
                paths.append((dGdx * drive * dxdca[k] * dca, w_ca))
            for s, (w_fs, w_su) in paths:
                f_row = f_row + w_fs * s
                s_row = s_row + (w_su - w_fs) * s
                u_row = u_row + (1.0 - w_su) * s
        cols.append((f_row, s_row, u_row))
    cols.append((1.0, 0.0, 0.0))  # leak
    return cols




# ----- public API ---------------------------------------------------------------------------------
def _conductances(plan: CellPlan, g: Any, xp: Any, arg: str = "g") -> Any:
    """Validate conductances into an (N, n) float array of module xp (see simulate.conductance_matrix)."""
    if xp is np or not hasattr(g, "__cuda_array_interface__"):
        host = g.get() if hasattr(g, "__cuda_array_interface__") else g
        try:
            arr = conductance_matrix(plan.cell, host)
        except ValueError as err:
            raise ValueError(str(err).replace("g:", f"{arg}:", 1)) from None
        return xp.asarray(arr)
    arr = xp.asarray(g, dtype=float)  # already on the device: check there
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != plan.n:
        raise ValueError(f"{arg}: expected shape (N, {plan.n}) with columns {plan.cell.conductance_names}, "
                         f"got {tuple(g.shape)}")
    if not bool(xp.isfinite(arr).all()) or bool((arr < 0).any()) or bool((arr[:, -1] <= 0).any()):
        raise ValueError(f"{arg}: conductances must be finite and non-negative, with g_leak > 0")
    return arr


def sensitivity(cell: CellType | str, V: Any, g: Any = None, normalize: bool = True, backend: Any = "numpy") -> Any:
    """The DIC sensitivity matrix S(V) of Drion et al. 2015, derived from the cell declaration.

    Args:
        cell: Cell type or registry name.
        V: Membrane potential(s) (mV), any shape.
        g: Maximal conductances (mS/cm²), (n_channels,) or (N, n_channels) in
            ``cell.channel_names`` order (or anything :func:`condspace.simulate.conductance_matrix`
            accepts). Required when ``normalize`` (S is divided by g_leak) and for cells with
            calcium-dependent channels (their column depends on ḡ of the calcium carriers).
        normalize: Divide by g_leak, so that S·ḡ is in multiples of g_leak (the convention
            everywhere in the literature); ``False`` gives S per unit ḡ (dimensionless).
        backend: ``"numpy"`` (default), ``"cupy"``, ``"auto"``, a Backend, or the array module of
            arrays already on a device (see :func:`condspace.backend.array_module`).

    Returns:
        S with shape V.shape + (3, n_channels) (rows fast, slow, ultraslow; columns in
        ``cell.channel_names`` order, leak last with column (1, 0, 0) or (1/g_leak, 0, 0)); with a
        leading population axis, (N,) + V.shape + (3, n_channels), when g is 2-D.

    Raises:
        ValueError: ``normalize`` or calcium dependence without ``g``; malformed ``g``.
    """
    plan = cell_plan(cell)
    xp = array_module(backend)
    V = xp.asarray(V, dtype=float)
    if g is None:
        if normalize:
            raise ValueError("sensitivity: normalize=True divides by g_leak, so pass g (or normalize=False "
                             "for S per unit conductance)")
        return _stack(xp, sensitivity_columns(plan, xp, V, None), V.shape)
    G = _conductances(plan, g, xp)
    # one neuron: a (n,) vector or a mapping of scalars; anything two-dimensional keeps its axis
    single = G.shape[0] == 1 and not hasattr(g, "columns") and np.ndim(g) <= 1 and (
        not isinstance(g, Mapping) or all(np.ndim(v) == 0 for v in g.values()))
    if single:
        S = _stack(xp, sensitivity_columns(plan, xp, V, [G[0, j] for j in range(plan.n)]), V.shape)
        return S / G[0, -1] if normalize else S
    N = G.shape[0]
    lead = (N,) + (1,) * V.ndim
    gcols = [G[:, j].reshape(lead) for j in range(plan.n)] if plan.ca_dependent else None
    S = _stack(xp, sensitivity_columns(plan, xp, V, gcols), (N,) + V.shape)
    if normalize:
        S = S / G[:, -1].reshape(lead + (1, 1))
    return S


def _stack(xp: Any, cols: list[tuple[Any, Any, Any]], shape: tuple[int, ...]) -> Any:
    out = xp.empty(tuple(shape) + (3, len(cols)))
    for j, col in enumerate(cols):
        for r in range(3):
            out[..., r, j] = col[r]
    return out


def dics(cell: CellType | str, g: Any, V: Any, normalize: bool = True, backend: Any = "numpy",
         chunk: int = 1 << 15) -> Any:
    """Dynamic input conductances (g_f, g_s, g_u) = S(V)·ḡ of many neurons.

    Args:
        cell: Cell type or registry name.
        g: Maximal conductances (mS/cm²), (N, n_channels) (or (n_channels,) for N = 1).
        V: Voltage(s) (mV): a scalar, (N,) (one per neuron) or any shape broadcastable with (N,)
            (the neuron axis is the last axis, NumPy broadcasting: (M, 1) gives an M × N grid).
        normalize: Divide by g_leak (default; multiples of g_leak, g_f includes +1 from the leak).
        backend: ``"numpy"`` (default), ``"cupy"``, ``"auto"``, a Backend, or the array module of
            arrays already on a device (see :func:`condspace.backend.array_module`).
        chunk: Neurons per vectorised batch (bounds the memory of the temporaries).

    Returns:
        Array of shape broadcast(V.shape, (N,)) + (3,): g_f, g_s, g_u.
    """
    plan = cell_plan(cell)
    xp = array_module(backend)
    G = _conductances(plan, g, xp)
    N = G.shape[0]
    V = xp.asarray(V, dtype=float)
    try:
        shape = np.broadcast_shapes(V.shape, (N,))
    except ValueError:
        raise ValueError(f"V: shape {V.shape} does not broadcast with the {N} neurons of g (the neuron axis "
                         "is the last axis of V)") from None
    out = xp.empty(shape + (3,))
    per_neuron = V.ndim > 0 and V.shape[-1] == N and N > 1
    for s in range(0, N, chunk):
        sl = slice(s, min(s + chunk, N))
        Gs = G[sl]
        Vs = V[..., sl] if per_neuron else V
        cols = sensitivity_columns(plan, xp, Vs, [Gs[:, j] for j in range(plan.n)])
        for r in range(3):
            acc = 0.0
            for j in range(plan.n):
                acc = acc + Gs[:, j] * cols[j][r]
            out[..., sl, r] = acc / Gs[:, -1] if normalize else acc
    return out


