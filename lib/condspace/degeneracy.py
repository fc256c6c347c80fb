"""Degeneracy in a simulated population: neurons that fire alike from different conductances.

Marder & Goaillard (2006) Nat Rev Neurosci 7:563-574; Fyon et al. (2024) PNAS Nexus.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def _standardised_log(df: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """log of positive features, centred and scaled by the population's spread (per column)."""
    Z = np.log(df[list(columns)].to_numpy(dtype=float))
    spread = np.nanstd(Z, axis=0)
    spread[~(spread > 0)] = 1.0
    return (Z - np.nanmean(Z, axis=0)) / spread


def degenerate_pairs(table: pd.DataFrame, g: Any, names: Sequence[str], columns: Sequence[str], *,
                     label: str | None = None, max_feature_diff: float = 0.05, min_fold: float = 3.0,
                     floor: float | None = None) -> pd.DataFrame:
    """Pairs of neurons whose features nearly agree while some conductance differs several-fold.

    For every neuron of the chosen class, its nearest neighbour in log-feature space is found; the
    pair is kept when every feature in ``columns`` agrees within ``max_feature_diff`` (relative)
    and at least one maximal conductance differs by ``min_fold`` or more.

    Args:
        table: Feature table from :func:`condspace.features.extract` (one row per neuron).
        g: (N, k) maximal conductances (mS/cm²), rows aligned with ``table``.
        names: k conductance names, the columns of ``g``.
        columns: Feature columns compared (positive features, e.g. ``spiking_freq_hz``).
        label: Only neurons of this class (``"spiking"``/``"bursting"``); ``None`` = all.
        max_feature_diff: Largest relative difference allowed in every feature (0.05 = 5 %).
        min_fold: Smallest fold difference of the most different conductance.
        floor: Conductances below this (mS/cm²) are raised to it before taking ratios, so that a
            near-zero conductance does not give an infinite fold; default 1 % of each column's median.

    Returns:
        One row per pair (sorted by decreasing fold): ``i``, ``j`` (row positions), ``max_rel_feature_diff``,
        ``fold`` (largest conductance ratio ≥ 1) and ``channel`` (its name).

    Raises:
        ValueError: When shapes disagree or no feature column is given.
    """
    from scipy.spatial import cKDTree  # noqa: PLC0415

    g = np.asarray(g, dtype=float)
    if g.ndim != 2 or g.shape != (len(table), len(names)):
        raise ValueError(f"g: expected shape ({len(table)}, {len(names)}) aligned with table, got {g.shape}")
    if not columns:
        raise ValueError("columns: give at least one feature to compare")
    rows = np.arange(len(table))
    if label is not None:
        rows = rows[(table["label"] == label).to_numpy()]
    values = table[list(columns)].to_numpy(dtype=float)[rows]
    good = np.all(np.isfinite(values) & (values > 0), axis=1)
    rows, values = rows[good], values[good]
    empty = pd.DataFrame(columns=["i", "j", "max_rel_feature_diff", "fold", "channel"])
    if len(rows) < 2:
        return empty
    Z = _standardised_log(table.iloc[rows], columns)
    _, nn = cKDTree(Z).query(Z, k=2)
    i, j = rows, rows[nn[:, 1]]
    vi, vj = values, values[nn[:, 1]]
    rel = np.max(np.abs(vi - vj) / np.maximum(vi, vj), axis=1)
    lo = np.median(g, axis=0) * 0.01 if floor is None else np.full(g.shape[1], floor)
    gi, gj = np.maximum(g[i], lo), np.maximum(g[j], lo)
    ratio = np.maximum(gi / gj, gj / gi)
    fold, which = ratio.max(axis=1), ratio.argmax(axis=1)
    keep = (rel <= max_feature_diff) & (fold >= min_fold)
    out = pd.DataFrame({"i": np.minimum(i, j)[keep], "j": np.maximum(i, j)[keep],
                        "max_rel_feature_diff": rel[keep], "fold": fold[keep],
                        "channel": np.asarray(names)[which[keep]]})
    return out.drop_duplicates(["i", "j"]).sort_values("fold", ascending=False, ignore_index=True)
