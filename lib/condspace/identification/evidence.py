"""Evidence from several neurons under one drug, per-channel marginals, and the scores of a ranking.

Neurons recorded under the same neuromodulator are independent given the hypothesis h, so
(SCIENCE.md §6b)

    log p(h | x_1..n) = Σ_i log q(h | x_i) − (n − 1) log p(h) + const,

normalised over the hypotheses. The per-channel marginal is P(c ∈ S) = Σ_{h ∋ c} P(h | x).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _normalise(log_p: np.ndarray) -> np.ndarray:
    m = np.max(log_p, axis=-1, keepdims=True)
    return log_p - m - np.log(np.sum(np.exp(log_p - m), axis=-1, keepdims=True))


def combine(log_posteriors: Any, log_prior: Any) -> np.ndarray:
    """Exact combination of per-neuron posteriors.

    Args:
        log_posteriors: (..., n, H) log q(h | x_i) of n neurons (each row normalised).
        log_prior: (H,) log p(h) under which the per-neuron posteriors were obtained.

    Returns:
        (..., H) normalised log p(h | x_1..n).
    """
    lp = np.asarray(log_posteriors, float)
    n = lp.shape[-2]
    return _normalise(lp.sum(axis=-2) - (n - 1) * np.asarray(log_prior, float))


def marginals(posterior: Any, member: Any) -> np.ndarray:
    """(..., C) P(c ∈ S) from (..., H) probabilities and the (H, C) membership matrix."""
    return np.asarray(posterior, float) @ np.asarray(member, float)


def top_k(log_post: Any, truth: Any, k: int) -> float:
    """Fraction of rows whose true class is among the k most probable."""
    lp = np.atleast_2d(np.asarray(log_post, float))
    truth = np.asarray(truth, int)
    rank = (lp > lp[np.arange(lp.shape[0]), truth][:, None]).sum(axis=1)  # ties count in favour
    return float(np.mean(rank < k))


def ranking_top_k(scores: Any, truth: Any, k: int) -> float:
    """:func:`top_k` for any score where larger is better (e.g. the DIC route's)."""
    return top_k(scores, truth, k)


def expected_calibration_error(log_post: Any, truth: Any, bins: int = 10) -> tuple[float, np.ndarray]:
    """ECE of the top-1 confidence, equal-width bins: Σ_b (n_b/N) |acc_b − conf_b|.

    Returns:
        (ECE, (bins, 3) table of [confidence, accuracy, count] per bin (NaN where empty)).
    """
    p = np.exp(np.atleast_2d(np.asarray(log_post, float)))
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    hit = pred == np.asarray(truth, int)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    table = np.full((bins, 3), np.nan)
    ece = 0.0
    for b in range(bins):
        m = which == b
        table[b, 2] = m.sum()
        if m.any():
            table[b, 0], table[b, 1] = conf[m].mean(), hit[m].mean()
            ece += m.mean() * abs(table[b, 1] - table[b, 0])
    return float(ece), table


def auc(score: Any, positive: Any) -> float:
    """ROC AUC (Mann–Whitney, ties counted half); NaN without both classes."""
    s, pos = np.asarray(score, float), np.asarray(positive, bool)
    n1, n0 = pos.sum(), (~pos).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    from scipy.stats import rankdata  # noqa: PLC0415

    r = rankdata(s)
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def confusion(log_post: Any, truth: Any, n_classes: int) -> np.ndarray:
    """(H, H) row-normalised confusion: row = true hypothesis, column = top-1 prediction."""
    pred = np.atleast_2d(np.asarray(log_post, float)).argmax(axis=1)
    m = np.zeros((n_classes, n_classes))
    np.add.at(m, (np.asarray(truth, int), pred), 1.0)
    rows = m.sum(axis=1, keepdims=True)
    return np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)


GROUP_THRESHOLD = 0.1
"""Two hypotheses are merged when their symmetrised confusion (C_ij + C_ji)/2 exceeds this."""


def identifiability_groups(conf: Any, threshold: float = GROUP_THRESHOLD) -> np.ndarray:
    """Groups of hypotheses that spike times cannot tell apart.

    Hypotheses i and j are linked when the symmetrised row-normalised confusion (C_ij + C_ji)/2
    exceeds ``threshold``; groups are the connected components of that graph (single linkage).

    Returns:
        (H,) int group index per hypothesis (groups numbered by their first member).
    """
    c = np.asarray(conf, float)
    sym = (c + c.T) / 2
    n = c.shape[0]
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i in range(n):
        for j in range(i + 1, n):
            if sym[i, j] > threshold:
                parent[find(j)] = find(i)
    roots = [find(i) for i in range(n)]
    order = {r: k for k, r in enumerate(dict.fromkeys(roots))}
    return np.array([order[r] for r in roots])


def group_top1(log_post: Any, truth: Any, groups: Any) -> float:
    """Top-1 accuracy over groups: the predicted hypothesis lies in the true hypothesis's group."""
    g = np.asarray(groups)
    pred = np.atleast_2d(np.asarray(log_post, float)).argmax(axis=1)
    return float(np.mean(g[pred] == g[np.asarray(truth, int)]))


def draw_experiments(hypothesis: Any, n: int, n_experiments: int, seed: int = 0) -> np.ndarray:
    """Multi-neuron experiments from a pool of single-neuron ones.

    Each experiment picks a hypothesis uniformly among those with at least ``n`` neurons in the
    pool, then ``n`` distinct neurons of it (each with its own draw of ḡ and factors).

    Returns:
        (n_experiments, n) indices into the pool.
    """
    h = np.asarray(hypothesis, int)
    rng = np.random.default_rng([seed, n])
    groups = {k: np.flatnonzero(h == k) for k in np.unique(h)}
    eligible = [k for k, v in groups.items() if v.size >= n]
    if not eligible:
        raise ValueError(f"n: no hypothesis has {n} neurons in the pool (largest: "
                         f"{max(v.size for v in groups.values())})")
    picks = rng.choice(eligible, size=n_experiments)
    return np.stack([rng.choice(groups[k], size=n, replace=False) for k in picks])
