"""The cost of a modulation: fold changes of the modulated channels and their population summaries.
"""


from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


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


