"""Scoring both methods on held-out experiments, for n neurons per experiment.

A pool of held-out single-neuron experiments is simulated once; an n-neuron experiment draws a
hypothesis uniformly and n distinct neurons of it from the pool (each neuron with its own ḡ and
factors; :func:`condspace.identification.evidence.draw_experiments`). Experiments share neurons
when the pool is small, which leaves the accuracy unbiased but its error bar wider than the
number of experiments suggests: report the pool size with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from condspace.identification import dic_route as _dr
from condspace.identification import evidence as _ev
from condspace.identification.experiments import ExperimentSet
from condspace.identification.hypotheses import labels, membership, modulable_channels
from condspace.identification.model import Identifier


@dataclass
class Evaluation:
    """Scores of one method on one scenario.

    Attributes:
        table: One row per n: top1, top3, chance_top1, chance_top3, ece (classifier), group_top1,
            n_experiments, pool (neurons in the pool).
        confusion: (H, H) row-normalised confusion of single neurons (n = 1).
        groups: (H,) identifiability group per hypothesis (from ``confusion``).
        auc: DataFrame channel × n: ROC AUC of the per-channel marginals.
        reliability: n → (10, 3) [confidence, accuracy, count] per bin.
    """

    table: pd.DataFrame
    confusion: np.ndarray
    groups: np.ndarray
    auc: pd.DataFrame
    reliability: dict[int, np.ndarray] = field(default_factory=dict)

    def group_names(self, cell: str) -> list[list[str]]:
        """Groups with more than one hypothesis, as lists of labels."""
        lab = np.asarray(labels(cell))
        return [lab[self.groups == g].tolist() for g in np.unique(self.groups) if (self.groups == g).sum() > 1]


def pool_log_posteriors(model: Identifier, pool: ExperimentSet) -> tuple[np.ndarray, np.ndarray]:
    """(log posteriors (M, H), true hypotheses (M,)) of the usable pool neurons."""
    keep = pool.usable
    return model.log_posterior(pool.x_before[keep], pool.x_after[keep]), pool.hypothesis[keep]


def evaluate_classifier(cell: str, log_post: np.ndarray, truth: np.ndarray, log_prior: np.ndarray,
                        ns: tuple[int, ...] = (1, 5, 20), n_experiments: int = 2000, seed: int = 0,
                        threshold: float = _ev.GROUP_THRESHOLD, groups: np.ndarray | None = None) -> Evaluation:
    """Top-1/3, ECE, group top-1 and per-channel AUC of the classifier for each n.

    The identifiability groups come from this confusion matrix unless ``groups`` is given (e.g. the
    groups of a larger pool, when scoring a handful of neurons).
    """
    H = log_post.shape[1]
    conf = _ev.confusion(log_post, truth, H)
    groups = _ev.identifiability_groups(conf, threshold) if groups is None else np.asarray(groups)
    member = membership(cell)
    chance = 1.0 / len(np.unique(truth))
    rows, aucs, rel = [], {}, {}
    for n in ns:
        try:
            idx = _ev.draw_experiments(truth, n, n_experiments, seed)
        except ValueError:
            continue
        comb = _ev.combine(log_post[idx], log_prior)
        y = truth[idx[:, 0]]
        ece, table = _ev.expected_calibration_error(comb, y)
        rel[n] = table
        rows.append({"n": n, "top1": _ev.top_k(comb, y, 1), "top3": _ev.top_k(comb, y, 3),
                     "chance_top1": chance, "chance_top3": min(1.0, 3 * chance), "ece": ece,
                     "group_top1": _ev.group_top1(comb, y, groups), "n_experiments": len(y), "pool": len(truth)})
        marg = _ev.marginals(np.exp(comb), member)
        aucs[n] = [_ev.auc(marg[:, c], member[y, c]) for c in range(member.shape[1])]
    auc = pd.DataFrame(aucs, index=list(modulable_channels(cell)))
    return Evaluation(pd.DataFrame(rows), conf, groups, auc, rel)


def direction_accuracy(model: Identifier, pool: ExperimentSet) -> pd.Series:
    """Per channel: how often the direction head gets the sign of a modulated channel right (n = 1).

    Scored on every usable pool neuron whose hypothesis contains the channel, given that it was
    modulated (the head's question). Only single neurons: in the random scenario each neuron draws
    its own sign, so experiments with several neurons have no common direction to recover.

    Returns:
        Series channel → accuracy (NaN for a channel no scored neuron has), plus ``"all"``: the
        accuracy over every (neuron, modulated channel) pair.
    """
    keep = pool.usable
    logit = model.direction_logit(pool.x_before[keep], pool.x_after[keep])
    lf = pool.log_factor[keep]
    modulated = lf != 0
    right = (logit > 0) == (lf > 0)
    per_channel = {c: float(right[modulated[:, k], k].mean()) if modulated[:, k].any() else float("nan")
                   for k, c in enumerate(model.channels)}
    return pd.Series({**per_channel, "all": float(right[modulated].mean())}, name="direction accuracy (n = 1)")


def evaluate_dic_route(cell: str, fractions: np.ndarray, costs: np.ndarray, truth: np.ndarray,
                       ns: tuple[int, ...] = (1, 5, 20), n_experiments: int = 2000, seed: int = 0,
                       groups: np.ndarray | None = None) -> pd.DataFrame:
    """Top-1/3 of the DIC route (mean reachable fraction, then cost) for each n."""
    rows = []
    chance = 1.0 / len(np.unique(truth))
    for n in ns:
        try:
            idx = _ev.draw_experiments(truth, n, n_experiments, seed)
        except ValueError:
            continue
        f, c = zip(*(_dr.combine(fractions[i], costs[i]) for i in idx), strict=True)
        s = _dr.scores(np.array(f), np.array(c))
        y = truth[idx[:, 0]]
        row = {"n": n, "top1": _ev.top_k(s, y, 1), "top3": _ev.top_k(s, y, 3), "chance_top1": chance,
               "chance_top3": min(1.0, 3 * chance), "n_experiments": len(y), "pool": len(truth)}
        if groups is not None:
            row["group_top1"] = float(np.mean(groups[s.argmax(axis=1)] == groups[y]))
        rows.append(row)
    return pd.DataFrame(rows)


def dic_route_pool(cell: str, posterior: Any, pool: ExperimentSet, per_hypothesis: int, *, n_samples: int = 30,
                   seed: int = 0, progress: bool = False, limit: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DIC-route scores of up to ``per_hypothesis`` pool neurons per hypothesis active before and after
    (at most ``limit`` neurons in all, taken evenly over the hypotheses).

    Returns:
        (fractions (M, H), costs (M, H), truth (M,)).
    """
    both = pool.usable & np.all(np.isfinite(pool.x_after), axis=1)
    chosen = np.concatenate([np.flatnonzero(both & (pool.hypothesis == h))[:per_hypothesis]
                             for h in np.unique(pool.hypothesis)])
    if limit is not None and chosen.size > limit:
        chosen = chosen[np.linspace(0, chosen.size - 1, limit).astype(int)]
    iterator = chosen
    if progress:
        from tqdm.auto import tqdm  # noqa: PLC0415

        iterator = tqdm(chosen, desc="DIC route", unit="neuron")
    fr, co = [], []
    for i in iterator:
        _, f, c = _dr.rank_subsets(cell, posterior, pool.x_before[i:i + 1], pool.x_after[i:i + 1],
                                   n_samples=n_samples, seed=seed + int(i))
        fr.append(f[0])
        co.append(c[0])
    return np.array(fr), np.array(co), pool.hypothesis[chosen]
