"""Summary features of spike trains for simulation-based inference (the columns of :data:`SUMMARY_NAMES`).

Rates, quantiles of log ISIs, ratios and correlations, defined for every train with ≥ 3 spikes
and independent of the recording length; and :func:`feature_cloud_distance`, which says whether an
observed feature vector lies inside a cloud of simulated ones. The flattening and checking of the
trains is :mod:`condspace.features.spikes`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from condspace.features.spikes import MIN_SPIKES, _Flat

# ----- constants -------------------------------------------------------------------------------
FEATURE_VERSION = 1  # bump whenever summary_features changes meaning: it is part of the cache key

#: The SBI summary features (see :func:`summary_features`), in column order, with their units.
SUMMARY_FEATURES: dict[str, tuple[str, str]] = {
    "log10_rate_hz": ("log10 Hz", "mean firing rate n_spikes / duration"),
    "log10_inst_freq_hz": ("log10 Hz", "mean instantaneous frequency mean(1000 / ISI)"),
    "log10_isi_q05": ("log10 ms", "5th percentile of the ISIs (intraburst interval of a burster)"),
    "log10_isi_q25": ("log10 ms", "25th percentile of the ISIs"),
    "log10_isi_q50": ("log10 ms", "median ISI"),
    "log10_isi_q75": ("log10 ms", "75th percentile of the ISIs"),
    "log10_isi_q95": ("log10 ms", "95th percentile of the ISIs (interburst gap of a burster)"),
    "log10_isi_sd": ("log10 ms", "standard deviation of log10 ISI"),
    "cv_isi": ("1", "std / mean of the ISIs (ddof 0, as in features.extract)"),
    "isi_serial_corr": ("1", "lag-1 correlation of consecutive log ISIs, shrunk to 0 for near-periodic trains"),
    "long_isi_fraction": ("1", "fraction of ISIs longer than twice the 5th percentile ≈ 1 / spikes per burst"),
}
SUMMARY_NAMES: tuple[str, ...] = tuple(SUMMARY_FEATURES)
_QUANTILES = (0.05, 0.25, 0.50, 0.75, 0.95)
LONG_ISI_FACTOR = 2.0  # an ISI longer than this × the 5th percentile ends a burst
SERIAL_CORR_SCALE = 0.005  # log10 ISI spread (≈ 1.2 %) below which the serial correlation is shrunk to 0



# ----- summary features ------------------------------------------------------------------------
def summary_features(spike_times: Sequence[Any], duration: float) -> np.ndarray:
    """SBI summary features of spike trains (the columns of :data:`SUMMARY_NAMES`).

    Only rates, quantiles of log ISIs, ratios and correlations: no counts, so a recording of a
    different length gives features on the same scale. A burster's 5th and 95th ISI percentiles
    are its intraburst interval and its interburst gap; ``long_isi_fraction`` ≈ 1 / spikes per
    burst; a tonic train has CV and long fraction ≈ 0. Every feature is defined for every train
    with ≥ 3 spikes (the non-silent ones, :data:`condspace.features.MIN_SPIKES`).

    Args:
        spike_times: N 1-D arrays of spike times (ms, strictly increasing).
        duration: Length of the analysed window (ms).

    Returns:
        (N, 11) float64; rows of trains with fewer than 3 spikes are NaN.

    Raises:
        ValueError: Non-positive ``duration``; non-finite or non-increasing spike times.
    """
    duration = float(duration)
    if not np.isfinite(duration) or duration <= 0:
        raise ValueError(f"duration must be a positive number of ms, got {duration}")
    trains = [np.asarray(t, dtype=float).ravel() for t in spike_times]
    n = len(trains)
    counts = np.fromiter((t.size for t in trains), dtype=np.int64, count=n)
    out = np.full((n, len(SUMMARY_NAMES)), np.nan)
    keep = np.flatnonzero(counts >= MIN_SPIKES)  # silent trains have no ISI statistics
    if keep.size == 0:
        return out
    labels = pd.Index(keep.tolist(), dtype=object)  # the trains' positions, named in error messages
    out[keep] = _isi_statistics(_Flat([trains[i] for i in keep], labels), duration)
    return out


def _isi_statistics(flat: _Flat, duration: float) -> np.ndarray:
    """Vectorised per-train ISI statistics of checked, flattened trains that all have ≥ 2 ISIs."""
    isi, owner, m, counts = flat.isi, flat.isi_owner, flat.n, flat.counts
    n_isi = np.bincount(owner, minlength=m).astype(float)
    mean = lambda v: np.bincount(owner, weights=v, minlength=m) / n_isi
    log_isi = np.log10(isi)
    # Quantiles with linear interpolation (numpy's default), on ISIs sorted within each train.
    order = np.lexsort((isi, owner))
    srt = log_isi[order]
    start = np.r_[0, np.cumsum(n_isi[:-1])].astype(int)
    quant = []
    for q in _QUANTILES:
        pos = q * (n_isi - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_isi.astype(int) - 1)
        frac = pos - lo
        quant.append(srt[start + lo] * (1 - frac) + srt[start + hi] * frac)
    mu_log = mean(log_isi)
    sd_log = np.sqrt(np.maximum(mean((log_isi - mu_log[owner]) ** 2), 0.0))
    cv = flat.cv()  # the CV of features.extract, ddof 0
    # Lag-1 correlation of consecutive log ISIs within a train.
    pair = owner[1:] == owner[:-1]
    a, b, po = log_isi[:-1][pair], log_isi[1:][pair], owner[1:][pair]
    n_pair = np.bincount(po, minlength=m).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        pm = lambda v: np.bincount(po, weights=v, minlength=m) / n_pair
        ma, mb = pm(a), pm(b)
        cov = pm((a - ma[po]) * (b - mb[po]))
        va, vb = pm((a - ma[po]) ** 2), pm((b - mb[po]) ** 2)
        corr = cov / np.sqrt(va * vb)
    corr = np.where(np.isfinite(corr), np.clip(corr, -1.0, 1.0), 0.0)  # < 2 pairs or constant ISIs
    # A nearly periodic train has a meaningless correlation of rounding-level jitter: shrink it
    # smoothly to 0 when the log-ISI spread is below ~1 % (SERIAL_CORR_SCALE).
    corr = corr * sd_log**2 / (sd_log**2 + SERIAL_CORR_SCALE**2)
    q05 = 10.0 ** quant[0]
    long_frac = mean((isi > LONG_ISI_FACTOR * q05[owner]).astype(float))
    rate = 1000.0 * counts / duration
    inst = mean(1000.0 / isi)
    return np.column_stack([np.log10(rate), np.log10(inst), *quant, sd_log, cv, corr, long_frac])


def summary_frame(spike_times: Sequence[Any] | Mapping[Any, Any], duration: float) -> pd.DataFrame:
    """:func:`summary_features` as a DataFrame (index: the mapping's IDs or 0..N-1)."""
    if isinstance(spike_times, Mapping):
        index = pd.Index(list(spike_times), name="ID")
        trains = list(spike_times.values())
    else:
        trains = list(spike_times)
        index = pd.RangeIndex(len(trains))
    return pd.DataFrame(summary_features(trains, duration), columns=list(SUMMARY_NAMES), index=index)


@dataclass(frozen=True)
class CloudDistance:
    """Where an observation lies relative to a cloud of simulated feature vectors.

    Attributes:
        distance: Mahalanobis distance of the observation from the cloud mean.
        percentile: Percentage of simulated points that are closer to the mean (100 = outside
            everything simulated; below ~99 the observation is inside the cloud).
        nearest: Mahalanobis distance to the nearest simulated point.
        nearest_typical: Median over simulated points of their own nearest-neighbour distance
            (a scale for ``nearest``; computed on a subsample of ≤ 2000 points).
    """

    distance: float
    percentile: float
    nearest: float
    nearest_typical: float


def feature_cloud_distance(x_obs: Any, x_sim: Any) -> CloudDistance:
    """Is an observed feature vector inside the cloud of simulated ones? (prior predictive check).

    Args:
        x_obs: (F,) observed summary features.
        x_sim: (n, F) simulated summary features (non-finite rows are ignored).

    Raises:
        ValueError: Shapes disagree, the observation is not finite, or fewer than F + 2 simulations.
    """
    x_obs = np.asarray(x_obs, dtype=float).ravel()
    x_sim = np.asarray(x_sim, dtype=float)
    if x_sim.ndim != 2 or x_sim.shape[1] != x_obs.size:
        raise ValueError(f"x_sim: expected shape (n, {x_obs.size}), got {x_sim.shape}")
    if not np.all(np.isfinite(x_obs)):
        raise ValueError("x_obs: the observation has non-finite features (is it silent?)")
    x_sim = x_sim[np.all(np.isfinite(x_sim), axis=1)]
    if x_sim.shape[0] < x_obs.size + 2:
        raise ValueError(f"x_sim: need at least {x_obs.size + 2} finite simulations, got {x_sim.shape[0]}")
    mu = x_sim.mean(axis=0)
    prec = np.linalg.pinv(np.cov(x_sim, rowvar=False))
    maha = lambda d: np.sqrt(np.maximum(np.einsum("...i,ij,...j->...", d, prec, d), 0.0))
    d_sim = maha(x_sim - mu)
    d_obs = float(maha(x_obs - mu))
    nearest = float(np.min(maha(x_sim - x_obs)))
    sub = x_sim[np.random.default_rng(0).permutation(x_sim.shape[0])[:2000]]
    nn = [np.partition(maha(sub - s), 1)[1] for s in sub[:500]]
    return CloudDistance(d_obs, float(100.0 * np.mean(d_sim < d_obs)), nearest, float(np.median(nn)))


