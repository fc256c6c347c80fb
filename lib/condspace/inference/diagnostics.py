"""Posterior checks: predictive checks, joint-HPD coverage, leakage outside the prior box.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from condspace import cells as _cells
from condspace import features as _features
from condspace.features import MIN_SPIKES, summary_features
from condspace.inference.posterior import Posterior
from condspace.inference.simulator import Protocol, simulate_features

# Predictive-check tolerances. Each must hold the truth: a train simulated from the recording's own ḡ
# with fresh noise of the same strength must pass with probability ≥ 0.95 (measured by
# :func:`feature_spread` and :func:`truth_pass_fraction`; tests/test_inference_noise.py checks it
# at the shipped irregular recording's noise, σ = 8 µA/cm², near the top of the STG noise prior).
# Between two such repeats over a 3 s window, 95 % of rate differences are within 5 % and of CV
# differences within 0.05, for tonic and bursting sets alike: the rate and CV tolerances are about
# 1.5-2× that, so the truth passes almost always and a posterior that is merely a little off in ḡ
# or σ is not failed for the recording's own noise. They are still tight enough that a posterior
# of the wrong regime, or the prior, fails (same test file).
# Missed spikes (a prior with p_missed) add a spread of their own, which these tolerances were not
# set for: a tonic train that lost k of its n spikes has a CV of about sqrt(k/n), and a fresh draw
# of misses moves k binomially. With many spikes the truth still passes (a misspecified tonic
# recording with 5 of 266 spikes missed: 0.95 of 100 repeats of its own ḡ and share, fresh misses);
# with few spikes and many misses it does not (2 of 17-22 spikes, or 27 of 266: 0.26-0.5), so
# there a low fraction says that the check cannot tell, not that the posterior is wrong.
RATE_TOLERANCE = 0.10  # rate within 10 %
CV_TOLERANCE = 0.07  # tonic-like trains: CV_ISI within ±0.07 (the CV is what the noise strength sets)
SPB_TOLERANCE = 1.0  # bursting: spikes per burst within ±1
PERIOD_TOLERANCE = 0.15  # bursting: burst period within 15 %
CV_TONIC_LIKE = 0.3
"""A train with CV_ISI at most this is *tonic-like*: tonic spiking, or tonic spiking made irregular by
noise. The class boundary CV ≤ 0.15 (SCIENCE.md §5) does not survive noise: a tonic set's CV
straddles it already at σ ≈ 2 µA/cm² (a third of repeats land on each side), and stays below 0.25
up to the prior's largest noise, while the published bursters have CV ≥ 1. Burst features of a
tonic-like train are ISI fluctuations, not bursts, so they are not compared."""


def _tonic_like(label: Any, cv: Any) -> np.ndarray:
    """(n,) bool: spiking, or bursting with CV ≤ :data:`CV_TONIC_LIKE` (see there)."""
    label, cv = np.asarray(label), np.asarray(cv, dtype=float)
    return (label == "spiking") | ((label == "bursting") & (cv <= CV_TONIC_LIKE))


# ----- checks ------------------------------------------------------------------------------------
@dataclass
class PredictiveCheck:
    """Result of :func:`predictive_check`.

    Attributes:
        fraction: Fraction of posterior samples whose simulation reproduces the observation.
        table: One row per sample: parameters (conductances, and ``noise_std`` when inferred),
            label, rate_hz, cv_isi, spikes_per_burst, burst_period_ms (and the other features of
            :func:`condspace.features.extract`), passed.
        observed: The observation's features (one row of :func:`condspace.features.extract`).
        criterion: The rule that was applied, in words.
    """

    fraction: float
    table: pd.DataFrame
    observed: pd.Series
    criterion: str


def reproduces(observed: pd.Series, simulated: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Which simulated trains reproduce the observed pattern (the predictive-check rule).

    The class rule, made to hold under noise: a train is *tonic-like* (:data:`CV_TONIC_LIKE`) or
    bursting, and both trains must be of the same kind. Tonic-like: rate within 10 % and CV_ISI
    within ±:data:`CV_TOLERANCE` (the CV carries the noise strength, so a clean posterior does
    not pass a noisy recording on its rate alone). Bursting: spikes per burst within ±1 and burst
    period within 15 %; when the observed bursts are too few for a period, rate within 10 %.

    Returns:
        ((n,) bool, the rule in words).

    Raises:
        ValueError: The observation is silent or invalid.
    """
    label = observed["label"]
    if label not in ("spiking", "bursting"):
        raise ValueError(f"observation: class {label!r} has no predictive check (only spiking or bursting trains "
                         "can be inferred)")
    sim_tonic = _tonic_like(simulated["label"], simulated["cv_isi"])
    rate_ok = (np.abs(simulated["rate_hz"] - observed["rate_hz"]) <= RATE_TOLERANCE * observed["rate_hz"]).to_numpy()
    if _tonic_like(label, observed["cv_isi"]):
        cv_ok = (np.abs(simulated["cv_isi"] - observed["cv_isi"]) <= CV_TOLERANCE).to_numpy()
        return sim_tonic & rate_ok & cv_ok, (f"tonic-like (CV ≤ {CV_TONIC_LIKE}), rate within 10 %, "
                                             f"CV within ±{CV_TOLERANCE}")
    same = (simulated["label"] == "bursting").to_numpy() & ~sim_tonic
    spb, per = observed["spikes_per_burst"], observed["burst_period_ms"]
    if not (np.isfinite(spb) and np.isfinite(per)):
        return same & rate_ok, "bursting (too few bursts for a period), rate within 10 %"
    spb_ok = (np.abs(simulated["spikes_per_burst"] - spb) <= SPB_TOLERANCE).to_numpy()
    per_ok = (np.abs(simulated["burst_period_ms"] - per) <= PERIOD_TOLERANCE * per).to_numpy()
    return same & spb_ok & per_ok, "bursting, spikes per burst ±1, burst period within 15 %"


def feature_spread(cell: Any, g: Any, noise_std: float, n_repeats: int = 100, *, protocol: Protocol | None = None,
                   seed: int = 0, backend: str = "numpy") -> pd.DataFrame:
    """Features of ``n_repeats`` simulations of one ḡ with independent noise of one strength.

    What the noise alone does to the features the predictive check compares: the spread of these
    rows bounds how tight a tolerance can be before it rejects the truth.

    Args:
        cell: Cell type or its name.
        g: The conductances (mS/cm²): a mapping name → value or an (n_channels,) vector.
        noise_std: Noise strength (µA/cm², std after filtering).
        n_repeats: Independent repeats (each its own noise stream).
        protocol: Simulation protocol (its noise_std is ignored); default the cell's.
        seed: Noise seed.
        backend: Integrator backend.

    Returns:
        One row of :func:`condspace.features.extract` per repeat.
    """
    from condspace.simulate import simulate  # noqa: PLC0415

    cell = _cells.get(cell)
    protocol = protocol or Protocol.for_cell(cell)
    row = [g[n] for n in cell.conductance_names] if isinstance(g, Mapping) else list(np.asarray(g, dtype=float))
    res = simulate(cell, np.tile(row, (int(n_repeats), 1)), t_max=protocol.t_max, transient=protocol.transient,
                   dt=protocol.dt, noise_std=noise_std, seed=seed, backend=backend, method=protocol.method,
                   progress=False)
    return _features.extract(res.spike_times, protocol.duration, ok=res.ok)


def truth_pass_fraction(repeats: pd.DataFrame) -> float:
    """Fraction of ordered pairs (i ≠ j) of repeats where repeat j reproduces repeat i.

    With :func:`feature_spread` rows: how often the check accepts the true ḡ when noise is the only
    difference between recording and simulation (1 − the check's false-rejection rate for the truth).
    Repeats that are silent or invalid count as failures.
    """
    passed, pairs = 0, 0
    for i in range(len(repeats)):
        others = repeats.drop(index=repeats.index[i])
        if repeats.iloc[i]["label"] not in ("spiking", "bursting"):
            pairs += len(others)
            continue
        ok, _ = reproduces(repeats.iloc[i], others)
        passed += int(ok.sum())
        pairs += len(others)
    return passed / pairs if pairs else float("nan")


def observe(spike_times: Any, duration: float) -> tuple[np.ndarray, pd.Series]:
    """Summary features (F,) and :func:`condspace.features.extract` row of one observed train.

    Raises:
        ValueError: The train is silent (fewer than 3 spikes).
    """
    spikes = np.asarray(spike_times, dtype=float).ravel()
    row = _features.extract([spikes], duration).iloc[0]
    if row["label"] not in ("spiking", "bursting"):
        raise ValueError(f"observation is {row['label']} ({spikes.size} spikes); NPE needs ≥ {MIN_SPIKES} spikes")
    return summary_features([spikes], duration)[0], row


def predictive_check(posterior: Posterior, observation: Any, n: int = 200, *, duration: float | None = None,
                     samples: Any = None, seed: int = 0, backend: str = "numpy",
                     progress: bool | None = None) -> PredictiveCheck:
    """Simulate ``n`` posterior samples and count how many reproduce the observed activity.

    Each sample is simulated with its own inferred noise strength when the posterior infers it
    (fresh noise, not the recording's), its spikes thinned with its own inferred p_missed when the
    posterior infers that (fresh misses), and judged by :func:`reproduces`.

    Args:
        posterior: A trained posterior (its protocol is reused for the simulations).
        observation: Observed spike times (ms), 1-D.
        n: Number of posterior samples to simulate.
        duration: Length of the observation window (ms); default the posterior's protocol duration.
        samples: Optional (n, d) posterior samples to use instead of drawing new ones.
        seed: Seed of the posterior draws and of the simulation noise.
        backend: Integrator backend.
        progress: Progress bar of the simulation.
    """
    protocol = posterior.protocol
    duration = protocol.duration if duration is None else float(duration)
    x_obs, observed = observe(observation, duration)
    theta = posterior.sample(n, x_obs, seed=seed) if samples is None else np.atleast_2d(np.asarray(samples))
    sim = simulate_features(posterior.cell, posterior.prior, theta, protocol, seed=seed, backend=backend,
                            progress=progress)
    feats = _features.extract(sim.spike_times, protocol.duration, ok=sim.labels != "invalid")
    passed, rule = reproduces(observed, feats)
    table = pd.concat([posterior.frame(theta), feats.reset_index(drop=True)], axis=1)
    table["passed"] = passed
    return PredictiveCheck(float(passed.mean()), table, observed, rule)


def hpd_ranks(posterior: Posterior, theta_test: Any, x_test: Any, n_samples: int = 1000, seed: int = 0,
              batch: int = 50) -> np.ndarray:
    """For each held-out pair, the fraction of posterior samples denser than the true θ.

    θ_true lies in the α-highest-posterior-density region exactly when its rank is < α, so for a
    calibrated posterior the ranks are uniform on [0, 1] (joint-HPD expected coverage; Hermans et
    al. 2022). Densities are compared in θ units. The posterior evaluated is the one that is used:
    the flow restricted to the prior box (and to the observed class, with a restriction), i.e.
    raw flow samples weighted by :meth:`Posterior.weights` (importance form of the rejection in
    :meth:`Posterior.sample`). Counting leaked samples would inflate the coverage, since a leaked
    sample is never denser than a θ_true inside the box; :func:`leakage` reports them instead.
    """
    theta_test = np.atleast_2d(np.asarray(theta_test, dtype=float))
    x_test = np.atleast_2d(np.asarray(x_test, dtype=float))
    if theta_test.shape[0] != x_test.shape[0]:
        raise ValueError(f"theta_test and x_test need the same number of rows, got {theta_test.shape[0]} "
                         f"and {x_test.shape[0]}")
    ranks = np.empty(theta_test.shape[0])
    for i, s in enumerate(range(0, theta_test.shape[0], batch)):
        th, xx = theta_test[s:s + batch], x_test[s:s + batch]
        samp = posterior.sample_batched(n_samples, xx, seed=seed + i)  # (n, B, d) raw flow samples
        w = posterior.weights(samp, xx)  # (n, B): 0 outside the box, P(class | θ) with a restriction
        lp_s = posterior.log_prob(samp, xx)  # (n, B)
        lp_t = posterior.log_prob(th, xx)  # (B,)
        with np.errstate(invalid="ignore"):
            ranks[s:s + batch] = np.sum(w * (lp_s > lp_t[None, :]), axis=0) / np.sum(w, axis=0)
    return ranks


def expected_coverage(posterior: Posterior, theta_test: Any, x_test: Any,
                      levels: Sequence[float] = tuple(np.linspace(0.05, 0.95, 19)), n_samples: int = 1000,
                      seed: int = 0) -> pd.DataFrame:
    """Empirical coverage of the joint HPD regions at nominal ``levels`` (a calibration curve).

    Args:
        posterior: Trained posterior.
        theta_test: (M, d) held-out parameters (M ≥ 200 for a ±0.035 standard error at 50 %).
        x_test: (M, F) their simulated features (valid rows only).
        levels: Nominal credibility levels in (0, 1).
        n_samples: Posterior samples per test pair.
        seed: Torch seed.

    Returns:
        DataFrame with columns ``nominal``, ``empirical`` and ``stderr`` (binomial), one row per level;
        ``attrs["ranks"]`` holds the (M,) ranks. Calibrated: empirical ≈ nominal; below the
        diagonal: overconfident.
    """
    ranks = hpd_ranks(posterior, theta_test, x_test, n_samples, seed)
    levels = np.asarray(levels, dtype=float)
    if np.any((levels <= 0) | (levels >= 1)):
        raise ValueError(f"levels must lie in (0, 1), got {levels}")
    emp = np.array([np.mean(ranks < a) for a in levels])
    df = pd.DataFrame({"nominal": levels, "empirical": emp, "stderr": np.sqrt(emp * (1 - emp) / len(ranks))})
    df.attrs["ranks"] = ranks
    return df


def leakage(posterior: Posterior, x: Any, n: int = 1000, seed: int = 0) -> np.ndarray:
    """Fraction of the estimator's raw samples outside the prior box, per observation (B,).

    Identically 0 with ``transform="logit"`` (the flow lives on the unbounded space); with
    ``"none"`` this is the mass that rejection sampling silently discards.
    """
    samp = posterior.sample_batched(n, x, seed=seed)
    inside = np.all((samp >= posterior.prior.low) & (samp <= posterior.prior.high), axis=-1)
    return 1.0 - inside.mean(axis=0)


