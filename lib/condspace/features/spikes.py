"""Spike times → activity class and spike-train features, for a whole population at once.

Implements SCIENCE.md §5 (Fyon et al. 2024; Brandoit et al. 2025):

* **Class.** ``"silent"`` with fewer than :data:`MIN_SPIKES` (3) spikes; otherwise CV_ISI =
  std/mean of the inter-spike intervals (population std, ``ddof=0``); ``"spiking"`` (tonic) if
  CV_ISI ≤ :data:`CV_THRESHOLD` (0.15), else ``"bursting"`` (irregular firing lands here too).
  ``"invalid"`` marks simulations flagged not ``ok`` (numerical blow-up).
* **Spiking features** (spiking class only): ``spiking_freq_hz`` = mean(1000 / ISI).
* **Bursting features** (bursting class only): ISI threshold = (max ISI + min ISI) / 2; a burst
  ends at an ISI above the threshold; bursts with ≥ 2 spikes are kept, and of those the first and
  the last are dropped (they may be cut by the edges of the recording window). The remaining
  bursts are the *analysed bursts*; their averages give the burst features below.

Every feature is listed with its unit in :data:`FEATURES`. All feature columns are float64 (counts
included) so that ``df[list(FEATURES)].to_numpy()`` is one numeric matrix; a feature that does not
apply to a neuron's class is NaN.

>>> import numpy as np
>>> from condspace import features
>>> df = features.extract([np.arange(0.0, 1000.0, 100.0), np.array([5.0])], duration=1000.0)
>>> df["label"].tolist(), df["rate_hz"].tolist()
(['spiking', 'silent'], [10.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

MIN_SPIKES = 3  # SCIENCE.md §5: fewer spikes than this after the transient → silent
CV_THRESHOLD = 0.15  # SCIENCE.md §5: CV_ISI ≤ this → tonic spiking, above → bursting
MIN_BURST_SPIKES = 2  # SCIENCE.md §5: a burst needs at least two spikes
LABELS = ("silent", "spiking", "bursting", "invalid")

#: name → (unit, description) of every feature column of :func:`extract`, in column order.
FEATURES: dict[str, tuple[str, str]] = {
    "n_spikes": ("1", "number of spikes in the analysed window (all valid neurons)"),
    "rate_hz": ("Hz", "mean firing rate n_spikes / duration (all valid neurons)"),
    "cv_isi": ("1", "coefficient of variation std/mean of the ISIs, ddof=0 (spiking and bursting)"),
    "spiking_freq_hz": ("Hz", "mean instantaneous frequency mean(1000 / ISI) (spiking only)"),
    "n_bursts": ("1", "number of analysed bursts: ≥ 2 spikes, first and last burst dropped (bursting only)"),
    "spikes_per_burst": ("1", "mean number of spikes per analysed burst (bursting, ≥ 1 analysed burst)"),
    "burst_duration_ms": ("ms", "mean first-to-last spike time of the analysed bursts (bursting, ≥ 1 burst)"),
    "intraburst_freq_hz": ("Hz", "mean over analysed bursts of 1000 (spikes − 1) / duration, i.e. "
                                 "1000 / mean intraburst ISI (bursting, ≥ 1 burst)"),
    "burst_period_ms": ("ms", "mean time between the first spikes of consecutive analysed bursts "
                              "(bursting, ≥ 2 analysed bursts)"),
    "interburst_freq_hz": ("Hz", "1000 / burst_period_ms (bursting, ≥ 2 analysed bursts)"),
    "duty_cycle": ("1", "burst_duration_ms / burst_period_ms (bursting, ≥ 2 analysed bursts)"),
    "burstiness": ("Hz/s", "Fyon burstiness: spikes_per_burst × intraburst_freq_hz / (burst_period_ms / 1000) "
                           "(bursting, ≥ 2 analysed bursts)"),
}
COLUMNS = ("label", *FEATURES)


# ----- input handling ---------------------------------------------------------------------------
def _as_trains(spike_times: Any) -> tuple[list[np.ndarray], pd.Index]:
    """Normalise a list / mapping of spike-time arrays; return the arrays and the row index."""
    if isinstance(spike_times, Mapping):
        index = pd.Index(list(spike_times.keys()), name="ID")
        trains = list(spike_times.values())
    elif isinstance(spike_times, Sequence | np.ndarray) and not isinstance(spike_times, str | bytes):
        trains = list(spike_times)
        index = pd.RangeIndex(len(trains))
    else:
        raise ValueError(f"spike_times: expected a list of 1-D arrays (ms) or a mapping ID → array, "
                         f"got {type(spike_times).__name__}")
    out = []
    for i, tr in enumerate(trains):
        arr = np.asarray(tr, dtype=float)
        if arr.ndim != 1:
            raise ValueError(f"spike_times: train {index[i]!r} has shape {arr.shape}; each train must be a "
                             f"1-D array of spike times (ms) (wrap a single train in a list)")
        out.append(arr)
    return out, index


def _ok_mask(ok: Any, n: int) -> np.ndarray:
    if ok is None:
        return np.ones(n, dtype=bool)
    arr = np.asarray(ok)
    if arr.shape != (n,) or arr.dtype != bool:
        raise ValueError(f"ok: expected a boolean array of shape ({n},) (one flag per train), "
                         f"got dtype {arr.dtype} and shape {arr.shape}")
    return arr


def _drop_invalid(trains: list[np.ndarray], ok: np.ndarray) -> list[np.ndarray]:
    """Empty the trains of invalid neurons: whatever they hold is not analysed (nor checked)."""
    if ok.all():
        return trains
    return [t if good else np.empty(0) for t, good in zip(trains, ok, strict=True)]


class _Flat:
    """All spike trains concatenated, with per-neuron ISI statistics (the vectorised core)."""

    def __init__(self, trains: list[np.ndarray], index: pd.Index) -> None:
        n = len(trains)
        self.n = n
        self.counts = np.fromiter((len(t) for t in trains), dtype=np.int64, count=n)
        self.t = np.concatenate(trains) if n else np.empty(0)
        self.owner = np.repeat(np.arange(n), self.counts)
        if not np.all(np.isfinite(self.t)):
            i = int(self.owner[np.argmax(~np.isfinite(self.t))])
            raise ValueError(f"spike_times: train {index[i]!r} contains NaN or infinite times")
        same = self.owner[1:] == self.owner[:-1]  # consecutive spikes of the same neuron
        isi = np.diff(self.t)[same]
        self.isi_owner = self.owner[1:][same]
        if np.any(isi <= 0):
            i = int(self.isi_owner[np.argmax(isi <= 0)])
            raise ValueError(f"spike_times: train {index[i]!r} is not strictly increasing; sort the spike "
                             "times and remove duplicates")
        self.isi = isi
        self.n_isi = np.bincount(self.isi_owner, minlength=n)

    def isi_mean(self) -> np.ndarray:
        total = np.bincount(self.isi_owner, weights=self.isi, minlength=self.n)
        with np.errstate(invalid="ignore", divide="ignore"):
            return total / self.n_isi

    def cv(self) -> np.ndarray:
        mean = self.isi_mean()
        dev2 = (self.isi - mean[self.isi_owner]) ** 2  # two-pass variance: exact for exact data
        var = np.bincount(self.isi_owner, weights=dev2, minlength=self.n)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(var / self.n_isi) / mean

    def span(self) -> np.ndarray:
        """(N,) last minus first spike time (0 for fewer than two spikes)."""
        last = np.cumsum(self.counts) - 1
        first = last - self.counts + 1
        has = self.counts > 0
        out = np.zeros(self.n)
        out[has] = self.t[last[has]] - self.t[first[has]]
        return out


def _segment_reduce(ufunc: np.ufunc, values: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Reduce ``values`` grouped by a sorted ``owner`` array with ``ufunc``; NaN for empty groups."""
    out = np.full(n, np.nan)
    if values.size == 0:
        return out
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    out[owner[starts]] = ufunc.reduceat(values, starts)
    return out


def _labels(flat: _Flat, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class codes (index into LABELS) and CV_ISI for every neuron."""
    cv = flat.cv()
    code = np.where(flat.counts < MIN_SPIKES, 0, np.where(cv <= CV_THRESHOLD, 1, 2))
    code[~ok] = 3
    return code, cv


# ----- bursts ------------------------------------------------------------------------------------
def _burst_features(flat: _Flat, bursting: np.ndarray) -> dict[str, np.ndarray]:
    """Burst features for the neurons flagged in ``bursting`` (NaN elsewhere), all vectorised."""
    n = flat.n
    res = {k: np.full(n, np.nan) for k in ("n_bursts", "spikes_per_burst", "burst_duration_ms",
                                           "intraburst_freq_hz", "burst_period_ms")}
    if not bursting.any():
        return res
    isi_max = _segment_reduce(np.maximum, flat.isi, flat.isi_owner, n)
    isi_min = _segment_reduce(np.minimum, flat.isi, flat.isi_owner, n)
    threshold = (isi_max + isi_min) / 2.0

    sel = bursting[flat.owner]
    t, owner = flat.t[sel], flat.owner[sel]
    # A burst starts at a neuron's first spike and after every ISI strictly above the threshold.
    new = np.ones(t.size, dtype=bool)
    same = owner[1:] == owner[:-1]
    new[1:] = ~same | (np.diff(t) > threshold[owner[1:]])
    first = np.flatnonzero(new)
    last = np.r_[first[1:], t.size] - 1
    b_owner = owner[first]
    b_size = last - first + 1
    b_start, b_end = t[first], t[last]

    keep = b_size >= MIN_BURST_SPIKES
    b_owner, b_size, b_start, b_end = b_owner[keep], b_size[keep], b_start[keep], b_end[keep]
    # Rank of each kept burst within its neuron, and the number kept per neuron.
    n_kept = np.bincount(b_owner, minlength=n)
    rank = np.arange(b_owner.size) - (np.cumsum(n_kept) - n_kept)[b_owner]
    inner = (rank >= 1) & (rank <= n_kept[b_owner] - 2)  # drop the first and the last burst
    b_owner, b_size, b_start, b_end = b_owner[inner], b_size[inner], b_start[inner], b_end[inner]

    n_b = np.bincount(b_owner, minlength=n).astype(float)
    duration = b_end - b_start
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = lambda x: np.bincount(b_owner, weights=x, minlength=n) / n_b
        res["spikes_per_burst"] = mean(b_size.astype(float))
        res["burst_duration_ms"] = mean(duration)
        res["intraburst_freq_hz"] = mean(1000.0 * (b_size - 1) / duration)
        same_b = b_owner[1:] == b_owner[:-1]
        period = np.diff(b_start)[same_b]
        p_owner = b_owner[1:][same_b]
        n_p = np.bincount(p_owner, minlength=n)
        res["burst_period_ms"] = np.bincount(p_owner, weights=period, minlength=n) / n_p
    res["n_bursts"] = n_b
    for key in res:
        res[key][~bursting] = np.nan
    return res


# ----- public API -----------------------------------------------------------------------------
def extract(spike_times: Any, duration: float, ok: Any = None) -> pd.DataFrame:
    """Classify every spike train and compute its features (SCIENCE.md §5).

    Args:
        spike_times: A list of N 1-D arrays of spike times (ms, strictly increasing; absolute
            times are fine, only differences and counts matter), or a mapping ID → array.
        duration: Length of the analysed window (ms), e.g. t_max − transient of the simulation;
            it sets ``rate_hz`` only. Must be > 0 and at least the span of every train.
        ok: Optional (N,) bool; where False the row is labelled ``"invalid"`` and all features
            are NaN (e.g. ``SimulationResult.ok``).

    Returns:
        DataFrame with N rows, index 0..N-1 (or the mapping's IDs, named ``ID``), and columns
        ``label`` (one of :data:`LABELS`) followed by the float64 columns of :data:`FEATURES`.

        Which features are NaN:

        * invalid rows: all;
        * silent: all but ``n_spikes`` and ``rate_hz``;
        * spiking: the burst features;
        * bursting: ``spiking_freq_hz``; and when no analysed burst remains (fewer than three
          bursts of ≥ 2 spikes, since the first and last are dropped) ``spikes_per_burst``,
          ``burst_duration_ms`` and ``intraburst_freq_hz`` (``n_bursts`` is then 0); when fewer
          than two analysed bursts remain (fewer than four bursts of ≥ 2 spikes) also
          ``burst_period_ms``, ``interburst_freq_hz``, ``duty_cycle`` and ``burstiness``.

    Raises:
        ValueError: Non-1-D, non-finite or not strictly increasing trains; ``duration`` not
            positive or shorter than a train's span; ``ok`` of the wrong shape or dtype.
    """
    trains, index = _as_trains(spike_times)
    ok = _ok_mask(ok, len(trains))
    trains = _drop_invalid(trains, ok)
    duration = float(duration)
    if not np.isfinite(duration) or duration <= 0:
        raise ValueError(f"duration must be a positive number of ms (the analysed window), got {duration}")
    flat = _Flat(trains, index)
    span = flat.span()
    if np.any(span > duration):
        i = int(np.argmax(span > duration))
        raise ValueError(f"duration={duration} ms is shorter than the spikes of train {index[i]!r}, which span "
                         f"{span[i]:.6g} ms; pass the length of the recording window (t_max − transient)")
    code, cv = _labels(flat, ok)
    valid = code != 3
    active = (code == 1) | (code == 2)

    cols: dict[str, np.ndarray] = {}
    cols["n_spikes"] = np.where(valid, flat.counts, np.nan)
    cols["rate_hz"] = np.where(valid, 1000.0 * flat.counts / duration, np.nan)
    cols["cv_isi"] = np.where(active, cv, np.nan)
    inst = np.bincount(flat.isi_owner, weights=1000.0 / flat.isi, minlength=flat.n)
    with np.errstate(invalid="ignore", divide="ignore"):
        cols["spiking_freq_hz"] = np.where(code == 1, inst / flat.n_isi, np.nan)
    burst = _burst_features(flat, code == 2)
    cols.update(burst)
    with np.errstate(invalid="ignore", divide="ignore"):
        cols["interburst_freq_hz"] = 1000.0 / burst["burst_period_ms"]
        cols["duty_cycle"] = burst["burst_duration_ms"] / burst["burst_period_ms"]
        period_s = burst["burst_period_ms"] / 1000.0
        cols["burstiness"] = burst["spikes_per_burst"] * burst["intraburst_freq_hz"] / period_s

    df = pd.DataFrame({name: cols[name].astype(float) for name in FEATURES}, index=index)
    df.insert(0, "label", np.asarray(LABELS, dtype=object)[code])
    return df


def classify(spike_times: Any, ok: Any = None) -> pd.Series:
    """Labels only (``"silent"``, ``"spiking"``, ``"bursting"``, ``"invalid"``); see :func:`extract`.

    Args:
        spike_times: A list of N 1-D arrays of spike times (ms), or a mapping ID → array.
        ok: Optional (N,) bool; False → ``"invalid"``.

    Returns:
        Series named ``label`` with the same index as :func:`extract`.
    """
    trains, index = _as_trains(spike_times)
    ok = _ok_mask(ok, len(trains))
    code, _ = _labels(_Flat(_drop_invalid(trains, ok), index), ok)
    return pd.Series(np.asarray(LABELS, dtype=object)[code], index=index, name="label")


def from_simulation(result: Any) -> pd.DataFrame:
    """:func:`extract` applied to a :class:`condspace.simulate.SimulationResult`.

    Uses its ``spike_times``, ``ok`` and ``duration`` (t_max − transient).
    """
    return extract(result.spike_times, result.duration, ok=np.asarray(result.ok, dtype=bool))


__all__ = ["COLUMNS", "CV_THRESHOLD", "FEATURES", "LABELS", "MIN_BURST_SPIKES", "MIN_SPIKES", "classify",
           "extract", "from_simulation"]
