"""Reachability of arbitrary targets and maps over a (g_s, g_u) grid for every channel pair.
"""


from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from condspace import cells as _cells
from condspace import dics as _dics
from condspace.channels import CellType
from condspace.neuromodulation.costs import _masked_quantiles, fold_change
from condspace.neuromodulation.system import (
    _CHUNK,
    CONVERGENCE_TOL,
    DEFAULT_EPS,
    DEFAULT_ITERATIONS,
    _achieved,
    _Block,
    _check_eps,
    _check_iterations,
    _iterate,
    _population,
    _reference_voltage,
    _status,
    _System,
    _system,
    _targets,
    channel_pairs,
    pair_label,
)
from condspace.subsets import solve_stacked

GRID_STEP = 0.5
"""Default spacing (× g_leak) of reachability maps."""

MAP_RANGE_DRAWS = 2000
"""Prior-box draws whose DICs set a map's range when the cell declares no ``dic_map_ranges``."""

MAP_RANGE_ROUNDING = 5.0
"""Derived map ranges are rounded outward to multiples of this (× g_leak)."""


# ----- reachability of arbitrary targets -----------------------------------------------------------
@dataclass(frozen=True)
class Reachability:
    """Reachability of a list of targets by one channel subset.

    Attributes:
        channels: The modulated channels.
        targets: (M, 3) targets (g_f, g_s, g_u), g_f NaN when free.
        fraction: (M,) fraction of the population reaching each target.
        status: (M, N) int8 codes of :data:`STATUS`.
        modulated: (M, N, k) re-solved conductances of the modulated channels (mS/cm²).
        achieved: (M, N, 3) DICs recomputed at V* (× g_leak).
        baseline: (N, k) the neurons' own values of the modulated channels.
        passes: Calcium fixed-point passes used (0 when not coupled).
    """

    channels: tuple[str, ...]
    targets: np.ndarray
    fraction: np.ndarray
    status: np.ndarray
    modulated: np.ndarray
    achieved: np.ndarray
    baseline: np.ndarray
    passes: int

    @property
    def reachable(self) -> np.ndarray:
        """(M, N) bool."""
        return self.status == 0

    @property
    def reason(self) -> str:
        """``"singular"`` when the system is singular for every neuron, else ``"ok"``."""
        return "singular" if bool((self.status == 1).all()) else "ok"

    def fold_change(self) -> np.ndarray:
        """(M, N, k) fold changes relative to the baseline."""
        return fold_change(self.baseline, self.modulated)


def reachability(cell: CellType | str, g: Any, targets: Any, channels: Sequence[str], V: float | None = None,
                 eps: float = DEFAULT_EPS, iterations: int = DEFAULT_ITERATIONS,
                 tol: float = CONVERGENCE_TOL) -> Reachability:
    """Fraction of a population that a channel subset can bring to each target.

    A neuron reaches a target when the re-solved conductances are finite and non-negative, the
    system is not singular, and the DICs recomputed at V* are within ``eps`` of the target on the
    targeted rows (SCIENCE.md §4). Targets are solved independently; for calcium-coupled subsets
    the iteration starts from the neurons' own carrier values and stops at ``tol``.

    Args:
        cell: Cell type or registry name.
        g: (N, n_channels) starting conductances (mS/cm²).
        targets: (M, 2) rows (g_s, g_u) or (M, 3) rows (g_f, g_s, g_u), multiples of g_leak.
        channels: 2 or 3 channel names.
        V: Reference voltage V* (mV); default the cell's recipe.
        eps: Tolerance on the achieved DICs (× g_leak), > 0.
        iterations: Maximum calcium fixed-point passes.
        tol: Early stop of the calcium iteration.

    Returns:
        A :class:`Reachability`.

    Raises:
        ValueError / KeyError: Bad conductances, targets, channels, eps or iterations.
    """
    cell = _cells.get(cell)
    eps, iterations = _check_eps(eps), _check_iterations(iterations)
    V = _reference_voltage(cell, V)
    G = _population(cell, g)
    sys = _system(cell, G, V, channels)
    T = _targets(cell, targets, sys.k)
    X, ach, status, passes = _grid_solve(sys, T, eps, iterations, tol)
    return Reachability(sys.names, T, (status == 0).mean(axis=1), status, X, ach, G[:, list(sys.K)], passes)


def _grid_solve(sys: _System, T: np.ndarray, eps: float, iterations: int, tol: float, accelerate: bool = True,
                full: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Solve M targets × N neurons.

    The affine solution (the ḡ-dependent columns at the baseline) is exact for uncoupled subsets
    and the first solve of the calcium iteration otherwise.

    Returns:
        (X (M, N, k), achieved (M, N, 3) (g_f NaN unless ``full`` or targeted), status (M, N), passes).
    """
    M, N = T.shape[0], sys.G.shape[0]
    R = list(sys.rows)
    Ainv, singular = _inverse(sys.A[:, R, :])
    base = np.einsum("nij,nj->ni", Ainv, sys.b[:, R])
    X = np.einsum("nij,mj->mni", Ainv, T[:, R]) - base[None]
    sing = np.broadcast_to(singular, (M, N)).copy()
    passes = 0
    if not sys.coupled:
        ach = np.full((M, N, 3), np.nan)
        rows = (0, 1, 2) if full else R
        ach[..., list(rows)] = _achieved(*_Block(sys, T[:1]).system(None, rows), X)
    else:
        ach = np.empty((M, N, 3))
        step = max(1, _CHUNK // N)
        start = sys.G[None, :, list(sys.K)]  # where the affine solution evaluated the map
        for lo in range(0, M, step):
            hi = min(M, lo + step)
            X[lo:hi], ach[lo:hi], sc, n_pass = _iterate(_Block(sys, T[lo:hi]), X[lo:hi], iterations, tol,
                                                        accelerate, full, prev=(start, X[lo:hi]))
            sing[lo:hi] |= sc
            passes = max(passes, n_pass)
    status = _status(X, ach, np.broadcast_to(T[:, None, :], (M, N, 3)), sing, sys.rows, eps)
    return X, ach, status, passes


def _inverse(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, k, k) inverses (NaN where singular) and the (N,) singular mask."""
    k = A.shape[-1]
    eye = np.broadcast_to(np.eye(k), A.shape[:-2] + (k, k))
    inv = np.stack([solve_stacked(A, eye[..., :, j])[0] for j in range(k)], axis=-1)
    _, singular = solve_stacked(A, eye[..., :, 0])
    return inv, singular




# ----- maps over a grid, for every pair ------------------------------------------------------------
@dataclass(frozen=True)
class ReachabilityMap:
    """Reachability and cost of channel subsets over a (g_s, g_u) grid.

    Attributes:
        cell: Cell type name.
        gs: (n_s,) g_s grid (× g_leak).
        gu: (n_u,) g_u grid (× g_leak).
        pairs: The channel subsets, in the order of the first axis below.
        fraction: (n_pairs, n_u, n_s) fraction of the population reaching each grid point.
        median_cost: (n_pairs, n_u, n_s, k) median fold change over the reachable neurons.
        iqr_cost: (n_pairs, n_u, n_s, k) its interquartile range.
        reason: Per pair ``"singular"`` (for every neuron) or ``"ok"``.
        n_neurons: Population size.
        seconds: Wall time per pair (s).
    """

    cell: str
    gs: np.ndarray
    gu: np.ndarray
    pairs: list[tuple[str, ...]]
    fraction: np.ndarray
    median_cost: np.ndarray
    iqr_cost: np.ndarray
    reason: list[str]
    n_neurons: int
    seconds: list[float] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """``"CaS+H"``-style labels of the pairs."""
        return [pair_label(p) for p in self.pairs]

    def at(self, g_s: float, g_u: float) -> pd.DataFrame:
        """One grid point (the nearest): fraction and median cost per pair."""
        i, j = int(np.abs(self.gu - g_u).argmin()), int(np.abs(self.gs - g_s).argmin())
        rows = []
        for p, pair in enumerate(self.pairs):
            row = {"pair": pair_label(pair), "reachable_fraction": self.fraction[p, i, j], "reason": self.reason[p]}
            for c, name in enumerate(pair):
                row[f"median_cost_{name}"] = self.median_cost[p, i, j, c]
            rows.append(row)
        return pd.DataFrame(rows)


_DERIVED_RANGES: dict[int, tuple[CellType, tuple[tuple[float, float], tuple[float, float]]]] = {}


def map_ranges(cell: CellType | str) -> tuple[tuple[float, float], tuple[float, float]]:
    """((g_s low, g_s high), (g_u low, g_u high)) of a cell's maps, × g_leak.

    The cell's declared ``dic_map_ranges`` (STG g_s [−20, 20], g_u [0, 20]; DA g_s [−15, 15],
    g_u [0, 20]: Fyon et al. 2024, SCIENCE.md §4). A cell that declares none gets a range derived
    from its prior: the DICs of :data:`MAP_RANGE_DRAWS` uniform draws from ``cell.prior_box()``
    (seed 0; fixed conductances at their value) at the recipe's V* (at each draw's own V_th
    without a recipe); g_s spans ±(95th percentile of |g_s|), g_u spans [min(0, 5th percentile),
    max(0, 95th percentile)], each bound rounded outward to a multiple of
    :data:`MAP_RANGE_ROUNDING` (every range at least one multiple wide). Derived once per cell
    object.
    """
    cell = _cells.get(cell)
    if cell.dic_map_ranges is not None:
        (s0, s1), (u0, u1) = cell.dic_map_ranges
        return (float(s0), float(s1)), (float(u0), float(u1))
    cached = _DERIVED_RANGES.get(id(cell))
    if cached is not None and cached[0] is cell:
        return cached[1]
    box = cell.prior_box()
    rng = np.random.default_rng(0)
    G = np.empty((MAP_RANGE_DRAWS, cell.n_channels))
    for j, name in enumerate(cell.conductance_names):
        G[:, j] = cell.fixed[name] if name in cell.fixed else rng.uniform(*box[name], MAP_RANGE_DRAWS)
    if cell.population is not None:
        d = np.asarray(_dics.dics(cell, G, cell.population.V_ref))
        gs, gu = d[:, 1], d[:, 2]
    else:
        d = _dics.dics_at_threshold(cell, G)
        gs, gu = d["g_s"].to_numpy(), d["g_u"].to_numpy()
    gs, gu = gs[np.isfinite(gs)], gu[np.isfinite(gu)]
    if gs.size == 0 or gu.size == 0:
        raise ValueError(f"cell {cell.name!r}: no prior draw has finite DICs, so no map range can be derived; "
                         "declare CellType.dic_map_ranges")
    r = MAP_RANGE_ROUNDING
    s_hi = r * max(1.0, np.ceil(np.quantile(np.abs(gs), 0.95) / r))
    u_lo = r * min(0.0, np.floor(np.quantile(gu, 0.05) / r))
    u_hi = r * max(0.0, np.ceil(np.quantile(gu, 0.95) / r))
    u_hi = u_hi if u_hi > u_lo else u_lo + r
    ranges = ((-float(s_hi), float(s_hi)), (float(u_lo), float(u_hi)))
    _DERIVED_RANGES[id(cell)] = (cell, ranges)
    return ranges


def grid(cell: CellType | str, step: float = GRID_STEP) -> tuple[np.ndarray, np.ndarray]:
    """The default (g_s, g_u) axes of a cell's maps (:func:`map_ranges`) at ``step`` (× g_leak)."""
    cell = _cells.get(cell)
    if not (np.isfinite(step) and step > 0):
        raise ValueError(f"step: grid spacing must be > 0 (× g_leak), got {step}")
    (s0, s1), (u0, u1) = map_ranges(cell)
    return (np.linspace(s0, s1, int(round((s1 - s0) / step)) + 1),
            np.linspace(u0, u1, int(round((u1 - u0) / step)) + 1))


def reachability_map(cell: CellType | str, g: Any, pairs: Sequence[Sequence[str]] | None = None,
                     gs: Any = None, gu: Any = None, V: float | None = None, eps: float = DEFAULT_EPS,
                     iterations: int = DEFAULT_ITERATIONS, tol: float = CONVERGENCE_TOL,
                     step: float = GRID_STEP) -> ReachabilityMap:
    """Reachability and median cost of every channel pair over a (g_s, g_u) grid.

    For subsets without calcium coupling the per-neuron inverse of the 2×2 system is computed once
    and applied to the whole grid; for calcium-coupled subsets only the KCa column is iterated,
    vectorised over grid × neurons. A subset that is singular for every neuron is reported with
    reason ``"singular"`` and fraction 0, never an error.

    Args:
        cell: Cell type or registry name.
        g: (N, n_channels) starting conductances (mS/cm²).
        pairs: Channel subsets (2 or 3 names each); default every pair of :func:`active_channels`.
        gs: g_s axis of the grid (× g_leak); default :func:`grid` (the cell's :func:`map_ranges`).
        gu: g_u axis of the grid (× g_leak); default :func:`grid`.
        V: Reference voltage V* (mV); default the cell's recipe.
        eps: Tolerance on the achieved DICs (× g_leak).
        iterations: Maximum calcium fixed-point passes.
        tol: Early stop of the calcium iteration.
        step: Grid spacing when ``gs``/``gu`` are not given.

    Returns:
        A :class:`ReachabilityMap`.
    """
    cell = _cells.get(cell)
    eps, iterations = _check_eps(eps), _check_iterations(iterations)
    V = _reference_voltage(cell, V)
    G = _population(cell, g)
    dgs, dgu = grid(cell, step)
    gs = dgs if gs is None else np.asarray(gs, dtype=float).ravel()
    gu = dgu if gu is None else np.asarray(gu, dtype=float).ravel()
    pairs = channel_pairs(cell) if pairs is None else [tuple(p) for p in pairs]
    S_, U_ = np.meshgrid(gs, gu)
    T2 = np.stack([S_.ravel(), U_.ravel()], axis=1)
    kmax = max(len(p) for p in pairs)
    frac = np.zeros((len(pairs), gu.size, gs.size))
    med = np.full((len(pairs), gu.size, gs.size, kmax), np.nan)
    iqr = np.full_like(med, np.nan)
    reasons, seconds = [], []
    for p, pair in enumerate(pairs):
        t0 = time.perf_counter()
        sys = _system(cell, G, V, pair)
        T = _targets(cell, T2, sys.k)
        X, _, status, _ = _grid_solve(sys, T, eps, iterations, tol, full=False)
        ok = status == 0
        frac[p] = ok.mean(axis=1).reshape(gu.size, gs.size)
        fold = fold_change(G[:, list(sys.K)], X)
        for c in range(sys.k):
            fc = fold[:, :, c]
            with np.errstate(invalid="ignore"):
                use = ok & np.isfinite(fc)
            q = _masked_quantiles(fc, use, (0.25, 0.5, 0.75))
            med[p, :, :, c] = q[1].reshape(gu.size, gs.size)
            iqr[p, :, :, c] = (q[2] - q[0]).reshape(gu.size, gs.size)
        reasons.append("singular" if bool((status == 1).all()) else "ok")
        seconds.append(time.perf_counter() - t0)
    return ReachabilityMap(cell.name, gs, gu, pairs, frac, med, iqr, reasons, G.shape[0], seconds)


