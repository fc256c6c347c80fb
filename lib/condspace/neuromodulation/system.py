"""The linear system of one channel subset at V*, the calcium fixed point around it, and argument checks.
"""


from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from condspace import cells as _cells
from condspace import dics as _dics
from condspace.channels import CellType
from condspace.plan import cell_plan
from condspace.simulate import conductance_matrix
from condspace.subsets import SINGULAR_RTOL, outcome, solve_stacked

DEFAULT_EPS = 0.1
"""Tolerance ε (multiples of g_leak) on the achieved DICs of a reachable target (SCIENCE.md §4)."""

DEFAULT_ITERATIONS = 25
"""Calcium fixed-point passes after the first solve (SCIENCE.md §4: 25 for maps)."""

CONVERGENCE_TOL = 1e-10
"""A calcium iteration stops early once the achieved DICs match the target to this (× g_leak)."""

SINGULAR_TOL = SINGULAR_RTOL
"""The singularity test of the one subset solver (:data:`condspace.subsets.SINGULAR_RTOL`)."""


_ROWS = {2: (1, 2), 3: (0, 1, 2)}  # targeted DIC rows of a pair and of a triplet
_CHUNK = 1 << 16  # target × neuron points iterated together in maps (cache-sized temporaries)



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


