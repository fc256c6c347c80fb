"""Dynamic input conductances (DICs) of any declared cell type (Drion et al. 2015).

Everything is derived from the :class:`~condspace.channels.CellType` declaration: the gates,
their steady states and time constants, the reversal potentials, the calcium pool and the
reference time constants ``cell.dic_reference``. No cell type has DIC code of its own.

For channel j with gating product G_j (e.g. m³h) and each gating variable x of it,

    s_{j,x}(V) = ∂G_j/∂x · (V − E_j) · dx∞/dV                       (per unit ḡ_j)

and the sensitivity matrix S(V) (rows fast, slow, ultraslow; one column per channel, leak last):

    S_f,j = G_j∞(V) + Σ_x w_fs,x s_{j,x},   S_s,j = Σ_x (w_su,x − w_fs,x) s_{j,x},
    S_u,j = Σ_x (1 − w_su,x) s_{j,x},       leak column (1, 0, 0).

The DICs are g_DIC = S(V)·ḡ = (g_f, g_s, g_u), by default divided by g_leak (dimensionless
multiples of the leak; g_f then contains +1 from the leak). Their sum g_in = g_f + g_s + g_u is
the slope of the steady-state I–V curve (divided by g_leak) and does not depend on the weights.

Derivatives of steady states are complex-step derivatives (f'(V) = Im f(V + ih) / h, exact to
rounding, no subtractive cancellation): every rate function of the declarations accepts complex
input. Kinetic schemes go through :func:`condspace.kinetics.scheme_steady_state`.

Timescale weights of a gating variable with time constant τ_x(V) are log-interpolated between the
reference time constants τ_f(V) < τ_s(V) < τ_u(V) (``timescale_weight``); declared ``timescale``
overrides fix them (fast: w_fs = w_su = 1, slow: 0/1, ultraslow: 0/0) and instantaneous gates are
fast. A gate whose steady state depends on [Ca] (STG KCa) has two feedback paths: its direct
voltage dependence (weighted with its own τ) and the calcium path ∂x∞/∂[Ca] · d[Ca]∞/dV, weighted
with the pool time constant, where

    [Ca]∞(V) = −α · Σ_{c carries calcium} ḡ_c G_c∞(V) (V − E_c) + β.

That column depends on ḡ of the calcium-carrying channels, so S depends on ḡ there.

Shapes: V any shape; conductances ``g`` as (n_channels,) or (N, n_channels) in
``cell.channel_names`` order (leak last). All functions take ``xp`` (NumPy by default, CuPy works
the same way) and return arrays of that module.

References: Drion G, Franci A, Dethier J, Sepulchre R (2015) eNeuro 2(1); Fyon A, Franci A,
Sacré P, Drion G (2024) PNAS Nexus 3:pgae415.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from condspace import cells as _cells
from condspace._parallel import run_chunks, worker_count
from condspace.backend import Backend, resolve
from condspace.channels import CellType, Gate, KineticScheme
from condspace.kinetics import scheme_steady_state
from condspace.simulate import conductance_matrix

COMPLEX_STEP = 1e-20
"""Imaginary step h of the complex-step derivatives (mV or µM); any h ≪ 1e-8 is exact to rounding."""

SCAN_START = -80.0
"""Lower end of the threshold scan (mV), as in Drion et al. 2015."""

SCAN_STOP = 0.0
"""Upper end of the threshold scan (mV). A spike threshold lies below the half-activation of the
fast inward current (m_Na: STG −25.5 mV, DA −30.1 mV); above 0 mV a negative slope would only be
the decline of inward currents towards their reversal. Measured: of 60,000 uniform box draws per
cell (STG, DA), none without a crossing below 0 mV had one in (0, 60] mV, so stopping at 0 loses
nothing and spares the scan of those neurons."""

SCAN_STEP = 0.25
"""Spacing of the threshold scan grid (mV). A negative-g_in window narrower than the step can fall
between two grid points and be missed; such windows are near-tangent (g_in barely dips below
zero) and rare. Measured on 60,000 uniform STG box draws: V_th with a 0.25 mV step equals V_th
with a 0.02 mV step for every neuron (0.5 mV: 11 differ, 1 mV: 27), at about half the cost of
a 0.1 mV scan (the dominant cost of :func:`threshold`)."""

BISECT_TOL = 1e-6
"""Width (mV) of the final bracket around V_th."""

CPU_SUB_BLOCK = 4096
"""Neurons evaluated together per scan block on the CPU (NumPy): large enough that Python overhead
is small, small enough that a block's complex temporaries (8 grid points × 4096) stay in cache."""

ROWS = ("fast", "slow", "ultraslow")


# ----- the compiled form of a declaration ---------------------------------------------------------
@dataclass(frozen=True)
class _Factor:
    """One gating factor: a gate (or kinetic scheme) of one channel."""

    channel: int
    gate: Gate | KineticScheme
    kind: str  # "hh", "instant", "scheme" or "calcium"
    label: str  # "Na.m"

    @property
    def power(self) -> int:
        return self.gate.power


@dataclass(frozen=True)
class _Plan:
    """What the DIC engine needs from a cell, resolved once per cell."""

    cell: CellType
    factors: tuple[_Factor, ...]
    per_channel: tuple[tuple[int, ...], ...]  # factor indices of each channel
    reversal: tuple[float, ...]
    carriers: tuple[int, ...]  # channels feeding the calcium pool
    ca_dependent: tuple[int, ...]  # channels with a calcium-dependent gate
    references: tuple[Any, Any, Any]  # τ_f, τ_s, τ_u: a rate function tau(xp, V) or a float (ms)

    @property
    def n(self) -> int:
        return len(self.cell.channels) + 1


_PLANS: dict[int, _Plan] = {}


def _kind(gate: Gate | KineticScheme) -> str:
    if isinstance(gate, KineticScheme):
        return "scheme"
    if gate.uses_calcium:
        return "calcium"
    return "instant" if gate.tau is None else "hh"


def _reference(cell: CellType, key: str) -> Any:
    ref = cell.dic_reference.get(key) if isinstance(cell.dic_reference, dict) else None
    if isinstance(ref, (int, float)) and not isinstance(ref, bool):
        if ref <= 0:
            raise ValueError(f"cell {cell.name!r}: dic_reference[{key!r}] = {ref} must be a positive time (ms)")
        return float(ref)
    if isinstance(ref, tuple) and len(ref) == 2:
        try:
            channel = cell.channel(ref[0])
        except KeyError as err:
            raise ValueError(f"cell {cell.name!r}: dic_reference[{key!r}] = {ref!r}: {err.args[0]}") from None
        for gate in channel.gates:
            if gate.name == ref[1] and isinstance(gate, Gate) and gate.tau is not None:
                return gate.tau
    raise ValueError(f"cell {cell.name!r}: dic_reference[{key!r}] = {ref!r} must be a time constant in ms or "
                     "(channel, gate) naming a gate with a time constant")


def _plan(cell: CellType | str) -> _Plan:
    cell = _cells.get(cell)
    plan = _PLANS.get(id(cell))
    if plan is not None and plan.cell is cell:
        return plan
    factors, per_channel = [], []
    for ci, ch in enumerate(cell.channels):
        idx = []
        for gate in ch.gates:
            idx.append(len(factors))
            factors.append(_Factor(ci, gate, _kind(gate), f"{ch.name}.{gate.name}"))
        per_channel.append(tuple(idx))
    carriers = tuple(i for i, ch in enumerate(cell.channels) if ch.carries_calcium)
    ca_dep = tuple(sorted({f.channel for f in factors if f.kind == "calcium"}))
    if ca_dep and (cell.calcium is None or not carriers):
        raise ValueError(f"cell {cell.name!r} has calcium-dependent gates but no calcium pool or no "
                         "calcium-carrying channel; declare cell.calcium and carries_calcium=True")
    refs = tuple(_reference(cell, k) for k in ROWS)
    plan = _Plan(cell, tuple(factors), tuple(per_channel), tuple(ch.reversal for ch in cell.channels),
                 carriers, ca_dep, refs)
    _PLANS[id(cell)] = plan
    return plan


def array_module(xp: Any = np) -> Any:
    """The array module from ``xp``: a module (numpy, cupy), a :class:`~condspace.backend.Backend`,
    or a backend name (``"numpy"``, ``"cupy"``, ``"auto"``) resolved by :func:`condspace.backend.resolve`."""
    if isinstance(xp, Backend):
        return xp.xp
    if isinstance(xp, str):
        return resolve(xp).xp
    if not hasattr(xp, "asarray"):
        raise ValueError(f"xp: expected an array module (numpy, cupy), a Backend or a backend name, got {xp!r}")
    return xp


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

    def __init__(self, xp: Any, plan: _Plan, V: Any) -> None:
        self.xp = xp
        self.l = [xp.log(xp.asarray(_tau(xp, r, V), dtype=float)) for r in plan.references]

    def weights(self, tau: Any) -> tuple[Any, Any]:
        """(w_fs, w_su) of a path with time constant(s) tau (ms)."""
        xp = self.xp
        lt = xp.log(xp.asarray(tau, dtype=float))
        return _log_weight(xp, lt, self.l[0], self.l[1]), _log_weight(xp, lt, self.l[1], self.l[2])


_FIXED = {"fast": (1.0, 1.0), "slow": (0.0, 1.0), "ultraslow": (0.0, 0.0)}


def _path_weights(xp: Any, factor: _Factor, V: Any, refs: _Refs) -> tuple[Any, Any]:
    """(w_fs, w_su) of the direct voltage path of one factor at V."""
    gate = factor.gate
    if gate.timescale is not None:
        return _FIXED[gate.timescale]
    if factor.kind == "instant":
        return _FIXED["fast"]
    return refs.weights(gate.tau(xp, V))


def _path_weights_calcium(plan: _Plan, refs: _Refs) -> tuple[Any, Any]:
    """(w_fs, w_su) of a calcium path: weighted with the pool time constant."""
    return refs.weights(plan.cell.calcium.tau)


def timescale_weights(cell: CellType | str, V: Any, xp: Any = np) -> dict[str, tuple[Any, Any]]:
    """The weights (w_fs, w_su) of every feedback path of a cell at V.

    Args:
        cell: Cell type or its registry name.
        V: Membrane potential(s) (mV), any shape.
        xp: Array module (numpy, cupy), Backend or backend name (see :func:`array_module`).

    Returns:
        ``"<channel>.<gate>"`` → (w_fs, w_su), each broadcastable to V's shape; calcium paths of
        calcium-dependent gates appear as ``"<channel>.<gate>[Ca]"``. The fast, slow and ultraslow
        row weights of a path are w_fs, w_su − w_fs and 1 − w_su.
    """
    plan = _plan(cell)
    xp = array_module(xp)
    V = xp.asarray(V, dtype=float)
    refs = _Refs(xp, plan, V)
    out = {}
    for f in plan.factors:
        out[f.label] = _path_weights(xp, f, V, refs)
        if f.kind == "calcium":
            out[f.label + "[Ca]"] = _path_weights_calcium(plan, refs)
    return out


# ----- the sensitivity matrix ----------------------------------------------------------------------
def _gate_values(plan: _Plan, xp: Any, Vc: Any) -> dict[int, Any]:
    """Complex steady states x∞(V + ih) of every factor that depends on V only."""
    vals = {}
    for k, f in enumerate(plan.factors):
        if f.kind == "scheme":
            vals[k] = scheme_steady_state(xp, f.gate, Vc)[f.gate.open_state]
        elif f.kind != "calcium":
            vals[k] = xp.asarray(f.gate.inf(xp, Vc)) + 0j
    return vals


def _calcium_current(plan: _Plan, xp: Any, Vc: Any, vals: dict[int, Any], gcols: Any) -> Any:
    """Σ_c ḡ_c G_c∞(V)(V − E_c) over the calcium-carrying channels (complex, µA/cm²)."""
    total = 0.0
    for c in plan.carriers:
        G = 1.0
        for k in plan.per_channel[c]:
            G = G * _ipow(vals[k], plan.factors[k].power)
        total = total + gcols[c] * G * (Vc - plan.reversal[c])
    return total


def _require_g(plan: _Plan, gcols: Any, what: str) -> None:
    if gcols is None:
        cell = plan.cell
        dep = ", ".join(cell.channels[j].name for j in plan.ca_dependent)
        carriers = ", ".join(cell.channels[c].name for c in plan.carriers)
        raise ValueError(f"{what}: cell {cell.name!r} has calcium-dependent channels ({dep}) whose steady state "
                         f"depends on ḡ of {carriers} through [Ca]∞(V); pass the conductances g")


def _columns(plan: _Plan, xp: Any, V: Any, gcols: Any = None) -> list[tuple[Any, Any, Any]]:
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


# ----- g_in = slope of the steady-state I–V (what the threshold needs) -------------------------------
def _channel_open(plan: _Plan, xp: Any, j: int, Vc: Any, vals: dict[int, Any], ca: Any) -> Any:
    """Complex steady-state open fraction G_j∞ of channel j (calcium gates evaluated at ``ca``)."""
    G = 1.0
    for k in plan.per_channel[j]:
        f = plan.factors[k]
        v = f.gate.inf(xp, Vc, ca) if f.kind == "calcium" else vals[k]
        G = G * _ipow(v, f.power)
    return G


def _ca_inf(plan: _Plan, xp: Any, Vc: Any, vals: dict[int, Any], gcols: Any) -> Any:
    """Complex [Ca]∞(V + ih) = β − α Σ_c ḡ_c G_c∞ (V − E_c) (µM)."""
    pool = plan.cell.calcium
    return pool.beta - pool.alpha * _calcium_current(plan, xp, Vc, vals, gcols)


def _slope_calcium_part(plan: _Plan, xp: Any, Vc: Any, vals: dict[int, Any], gcols: Any, ca: Any) -> Any:
    """Σ ḡ_j dI_j∞/dV (mS/cm²) over the calcium-dependent channels: total derivative along [Ca]∞(V)."""
    total = 0.0
    for j in plan.ca_dependent:
        G = _channel_open(plan, xp, j, Vc, vals, ca)
        total = total + gcols[j] * _slope_of_current(G, Vc.real, plan.reversal[j])
    return total


def _slope_at(plan: _Plan, xp: Any, V: Any, G: Any) -> Any:
    """g_in · g_leak = dI∞/dV (mS/cm²) of neurons G (m, n) at their own voltages V (m,)."""
    Vc = V + 1j * COMPLEX_STEP
    vals = _gate_values(plan, xp, Vc)
    gcols = [G[:, j] for j in range(plan.n)]
    total = gcols[-1]  # leak
    for j in range(plan.n - 1):
        if j not in plan.ca_dependent:
            Gj = _channel_open(plan, xp, j, Vc, vals, None)
            total = total + gcols[j] * _slope_of_current(Gj, V, plan.reversal[j])
    if plan.ca_dependent:
        ca = _ca_inf(plan, xp, Vc, vals, gcols)
        total = total + _slope_calcium_part(plan, xp, Vc, vals, gcols, ca)
    return total


class _Grid:
    """Per-unit-ḡ slope tables of the voltage-only channels on the scan grid (shared by all neurons).

    Blocks of the scan are laid out (grid points, neurons): the neuron axis is the long, contiguous
    one, so broadcasting against per-voltage tables runs long inner loops.
    """

    def __init__(self, plan: _Plan, xp: Any, V: Any) -> None:
        self.plan, self.xp, self.V = plan, xp, V
        self.Vc = V + 1j * COMPLEX_STEP
        self.vals = _gate_values(plan, xp, self.Vc)
        rows = []
        for j in range(plan.n - 1):
            if j in plan.ca_dependent:
                rows.append(xp.zeros_like(V))
            else:
                Gj = _channel_open(plan, xp, j, self.Vc, self.vals, None)
                rows.append(_slope_of_current(Gj, V, plan.reversal[j]))
        rows.append(xp.ones_like(V))  # leak
        self.DT = xp.ascontiguousarray(xp.stack(rows).T)  # (M, n)
        if plan.ca_dependent:
            # per-unit complex calcium currents G_c∞(V + ih)(V + ih − E_c) of the carriers, (M, n_carriers)
            cur = [_channel_open(plan, xp, c, self.Vc, self.vals, None) * (self.Vc - plan.reversal[c])
                   for c in plan.carriers]
            pool = plan.cell.calcium
            self.ca_re = xp.ascontiguousarray(xp.stack([-pool.alpha * a.real for a in cur]).T)
            self.ca_im = xp.ascontiguousarray(xp.stack([-pool.alpha * a.imag for a in cur]).T)
            self.ca_factors = [k for j in plan.ca_dependent for k in plan.per_channel[j] if k in self.vals]

    def slope(self, GT: Any, lo: int, hi: int) -> Any:
        """dI∞/dV (mS/cm²) of neurons GT (n, m), transposed and contiguous, on grid points lo..hi-1.

        Returns:
            Shape (hi − lo, m).
        """
        xp, plan = self.xp, self.plan
        # einsum, not matmul: BLAS threading on these thin products is erratic on a busy machine
        out = xp.einsum("kn,nm->km", self.DT[lo:hi], GT)
        if plan.ca_dependent:
            carriers = GT[list(plan.carriers)]
            ca = xp.empty(out.shape, dtype=complex)
            ca.real[...] = xp.einsum("kc,cm->km", self.ca_re[lo:hi], carriers)
            ca.real[...] += plan.cell.calcium.beta
            ca.imag[...] = xp.einsum("kc,cm->km", self.ca_im[lo:hi], carriers)
            vals = {k: self.vals[k][lo:hi, None] for k in self.ca_factors}
            out += _slope_calcium_part(plan, xp, self.Vc[lo:hi, None], vals, GT, ca)
        return out


def _first_crossings(grid: _Grid, G: Any, block: int, sub: int = 4096) -> tuple[Any, Any, Any, Any]:
    """First grid interval where dI∞/dV goes from > 0 to ≤ 0, for neurons G (m, n).

    Scans upward in blocks of ``block`` grid points; a neuron leaves the scan at its first
    crossing. Each block is evaluated ``sub`` neurons at a time, so its temporaries stay in cache
    while the few neurons that cross late (or never) share one pass per block.

    Returns:
        (found (m,) bool, k (m,) int index of the right end, slope at left end, slope at right end).
    """
    xp = grid.xp
    m, M = G.shape[0], grid.V.shape[0]
    found = xp.zeros(m, dtype=bool)
    k_hi = xp.zeros(m, dtype=xp.int64)
    f_lo, f_hi = xp.zeros(m), xp.zeros(m)
    active = xp.arange(m)
    GT = xp.ascontiguousarray(G.T)
    prev = None
    for lo in range(0, M, block):
        hi = min(lo + block, M)
        na = active.shape[0]
        first_row = 0 if prev is None else 1
        vals = xp.empty((hi - lo + first_row, na))
        if prev is not None:
            vals[0] = prev
        for i in range(0, na, sub):
            vals[first_row:, i:i + sub] = grid.slope(GT[:, i:i + sub], lo, hi)
        offset = lo - first_row
        cross = (vals[:-1] > 0) & (vals[1:] <= 0)
        hit = cross.any(axis=0)
        if bool(hit.any()):
            cols = xp.nonzero(hit)[0]
            first = xp.argmax(cross[:, cols], axis=0)
            who = active[cols]
            found[who] = True
            k_hi[who] = offset + first + 1
            f_lo[who] = vals[first, cols]
            f_hi[who] = vals[first + 1, cols]
            keep = xp.nonzero(~hit)[0]
            active, prev, GT = active[keep], vals[-1, keep], xp.ascontiguousarray(GT[:, keep])
        else:
            prev = vals[-1]
        if active.shape[0] == 0:
            break
    return found, k_hi, f_lo, f_hi


def _refine(plan: _Plan, xp: Any, G: Any, a: Any, b: Any, fa: Any, fb: Any, tol: float) -> Any:
    """Shrink brackets [a, b] with f(a) > 0 ≥ f(b) of f = dI∞/dV until b − a ≤ tol, vectorised.

    Chandrupatla's (1997) hybrid of inverse quadratic interpolation and bisection: every step
    keeps a bracket, interpolation is used only where it is safe, otherwise the bracket is halved;
    trial points stay tol/2 inside the bracket, so it always ends narrower than tol.

    Returns:
        (m,) voltage inside the final bracket (linear interpolation between its ends), mV.
    """
    # x1: newest point, x2: the other end of the bracket, x3: the point dropped last.
    x1, f1, x2, f2 = b, fb, a, fa
    x3, f3 = x2, f2
    t = xp.clip(fa / (fa - fb), 0.0, 1.0)  # first trial: linear interpolation from the scan
    t = 1.0 - t  # measured from x1 = b towards x2 = a
    idx = xp.arange(G.shape[0])
    active = xp.ones(G.shape[0], dtype=bool)
    for _ in range(200):
        width = xp.abs(x2 - x1)
        active = width > tol
        if not bool(active.any()):
            break
        ia = idx[active]
        tl = 0.5 * tol / width[ia]
        ta = xp.clip(t[ia], tl, 1.0 - tl)
        xt = x1[ia] + ta * (x2[ia] - x1[ia])
        ft = _slope_at(plan, xp, xt, G[ia])
        same = (ft > 0) == (f1[ia] > 0)
        # same sign as x1: x1 is dropped (-> x3); else x2 is dropped and x1 becomes the far end
        nx3 = xp.where(same, x1[ia], x2[ia])
        nf3 = xp.where(same, f1[ia], f2[ia])
        nx2 = xp.where(same, x2[ia], x1[ia])
        nf2 = xp.where(same, f2[ia], f1[ia])
        x3[ia], f3[ia], x2[ia], f2[ia], x1[ia], f1[ia] = nx3, nf3, nx2, nf2, xt, ft
        # inverse quadratic interpolation where Chandrupatla's criterion says it is safe
        den_x, den_f = nx3 - nx2, nf3 - nf2
        ok = (den_x != 0) & (den_f != 0) & (nf2 != ft) & (nf3 != ft)
        xi = xp.where(ok, (xt - nx2) / xp.where(ok, den_x, 1.0), 0.0)
        phi = xp.where(ok, (ft - nf2) / xp.where(ok, den_f, 1.0), 0.0)
        use_iqi = ok & (phi * phi < xi) & ((1.0 - phi) ** 2 < 1.0 - xi)
        s1 = xp.where(use_iqi, nf2 - ft, 1.0)
        s2 = xp.where(use_iqi, nf2 - nf3, 1.0)
        s3 = xp.where(use_iqi, nf3 - ft, 1.0)
        s4 = xp.where(use_iqi, nx2 - xt, 1.0)
        iqi = ft / s1 * nf3 / s2 + (nx3 - xt) / s4 * ft / s3 * nf2 / (-s2)
        t[ia] = xp.where(use_iqi, iqi, 0.5)
    lo, hi = xp.minimum(x1, x2), xp.maximum(x1, x2)
    flo, fhi = xp.where(x1 < x2, f1, f2), xp.where(x1 < x2, f2, f1)
    den = flo - fhi
    frac = xp.where(den > 0, flo / xp.where(den > 0, den, 1.0), 0.5)
    return lo + xp.clip(frac, 0.0, 1.0) * (hi - lo)


# ----- public API ---------------------------------------------------------------------------------
def _conductances(plan: _Plan, g: Any, xp: Any, arg: str = "g") -> Any:
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


def sensitivity(cell: CellType | str, V: Any, g: Any = None, normalize: bool = True, xp: Any = np) -> Any:
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
        xp: Array module (numpy, cupy), Backend or backend name (see :func:`array_module`).

    Returns:
        S with shape V.shape + (3, n_channels) (rows fast, slow, ultraslow; columns in
        ``cell.channel_names`` order, leak last with column (1, 0, 0) or (1/g_leak, 0, 0)); with a
        leading population axis, (N,) + V.shape + (3, n_channels), when g is 2-D.

    Raises:
        ValueError: ``normalize`` or calcium dependence without ``g``; malformed ``g``.
    """
    plan = _plan(cell)
    xp = array_module(xp)
    V = xp.asarray(V, dtype=float)
    if g is None:
        if normalize:
            raise ValueError("sensitivity: normalize=True divides by g_leak, so pass g (or normalize=False "
                             "for S per unit conductance)")
        return _stack(xp, _columns(plan, xp, V, None), V.shape)
    G = _conductances(plan, g, xp)
    # one neuron: a (n,) vector or a mapping of scalars; anything two-dimensional keeps its axis
    single = G.shape[0] == 1 and not hasattr(g, "columns") and np.ndim(g) <= 1 and (
        not isinstance(g, Mapping) or all(np.ndim(v) == 0 for v in g.values()))
    if single:
        S = _stack(xp, _columns(plan, xp, V, [G[0, j] for j in range(plan.n)]), V.shape)
        return S / G[0, -1] if normalize else S
    N = G.shape[0]
    lead = (N,) + (1,) * V.ndim
    gcols = [G[:, j].reshape(lead) for j in range(plan.n)] if plan.ca_dependent else None
    S = _stack(xp, _columns(plan, xp, V, gcols), (N,) + V.shape)
    if normalize:
        S = S / G[:, -1].reshape(lead + (1, 1))
    return S


def _stack(xp: Any, cols: list[tuple[Any, Any, Any]], shape: tuple[int, ...]) -> Any:
    out = xp.empty(tuple(shape) + (3, len(cols)))
    for j, col in enumerate(cols):
        for r in range(3):
            out[..., r, j] = col[r]
    return out


def dics(cell: CellType | str, g: Any, V: Any, normalize: bool = True, xp: Any = np,
         chunk: int = 1 << 15) -> Any:
    """Dynamic input conductances (g_f, g_s, g_u) = S(V)·ḡ of many neurons.

    Args:
        cell: Cell type or registry name.
        g: Maximal conductances (mS/cm²), (N, n_channels) (or (n_channels,) for N = 1).
        V: Voltage(s) (mV): a scalar, (N,) (one per neuron) or any shape broadcastable with (N,)
            (the neuron axis is the last axis, NumPy broadcasting: (M, 1) gives an M × N grid).
        normalize: Divide by g_leak (default; multiples of g_leak, g_f includes +1 from the leak).
        xp: Array module (numpy, cupy), Backend or backend name (see :func:`array_module`).
        chunk: Neurons per vectorised batch (bounds the memory of the temporaries).

    Returns:
        Array of shape broadcast(V.shape, (N,)) + (3,): g_f, g_s, g_u.
    """
    plan = _plan(cell)
    xp = array_module(xp)
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
        cols = _columns(plan, xp, Vs, [Gs[:, j] for j in range(plan.n)])
        for r in range(3):
            acc = 0.0
            for j in range(plan.n):
                acc = acc + Gs[:, j] * cols[j][r]
            out[..., sl, r] = acc / Gs[:, -1] if normalize else acc
    return out


def threshold(cell: CellType | str, g: Any, *, start: float = SCAN_START, stop: float = SCAN_STOP,
              step: float = SCAN_STEP, tol: float = BISECT_TOL, xp: Any = np, chunk: int | None = None,
              workers: int | None = None) -> Any:
    """Threshold voltage V_th of many neurons (Drion et al. 2015).

    V_th is the first voltage, scanning upward from ``start``, where g_in = g_f + g_s + g_u (the
    slope of the steady-state I–V curve over g_leak; it does not depend on the timescale weights)
    goes from positive to non-positive. g_in is evaluated on the grid ``start, start + step, …,
    stop`` (slope tables of the voltage-only channels are shared by all neurons; calcium-dependent
    channels are evaluated per neuron), and the first bracketing interval is refined to a bracket
    narrower than ``tol`` (Chandrupatla's bracketing method: interpolation steps where safe,
    bisection otherwise, always keeping the sign change inside).

    Args:
        cell: Cell type or registry name.
        g: Maximal conductances (mS/cm²), (N, n_channels).
        start: Lower end of the scan (mV), −80 in the literature.
        stop: Upper end of the scan (mV); see :data:`SCAN_STOP`.
        step: Grid spacing (mV); see :data:`SCAN_STEP`.
        tol: Width of the final bracket (mV).
        xp: Array module (numpy, cupy), Backend or backend name (see :func:`array_module`).
        chunk: Neurons scanned together; default 32,768 with NumPy, 2^20 on a GPU (fewer, larger launches).
        workers: NumPy only: processes scanning chunks side by side (identical results); ``None``:
            ``$CONDSPACE_WORKERS`` if set, else every available core from
            :data:`PARALLEL_MIN_VECTORS` neurons on.

    Returns:
        (N,) V_th in mV; NaN where g_in has no positive-to-non-positive crossing on the grid.
    """
    plan = _plan(cell)
    xp = array_module(xp)
    G = _conductances(plan, g, xp)
    scan = _Scan(plan, xp, start, stop, step, tol)
    out = xp.full(G.shape[0], xp.nan)
    for a, b, vth in _over_chunks(xp, G.shape[0], chunk, workers, lambda a, b: scan(G[a:b])):
        out[a:b] = vth
    return out


PARALLEL_MIN_VECTORS = 100_000
"""Conductance vectors from which :func:`threshold` and :func:`dics_at_threshold` use worker
processes by default (below, forking and moving results cost more than they save)."""


class _Scan:
    """The threshold search of one grid, applied to chunks of neurons (see :func:`threshold`)."""

    def __init__(self, plan: _Plan, xp: Any, start: float, stop: float, step: float, tol: float) -> None:
        if not (step > 0 and stop > start and tol > 0):
            raise ValueError(f"threshold: need step > 0, stop > start and tol > 0 (got start={start}, stop={stop}, "
                             f"step={step}, tol={tol})")
        n_pts = int(np.floor((stop - start) / step + 1e-9)) + 1
        self.plan, self.xp, self.step, self.tol = plan, xp, step, tol
        self.grid = _Grid(plan, xp, start + step * xp.arange(n_pts, dtype=float))
        self.block = max(4, int(round(2.0 / step)))  # ~2 mV of grid per pass, then neurons that crossed leave

    def __call__(self, G: Any) -> Any:
        """(m,) V_th (mV, NaN where none) of the neurons G (m, n)."""
        xp = self.xp
        # CPU: sub-blocks whose temporaries stay in cache; GPU: the whole chunk per kernel launch
        sub = CPU_SUB_BLOCK if xp is np else G.shape[0]
        out = xp.full(G.shape[0], xp.nan)
        found, k_hi, f_lo, f_hi = _first_crossings(self.grid, G, self.block, sub=sub)
        if bool(found.any()):
            rows = xp.nonzero(found)[0]
            b = self.grid.V[k_hi[rows]]
            out[rows] = _refine(self.plan, xp, G[rows], b - self.step, b, f_lo[rows], f_hi[rows], self.tol)
        return out


def _over_chunks(xp: Any, n: int, chunk: int | None, workers: int | None, job: Any) -> Any:
    """Yield (start, stop, job(start, stop)) over chunks of n neurons, in worker processes where useful."""
    chunk = int(chunk) if chunk else (1 << 15 if xp is np else 1 << 20)
    if chunk < 1:
        raise ValueError(f"chunk must be ≥ 1, got {chunk}")
    workers = worker_count(workers, n, PARALLEL_MIN_VECTORS) if xp is np else 1
    if workers > 1:  # at least a few chunks per worker, so that they finish together
        chunk = max(1024, min(chunk, -(-n // (4 * workers))))
    return run_chunks(job, [(a, min(n, a + chunk)) for a in range(0, n, chunk)], workers)


def dics_at_threshold(cell: CellType | str, g: Any, xp: Any = np, *, chunk: int | None = None,
                      workers: int | None = None, **threshold_kw: Any) -> Any:
    """V_th and the DICs there, for many neurons.

    Args:
        cell: Cell type or registry name.
        g: Maximal conductances (mS/cm²), (N, n_channels).
        xp: Array module (numpy, cupy), Backend or backend name (see :func:`array_module`).
        chunk: Neurons per batch (see :func:`threshold`).
        workers: Worker processes (NumPy; see :func:`threshold`).
        **threshold_kw: Scan grid and tolerance, passed to :func:`threshold` (``start``, ``stop``,
            ``step``, ``tol``).

    Returns:
        pandas DataFrame with N rows and columns ``V_th`` (mV), ``g_f``, ``g_s``, ``g_u``
        (multiples of g_leak); all NaN for neurons without a threshold.
    """
    import pandas as pd  # noqa: PLC0415  (only this convenience needs pandas)

    plan = _plan(cell)
    xp = array_module(xp)
    G = _conductances(plan, g, xp)
    kw = {"start": SCAN_START, "stop": SCAN_STOP, "step": SCAN_STEP, "tol": BISECT_TOL, **threshold_kw}
    unknown = set(kw) - {"start", "stop", "step", "tol"}
    if unknown:
        raise TypeError(f"dics_at_threshold: unexpected keyword arguments {sorted(unknown)}")
    scan = _Scan(plan, xp, **kw)

    def job(a: int, b: int) -> tuple[Any, Any]:
        vth = scan(G[a:b])
        d = xp.full((b - a, 3), xp.nan)
        ok = xp.nonzero(xp.isfinite(vth))[0]
        if ok.shape[0]:
            d[ok] = dics(plan.cell, G[a:b][ok], vth[ok], xp=xp, chunk=max(1, b - a))  # the chunk is the batch
        return vth, d

    vth, d = xp.full(G.shape[0], xp.nan), xp.full((G.shape[0], 3), xp.nan)
    for a, b, (v, dd) in _over_chunks(xp, G.shape[0], chunk, workers, job):
        vth[a:b], d[a:b] = v, dd
    to_np = (lambda a: a.get()) if hasattr(vth, "__cuda_array_interface__") else np.asarray
    vth, d = to_np(vth), to_np(d)
    return pd.DataFrame({"V_th": vth, "g_f": d[:, 0], "g_s": d[:, 1], "g_u": d[:, 2]})
