"""Conductance vectors the benchmarks share (imported by the scripts beside this file; not a benchmark)."""

from __future__ import annotations

import numpy as np

from condspace import cells


def box_population(cell, n: int, seed: int = 0) -> np.ndarray:
    """``n`` conductance vectors (mS/cm²) of a cell, uniform in its literature box.

    The leak takes its bounds from the cell's inference prior (``cell.prior_box()``; STG
    [0.005, 0.02] instead of the literature's [0, 0.02]) so that every neuron has a resting state
    and the DICs, normalised by g_leak, stay finite; the other conductances keep the literature
    box, and fixed ones (``cell.fixed``) their value. Shape (n, n_channels), columns
    ``cell.conductance_names``.
    """
    cell = cells.get(cell)
    box = {**cell.box, "g_leak": cell.prior_box().get("g_leak", cell.box.get("g_leak"))}
    bounds = [(cell.fixed[k], cell.fixed[k]) if k in cell.fixed else box[k] for k in cell.conductance_names]
    lo, hi = np.array(bounds, dtype=float).T
    return lo + (hi - lo) * np.random.default_rng(seed).random((n, len(lo)))


def stg_box_population(n: int, seed: int = 0) -> np.ndarray:
    """``n`` STG conductance vectors, :func:`box_population` of ``cells.get("stg")`` (g_leak ∈ [0.005, 0.02])."""
    return box_population("stg", n, seed)
