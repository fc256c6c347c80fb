"""Conductance vectors the benchmarks share (imported by the scripts beside this file; not a benchmark)."""

from __future__ import annotations

import numpy as np

from condspace import cells


def stg_box_population(n: int, seed: int = 0) -> np.ndarray:
    """``n`` STG conductance vectors (mS/cm²), uniform in the literature box with g_leak ∈ [0.005, 0.02].

    The leak's lower bound is raised from 0 so that every neuron has a resting state and the DICs,
    normalised by g_leak, stay finite. Shape (n, 8), columns ``cells.get("stg").conductance_names``.
    """
    stg = cells.get("stg")
    lo, hi = np.array([stg.box[k] for k in stg.conductance_names], dtype=float).T
    lo[-1] = 0.005
    return lo + (hi - lo) * np.random.default_rng(seed).random((n, len(lo)))
