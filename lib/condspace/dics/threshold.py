"""The threshold voltage V_th (first zero crossing of g_in from below) and the DICs at V_th.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from condspace._parallel import run_chunks, worker_count
from condspace.backend import array_module
from condspace.channels import CellType
from condspace.dics.sensitivity import (
    COMPLEX_STEP,
    _calcium_current,
    _conductances,
    _gate_values,
    _ipow,
    _slope_of_current,
    dics,
)
from condspace.plan import CellPlan, cell_plan

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


# ----- g_in = slope of the steady-state I–V (what the threshold needs) -------------------------------
def _channel_open(plan: CellPlan, xp: Any, j: int, Vc: Any, vals: dict[int, Any], ca: Any) -> Any:
    """Complex steady-state open fraction G_j∞ of channel j (calcium gates evaluated at ``ca``)."""
    G = 1.0
    for k in plan.per_channel[j]:
        f = plan.factors[k]
        v = f.gate.inf(xp, Vc, ca) if f.kind == "calcium" else vals[k]
        G = G * _ipow(v, f.power)
    return G


def _ca_inf(plan: CellPlan, xp: Any, Vc: Any, vals: dict[int, Any], gcols: Any) -> Any:
    """Complex [Ca]∞(V + ih) = β − α Σ_c ḡ_c G_c∞ (V − E_c) (µM)."""
    pool = plan.cell.calcium
    return pool.beta - pool.alpha * _calcium_current(plan, xp, Vc, vals, gcols)


def _slope_calcium_part(plan: CellPlan, xp: Any, Vc: Any, vals: dict[int, Any], gcols: Any, ca: Any) -> Any:
    """Σ ḡ_j dI_j∞/dV (mS/cm²) over the calcium-dependent channels: total derivative along [Ca]∞(V)."""
    total = 0.0
    for j in plan.ca_dependent:
        G = _channel_open(plan, xp, j, Vc, vals, ca)
        total = total + gcols[j] * _slope_of_current(G, Vc.real, plan.reversal[j])
    return total


def _slope_at(plan: CellPlan, xp: Any, V: Any, G: Any) -> Any:
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

    def __init__(self, plan: CellPlan, xp: Any, V: Any) -> None:
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


def _refine(plan: CellPlan, xp: Any, G: Any, a: Any, b: Any, fa: Any, fb: Any, tol: float) -> Any:
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




def threshold(cell: CellType | str, g: Any, *, start: float = SCAN_START, stop: float = SCAN_STOP,
              step: float = SCAN_STEP, tol: float = BISECT_TOL, backend: Any = "numpy", chunk: int | None = None,
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
        backend: ``"numpy"`` (default), ``"cupy"``, ``"auto"``, a Backend, or the array module of
            arrays already on a device (see :func:`condspace.backend.array_module`).
        chunk: Neurons scanned together; default 32,768 with NumPy, 2^20 on a GPU (fewer, larger launches).
        workers: NumPy only: processes scanning chunks side by side (identical results); ``None``:
            ``$CONDSPACE_WORKERS`` if set, else every available core from
            :data:`PARALLEL_MIN_VECTORS` neurons on.

    Returns:
        (N,) V_th in mV; NaN where g_in has no positive-to-non-positive crossing on the grid.
    """
    plan = cell_plan(cell)
    xp = array_module(backend)
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

    def __init__(self, plan: CellPlan, xp: Any, start: float, stop: float, step: float, tol: float) -> None:
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


def dics_at_threshold(cell: CellType | str, g: Any, backend: Any = "numpy", *, chunk: int | None = None,
                      workers: int | None = None, **threshold_kw: Any) -> Any:
    """V_th and the DICs there, for many neurons.

    Args:
        cell: Cell type or registry name.
        g: Maximal conductances (mS/cm²), (N, n_channels).
        backend: ``"numpy"`` (default), ``"cupy"``, ``"auto"``, a Backend, or the array module of
            arrays already on a device (see :func:`condspace.backend.array_module`).
        chunk: Neurons per batch (see :func:`threshold`).
        workers: Worker processes (NumPy; see :func:`threshold`).
        **threshold_kw: Scan grid and tolerance, passed to :func:`threshold` (``start``, ``stop``,
            ``step``, ``tol``).

    Returns:
        pandas DataFrame with N rows and columns ``V_th`` (mV), ``g_f``, ``g_s``, ``g_u``
        (multiples of g_leak); all NaN for neurons without a threshold.
    """
    import pandas as pd  # noqa: PLC0415  (only this convenience needs pandas)

    plan = cell_plan(cell)
    xp = array_module(backend)
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
            d[ok] = dics(plan.cell, G[a:b][ok], vth[ok], backend=xp, chunk=max(1, b - a))  # the chunk is the batch
        return vth, d

    vth, d = xp.full(G.shape[0], xp.nan), xp.full((G.shape[0], 3), xp.nan)
    for a, b, (v, dd) in _over_chunks(xp, G.shape[0], chunk, workers, job):
        vth[a:b], d[a:b] = v, dd
    to_np = (lambda a: a.get()) if hasattr(vth, "__cuda_array_interface__") else np.asarray
    vth, d = to_np(vth), to_np(d)
    return pd.DataFrame({"V_th": vth, "g_f": d[:, 0], "g_s": d[:, 1], "g_u": d[:, 2]})
