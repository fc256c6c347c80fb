"""Paths in the (g_s, g_u) plane and the trajectories of a population modulated along them.
"""


from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from condspace import cells as _cells
from condspace.channels import CellType
from condspace.neuromodulation.costs import cost, fold_change
from condspace.neuromodulation.system import (
    CONVERGENCE_TOL,
    DEFAULT_EPS,
    DEFAULT_ITERATIONS,
    _achieved,
    _Block,
    _calcium_guess,
    _check_eps,
    _check_iterations,
    _iterate,
    _population,
    _reference_voltage,
    _status,
    _system,
    _targets,
)
from condspace.subsets import solve_stacked


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


