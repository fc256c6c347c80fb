"""The one channel-subset solver: k ≤ 3 modulated channels re-solved for k targeted DICs.

Compensation (:func:`condspace.populations.compensate` / :func:`~condspace.populations.modulate`),
modulation along a path (:func:`condspace.neuromodulation.modulate_along`) and reachability maps
(:func:`condspace.neuromodulation.reachability_map`) all reduce to the same small linear system per
neuron and target: S_{R,K} ḡ_K = target_R − S_{R,rest} ḡ_rest, with the calcium feedback iterated
around it. This module owns what they share:

* :func:`solve`: a batch of k × k systems solved elementwise by Cramer's rule (many millions of
  2 × 2 or 3 × 3 systems in a few dozen array operations instead of one LAPACK call each), with
  the one singularity test (:data:`SINGULAR_RTOL`, Hadamard's ratio);
* :func:`solve_stacked`: the same on (..., k, k) arrays;
* :data:`STATUS` / :data:`REASONS` and :func:`outcome`: why a solution is not a reachable one.

Data flow: cells → simulate → features → inference → DICs → **subsets** → populations,
neuromodulation; this module imports nothing but NumPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SINGULAR_RTOL = 1e-10
"""A system is singular when |det A| ≤ SINGULAR_RTOL · Π_j ‖A[:, j]‖ (Hadamard's ratio: 1 for
orthogonal columns, 0 for dependent ones, whatever the scale of each channel's column). {Na, Kd} of
the STG at −51 mV and every DA subset with NMDA have exactly zero rows (ratio 0); the nearly
collinear {CaT, CaS} of the STG has a ratio ≈ 0.02 (solvable, ill-conditioned)."""

STATUS = ("reachable", "singular", "non-finite", "negative", "missed")
"""Outcome codes per neuron (and target): 0 reachable; 1 singular system; 2 non-finite solution;
3 a re-solved conductance < 0; 4 the DICs recomputed at V* miss the target by more than ε (used by
the reachability tolerance of :mod:`condspace.neuromodulation`)."""

REASONS = ("", *STATUS[1:4])
"""The reason strings of :class:`condspace.populations.CompensationResult`: the codes 0–3 of
:data:`STATUS`, with "" for a reachable neuron."""


def det(M: list[list[Any]]) -> Any:
    """Determinant of a k × k matrix (k ≤ 3) whose entries are scalars or arrays (elementwise)."""
    if len(M) == 1:
        return M[0][0]
    if len(M) == 2:
        return M[0][0] * M[1][1] - M[0][1] * M[1][0]
    return (M[0][0] * (M[1][1] * M[2][2] - M[1][2] * M[2][1])
            - M[0][1] * (M[1][0] * M[2][2] - M[1][2] * M[2][0])
            + M[0][2] * (M[1][0] * M[2][1] - M[1][1] * M[2][0]))


def solve(A: list[list[Any]], b: list[Any], xp: Any = np) -> tuple[list[Any], Any]:
    """Solve A x = b for a batch of k × k systems (k ≤ 3), elementwise, flagging singular ones.

    Cramer's rule: x_c = det(A with column c replaced by b) / det(A). The systems whose Hadamard
    ratio |det A| / Π_j ‖A[:, j]‖ is at most :data:`SINGULAR_RTOL` (where the rule would lose
    accuracy), or whose determinant is not finite, are flagged singular and get NaN.

    Args:
        A: k × k nested list (row-major) of scalars or arrays, mutually broadcastable.
        b: k right-hand sides, arrays broadcastable with the entries of A.
        xp: Array module of the arrays (numpy or cupy).

    Returns:
        (k solutions, NaN where singular; singular mask), of the broadcast batch shape.
    """
    k = len(b)
    if k not in (1, 2, 3) or len(A) != k or any(len(row) != k for row in A):
        raise ValueError(f"A: expected a k × k system with k ≤ 3 matching {k} right-hand sides")
    norms = xp.sqrt(sum(A[r][0] * A[r][0] for r in range(k)))
    for c in range(1, k):
        norms = norms * xp.sqrt(sum(A[r][c] * A[r][c] for r in range(k)))
    d = det(A)
    singular = ~(xp.abs(d) > SINGULAR_RTOL * norms)  # NaN determinants and zero columns included
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / xp.where(singular, xp.nan, d)
        x = [det([[b[r] if cc == c else A[r][cc] for cc in range(k)] for r in range(k)]) * inv for c in range(k)]
    return x, singular


def solve_stacked(A: Any, r: Any) -> tuple[np.ndarray, np.ndarray]:
    """:func:`solve` for NumPy arrays: A (..., k, k), r (..., k) → (x (..., k), singular (...))."""
    k = A.shape[-1]
    x, singular = solve([[A[..., i, j] for j in range(k)] for i in range(k)], [r[..., i] for i in range(k)])
    shape = np.broadcast_shapes(A.shape[:-2], r.shape[:-1])
    return np.stack([np.broadcast_to(v, shape) for v in x], axis=-1), np.broadcast_to(singular, shape).copy()


def outcome(X: np.ndarray, singular: np.ndarray) -> np.ndarray:
    """Codes 0–3 of :data:`STATUS` of (..., k) solutions: singular, then non-finite, then negative.

    Args:
        X: (..., k) re-solved conductances.
        singular: (...) mask from :func:`solve`.

    Returns:
        (...) int8: 0 reachable, 1 singular, 2 non-finite, 3 negative.
    """
    finite = np.isfinite(X).all(axis=-1)
    with np.errstate(invalid="ignore"):
        negative = (X < 0).any(axis=-1)
    code = np.zeros(X.shape[:-1], dtype=np.int8)
    code[negative] = 3
    code[~finite] = 2
    code[singular] = 1
    return code


__all__ = ["REASONS", "SINGULAR_RTOL", "STATUS", "det", "outcome", "solve", "solve_stacked"]
