"""The DIC route (the poster's proposal) as a baseline ranking of channel subsets.

For each neuron: posterior samples of ḡ before and after (chapter 2's estimator,
:class:`condspace.inference.Posterior`) → V_th of the before samples (its median is the
reference voltage V_ref, :func:`condspace.dics.dics_at_threshold`) → (g_s, g_u) of both sample
sets at V_ref → target = median after point. Each subset S is scored by the fraction of the
before samples it can bring to the target (within ε = 0.1 g_leak, non-negative conductances;
:func:`condspace.neuromodulation.reachability` for pairs; for a single channel the least-squares
change along its column of the sensitivity matrix at the neuron's own ḡ, reachable when the
residual is within ε) and by the cost of doing so (median Σ|log fold change| over the reachable
samples). Subsets are ranked by reachable fraction (mean over neurons), then by cost.

A neuron silent after the drug has no after posterior (the estimator is trained on active
trains): the DIC route skips it; the classifier does not.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from condspace import cells as _cells
from condspace import dics as _dics
from condspace import inference as _inf
from condspace import neuromodulation as _nm
from condspace.channels import CellType
from condspace.identification.hypotheses import hypotheses, label

EPS = _nm.DEFAULT_EPS


def _single(cell: CellType, g: np.ndarray, V: float, d_b: np.ndarray, target: np.ndarray,
            channel: str) -> tuple[np.ndarray, np.ndarray]:
    """Reachability and |log fold| of one channel moving (g_s, g_u) to the target, per sample."""
    j = cell.index(channel)
    S = _dics.sensitivity(cell, V, g)[:, 1:3, j]  # (N, 2): the channel's (slow, ultraslow) column
    delta = target[None, :] - d_b[:, 1:3]
    norm = np.einsum("ij,ij->i", S, S)
    with np.errstate(divide="ignore", invalid="ignore"):
        dg = np.einsum("ij,ij->i", S, delta) / norm
        resid = np.abs(delta - S * dg[:, None]).max(axis=1)
        new = g[:, j] + dg
        fold = np.abs(np.log(new / g[:, j]))
    ok = np.isfinite(dg) & (norm > 0) & (resid <= EPS) & (new >= 0) & np.isfinite(fold)
    return ok, fold


def neuron_scores(cell: str | CellType, g_before: Any, g_after: Any) -> tuple[np.ndarray, np.ndarray, dict]:
    """Reachable fraction and cost of every hypothesis for one neuron's before/after samples.

    Args:
        cell: Cell type or name.
        g_before: (M, n_channels) posterior samples before (mS/cm²).
        g_after: (M', n_channels) posterior samples after.

    Returns:
        (fraction (H,), cost (H,) NaN where nothing is reachable, {"V_ref", "before", "target"}).
    """
    cell = _cells.get(cell)
    g_b, g_a = np.asarray(g_before, float), np.asarray(g_after, float)
    vth = _dics.dics_at_threshold(cell, g_b)["V_th"].to_numpy()
    V = float(np.nanmedian(vth)) if np.isfinite(vth).any() else float(cell.population.V_ref)
    d_b, d_a = _dics.dics(cell, g_b, V), _dics.dics(cell, g_a, V)
    target = np.nanmedian(d_a[:, 1:3], axis=0)
    hyps = hypotheses(cell)
    frac, cost = np.zeros(len(hyps)), np.full(len(hyps), np.nan)
    for k, h in enumerate(hyps):
        if len(h) == 1:
            ok, fold = _single(cell, g_b, V, d_b, target, h[0])
        else:
            r = _nm.reachability(cell, g_b, target[None], h, V=V)
            ok = r.reachable[0]
            with np.errstate(divide="ignore", invalid="ignore"):
                fold = np.abs(np.log(r.fold_change()[0])).sum(axis=1)
            ok = ok & np.isfinite(fold)
        frac[k] = ok.mean()
        if ok.any():
            cost[k] = float(np.median(fold[ok]))
    return frac, cost, {"V_ref": V, "before": np.nanmedian(d_b[:, 1:3], axis=0).tolist(), "target": target.tolist()}


def scores(fraction: Any, cost: Any) -> np.ndarray:
    """A score (larger is better) ordering by fraction, then by lower cost: −(rank) (…, H)."""
    f, c = np.atleast_2d(np.asarray(fraction, float)), np.atleast_2d(np.asarray(cost, float))
    out = np.empty_like(f)
    for i in range(f.shape[0]):
        cc = np.where(np.isfinite(c[i]), c[i], np.inf)
        order = np.lexsort((cc, -f[i]))
        out[i, order] = -np.arange(f.shape[1], dtype=float)
    return out


def rank_subsets(cell: str | CellType, posterior: _inf.Posterior, x_before: Any, x_after: Any, *,
                 n_samples: int = 50, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The DIC-route ranking for n neurons recorded before and after one drug.

    Args:
        cell: Cell type or name.
        posterior: Chapter 2's posterior (trained on the same protocol and noise).
        x_before: (n, 11) summary features before (NaN rows: silent; those neurons are skipped).
        x_after: (n, 11) summary features after (likewise).
        n_samples: Posterior samples per recording.
        seed: Sampling seed.

    Returns:
        (ranking DataFrame subset, reachable_fraction, cost, rank; per-neuron fractions (n', H);
        per-neuron costs (n', H)) over the n' neurons active in both recordings.
    """
    cell = _cells.get(cell)
    xb, xa = np.atleast_2d(np.asarray(x_before, float)), np.atleast_2d(np.asarray(x_after, float))
    both = np.all(np.isfinite(xb), axis=1) & np.all(np.isfinite(xa), axis=1)
    fr, co = [], []
    for i in np.flatnonzero(both):
        tb = posterior.sample(n_samples, xb[i], seed=seed + i)
        ta = posterior.sample(n_samples, xa[i], seed=seed + 10_000 + i)
        f, c, _ = neuron_scores(cell, _inf.conductances(cell, posterior.prior, tb),
                                _inf.conductances(cell, posterior.prior, ta))
        fr.append(f)
        co.append(c)
    H = len(hypotheses(cell))
    fr = np.array(fr).reshape(-1, H)
    co = np.array(co).reshape(-1, H)
    return _table(cell, fr, co), fr, co


def combine(fractions: np.ndarray, costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Population summary over neurons: mean reachable fraction, median cost where reachable."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: nothing reachable there
        return np.nanmean(fractions, axis=0), np.nanmedian(costs, axis=0)


def _table(cell: CellType, fr: np.ndarray, co: np.ndarray) -> pd.DataFrame:
    labels = [label(h) for h in hypotheses(cell)]
    if fr.shape[0] == 0:
        return pd.DataFrame({"subset": labels, "reachable_fraction": np.nan, "cost": np.nan,
                             "rank": np.arange(1, len(labels) + 1)})
    f, c = combine(fr, co)
    s = scores(f, c)[0]
    order = np.argsort(-s, kind="stable")
    return pd.DataFrame({"subset": np.asarray(labels)[order], "reachable_fraction": f[order], "cost": c[order],
                         "rank": np.arange(1, len(labels) + 1)})
