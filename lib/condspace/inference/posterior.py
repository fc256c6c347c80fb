"""The amortised posterior q(ḡ | x) in conductance units.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from condspace import features as _features
from condspace.inference.estimators import (
    ClassRestriction,
    EstimatorSettings,
    FlowEnsemble,
    _from_unbounded,
    _log_jacobian,
    _to_unbounded,
    torch_threads,
)
from condspace.inference.prior import MISSED_NAME, NOISE_NAME, Prior
from condspace.inference.simulator import Protocol

MAX_PROPOSALS = 65_536
"""Largest batch one rejection round of :meth:`Posterior.sample` draws from the flow."""


def _proposals(missing: int, accepted: int, proposed: int) -> int:
    """Size of the next rejection round: twice what is missing (at least 16) in the first round;
    then what is missing over the acceptance seen so far, with a 50 % margin (at most
    :data:`MAX_PROPOSALS`; an acceptance of zero so far counts as one in ``proposed + 1``).
    :meth:`Posterior.sample` caps the total at what its fixed rounds of that first size allowed."""
    base = max(2 * missing, 16)
    if proposed == 0:
        return base
    rate = max(accepted, 1) / (proposed + 1)
    return int(min(MAX_PROPOSALS, max(base, np.ceil(1.5 * missing / rate))))


class Posterior:
    """An amortised posterior q(ḡ | x) over named conductances, in conductance units.

    Attributes:
        estimator: The trained :class:`FlowEnsemble` of ``sbi`` conditional density estimators (on
            the unbounded space when ``settings.transform == "logit"``); a single flow given to the
            constructor is wrapped as an ensemble of one.
        prior: The prior (names and box).
        settings: Builder and training settings.
        feature_names: Names of the summary features the estimator conditions on.
        cell: Cell type name.
        info: Training metadata: protocol, training-set key and counts, epochs, timings, versions.
    """

    def __init__(self, estimator: Any, prior: Prior, settings: EstimatorSettings,
                 feature_names: Sequence[str], cell: str, info: Mapping[str, Any] | None = None,
                 restriction: ClassRestriction | None = None) -> None:
        self.estimator = estimator if isinstance(estimator, FlowEnsemble) else FlowEnsemble([estimator])
        self.prior = prior
        self.settings = settings
        self.feature_names = tuple(feature_names)
        self.cell = cell
        self.info = dict(info or {})
        self.restriction = restriction
        if restriction is not None and "cv_isi" not in self.feature_names:
            raise ValueError("restriction: the features must include cv_isi to know the class of an observation")

    def observed_class(self, x: Any) -> np.ndarray:
        """(B,) activity class of observations (B, F) from their CV (SCIENCE.md §5: tonic if ≤ 0.15)."""
        cv = np.atleast_2d(np.asarray(x, dtype=float))[:, self.feature_names.index("cv_isi")]
        return np.where(cv <= _features.CV_THRESHOLD, "spiking", "bursting")

    def weights(self, theta: Any, x: Any) -> np.ndarray:
        """Acceptance weight in [0, 1] of samples θ (..., B, d) for observations x (B, F).

        0 outside the prior box; inside, P(observed class | θ) with a restriction, else 1. The
        posterior used everywhere is q(θ | x) × weight, normalised.
        """
        theta = np.asarray(theta, dtype=float)
        w = np.all((theta >= self.prior.low) & (theta <= self.prior.high), axis=-1).astype(float)
        if self.restriction is None:
            return w
        labels = self.observed_class(x)
        if len(set(labels)) == 1:  # one class (or one observation broadcast over θ)
            return w * self.restriction.probability(theta, labels[0])
        for label in np.unique(labels):
            cols = labels == label
            w[..., cols] *= self.restriction.probability(theta[..., cols, :], label)
        return w

    @property
    def protocol(self) -> Protocol:
        """The simulation protocol of the training set (used by the predictive check)."""
        return Protocol(**self.info["protocol"])

    def _condition(self, x: Any):
        import torch  # noqa: PLC0415

        x = np.atleast_2d(np.asarray(x, dtype=float))
        if x.shape[1] != len(self.feature_names):
            raise ValueError(f"x: expected {len(self.feature_names)} features {self.feature_names}, "
                             f"got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("x: the observation has non-finite features; silent or invalid trains (< 3 spikes) "
                             "cannot be inferred (they were excluded from training)")
        return torch.tensor(x, dtype=torch.float32)  # a float32 copy, only at the torch boundary

    def _raw(self, n: int, cond) -> np.ndarray:
        """(n, B, d) samples of the estimator in θ units (no rejection)."""
        import torch  # noqa: PLC0415

        with torch.no_grad(), warnings.catch_warnings():
            # nflows' LU layers call torch.triangular_solve, deprecated in torch 2.x; harmless here.
            warnings.filterwarnings("ignore", message="torch.triangular_solve is deprecated", category=UserWarning)
            phi = self.estimator.sample((int(n),), condition=cond).double().numpy()
        return _from_unbounded(phi, self.prior, self.settings.transform)

    def sample(self, n: int, x: Any, seed: int | None = None, max_tries: int = 200) -> np.ndarray:
        """(n, d) posterior samples for one observation ``x`` (F,), all inside the prior box.

        Rejection sampling from the flow with acceptance :meth:`weights`: samples outside the box
        (leakage, see :func:`leakage`) are dropped, and with a class restriction a sample is kept
        with probability P(observed class | θ). The first round proposes twice what is missing
        (at least 16); later rounds size themselves on the acceptance seen so far, so that a flow
        that accepts one proposal in a hundred needs a few rounds, not hundreds of small ones.
        At most ``max_tries · max(2n, 16)`` proposals are drawn in all.

        Raises:
            RuntimeError: Rejection could not collect ``n`` samples in ``max_tries`` rounds.
        """
        import torch  # noqa: PLC0415

        cond = self._condition(x)
        if cond.shape[0] != 1:
            raise ValueError(f"x: sample() takes one observation, got {cond.shape[0]}")
        with torch.random.fork_rng(), torch_threads(1):
            if seed is not None:
                torch.manual_seed(seed)
            kept, have, proposed = [], 0, 0
            budget = int(max_tries) * max(2 * int(n), 16)
            while proposed < budget:
                s = self._raw(min(_proposals(n - have, have, proposed), budget - proposed), cond)[:, 0]
                proposed += len(s)
                w = np.where(np.all(np.isfinite(s), axis=1), self.weights(s[:, None, :], x)[:, 0], 0.0)
                s = s[torch.rand(len(s), dtype=torch.float64).numpy() < w]
                kept.append(s)
                have += len(s)
                if have >= n:
                    return np.concatenate(kept)[:n]
        raise RuntimeError(f"sample: fewer than {n} samples accepted after {proposed} proposals; the flow puts almost "
                           "no mass inside the prior box on the observed class (retrain, or check the observation)")

    def sample_batched(self, n: int, x: Any, seed: int | None = None) -> np.ndarray:
        """(n, B, d) raw samples for B observations (B, F) at once; may leave the box if untransformed."""
        import torch  # noqa: PLC0415

        cond = self._condition(x)
        with torch.random.fork_rng(), torch_threads(1):
            if seed is not None:
                torch.manual_seed(seed)
            return self._raw(n, cond)

    def log_prob(self, theta: Any, x: Any) -> np.ndarray:
        """log q(θ | x) + log weight(θ, x) in θ units (Jacobian of the transform included).

        −inf outside the box. Unnormalised per observation (the normaliser of the truncation and
        restriction is a constant in θ, irrelevant to density comparisons such as HPD ranks).

        Args:
            theta: (..., B, d) or (B, d) parameters.
            x: (B, F) observations (B = 1 broadcasts).
        """
        import torch  # noqa: PLC0415

        theta = np.asarray(theta, dtype=float)
        cond = self._condition(x)
        inside = np.all((theta >= self.prior.low) & (theta <= self.prior.high), axis=-1)
        phi = _to_unbounded(theta, self.prior, self.settings.transform)
        with torch.no_grad(), torch_threads(1):
            lp = self.estimator.log_prob(torch.as_tensor(phi, dtype=torch.float32), condition=cond).double().numpy()
        lp = lp.reshape(inside.shape) + _log_jacobian(theta, self.prior, self.settings.transform)
        with np.errstate(divide="ignore"):
            return np.where(inside, lp + np.log(self.weights(theta, x)), -np.inf)

    def frame(self, theta: Any) -> pd.DataFrame:
        """Samples as a DataFrame, one column per parameter: the conductances, then ``noise_std``
        (µA/cm²) and ``p_missed`` when they are inferred."""
        return self.prior.frame(theta)

    def noise_summary(self, theta: Any, levels: tuple[float, float] = (0.05, 0.95)) -> pd.Series:
        """How noisy the posterior thinks a recording is, from its samples θ (n, d).

        Returns:
            ``median``, the two quantiles ``q05``/``q95`` (for the default ``levels``; named
            ``q<percent>``) and ``mean`` of the inferred noise strength (µA/cm², std after
            filtering), and ``prior_max``, the upper end of its prior.

        Raises:
            ValueError: This posterior does not infer the noise (trained with ``noise=0``).
        """
        return self._summary(theta, NOISE_NAME, levels, "train with make_prior(cell) to infer it")

    def missed_summary(self, theta: Any, levels: tuple[float, float] = (0.05, 0.95)) -> pd.Series:
        """How many spikes the posterior thinks the detector missed, from its samples θ (n, d).

        Returns:
            As :meth:`noise_summary`, of the inferred probability of a missed spike.

        Raises:
            ValueError: This posterior does not infer it (the cell's ``missed_prior`` is 0).
        """
        return self._summary(theta, MISSED_NAME, levels,
                             "declare missed_prior > 0 for the cell or train with make_prior(cell, missed=...)")

    def _summary(self, theta: Any, name: str, levels: tuple[float, float], fix: str) -> pd.Series:
        if name not in self.prior.names:
            raise ValueError(f"this posterior does not infer {name} (its prior has no {name} column); {fix}")
        j = self.prior.names.index(name)
        values = np.atleast_2d(np.asarray(theta, dtype=float))[:, j]
        lo, hi = np.quantile(values, levels)
        return pd.Series({"median": float(np.median(values)), f"q{round(100 * levels[0]):02d}": float(lo),
                          f"q{round(100 * levels[1]):02d}": float(hi), "mean": float(np.mean(values)),
                          "prior_max": float(self.prior.high[j])}, name=name)
