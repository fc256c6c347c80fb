"""Neuromodulation of degenerate populations: paths in the (g_s, g_u) plane, reachability, cost.

A neuromodulator changes a few maximal conductances of every neuron. In the DIC picture (Drion
et al. 2015; Fyon et al. 2024) it moves the population from one point of the (g_s, g_u) plane at
the reference voltage V* (e.g. tonic spiking at (4, 5)) to another (e.g. bursting at (−4, 5)).
Which channel subset K can do it, for how many neurons, and at what cost?

For every neuron and target d* the modulated conductances ḡ_K solve (SCIENCE.md §4)

    S_{R,K}(V*) · ḡ_K = d*_R − S_{R,rest}(V*) · ḡ_rest,

with R = (slow, ultraslow) for a pair (g_f is left free) and R = (fast, slow, ultraslow) for a
triplet (g_f targeted too, by default on the recipe's line g_f = a·g_s + b). S is the DIC
sensitivity matrix of :func:`condspace.dics.sensitivity`, normalised by g_leak.

* **Affine case.** S does not depend on ḡ except through calcium: for a cell without a calcium
  pool, or a subset K without calcium-carrying channels, the solution is affine in d*. One
  per-neuron inverse then maps a whole grid of targets at once.
* **Calcium case.** In the STG the KCa column depends on ḡ_CaT and ḡ_CaS through
  [Ca]∞(V*) = β − α Σ_c ḡ_c G_c∞(V*)(V* − E_Ca) (affine in ḡ_CaT, ḡ_CaS). When K holds a calcium
  carrier the system is solved by fixed-point iteration (SCIENCE.md §4): solve with a guess of the
  carriers, recompute the ḡ-dependent columns of S with the solution, solve again. Only those
  columns are recomputed, for all targets × neurons at once.
* **Reachable** (SCIENCE.md §4): the system is non-singular, the solution finite and
  non-negative, and the DICs recomputed at V* with the new conductances lie within ε of the
  target on the targeted rows. Otherwise the status says why (:data:`STATUS`).
* **Cost**: the fold change ḡ_new / ḡ_baseline of each modulated channel, per neuron; summaries
  give the population median and interquartile range over the reachable neurons.

Any starting population works: a compensation population (:mod:`condspace.populations`),
posterior samples (:mod:`condspace.inference`) or a table read from disk.

References: Drion G, Franci A, Dethier J, Sepulchre R (2015) eNeuro 2(1); Fyon A, Franci A,
Sacré P, Drion G (2024) PNAS Nexus 3:pgae415; Brandoit J, Ernst D, Drion G, Fyon A (2025)
arXiv:2509.12783.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from condspace import cells as _cells
from condspace import dics as _dics
from condspace import features as _features
from condspace.channels import CellType
from condspace.plan import cell_plan
from condspace.simulate import conductance_matrix, simulate
from condspace.subsets import SINGULAR_RTOL, STATUS, outcome, solve_stacked

DEFAULT_EPS = 0.1
"""Tolerance ε (multiples of g_leak) on the achieved DICs of a reachable target (SCIENCE.md §4)."""

DEFAULT_ITERATIONS = 25
"""Calcium fixed-point passes after the first solve (SCIENCE.md §4: 25 for maps)."""

CONVERGENCE_TOL = 1e-10
"""A calcium iteration stops early once the achieved DICs match the target to this (× g_leak)."""

SINGULAR_TOL = SINGULAR_RTOL
"""The singularity test of the one subset solver (:data:`condspace.subsets.SINGULAR_RTOL`)."""

GRID_STEP = 0.5
"""Default spacing (× g_leak) of reachability maps."""

MAP_RANGE_DRAWS = 2000
"""Prior-box draws whose DICs set a map's range when the cell declares no ``dic_map_ranges``."""

MAP_RANGE_ROUNDING = 5.0
"""Derived map ranges are rounded outward to multiples of this (× g_leak)."""

_ROWS = {2: (1, 2), 3: (0, 1, 2)}  # targeted DIC rows of a pair and of a triplet
_CHUNK = 1 << 16  # target × neuron points iterated together in maps (cache-sized temporaries)


# ----- paths ---------------------------------------------------------------------------------------
def path(start: Sequence[Any], end: Sequence[float] | None = None, n_points: int = 21,
         via: Sequence[Sequence[float]] = ()) -> np.ndarray:
    """A neuromodulation path in the (g_s, g_u) plane: a straight line or a polyline.

    Points are spaced evenly along the arc length; every vertex (start, each ``via`` point, end)
    is one of the points, so a polyline keeps its corners.

    Args:
        start: (g_s, g_u) where the population starts (multiples of g_leak), e.g. (4, 5); or, with
            ``end`` omitted, the list of all vertices of a polyline, e.g. [(4, 5), (0, 8), (−4, 5)].
        end: (g_s, g_u) where the modulation ends, e.g. (−4, 5).
        n_points: Number of points, at least the number of vertices (≥ 2).
        via: Intermediate vertices (g_s, g_u) of a polyline, in order.

    Returns:
        (n_points, 2) array of (g_s, g_u).

    Raises:
        ValueError: Vertices that are not finite (g_s, g_u) pairs; too few points.
    """
    if end is None:
        vertices = list(start)
        if len(vertices) < 2 or via:
            raise ValueError("path: give start and end, or (with end omitted) a list of at least two (g_s, g_u) "
                             "vertices and no via points")
    else:
        vertices = [start, *via, end]
    try:
        V = np.array([np.asarray(v, dtype=float).reshape(2) for v in vertices])
    except (ValueError, TypeError):
        raise ValueError(f"path: start, end and via points must be (g_s, g_u) pairs, got {vertices!r}") from None
    if not np.isfinite(V).all():
        raise ValueError(f"path: vertices must be finite, got {V.tolist()}")
    if int(n_points) != n_points or n_points < len(V):
        raise ValueError(f"n_points: need an integer ≥ {len(V)} (one per vertex), got {n_points}")
    n_points = int(n_points)
    seg = np.linalg.norm(np.diff(V, axis=0), axis=1)
    if seg.sum() == 0:
        return np.repeat(V[:1], n_points, axis=0)
    # points per segment (besides its start vertex) by largest remainder, at least one each
    extra = n_points - len(V)
    share = seg / seg.sum() * extra
    counts = np.floor(share).astype(int)
    counts[np.argsort(share - counts)[::-1][: extra - counts.sum()]] += 1
    pieces = [V[:1]]
    for i, c in enumerate(counts):
        t = np.linspace(0.0, 1.0, c + 2)[1:]
        pieces.append(V[i] + t[:, None] * (V[i + 1] - V[i]))
    return np.concatenate(pieces)


# ----- the linear system of one channel subset -----------------------------------------------------
def active_channels(cell: CellType | str) -> tuple[str, ...]:
    """Channels a neuromodulator may target: every channel but the leak (fixed ones included)."""
    cell = _cells.get(cell)
    return tuple(ch.name for ch in cell.channels)


def channel_pairs(cell: CellType | str) -> list[tuple[str, str]]:
    """All pairs of :func:`active_channels`, in declaration order (21 for the STG, 15 for the DA)."""
    return list(itertools.combinations(active_channels(cell), 2))


def pair_label(channels: Sequence[str]) -> str:
    """``("CaS", "H")`` → ``"CaS+H"`` (the ``pair`` column of the summaries)."""
    return "+".join(channels)


def _channel_indices(cell: CellType, channels: Any) -> tuple[tuple[str, ...], tuple[int, ...]]:
    if isinstance(channels, str):
        channels = channels.replace("+", ",").split(",")
    try:
        names = tuple(str(c).strip() for c in channels)
    except TypeError:
        raise ValueError(f"channels: give 2 or 3 channel names, e.g. ('CaS', 'H'), got {channels!r}") from None
    names = tuple(n[2:] if n.startswith("g_") else n for n in names)
    if len(names) not in _ROWS:
        raise ValueError(f"channels: give 2 channels (g_s and g_u targeted, g_f free) or 3 (all three DICs "
                         f"targeted), got {len(names)}: {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"channels: {names} names a channel twice")
    idx = []
    for n in names:
        if n == "leak":
            raise ValueError("channels: the leak cannot be modulated (the DICs are normalised by g_leak); "
                             f"choose from {active_channels(cell)}")
        try:
            idx.append(cell.index(n))
        except KeyError:
            raise KeyError(f"channels: cell {cell.name!r} has no channel {n!r}; choose from "
                           f"{active_channels(cell)}") from None
    return names, tuple(idx)


def _reference_voltage(cell: CellType, V: Any) -> float:
    if V is None:
        if cell.population is None:
            raise ValueError(f"V: cell {cell.name!r} has no population recipe with a reference voltage; pass V (mV)")
        return float(cell.population.V_ref)
    V = np.asarray(V, dtype=float)
    if V.ndim != 0 or not np.isfinite(V):
        raise ValueError(f"V: the reference voltage V* must be one finite number (mV), got {V!r}")
    return float(V)


def _population(cell: CellType, g: Any) -> np.ndarray:
    try:
        return conductance_matrix(cell, g)
    except ValueError as err:
        raise ValueError(f"{err} (starting conductances of the population, mS/cm²)") from None


def _targets(cell: CellType, targets: Any, k: int) -> np.ndarray:
    """(M, 3) targets (g_f, g_s, g_u); g_f is NaN (free) for pairs, from the recipe's line if needed."""
    D = np.asarray(targets, dtype=float)
    if D.ndim == 1:
        D = D[None, :]
    if D.ndim != 2 or D.shape[1] not in (2, 3) or D.shape[0] == 0:
        raise ValueError(f"targets: expected (M, 2) rows (g_s, g_u) or (M, 3) rows (g_f, g_s, g_u), got shape "
                         f"{np.shape(targets)}")
    if not np.isfinite(D).all():
        raise ValueError("targets: DIC targets must be finite (multiples of g_leak)")
    out = np.full((D.shape[0], 3), np.nan)
    out[:, 3 - D.shape[1]:] = D
    if k == 3 and D.shape[1] == 2:
        if cell.population is None:
            raise ValueError(f"targets: a triplet targets g_f too and cell {cell.name!r} has no g_f rule; give "
                             "(M, 3) rows (g_f, g_s, g_u)")
        a, b = cell.population.gf_rule
        out[:, 0] = a * out[:, 1] + b
    if k == 2:
        out[:, 0] = np.nan  # a pair leaves g_f free
    return out


def _dependent_columns(cell: CellType, V: float, carriers: Mapping[int, Any]) -> dict[int, tuple[Any, Any, Any]]:
    """Un-normalised S columns of the calcium-dependent channels for given carrier conductances.

    The DIC engine's own column function (:mod:`condspace.dics`) is evaluated with only the
    calcium carriers given, so nothing but the ḡ-dependent columns is computed per point.

    Args:
        cell: Cell type.
        V: Reference voltage (mV).
        carriers: channel index → conductances (mS/cm²) of every calcium carrier, arrays of any
            mutually broadcastable shapes.

    Returns:
        channel index → (fast, slow, ultraslow) rows of its column per unit ḡ, broadcast shape.
    """
    plan = cell_plan(cell)
    gcols: list[Any] = [0.0] * plan.n
    for c, values in carriers.items():
        gcols[c] = values
    cols = _dics.sensitivity_columns(plan, np, np.asarray(V, dtype=float), gcols)
    return {j: cols[j] for j in plan.ca_dependent}


@dataclass(frozen=True)
class _System:
    """The per-neuron linear system of one channel subset at V* (everything that does not move)."""

    cell: CellType
    G: np.ndarray  # (N, n) baseline conductances
    V: float
    names: tuple[str, ...]
    K: tuple[int, ...]
    S: np.ndarray  # (N, 3, n) normalised sensitivity at the baseline
    A: np.ndarray  # (N, 3, k) S columns of the modulated channels
    b: np.ndarray  # (N, 3) contribution of the other channels (leak included)
    carriers: tuple[int, ...]  # calcium-carrying channels
    dependent: tuple[int, ...]  # channels whose column depends on the carriers

    @property
    def k(self) -> int:
        return len(self.K)

    @property
    def rows(self) -> tuple[int, ...]:
        return _ROWS[self.k]

    @property
    def coupled(self) -> bool:
        """True when a modulated channel carries calcium and some column depends on it."""
        return bool(self.dependent) and any(c in self.K for c in self.carriers)


def _system(cell: CellType, G: np.ndarray, V: float, channels: Any) -> _System:
    names, K = _channel_indices(cell, channels)
    S = _dics.sensitivity(cell, V, G)  # (N, 3, n), normalised by g_leak
    rest = [j for j in range(cell.n_channels) if j not in K]
    A = S[:, :, list(K)]
    b = np.einsum("nrj,nj->nr", S[:, :, rest], G[:, rest])
    carriers = tuple(i for i, ch in enumerate(cell.channels) if ch.carries_calcium)
    dependent = tuple(i for i, ch in enumerate(cell.channels) if any(getattr(x, "uses_calcium", False)
                                                                       for x in ch.gates))
    return _System(cell, G, V, names, K, S, A, b, carriers if dependent else (), dependent)


class _Block:
    """A block of (target, neuron) points of one system, laid out as (m, n) arrays.

    Built dense (m targets × the N neurons; per-neuron arrays broadcast over the targets, nothing
    gathered) and compacted to (1, P) when only a few points still iterate (:meth:`take`). The
    baseline contribution of the calcium-dependent channels is taken out of ``b0`` once: the system
    at any carrier values is ``b0`` plus the recomputed dependent columns.
    """

    def __init__(self, sys: _System, targets: np.ndarray) -> None:
        self.sys = sys
        self.d = targets[:, None, :]  # (m, 1, 3) targets (g_f NaN when free)
        G = sys.G
        self.A, self.b = sys.A, sys.b  # (n, 3, k), (n, 3) at the baseline
        self.inv_leak = 1.0 / G[:, -1]  # S is normalised by g_leak
        self.fixed = {c: G[:, c] for c in sys.carriers if c not in sys.K}  # carriers that do not move
        # dependent channels that do not move: their conductance over g_leak multiplies their column
        self.out = {j: G[:, j] * self.inv_leak for j in sys.dependent if j not in sys.K}
        b0 = sys.b.copy()
        if sys.coupled:
            for j in self.out:
                b0 -= sys.S[:, :, j] * G[:, j:j + 1]
        self.b0 = b0  # (n, 3)

    def take(self, mi: np.ndarray, ni: np.ndarray) -> _Block:
        """The points (mi, ni) of this block as a (1, P) block."""
        new = object.__new__(_Block)
        new.sys = self.sys
        new.d = np.broadcast_to(self.d, (self.d.shape[0], self.A.shape[0], 3))[mi, ni][None]
        new.A, new.b, new.b0, new.inv_leak = self.A[ni], self.b[ni], self.b0[ni], self.inv_leak[ni]
        new.fixed = {c: v[ni] for c, v in self.fixed.items()}
        new.out = {j: v[ni] for j, v in self.out.items()}
        return new

    def system(self, X: np.ndarray | None, rows: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(A, b) on DIC ``rows``, broadcastable to (m, n, r, k) and (m, n, r), at modulated values X.

        Args:
            X: (m, n, k) modulated conductances; ``None`` (or an uncoupled system) gives the
                baseline columns.
            rows: DIC rows (0 fast, 1 slow, 2 ultraslow).
        """
        sys = self.sys
        rows = list(rows)
        if X is None or not sys.coupled:
            return self.A[None][:, :, rows], self.b[None][:, :, rows]
        carriers = dict(self.fixed)
        for c in sys.carriers:
            if c in sys.K:
                # a negative iterate carries no calcium current: evaluate it at 0 (the point ends
                # unreachable unless the iteration returns to non-negative values)
                carriers[c] = np.maximum(X[:, :, sys.K.index(c)], 0.0)
        cols = _dependent_columns(sys.cell, sys.V, carriers)
        A, b = self.A[None][:, :, rows], self.b0[None][:, :, rows]
        shape = X.shape[:2]
        for j, col in cols.items():
            if j in sys.K:
                A = np.broadcast_to(A, shape + A.shape[2:]).copy()
                for i, r in enumerate(rows):
                    A[:, :, i, sys.K.index(j)] = col[r] * self.inv_leak
            else:
                b = b + np.stack([np.broadcast_to(col[r] * self.out[j], shape) for r in rows], axis=-1)
        return A, b


def _achieved(A: np.ndarray, b: np.ndarray, X: np.ndarray) -> np.ndarray:
    """S·ḡ at V* on the rows of (A, b): (m, n, r) DICs for modulated values X (m, n, k)."""
    out = b + A[..., 0] * X[..., None, 0]  # an explicit sum: einsum does not vectorise this broadcast
    for j in range(1, X.shape[-1]):
        out = out + A[..., j] * X[..., None, j]
    return out


_COMPACT_BELOW = 0.25  # compact a block once fewer than this fraction of its points still iterate
_COMPACT_MIN = 4096  # ... and it has more points than this


def _iterate(block: _Block, X: np.ndarray, iterations: int, tol: float, accelerate: bool, full: bool = True,
             prev: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Calcium fixed-point iteration of a coupled system from a first solution X (m, n, k).

    Each pass recomputes the dependent columns at the current solution, which gives the achieved
    DICs (recomputed at V*); points within ``tol`` of their target are frozen, the others are
    solved again. ``accelerate`` applies Anderson(1) to the calcium-carrier coordinates (the only
    ones the fixed-point map reads): the secant method when one carrier is modulated. It finds the
    fixed point in a few passes, also where the plain iteration diverges (ill-conditioned subsets
    such as {Na, CaS}, whose slow column is tiny). Where it has not converged after ``iterations``
    passes (strongly nonlinear cases, far out of the literature box) the plain iteration is run
    from the first solution as well, and the better of the two is kept.

    Args:
        block: The targets and the system.
        X: (m, n, k) first solution.
        iterations: Maximum passes (of each method).
        tol: Freeze a point once its targeted DICs are within tol (× g_leak).
        accelerate: Anderson(1) steps.
        full: Also recompute the untargeted g_f row of the achieved DICs (else it is NaN).
        prev: (x, T(x)) of a previous evaluation of the fixed-point map (e.g. the baseline and
            the first solve), so that the first pass can already extrapolate.

    Returns:
        (X (m, n, k), achieved (m, n, 3), singular (m, n), passes used).
    """
    R = list(block.sys.rows)
    x, ach, singular, res, passes = _fixed_point(block, X, iterations, tol, accelerate, prev)
    if accelerate:
        retry = res > tol  # not converged (NaN: singular or non-finite, nothing to retry)
        if retry.any():
            mi, ni = np.nonzero(retry)
            x2, ach2, sing2, res2, p2 = _fixed_point(block.take(mi, ni), X[mi, ni][None], iterations, tol, False)
            better = res2[0] < res[mi, ni]
            mi, ni = mi[better], ni[better]
            x[mi, ni], ach[mi, ni], singular[mi, ni] = x2[0, better], ach2[0, better], sing2[0, better]
            passes += p2
    achieved = np.full(x.shape[:2] + (3,), np.nan)
    achieved[..., R] = ach
    if full and 0 not in R:
        A, b = block.system(x, [0])
        achieved[..., 0] = _achieved(A, b, x)[..., 0]
    return x, achieved, singular, passes


def _fixed_point(block: _Block, X: np.ndarray, iterations: int, tol: float, accelerate: bool,
                 prev: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, ...]:
    """The passes of :func:`_iterate`. Returns (X, achieved rows R, singular, residual, passes)."""
    R = list(block.sys.rows)
    C = [i for i, j in enumerate(block.sys.K) if j in block.sys.carriers]
    shape = X.shape[:2]
    out_x, out_ach, out_sing = X.copy(), np.full(shape + (len(R),), np.nan), np.zeros(shape, dtype=bool)
    out_res = np.full(shape, np.nan)
    loc: tuple[np.ndarray, np.ndarray] | None = None  # where the points of a compacted block go
    x = X.copy()
    singular = np.zeros(shape, dtype=bool)
    frozen = np.zeros(shape, dtype=bool)
    mem = None if prev is None else (prev[1] - prev[0], prev[1])  # (f, g) of the last map evaluation
    passes = 0
    for it in range(iterations + 1):
        d = block.d[..., R]
        A, b = block.system(x, R)
        ach = _achieved(A, b, x)
        res = np.abs(ach - d).max(axis=-1)
        frozen |= ~(res > tol)  # converged (or NaN: singular / non-finite, nothing to iterate)
        if it == iterations or frozen.all():
            break
        if frozen.mean() > 1.0 - _COMPACT_BELOW and frozen.size > _COMPACT_MIN:
            _scatter((out_x, out_ach, out_sing, out_res), loc, (x, ach, singular, res))
            mi, ni = np.nonzero(~frozen)
            loc = (mi, ni) if loc is None else (loc[0][ni], loc[1][ni])
            full_shape = x.shape[:2]
            x, ach, singular, res = x[mi, ni][None], ach[mi, ni][None], singular[mi, ni][None], res[mi, ni][None]
            A = np.broadcast_to(A, full_shape + A.shape[2:])[mi, ni][None]
            b = np.broadcast_to(b, full_shape + b.shape[2:])[mi, ni][None]
            if mem is not None:
                mem = tuple(np.broadcast_to(v, full_shape + v.shape[2:])[mi, ni][None] for v in mem)
            block = block.take(mi, ni)
            d = block.d[..., R]
            frozen = np.zeros(x.shape[:2], dtype=bool)
        passes = it + 1
        g, sing = solve_stacked(A, d - b)
        singular |= sing & ~frozen
        f = g - x
        x_new = g
        if accelerate and mem is not None:
            pf, pg = mem
            df, dg = (f - pf)[..., C], g - pg
            den = (df * df).sum(axis=-1)
            with np.errstate(divide="ignore", invalid="ignore"):
                gamma = (df * f[..., C]).sum(axis=-1) / den
            ok = np.isfinite(gamma) & (den > 0)
            x_new = np.where(ok[..., None], g - gamma[..., None] * dg, g)
        mem = (f, g)
        x = np.where(frozen[..., None], x, x_new)
    _scatter((out_x, out_ach, out_sing, out_res), loc, (x, ach, singular, res))
    return out_x, out_ach, out_sing, out_res, passes


def _scatter(out: tuple[np.ndarray, ...], loc: Any, current: tuple[np.ndarray, ...]) -> None:
    """Write the current points back into the output arrays (dense or compacted layout)."""
    for o, c in zip(out, current, strict=True):
        if loc is None:
            o[...] = c
        else:
            o[loc] = c[0]


def _status(X: np.ndarray, achieved: np.ndarray, targets: np.ndarray, singular: np.ndarray, rows: tuple[int, ...],
            eps: float) -> np.ndarray:
    """Status codes (:data:`STATUS`) of (..., k) solutions: the solver's outcome, or 4 where the
    recomputed DICs miss the target by more than ``eps``."""
    status = outcome(X, singular)
    with np.errstate(invalid="ignore"):
        miss = ~(np.abs(achieved[..., list(rows)] - targets[..., list(rows)]) <= eps).all(axis=-1)
    status[(status == 0) & miss] = 4
    return status


def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps: the DIC tolerance must be a positive number (multiples of g_leak), got {eps}")
    return eps


def _check_iterations(iterations: int) -> int:
    if int(iterations) != iterations or iterations < 0:
        raise ValueError(f"iterations: need an integer ≥ 0 (calcium fixed-point passes), got {iterations}")
    return int(iterations)


def _calcium_guess(sys: _System, targets: np.ndarray) -> np.ndarray | None:
    """Initial carrier values of the recipe (SCIENCE.md §4: ḡ_CaS⁽⁰⁾ = 34.12 − 2.330·g_s*, ...).

    Returns (M, N, k) initial values (baseline for channels without a recipe guess) or None.
    """
    if not sys.coupled:
        return None
    guess = np.broadcast_to(sys.G[:, list(sys.K)], (targets.shape[0],) + (sys.G.shape[0], sys.k)).copy()
    recipe = sys.cell.population.calcium_guess if sys.cell.population is not None else {}
    for pos, j in enumerate(sys.K):
        name = sys.cell.channels[j].name
        if j in sys.carriers and name in recipe:
            a, slope = recipe[name]
            guess[:, :, pos] = (a + slope * targets[:, 1])[:, None]
    return guess


# ----- trajectories along a path -------------------------------------------------------------------
@dataclass(frozen=True)
class Trajectory:
    """Per-neuron conductance trajectories of one channel subset along a path.

    Attributes:
        cell: Cell type name.
        channels: The modulated channels, e.g. ``("CaS", "H")``.
        targets: (n_points, 3) targets (g_f, g_s, g_u); g_f is NaN where it is free (pairs).
        V: Reference voltage V* (mV).
        baseline: (N, n_channels) starting conductances (mS/cm²).
        g: (n_points, N, n_channels) conductances at each point (only the modulated columns move).
        achieved: (n_points, N, 3) DICs (g_f, g_s, g_u) recomputed at V* with ``g`` (× g_leak).
        status: (n_points, N) int8 codes of :data:`STATUS`.
        eps: DIC tolerance used for ``status``.
        passes: (n_points,) calcium fixed-point passes used at each point (0 when not coupled).
    """

    cell: str
    channels: tuple[str, ...]
    targets: np.ndarray
    V: float
    baseline: np.ndarray
    g: np.ndarray
    achieved: np.ndarray
    status: np.ndarray
    eps: float
    passes: np.ndarray

    @property
    def reachable(self) -> np.ndarray:
        """(n_points, N) bool: the neuron reaches that point (status 0)."""
        return self.status == 0

    @property
    def path_reachable(self) -> np.ndarray:
        """(N,) bool: the neuron reaches every point of the path."""
        return self.reachable.all(axis=0)

    @property
    def reachable_fraction(self) -> float:
        """Fraction of the population that reaches every point of the path."""
        return float(self.path_reachable.mean())

    @property
    def indices(self) -> list[int]:
        """Column indices of the modulated channels in the conductance arrays."""
        c = _cells.get(self.cell)
        return [c.index(n) for n in self.channels]

    def fold_change(self) -> np.ndarray:
        """(n_points, N, k) ḡ / ḡ_baseline of the modulated channels (NaN where the baseline is 0)."""
        return fold_change(self.baseline[:, self.indices], self.g[:, :, self.indices])

    def cost(self, point: int = -1, whole_path: bool = True) -> pd.DataFrame:
        """Fold-change summary at one point over the reachable neurons (see :func:`cost`).

        Args:
            point: Path index (default: the end).
            whole_path: Count only neurons that reach every point of the path (default) rather
                than those reaching this point.
        """
        mask = self.path_reachable if whole_path else self.reachable[point]
        return cost(self.baseline[:, self.indices], self.g[point][:, self.indices], self.channels, mask)


def modulate_along(cell: CellType | str, g: Any, path: Any, channels: Sequence[str], V: float | None = None,
                   iterations: int = DEFAULT_ITERATIONS, eps: float = DEFAULT_EPS,
                   tol: float = CONVERGENCE_TOL, accelerate: bool = True) -> Trajectory:
    """Move every neuron of a population along a path by re-solving a channel subset.

    Pairs re-solve the (slow, ultraslow) rows with g_f free; triplets solve all three rows (g_f
    from the recipe's line g_f = a·g_s + b unless the path gives it). Where a modulated channel
    carries calcium (STG CaT, CaS) the KCa column of S is iterated (SCIENCE.md §4). The first point
    starts from the recipe's calcium guess (ḡ_CaS⁽⁰⁾ = 34.12 − 2.330 g_s*, ḡ_CaT⁽⁰⁾ = 24.6 − 5.14 g_s*;
    the neuron's own value for carriers without one); every later point is warm-started from the
    previous point's solution.

    Args:
        cell: Cell type or registry name.
        g: (N, n_channels) starting conductances (mS/cm²): a compensation population, posterior
            samples, a DataFrame with ``g_*`` columns.
        path: (n_points, 2) points (g_s, g_u) (e.g. from :func:`path`) or (n_points, 3) points
            (g_f, g_s, g_u) (g_f is ignored by pairs), multiples of g_leak.
        channels: 2 or 3 channel names, e.g. ``("CaS", "H")``.
        V: Reference voltage V* (mV); default the cell's recipe (STG −51, DA −55.5).
        iterations: Calcium fixed-point passes after the first solve at each point.
        eps: Tolerance on the achieved DICs for ``status``.
        tol: Early stop of the calcium iteration (× g_leak).
        accelerate: Anderson(1)-accelerate the calcium iteration (same fixed point in fewer passes,
            and found where the plain iteration diverges); ``False`` gives the plain passes of
            SCIENCE.md §4 (its 5-iteration check values).

    Returns:
        A :class:`Trajectory`.

    Raises:
        ValueError: Malformed conductances, path, channels, eps or iterations.
        KeyError: Unknown channel name.
    """
    cell = _cells.get(cell)
    eps, iterations = _check_eps(eps), _check_iterations(iterations)
    V = _reference_voltage(cell, V)
    G = _population(cell, g)
    sys = _system(cell, G, V, channels)
    T = _targets(cell, path, sys.k)
    N = G.shape[0]
    Xs, ach, status, passes = [], [], [], []
    guess = _calcium_guess(sys, T[:1])
    X0 = None if guess is None else guess[0]
    # (X0 only matters for coupled subsets: their calcium carriers' first evaluation)
    R = list(sys.rows)
    for t in T:
        block = _Block(sys, t[None])
        A, b = block.system(None if X0 is None else X0[None], R)
        X, singular = solve_stacked(A, block.d[..., R] - b)
        if sys.coupled:
            X, achieved, sing, n_pass = _iterate(block, X, iterations, tol, accelerate,
                                                 prev=None if X0 is None else (X0[None], X))
            singular |= sing
            # warm start of the next point: this solution where it is usable
            X0 = np.where(np.isfinite(X[0]).all(axis=1)[:, None], X[0], X0)
        else:
            achieved, n_pass = _achieved(*block.system(None, (0, 1, 2)), X), 0
        Xs.append(X[0])
        ach.append(achieved[0])
        status.append(_status(X[0], achieved[0], np.broadcast_to(t, (N, 3)), singular[0], sys.rows, eps))
        passes.append(n_pass)
    gs = np.broadcast_to(G, (len(T),) + G.shape).copy()
    gs[:, :, list(sys.K)] = np.stack(Xs)
    return Trajectory(cell.name, sys.names, T, V, G, gs, np.stack(ach), np.stack(status), eps,
                      np.asarray(passes))


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


# ----- cost ------------------------------------------------------------------------------------------
def fold_change(baseline: Any, modulated: Any) -> np.ndarray:
    """ḡ_new / ḡ_baseline per neuron and channel (> 1 is up-regulation).

    Args:
        baseline: (N, k) the neurons' own conductances (mS/cm²).
        modulated: (..., N, k) modulated conductances.

    Returns:
        (..., N, k) fold changes; NaN where the baseline is 0 (no fold change is defined).
    """
    base = np.asarray(baseline, dtype=float)
    new = np.asarray(modulated, dtype=float)
    if new.shape[-base.ndim:] != base.shape:
        raise ValueError(f"modulated: shape {new.shape} does not end with the baseline shape {base.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(base > 0, new / np.where(base > 0, base, 1.0), np.nan)


def cost(baseline: Any, modulated: Any, channels: Sequence[str], reachable: Any = None) -> pd.DataFrame:
    """Cost of a modulation: population median and spread of each channel's fold change.

    Args:
        baseline: (N, k) the neurons' own values of the modulated channels (mS/cm²).
        modulated: (N, k) their modulated values.
        channels: k channel names (the index of the result).
        reachable: (N,) bool; only these neurons are summarised (default: all with a finite,
            non-negative fold change).

    Returns:
        DataFrame indexed by channel with ``median``, ``q25``, ``q75``, ``iqr`` (fold changes) and
        ``n`` (neurons summarised).

    Raises:
        ValueError: Shapes that do not match.
    """
    fold = fold_change(baseline, modulated)
    if fold.ndim != 2 or fold.shape[1] != len(channels):
        raise ValueError(f"modulated: expected (N, {len(channels)}) for channels {tuple(channels)}, got {fold.shape}")
    mask = np.ones(fold.shape[0], dtype=bool) if reachable is None else np.asarray(reachable, dtype=bool)
    if mask.shape != (fold.shape[0],):
        raise ValueError(f"reachable: expected ({fold.shape[0]},) bool, got shape {mask.shape}")
    rows = {}
    for j, name in enumerate(channels):
        with np.errstate(invalid="ignore"):
            ok = mask & np.isfinite(fold[:, j]) & (fold[:, j] >= 0)
        q = _masked_quantiles(fold[None, :, j], ok[None], (0.25, 0.5, 0.75))[:, 0]
        rows[name] = {"median": q[1], "q25": q[0], "q75": q[2], "iqr": q[2] - q[0], "n": int(ok.sum())}
    return pd.DataFrame.from_dict(rows, orient="index")


def _masked_quantiles(values: np.ndarray, mask: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles (linear interpolation, like numpy) along the last axis over masked entries.

    Args:
        values: (M, N) values.
        mask: (M, N) entries to include.
        qs: Quantiles in [0, 1].

    Returns:
        (len(qs), M); NaN where a row has no entry.
    """
    v = np.where(mask, values, np.inf)
    v.sort(axis=-1)
    c = mask.sum(axis=-1)
    out = np.full((len(qs), values.shape[0]), np.nan)
    has = c > 0
    rows = np.nonzero(has)[0]
    for i, q in enumerate(qs):
        pos = q * (c[has] - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, c[has] - 1)
        frac = pos - lo
        out[i, has] = v[rows, lo] + frac * (v[rows, hi] - v[rows, lo])
    return out


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


# ----- summary of every pair along one path --------------------------------------------------------
def path_summary(cell: CellType | str, g: Any, points: Any, pairs: Sequence[Sequence[str]] | None = None,
                 V: float | None = None, eps: float = DEFAULT_EPS,
                 iterations: int = DEFAULT_ITERATIONS) -> tuple[pd.DataFrame, dict[str, Trajectory]]:
    """Reachable fraction and cost of every pair along one path.

    Args:
        cell: Cell type or registry name.
        g: (N, n_channels) starting conductances (mS/cm²).
        points: (n_points, 2|3) path points, e.g. :func:`path`.
        pairs: Channel subsets; default every pair of :func:`active_channels`.
        V: Reference voltage V* (mV); default the cell's recipe.
        eps: Tolerance on the achieved DICs (× g_leak).
        iterations: Maximum calcium fixed-point passes per point.

    Returns:
        (table, trajectories). The table has one row per subset: ``pair``, ``reachable_fraction``
        (neurons reaching every point), ``reason`` (``"singular"`` or ``"ok"``),
        ``n_singular``, ``n_negative``, ``n_missed`` (neurons failing somewhere on the path, by
        first failure), and ``median_cost_<channel>``, ``iqr_cost_<channel>`` at the end of the
        path over the neurons reaching the whole path (NaN for channels not in the subset).
        ``trajectories`` maps the pair label to its :class:`Trajectory`.
    """
    cell = _cells.get(cell)
    pairs = channel_pairs(cell) if pairs is None else [tuple(p) for p in pairs]
    rows, trajectories = [], {}
    for pair in pairs:
        tr = modulate_along(cell, g, points, pair, V=V, iterations=iterations, eps=eps)
        label = pair_label(tr.channels)
        trajectories[label] = tr
        worst = np.where(tr.status == 0, 0, tr.status).max(axis=0)  # a code per neuron (0 = reaches all)
        row: dict[str, Any] = {"pair": label, "reachable_fraction": tr.reachable_fraction,
                               "reason": "singular" if bool((tr.status == 1).all()) else "ok",
                               "n_singular": int((worst == 1).sum()), "n_nonfinite": int((worst == 2).sum()),
                               "n_negative": int((worst == 3).sum()), "n_missed": int((worst == 4).sum())}
        table = tr.cost()
        for name in active_channels(cell):
            row[f"median_cost_{name}"] = table.loc[name, "median"] if name in table.index else np.nan
        for name in active_channels(cell):
            row[f"iqr_cost_{name}"] = table.loc[name, "iqr"] if name in table.index else np.nan
        rows.append(row)
    return pd.DataFrame(rows), trajectories


def cost_table(trajectories: Mapping[str, Trajectory], point: int = -1) -> pd.DataFrame:
    """Long table of the cost of every subset that moves some neurons along its whole path.

    Args:
        trajectories: label → :class:`Trajectory` (e.g. the second result of :func:`path_summary`).
        point: Path index where the cost is read (default: the end).

    Returns:
        One row per (subset, channel): ``pair``, ``channel``, ``median``, ``q25``, ``q75``, ``iqr``,
        ``n`` (fold changes over the neurons reaching the whole path) and ``reachable_fraction``;
        sorted by the subset's largest median |log fold change| (cheapest first).
    """
    rows = []
    for label, tr in trajectories.items():
        if tr.reachable_fraction == 0:
            continue
        for channel, r in tr.cost(point).iterrows():
            rows.append({"pair": label, "channel": channel, **r.to_dict(), "reachable_fraction": tr.reachable_fraction})
    table = pd.DataFrame(rows, columns=["pair", "channel", "median", "q25", "q75", "iqr", "n", "reachable_fraction"])
    if table.empty:
        return table
    size = np.abs(np.log(table["median"].astype(float))).groupby(table["pair"]).transform("max")
    order = np.lexsort((table["pair"].to_numpy(), size.to_numpy()))
    return table.iloc[order].reset_index(drop=True)


# ----- validation by simulation --------------------------------------------------------------------
def expected_label(g_s: float) -> str:
    """The activity the DICs predict at V_th (SCIENCE.md §3): g_s < 0 bursting, else tonic spiking."""
    return "bursting" if g_s < 0 else "spiking"


def validate(cell: CellType | str, trajectories: Trajectory | Mapping[str, Trajectory], points: Any = "end",
             target_label: str | None = None, t_max: float | None = None, transient: float | None = None,
             dt: float | None = None, backend: str = "auto", seed: int | None = 0,
             record: int = 0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Simulate populations before, along and after their paths and count who reached the target.

    The starting population is simulated once; at each chosen path point, the neurons reachable
    there (in DIC space) are simulated with their modulated conductances, all in one
    :func:`condspace.simulate` call, and classified by :func:`condspace.features.extract`.

    Args:
        cell: Cell type or registry name.
        trajectories: One :class:`Trajectory` or label → trajectory (all from the same population).
        points: Path indices to simulate: ``"end"`` (default), ``"all"`` or a list of ints.
        target_label: The class that counts as success (``"bursting"``, ``"spiking"``, ``"silent"``);
            default the DIC reading of the path's end (:func:`expected_label`).
        t_max: Simulated time (ms); default the cell's protocol.
        transient: Initial time whose spikes are discarded (ms); default the cell's protocol.
        dt: Time step (ms); default the cell's protocol (STG 0.05, DA 0.025).
        backend: Integrator backend.
        seed: Seed (no noise is injected; kept for reproducible defaults).
        record: Voltage traces of this many neurons per (subset, point) and of the baseline are kept.

    Returns:
        (table, extra). ``table`` has one row per subset and point (``point`` −1 and ``channels``
        "before" for the starting population) with ``g_s``, ``g_u``, ``target_label``,
        ``n_neurons``, ``n_reachable`` (in DIC space), ``n_validated`` (reachable and in the target
        class), ``n_failed`` (reachable but another class in simulation), ``validated_fraction``
        (n_validated / n_neurons), ``validated_of_reachable`` and the fraction of each class among
        the simulated neurons. ``extra`` holds ``labels`` ((subset, point) → (N,) class, "" where
        not simulated), ``traces`` ((subset, point) → (neuron indices, t, V)) and ``wall_s``.

    Raises:
        ValueError: Trajectories of different populations, unknown points or label.
    """
    cell = _cells.get(cell)
    if isinstance(trajectories, Trajectory):
        trajectories = {pair_label(trajectories.channels): trajectories}
    if not trajectories:
        raise ValueError("trajectories: give at least one Trajectory")
    first = next(iter(trajectories.values()))
    for label, tr in trajectories.items():
        if tr.baseline.shape != first.baseline.shape or not np.array_equal(tr.baseline, first.baseline):
            raise ValueError(f"trajectories: {label!r} starts from another population; validate one population at a "
                             "time")
    if target_label is not None and target_label not in _features.LABELS:
        raise ValueError(f"target_label: one of {_features.LABELS}, got {target_label!r}")
    n_pts = first.targets.shape[0]
    if isinstance(points, str):
        if points not in ("end", "all"):
            raise ValueError(f"points: 'end', 'all' or a list of path indices, got {points!r}")
        idx = [n_pts - 1] if points == "end" else list(range(n_pts))
    else:
        idx = [int(i) % n_pts for i in np.atleast_1d(points)]
    t_max = cell.protocol["t_max"] if t_max is None else t_max
    transient = cell.protocol["transient"] if transient is None else transient
    dt = cell.protocol["dt"] if dt is None else dt

    # one batch: the baseline, then each (subset, point) with its reachable neurons
    N = first.baseline.shape[0]
    blocks: list[tuple[str, int, np.ndarray, np.ndarray]] = [("before", -1, np.arange(N), first.baseline)]
    for label, tr in trajectories.items():
        for i in idx:
            who = np.nonzero(tr.reachable[i])[0]
            blocks.append((label, i, who, tr.g[i][who]))
    G = np.concatenate([b[3] for b in blocks])
    rec = []
    offsets = np.cumsum([0] + [len(b[2]) for b in blocks])
    for o, b in zip(offsets[:-1], blocks, strict=True):
        rec.extend(range(o, o + min(record, len(b[2]))))
    res = simulate(cell, G, t_max=t_max, dt=dt, transient=transient, backend=backend, seed=seed,
                   record=rec or None)
    labels_all = _features.extract(res.spike_times, res.duration, ok=res.ok)["label"].to_numpy()
    rows, labels, traces = [], {}, {}
    for o, (label, i, who, _) in zip(offsets[:-1], blocks, strict=True):
        lab = np.full(N, "", dtype=object)
        lab[who] = labels_all[o:o + len(who)]
        labels[(label, i)] = lab
        tr = trajectories[label] if label != "before" else first
        g_s, g_u = (tr.targets[0, 1], tr.targets[0, 2]) if i < 0 else (tr.targets[i, 1], tr.targets[i, 2])
        end_gs = tr.targets[-1, 1]
        want = target_label or expected_label(end_gs)
        sim = lab[who]
        row = {"channels": label, "point": i, "g_s": g_s, "g_u": g_u, "target_label": want, "n_neurons": N,
               "n_reachable": len(who), "n_validated": int((sim == want).sum()),
               "n_failed": int((sim != want).sum())}
        row["validated_fraction"] = row["n_validated"] / N
        row["validated_of_reachable"] = row["n_validated"] / len(who) if len(who) else np.nan
        for cls in _features.LABELS:
            row[f"fraction_{cls}"] = float((sim == cls).mean()) if len(who) else np.nan
        rows.append(row)
        if res.traces is not None:
            sel = [k for k in range(len(res.traces["neurons"])) if o <= res.traces["neurons"][k] < o + len(who)]
            if sel:
                traces[(label, i)] = (who[np.asarray(res.traces["neurons"])[sel] - o], res.traces["t"],
                                      res.traces["V"][sel])
    # trajectories of pairs are labelled by their own target regime; "before" by the first one's
    return pd.DataFrame(rows), {"labels": labels, "traces": traces, "wall_s": res.metadata["wall_s"]}


__all__ = ["CONVERGENCE_TOL", "DEFAULT_EPS", "DEFAULT_ITERATIONS", "MAP_RANGE_DRAWS", "STATUS", "Reachability",
           "ReachabilityMap", "Trajectory", "active_channels", "channel_pairs", "cost", "cost_table", "expected_label",
           "fold_change", "grid", "map_ranges", "modulate_along", "pair_label", "path", "path_summary", "reachability",
           "reachability_map", "validate"]
