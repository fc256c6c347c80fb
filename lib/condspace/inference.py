"""Simulation-based inference of maximal conductances from spike times (the ``sbi`` glue).

Neural posterior estimation (NPE, Papamakarios & Murray 2016; Greenberg et al. 2019; the ``sbi``
package, Tejero-Cantero et al. 2020) as applied to the STG neuron by Gonçalves et al. (2020):

1. :func:`make_prior`: a uniform prior on the inferred conductances, names attached.
2. :func:`summary_features`: spike times → :data:`SUMMARY_NAMES`, defined for every train with
   ≥ 3 spikes and independent of the recording length.
3. :func:`simulate_features`: a batch of conductance vectors → one :func:`condspace.simulate`
   call → features and a validity mask (silent and numerically invalid runs excluded, counted).
4. :func:`training_set`: prior draws and their features, cached on disk under a hash of
   everything that determines them (:func:`cache_key`), written atomically, verified on load.
5. :func:`train`: a neural spline flow q(ḡ | x) (``sbi`` NPE) → :class:`Posterior`, which
   samples and evaluates densities in conductance units, restricted to the prior box and (with
   :func:`train_restriction`) to the observed activity class; :func:`trained_posterior` does
   it all with caching; :func:`save_posterior` / :func:`load_posterior` keep a posterior as
   plain tensors (no pickles).
6. Checks: :func:`predictive_check` (simulated posterior samples reproduce the observation),
   :func:`expected_coverage` (joint-HPD calibration on held-out simulations), :func:`leakage`,
   :func:`feature_cloud_distance` (is the observation inside the simulated feature cloud?).

Data flow: cells → simulate → features → **inference**; this module imports nothing to its
right (no DICs, no plotting).

>>> from condspace import inference
>>> prior = inference.make_prior("stg")
>>> prior.names[:3], prior.high[2]
(('g_Na', 'g_Kd', 'g_CaT'), 15.0)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from condspace import _buildrecord, _io, _parallel
from condspace import cells as _cells
from condspace import features as _features
from condspace.channels import CellType


def _quiet_tqdm_auto() -> None:
    """Import ``tqdm.auto`` once with its "IProgress not found" warning silenced.

    sbi draws its progress bars with ``tqdm.auto``; imported in a Jupyter kernel without
    ipywidgets (the book's chapters: we draw no widgets), it warns once, with the absolute path of
    the installation, into the notebook's output. Its bars fall back to text, which is what we want.
    """
    try:
        from tqdm import TqdmWarning  # noqa: PLC0415
    except ImportError:  # pragma: no cover  (tqdm is a dependency)
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
        import tqdm.auto  # noqa: F401, PLC0415


_quiet_tqdm_auto()

# ----- constants -------------------------------------------------------------------------------
FEATURE_VERSION = 1  # bump whenever summary_features changes meaning: it is part of the cache key
CACHE_FORMAT = "condspace.training_set/1"
POSTERIOR_FORMAT = "condspace.posterior/2"  # 2: an ensemble of flows
MIN_SPIKES = _features.MIN_SPIKES  # trains with fewer spikes are silent: no ISI statistics exist

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

# Predictive-check tolerances (issue "Inferring the degenerate set from spike times").
RATE_TOLERANCE = 0.10  # tonic: rate within 10 %
SPB_TOLERANCE = 1.0  # bursting: spikes per burst within ±1
PERIOD_TOLERANCE = 0.15  # bursting: burst period within 15 %


# ----- prior -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prior:
    """A uniform box prior on named conductances (mS/cm²).

    Attributes:
        names: Conductance names (``"g_Na"``, ...), the order of every θ array.
        low: (d,) lower bounds.
        high: (d,) upper bounds, each > ``low``.
    """

    names: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray

    def __post_init__(self) -> None:
        low = np.asarray(self.low, dtype=float)
        high = np.asarray(self.high, dtype=float)
        if low.shape != (len(self.names),) or high.shape != low.shape:
            raise ValueError(f"Prior: low and high need shape ({len(self.names)},) to match names {self.names}, "
                             f"got {low.shape} and {high.shape}")
        bad = ~(np.isfinite(low) & np.isfinite(high) & (high > low))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"Prior: bounds of {self.names[i]} are [{low[i]}, {high[i]}]; need finite low < high")
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def dim(self) -> int:
        """Number of inferred parameters d."""
        return len(self.names)

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """(n, d) independent uniform draws (float64)."""
        rng = np.random.default_rng(seed)
        return self.low + (self.high - self.low) * rng.random((int(n), self.dim))

    def contains(self, theta: Any) -> np.ndarray:
        """(n,) bool: rows of ``theta`` (n, d) inside the closed box."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        return np.all((theta >= self.low) & (theta <= self.high), axis=1)

    def torch(self):
        """The same prior as an ``sbi`` ``BoxUniform`` (float32), for use with ``sbi`` directly."""
        import torch  # noqa: PLC0415
        from sbi.utils import BoxUniform  # noqa: PLC0415

        return BoxUniform(torch.as_tensor(self.low, dtype=torch.float32),
                          torch.as_tensor(self.high, dtype=torch.float32))

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (for JSON, cache keys and saved posteriors)."""
        return {"names": list(self.names), "low": [float(v) for v in self.low],
                "high": [float(v) for v in self.high]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Prior:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(d["names"]), np.asarray(d["low"], dtype=float), np.asarray(d["high"], dtype=float))

    def frame(self, theta: Any) -> pd.DataFrame:
        """``theta`` (n, d) as a DataFrame with one column per conductance."""
        return pd.DataFrame(np.atleast_2d(np.asarray(theta, dtype=float)), columns=list(self.names))


def make_prior(cell: str | CellType, bounds: Mapping[str, tuple[float, float]] | None = None,
               widen: bool = True) -> Prior:
    """The uniform prior on a cell's inferred conductances.

    Uniform, not log-uniform: the literature box starts at 0 for every active channel ("channel
    absent" is a legitimate member of a degenerate set, and log-uniform needs an arbitrary positive
    floor); a log-uniform prior would put most of its mass at conductances too small to matter;
    and SCIENCE.md §6 and Gonçalves et al. (2020) measured with uniform priors, so our numbers stay
    comparable. Conductances in ``cell.fixed`` (DA NMDA) are not inferred.

    Args:
        cell: Cell type or its name.
        bounds: Optional overrides name → (low, high) in mS/cm².
        widen: Apply the cell's ``prior_widening`` (default), e.g. so that the published examples
            lie inside (:meth:`condspace.channels.CellType.prior_box`).

    Raises:
        KeyError: ``bounds`` names a conductance that is not inferred for this cell.
    """
    cell = _cells.get(cell)
    box = cell.prior_box() if widen else {name: tuple(map(float, cell.box[name])) for name in cell.inferred_names}
    for name, lohi in (bounds or {}).items():
        if name not in box:
            raise KeyError(f"bounds: {name!r} is not an inferred conductance of {cell.name!r}; "
                           f"inferred: {cell.inferred_names}")
        box[name] = (float(lohi[0]), float(lohi[1]))
    names = cell.inferred_names
    return Prior(names, np.array([box[n][0] for n in names]), np.array([box[n][1] for n in names]))


def conductances(cell: str | CellType, prior: Prior, theta: Any) -> np.ndarray:
    """(N, n_channels) conductance matrix: θ (N, d) in ``prior.names`` order plus ``cell.fixed``."""
    cell = _cells.get(cell)
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    if theta.shape[1] != prior.dim:
        raise ValueError(f"theta: expected shape (N, {prior.dim}) with columns {prior.names}, got {theta.shape}")
    g = np.empty((theta.shape[0], cell.n_channels))
    for j, name in enumerate(cell.conductance_names):
        if name in prior.names:
            g[:, j] = theta[:, prior.names.index(name)]
        elif name in cell.fixed:
            g[:, j] = cell.fixed[name]
        else:
            raise ValueError(f"prior: {name} is neither inferred nor fixed for cell {cell.name!r}")
    return g


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
    keep = np.flatnonzero(counts >= MIN_SPIKES)
    if keep.size == 0:
        return out
    t = np.concatenate([trains[i] for i in keep])
    if not np.all(np.isfinite(t)):
        raise ValueError("spike_times: non-finite spike time")
    owner = np.repeat(np.arange(keep.size), counts[keep])
    same = owner[1:] == owner[:-1]
    isi = np.diff(t)[same]
    isi_owner = owner[1:][same]
    if np.any(isi <= 0):
        raise ValueError("spike_times: a train is not strictly increasing; sort the times and drop duplicates")
    out[keep] = _isi_statistics(isi, isi_owner, keep.size, counts[keep], duration)
    return out


def _isi_statistics(isi: np.ndarray, owner: np.ndarray, m: int, counts: np.ndarray, duration: float) -> np.ndarray:
    """Vectorised per-train ISI statistics; ``owner`` is sorted, every train has ≥ 2 ISIs."""
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
    mu = mean(isi)
    cv = np.sqrt(np.maximum(mean((isi - mu[owner]) ** 2), 0.0)) / mu
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


# ----- simulator -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Protocol:
    """How a training simulation is run (passed to :func:`condspace.simulate`).

    Attributes:
        t_max: Simulated time (ms).
        transient: Discarded initial time (ms); the analysed window is t_max − transient.
        dt: Time step (ms).
        noise_std: Standard deviation of the filtered noise current (µA/cm²), 0 for none.
        method: Rate evaluation of the integrator (``"table"`` or ``"exact"``).
    """

    t_max: float
    transient: float
    dt: float = 0.05
    noise_std: float = 0.0
    method: str = "table"

    @property
    def duration(self) -> float:
        """Analysed window t_max − transient (ms)."""
        return self.t_max - self.transient

    @classmethod
    def for_cell(cls, cell: str | CellType, **overrides: Any) -> Protocol:
        """The literature protocol of a cell (``cell.protocol``: t_max, transient, dt), with optional overrides."""
        cell = _cells.get(cell)
        kw = {key: float(cell.protocol[key]) for key in ("t_max", "transient", "dt")}
        kw.update(overrides)
        return cls(**kw)


@dataclass
class SimulatedFeatures:
    """What :func:`simulate_features` returns.

    Attributes:
        x: (N, F) summary features; NaN rows where not ``valid``.
        valid: (N,) bool: simulated without numerical failure and not silent.
        labels: (N,) activity class from :func:`condspace.features.extract`.
        spike_times: The N spike trains (ms).
        wall_s: Simulation wall time (s).
    """

    x: np.ndarray
    valid: np.ndarray
    labels: np.ndarray
    spike_times: list[np.ndarray]
    wall_s: float

    @property
    def excluded_fraction(self) -> float:
        """Fraction of simulations excluded (silent or invalid)."""
        return float(1.0 - self.valid.mean()) if self.valid.size else 0.0


def simulate_features(cell: str | CellType, prior: Prior, theta: Any, protocol: Protocol | None = None, *,
                      seed: int | None = 0, backend: str = "numpy", progress: bool | None = None,
                      client: Any = None) -> SimulatedFeatures:
    """Simulate a whole batch of conductance vectors in one call and compute their features.

    Args:
        cell: Cell type or its name.
        prior: Gives the column order of ``theta``.
        theta: (N, d) inferred conductances (mS/cm²).
        protocol: Simulation protocol; default the cell's literature protocol.
        seed: Noise seed (only used when ``protocol.noise_std > 0``).
        backend: Array backend of the integrator.
        progress: Progress bar (see :func:`condspace.simulate`).
        client: A ``distributed.Client`` to run the simulations on (see :func:`condspace.simulate`).
    """
    from condspace.simulate import simulate  # noqa: PLC0415

    cell = _cells.get(cell)
    protocol = protocol or Protocol.for_cell(cell)
    g = conductances(cell, prior, theta)
    res = simulate(cell, g, t_max=protocol.t_max, transient=protocol.transient, dt=protocol.dt,
                   noise_std=protocol.noise_std, seed=seed, backend=backend, method=protocol.method,
                   progress=progress, client=client)
    labels = _features.classify(res.spike_times, ok=np.asarray(res.ok, dtype=bool)).to_numpy()
    x = summary_features(res.spike_times, protocol.duration)
    valid = np.isin(labels, ("spiking", "bursting")) & np.all(np.isfinite(x), axis=1)
    x[~valid] = np.nan
    return SimulatedFeatures(x, valid, labels.astype(str), res.spike_times, float(res.metadata["wall_s"]))


# ----- the training-set cache --------------------------------------------------------------------
def default_cache_dir() -> Path:
    """Where training sets and posteriors are cached.

    ``$CONDSPACE_CACHE`` if set; else ``.cache/condspace`` in the repository root when the package
    runs from a source checkout (gitignored); else ``~/.cache/condspace``.
    """
    env = os.environ.get("CONDSPACE_CACHE")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").exists() and os.access(root, os.W_OK):
        return root / ".cache" / "condspace"
    return Path.home() / ".cache" / "condspace"


FINGERPRINT_MS = 300.0  # ms simulated from rest per published example to fingerprint the numerics


def _fingerprint_trains() -> list[np.ndarray]:
    """Fixed synthetic spike trains (tonic, bursting, irregular) whose features are hashed."""
    rng = np.random.default_rng(20240)
    tonic = np.arange(0.0, 3000.0, 65.0)
    bursts = np.concatenate([k * 170.0 + np.arange(6) * 8.0 for k in range(17)])
    irregular = np.cumsum(rng.gamma(2.0, 25.0, 60))
    return [tonic, bursts, irregular]


def _numerical_fingerprint(cell: CellType, protocol: Protocol) -> str:
    """Hash of what the model, the integrator and the features compute on fixed inputs.

    The published examples of the cell are simulated from rest for :data:`FINGERPRINT_MS` with
    the protocol's dt, method and noise (seed 0); their spike times rounded to 1 µs are hashed
    together with the summary features of fixed synthetic trains (rounded to 1e-9). A change of
    the equations, the integrator, spike detection, the noise generator or the features moves
    these numbers by far more than the rounding; a harmless edit (docstrings, other backends,
    the order of a floating-point sum, which only perturbs the last bits) does not. The run is
    kept short because a long bursting trajectory amplifies last-bit differences (chaos).
    """
    from condspace.simulate import simulate  # noqa: PLC0415

    g = np.array([[ex[n] for n in cell.conductance_names] for ex in cell.examples.values()])
    res = simulate(cell, g, t_max=FINGERPRINT_MS, transient=0.0, dt=protocol.dt, noise_std=protocol.noise_std,
                   seed=0, backend="numpy", dtype="float64", method=protocol.method, progress=False)
    h = hashlib.sha256()
    for train in res.spike_times:
        h.update(np.round(np.asarray(train), 3).tobytes() + b"|")
    h.update(np.round(summary_features(_fingerprint_trains(), 3000.0), 9).tobytes())
    return h.hexdigest()[:20]


def _cell_fingerprint(cell: CellType, protocol: Protocol) -> dict[str, Any]:
    from condspace import __version__  # noqa: PLC0415

    return {"name": cell.name, "conductances": list(cell.conductance_names), "fixed": dict(cell.fixed),
            "library_version": str(__version__), "numerics": _numerical_fingerprint(cell, protocol)}


def cache_key(parts: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON-serialisable description (sorted keys), as 64 hex digits."""
    text = json.dumps(parts, sort_keys=True, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    return hashlib.sha256(text.encode()).hexdigest()


def _array_checksum(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Write ``path`` atomically (see :func:`condspace._io.atomic_write`), creating its folder first."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return _io.atomic_write(path, write, mode)


@dataclass
class TrainingSet:
    """Prior draws and their simulated summary features.

    Attributes:
        theta: (N, d) all prior draws (mS/cm²), valid or not.
        x: (N, F) summary features, NaN rows where not ``valid``.
        valid: (N,) bool; only valid rows train the posterior.
        labels: (N,) activity class of every draw.
        key: The cache key (hex) of everything that determined this set.
        info: Counts and timings: n, n_valid, excluded_fraction, class fractions, simulate_s, cached.
    """

    theta: np.ndarray
    x: np.ndarray
    valid: np.ndarray
    labels: np.ndarray
    key: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def excluded_fraction(self) -> float:
        """Fraction of the draws excluded from training."""
        return float(1.0 - self.valid.mean())

    def arrays(self) -> dict[str, np.ndarray]:
        """The stored arrays (labels as fixed-width unicode: no pickles)."""
        return {"theta": self.theta, "x": self.x, "valid": self.valid, "labels": self.labels.astype("U16")}


def save_training_set(path: str | Path, ts: TrainingSet) -> Path:
    """Write ``ts`` as an ``.npz`` with its key and a checksum inside, atomically."""
    arrays = ts.arrays()
    meta = {"format": CACHE_FORMAT, "key": ts.key, "family": ts.info.get("family"), "checksum": _array_checksum(arrays),
            "info": ts.info}
    blob = {**arrays, "meta": np.array(json.dumps(meta, default=float))}
    return atomic_write(path, lambda fh: np.savez(fh, **blob))


def load_training_set(path: str | Path, key: str) -> TrainingSet:
    """Read a cached training set and verify it.

    Raises:
        ValueError: The file is unreadable or truncated, its format or key differs from ``key``,
            or its arrays do not match the stored checksum.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in ("theta", "x", "valid", "labels")}
    except Exception as err:  # zipfile/EOF/KeyError/JSON errors: all mean "not a valid cache file"
        raise ValueError(f"cache file {path} is unreadable ({type(err).__name__}: {err})") from err
    if meta.get("format") != CACHE_FORMAT:
        raise ValueError(f"cache file {path} has format {meta.get('format')!r}, expected {CACHE_FORMAT!r}")
    if meta.get("key") != key:
        raise ValueError(f"cache file {path} holds key {str(meta.get('key'))[:12]}…, expected {key[:12]}…")
    if _array_checksum(arrays) != meta.get("checksum"):
        raise ValueError(f"cache file {path} fails its checksum (corrupted)")
    return TrainingSet(arrays["theta"], arrays["x"], arrays["valid"].astype(bool), arrays["labels"].astype(str),
                       key, {**meta.get("info", {}), "cached": True})


def _read_meta(path: Path) -> dict[str, Any] | None:
    """The meta record of a cache file, or None when it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z["meta"]))
    except Exception:  # any unreadable file is simply not a candidate
        return None


def _related(folder: Path, name: str, family: str, n: int) -> tuple[Path, int] | None:
    """The best cached set of the same family: the smallest with ≥ n draws, else the largest."""
    found = []
    for path in folder.glob(f"{name}_*.npz"):
        meta = _read_meta(path)
        if meta and meta.get("family") == family and meta.get("format") == CACHE_FORMAT:
            found.append((int(meta["info"]["n"]), path))
    if not found:
        return None
    bigger = sorted(f for f in found if f[0] >= n)
    n_old, path = bigger[0] if bigger else max(found)
    return path, n_old


def _finish(theta: np.ndarray, x: Any, valid: Any, labels: Any, key: str, family: str, wall: float,
            extra: Mapping[str, Any] | None = None) -> TrainingSet:
    x = np.asarray(x, dtype=float)
    flagged = ~np.asarray(valid, dtype=bool)
    nonfinite = ~flagged & ~np.all(np.isfinite(x), axis=1)
    valid = ~flagged & ~nonfinite
    x = np.where(valid[:, None], x, np.nan)
    labels = np.asarray(labels).astype(str)
    classes, counts = np.unique(labels, return_counts=True)
    n = len(theta)
    info = {"n": int(n), "n_valid": int(valid.sum()), "n_flagged": int(flagged.sum()),
            "n_nonfinite": int(nonfinite.sum()), "excluded_fraction": float(1 - valid.mean()),
            "class_fractions": {str(c): float(k / n) for c, k in zip(classes, counts, strict=True)},
            "simulate_s": wall, "cached": False, "family": family, **dict(extra or {})}
    return TrainingSet(theta, x, valid, labels, key, info)


def cached_simulations(simulator: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
                       prior: Prior, n: int, *, seed: int, key_parts: Mapping[str, Any],
                       cache_dir: str | Path | None = None, use_cache: bool = True, name: str = "sims",
                       row_independent: bool = False) -> TrainingSet:
    """Draw ``n`` parameters from the prior, simulate them, cache the result.

    The cache file is ``<cache_dir>/<name>_<key[:20]>.npz`` where the key hashes ``key_parts``,
    the prior, ``n``, ``seed``, :data:`FEATURE_VERSION` and the cache format. A file that cannot
    be read, has another key or fails its checksum is reported with a warning and rebuilt.

    The first n draws of a seed are the same for every n. When ``row_independent`` (each row's
    result depends only on its θ, e.g. a noiseless simulator), a cached set of the same family
    (same key apart from n) is reused: its first n rows if it is larger, or it is extended by
    simulating only the missing draws. The result is identical to a fresh computation.

    Args:
        simulator: θ (n, d) → (x (n, F), valid (n,) bool, labels (n,) str). Rows with non-finite
            x are also excluded (and counted as ``n_nonfinite``).
        prior: The prior to draw from.
        n: Number of draws.
        seed: Seed of the draws (and passed to nothing else: seed the simulator yourself).
        key_parts: Everything else that determines the simulations (simulator, protocol, ...).
        cache_dir: Folder; default :func:`default_cache_dir`.
        use_cache: False to neither read nor write the cache.
        name: File name prefix.
        row_independent: Allow reuse of smaller or larger cached sets of the same family.
    """
    if int(n) < 1:
        raise ValueError(f"n: the number of simulations must be ≥ 1, got {n}")
    base = {"format": CACHE_FORMAT, "prior": prior.to_dict(), "seed": int(seed), "feature_version": FEATURE_VERSION,
            **dict(key_parts)}
    family, key = cache_key(base), cache_key({**base, "n": int(n)})
    folder = Path(cache_dir or default_cache_dir())
    path = folder / f"{name}_{key[:20]}.npz"
    if use_cache and path.exists():
        try:
            return load_training_set(path, key)
        except ValueError as err:
            warnings.warn(f"{err}; rebuilding it", RuntimeWarning, stacklevel=2)
    theta = prior.sample(n, seed)
    old = _related(folder, name, family, n) if use_cache and row_independent else None
    if old is not None:
        try:
            prev = load_training_set(old[0], cache_key({**base, "n": old[1]}))
        except ValueError as err:
            warnings.warn(f"{err}; not reused", RuntimeWarning, stacklevel=2)
            old = None
    if old is not None and old[1] >= n:  # a prefix of a larger set: nothing to simulate
        ts = _finish(prev.theta[:n], prev.x[:n], prev.valid[:n], prev.labels[:n], key, family,
                     prev.info["simulate_s"] * n / old[1], {"prefix_of": old[1]})
        ts.info["cached"] = True
        return ts
    start = old[1] if old is not None else 0
    t0 = time.perf_counter()
    x, valid, labels = simulator(theta[start:])
    wall = time.perf_counter() - t0
    if old is not None:
        x, valid = np.concatenate([prev.x, x]), np.concatenate([prev.valid, valid])
        labels = np.concatenate([prev.labels, np.asarray(labels).astype(str)])
        wall += prev.info["simulate_s"]
    ts = _finish(theta, x, valid, labels, key, family, wall, {"extended_from": start} if start else None)
    if use_cache:
        save_training_set(path, ts)
    return ts


def training_set(cell: str | CellType, n: int | None = None, *, prior: Prior | None = None,
                 protocol: Protocol | None = None,
                 seed: int = 0, backend: str = "numpy", cache_dir: str | Path | None = None,
                 use_cache: bool = True, progress: bool | None = None, client: Any = None) -> TrainingSet:
    """Simulate (or load from the cache) ``n`` prior draws of a cell and their summary features.

    Args:
        cell: Cell type or its name.
        n: Number of prior draws (silent and invalid ones are kept but marked not valid); default the
            cell's ``inference_budget``.
        prior: Default :func:`make_prior` of the cell.
        protocol: Default :meth:`Protocol.for_cell`.
        seed: Seed of the prior draws and of the noise.
        backend: Integrator backend (not part of the key: both give the same float64 results).
        cache_dir: Cache folder, default :func:`default_cache_dir`.
        use_cache: Read and write the cache.
        progress: Progress bar of the simulation.
        client: A ``distributed.Client``: the simulations run as Dask tasks on its workers
            (identical results, so not part of the cache key either; ``pip install -e .[dask]``).
    """
    cell = _cells.get(cell)
    n = cell.inference_budget if n is None else n
    prior = prior or make_prior(cell)
    protocol = protocol or Protocol.for_cell(cell)

    def simulator(theta: np.ndarray):
        sim = simulate_features(cell, prior, theta, protocol, seed=seed, backend=backend, progress=progress,
                                client=client)
        return sim.x, sim.valid, sim.labels

    parts = {"cell": _cell_fingerprint(cell, protocol), "protocol": asdict(protocol), "features": list(SUMMARY_NAMES),
             "classes": {"min_spikes": _features.MIN_SPIKES, "cv_threshold": _features.CV_THRESHOLD}}
    return cached_simulations(simulator, prior, n, seed=seed, key_parts=parts, cache_dir=cache_dir,
                              use_cache=use_cache, name=f"train_{cell.name}",
                              row_independent=protocol.noise_std == 0)


# ----- the density estimator ----------------------------------------------------------------------
@dataclass(frozen=True)
class EstimatorSettings:
    """Builder and training settings of the neural posterior estimator.

    The default is a neural spline flow (NSF, Durkan et al. 2019): on this problem a masked
    autoregressive flow (MAF) is overconfident (joint-HPD coverage ≈ 0.30 at nominal 0.5) at
    every budget, while an NSF is far better calibrated and leaks less (SCIENCE.md §6).

    ``transform="none"`` is the default although it leaks mass outside the prior box (rejected
    when sampling, reported by :func:`leakage`): with ``"logit"`` (no leakage by construction)
    the flow was overconfident for conductances near the edges of the box (STG, 20,000
    simulations: joint-HPD coverage 0.30 at nominal 0.5 for true values within 5 % of a bound,
    0.39 overall, against 0.44 overall with ``"none"``). Batches of 1024 at learning rate 1e-3
    train 2.6× faster per epoch than sbi's default 256 / 5e-4, at equal calibration.

    ``ensemble=2``: the posterior is the equal mixture of two flows trained on the same simulations
    from different initialisations and batch orders (Lakshminarayanan et al. 2017; recommended
    against the overconfidence of single NPE flows by Hermans et al. 2022). Measured on STG with
    30,000 simulations (944 active held-out draws, 1000 samples each): single flows gave joint-HPD
    coverage 0.38–0.41 at nominal 0.5 and 0.83–0.85 at 0.9; every pair of them 0.48–0.52 and
    0.88–0.91; three 0.54 and 0.91. The predictive checks of the shipped recordings stayed above
    0.84. The members train in parallel processes (one per core), so on two cores a pair costs
    the wall time of one flow.

    Attributes:
        model: ``"nsf"`` or ``"maf"`` (``sbi`` nflows builders).
        hidden_features: Width of the conditioner networks.
        num_transforms: Number of flow layers.
        num_bins: Spline bins (NSF only).
        tail_bound: The splines act on [−tail_bound, tail_bound] (z-scored units) and are the
            identity outside (NSF only); the base density is Gaussian, so the tails beyond are
            Gaussian too.
        transform: ``"none"`` trains on θ (z-scored) and rejects samples outside the box;
            ``"logit"`` trains on logit((θ − low)/(high − low)), so that every sample lies inside.
        batch_size: Training batch size.
        learning_rate: Adam learning rate.
        validation_fraction: Held out for early stopping.
        stop_after_epochs: Patience of early stopping.
        max_epochs: Upper bound on epochs (small in FAST mode).
        class_restriction: Multiply the flow by P(observed class | θ) (:class:`ClassRestriction`,
            trained by :func:`trained_posterior` on the same simulations).
        ensemble: Number of flows in the mixture (member k is trained with seed ``seed + k``).
    """

    model: str = "nsf"
    hidden_features: int = 64
    num_transforms: int = 5
    num_bins: int = 10
    tail_bound: float = 3.0
    transform: str = "none"
    batch_size: int = 1024
    learning_rate: float = 1e-3
    validation_fraction: float = 0.1
    stop_after_epochs: int = 20
    max_epochs: int = 300
    class_restriction: bool = True
    ensemble: int = 2

    def __post_init__(self) -> None:
        if self.model not in ("nsf", "maf"):
            raise ValueError(f"model must be 'nsf' or 'maf', got {self.model!r}")
        if self.transform not in ("logit", "none"):
            raise ValueError(f"transform must be 'logit' or 'none', got {self.transform!r}")
        if self.max_epochs < 1 or self.batch_size < 1 or self.hidden_features < 1:
            raise ValueError("max_epochs, batch_size and hidden_features must be ≥ 1")
        if isinstance(self.ensemble, bool) or int(self.ensemble) != self.ensemble or self.ensemble < 1:
            raise ValueError(f"ensemble must be a positive integer (number of flows), got {self.ensemble!r}")


def standard_settings(max_epochs: int | None = None) -> EstimatorSettings:
    """The estimator used with a cell's ``inference_budget`` (optionally with fewer epochs)."""
    base = EstimatorSettings()
    return base if max_epochs is None else EstimatorSettings(**{**asdict(base), "max_epochs": int(max_epochs)})


class _NoTracker:
    """An ``sbi`` tracker that records nothing (otherwise NPE writes ``sbi-logs/`` in the cwd)."""

    log_dir = None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:  # noqa: D102
        pass

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:  # noqa: D102
        pass

    def log_params(self, params: dict) -> None:  # noqa: D102
        pass

    def add_figure(self, name: str, figure: Any, step: int | None = None) -> None:  # noqa: D102
        pass

    def flush(self) -> None:  # noqa: D102
        pass


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads (1 on a shared 2-core machine), then restore."""
    import torch  # noqa: PLC0415

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


_EPS = 1e-6  # keeps logit finite for draws that sit exactly on a bound


def _to_unbounded(theta: np.ndarray, prior: Prior, transform: str) -> np.ndarray:
    if transform == "none":
        return theta
    u = np.clip((theta - prior.low) / (prior.high - prior.low), _EPS, 1 - _EPS)
    return np.log(u) - np.log1p(-u)


def _from_unbounded(phi: np.ndarray, prior: Prior, transform: str) -> np.ndarray:
    if transform == "none":
        return phi
    return prior.low + (prior.high - prior.low) / (1.0 + np.exp(-phi))


def _log_jacobian(theta: np.ndarray, prior: Prior, transform: str) -> np.ndarray:
    """log |dφ/dθ| summed over dimensions (0 without transform)."""
    if transform == "none":
        return np.zeros(theta.shape[:-1])
    width = prior.high - prior.low
    u = np.clip((theta - prior.low) / width, _EPS, 1 - _EPS)
    return np.sum(-np.log(u) - np.log1p(-u) - np.log(width), axis=-1)


def _build_estimator(settings: EstimatorSettings, theta_t, x_t):
    """Build the (untrained) flow; z-scoring statistics come from the batch given."""
    from sbi.neural_nets.net_builders.flow import build_maf, build_nsf  # noqa: PLC0415

    kw = {"hidden_features": settings.hidden_features, "num_transforms": settings.num_transforms,
          "z_score_x": "independent", "z_score_y": "independent"}
    if settings.model == "nsf":
        return build_nsf(theta_t, x_t, num_bins=settings.num_bins, tail_bound=settings.tail_bound, **kw)
    return build_maf(theta_t, x_t, **kw)


def _logistic_prior(d: int):
    """Pushforward of U(0, 1)^d under logit: the prior NPE sees in the unbounded space."""
    import torch  # noqa: PLC0415
    from torch.distributions import Independent, SigmoidTransform, TransformedDistribution, Uniform  # noqa: PLC0415

    base = Uniform(torch.zeros(d), torch.ones(d))
    return Independent(TransformedDistribution(base, [SigmoidTransform().inv]), 1)


class FlowEnsemble:
    """Equal-weight mixture of K trained conditional flows: q(θ | x) = (1/K) Σ_k q_k(θ | x).

    Offers the part of the ``sbi`` estimator interface that :class:`Posterior` uses (``sample``,
    ``log_prob``, ``eval``, ``state_dict``, ``load_state_dict``), with the members' parameters
    stored under the prefixes ``"0."``, ``"1."``, ...

    Args:
        members: The K flows (``sbi`` conditional density estimators on the same space).
    """

    def __init__(self, members: Sequence[Any]) -> None:
        if len(members) < 1:
            raise ValueError("members: an ensemble needs at least one flow")
        self.members = list(members)

    def __len__(self) -> int:
        return len(self.members)

    def sample(self, sample_shape: tuple[int, ...], condition: Any) -> Any:
        """(n, B, d) draws: each draw picks a member uniformly at random (torch's RNG), then samples it."""
        import torch  # noqa: PLC0415

        n = int(sample_shape[0])
        if len(self.members) == 1:
            return self.members[0].sample((n,), condition=condition)
        which = torch.randint(len(self.members), (n,))
        out = None
        for k, member in enumerate(self.members):
            rows = torch.nonzero(which == k).squeeze(1)
            if len(rows) == 0:
                continue
            draws = member.sample((len(rows),), condition=condition)
            if out is None:
                out = draws.new_empty((n, *draws.shape[1:]))
            out[rows] = draws
        return out

    def log_prob(self, theta: Any, condition: Any) -> Any:
        """log of the mixture density: logsumexp_k log q_k(θ | x) − log K (shape as the members')."""
        import torch  # noqa: PLC0415

        if len(self.members) == 1:
            return self.members[0].log_prob(theta, condition=condition)
        logs = torch.stack([m.log_prob(theta, condition=condition) for m in self.members])
        return torch.logsumexp(logs, dim=0) - float(np.log(len(self.members)))

    def eval(self) -> FlowEnsemble:
        """Put every member in evaluation mode."""
        for member in self.members:
            member.eval()
        return self

    def state_dict(self) -> dict[str, Any]:
        """The members' parameters and buffers, keys prefixed with the member index."""
        return {f"{k}.{name}": v for k, m in enumerate(self.members) for name, v in m.state_dict().items()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Load a :meth:`state_dict` (a missing or unexpected member raises ``RuntimeError``)."""
        parts: dict[int, dict[str, Any]] = {}
        for key, value in state.items():
            index, _, name = key.partition(".")
            if not index.isdigit() or int(index) >= len(self.members):
                raise RuntimeError(f"unexpected key {key!r} for an ensemble of {len(self.members)} flows")
            parts.setdefault(int(index), {})[name] = value
        if strict and len(parts) != len(self.members):
            raise RuntimeError(f"the state holds {len(parts)} flows, the ensemble has {len(self.members)}")
        for k, member_state in parts.items():
            self.members[k].load_state_dict(member_state, strict=strict)


def _build_ensemble(settings: EstimatorSettings, prior_dim: int, n_features: int, members: int) -> FlowEnsemble:
    """Untrained ensemble of ``members`` flows of the right shapes (z-scoring buffers come from a state dict)."""
    import torch  # noqa: PLC0415

    dummy_theta = torch.stack([torch.zeros(prior_dim), torch.ones(prior_dim)])
    dummy_x = torch.stack([torch.zeros(n_features), torch.ones(n_features)])
    return FlowEnsemble([_build_estimator(settings, dummy_theta, dummy_x) for _ in range(members)])


RESTRICTION_CLASSES = ("silent", "spiking", "bursting")


def _mlp(d_in: int, hidden: int, layers: int, d_out: int):
    import torch  # noqa: PLC0415

    mods, width = [], d_in
    for _ in range(layers):
        mods += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
        width = hidden
    return torch.nn.Sequential(*mods, torch.nn.Linear(width, d_out))


class ClassRestriction:
    """P(activity class | θ), a small classifier that restricts a posterior to the observed class.

    The class of a spike train (tonic or bursting, SCIENCE.md §5) is a function of its features,
    so the true posterior of a tonic recording has no mass where the simulator bursts. A flow is
    smooth and cannot represent that hard boundary; it spills mass across it. Multiplying q(θ | x)
    by P(observed class | θ) removes the spill (the restriction idea of Deistler et al. 2022,
    applied to the class instead of simulation validity). Trained on the same simulations.

    Attributes:
        net: MLP from θ scaled to [0, 1]^d to logits over :data:`RESTRICTION_CLASSES`.
        prior: Gives the scaling.
        hidden, layers: Architecture (stored to rebuild the net on loading).
        accuracy: Validation accuracy (fraction of held-back draws classified correctly).
    """

    def __init__(self, net: Any, prior: Prior, hidden: int, layers: int, accuracy: float = float("nan")) -> None:
        self.net, self.prior, self.hidden, self.layers, self.accuracy = net, prior, hidden, layers, accuracy

    def probability(self, theta: Any, label: str) -> np.ndarray:
        """P(label | θ) for θ (..., d); ``label`` is "spiking" or "bursting"."""
        import torch  # noqa: PLC0415

        theta = np.asarray(theta, dtype=float)
        u = (theta - self.prior.low) / (self.prior.high - self.prior.low)
        with torch.no_grad(), torch_threads(1):
            logits = self.net(torch.as_tensor(u.reshape(-1, theta.shape[-1]), dtype=torch.float32))
            prob = torch.softmax(logits, dim=-1)[:, RESTRICTION_CLASSES.index(label)].double().numpy()
        return prob.reshape(theta.shape[:-1])


def train_restriction(theta: Any, labels: Any, prior: Prior, *, seed: int = 0, hidden: int = 128, layers: int = 3,
                      epochs: int = 60, batch_size: int = 512) -> ClassRestriction:
    """Train :class:`ClassRestriction` on simulated (θ, class) pairs (invalid runs are ignored).

    Raises:
        ValueError: Fewer than 20 usable rows or a class missing from ``labels``.
    """
    import torch  # noqa: PLC0415

    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    labels = np.asarray(labels).astype(str)
    keep = np.isin(labels, RESTRICTION_CLASSES)
    missing = [c for c in RESTRICTION_CLASSES[1:] if not np.any(labels[keep] == c)]
    if keep.sum() < 20 or missing:
        raise ValueError(f"train_restriction: need ≥ 20 simulations with every active class; got {int(keep.sum())}, "
                         f"missing {missing}")
    u = torch.as_tensor((theta[keep] - prior.low) / (prior.high - prior.low), dtype=torch.float32)
    y = torch.as_tensor([RESTRICTION_CLASSES.index(c) for c in labels[keep]])
    n_val = max(1, len(y) // 10)
    with torch_threads(1), torch.random.fork_rng():
        torch.manual_seed(seed)
        net = _mlp(prior.dim, hidden, layers, len(RESTRICTION_CLASSES))
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        for _ in range(epochs):
            perm = torch.randperm(len(y) - n_val) + n_val
            for i in range(0, len(perm), batch_size):
                b = perm[i:i + batch_size]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(u[b]), y[b]).backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            acc = float((net(u[:n_val]).argmax(1) == y[:n_val]).float().mean())
    return ClassRestriction(net, prior, hidden, layers, acc)


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
        with probability P(observed class | θ).

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
            kept, have = [], 0
            for _ in range(max_tries):
                s = self._raw(max(2 * (n - have), 16), cond)[:, 0]
                w = np.where(np.all(np.isfinite(s), axis=1), self.weights(s[:, None, :], x)[:, 0], 0.0)
                s = s[torch.rand(len(s), dtype=torch.float64).numpy() < w]
                kept.append(s)
                have += len(s)
                if have >= n:
                    return np.concatenate(kept)[:n]
        raise RuntimeError(f"sample: fewer than {n} samples accepted after {max_tries} rounds; the flow puts almost "
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
        """Samples as a DataFrame, one column per conductance."""
        return self.prior.frame(theta)


def _train_flow(phi: np.ndarray, x: np.ndarray, prior: Prior, settings: EstimatorSettings, seed: int,
                progress: bool, epochs_done: Any = None) -> dict[str, Any]:
    """Train one flow with ``sbi``'s NPE (here or in a worker process).

    ``epochs_done``, if given, is a shared ``multiprocessing`` integer that receives the number of
    epochs trained after each epoch (the progress display of parallel training).

    Returns:
        Its ``state_dict`` (CPU tensors) and training summary: ``seed``, ``epochs``,
        ``best_validation_loss``, ``training_loss``, ``validation_loss``.
    """
    import torch  # noqa: PLC0415
    from sbi.inference import NPE  # noqa: PLC0415

    theta_t = torch.as_tensor(phi, dtype=torch.float32)
    x_t = torch.as_tensor(x, dtype=torch.float32)
    sbi_prior = _logistic_prior(prior.dim) if settings.transform == "logit" else prior.torch()
    class CountingNPE(NPE):
        def _maybe_show_progress(self, show: bool, epoch: int) -> None:  # sbi 0.27 calls it after each epoch
            super()._maybe_show_progress(show, epoch)
            if epochs_done is not None:
                epochs_done.value = int(epoch)

    # sbi prints "converged after N epochs" whatever show_progress_bars says: without a progress
    # display (parallel members, CONDSPACE_QUIET) that line would interleave with the caller's output.
    quiet = contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO())
    with torch_threads(1), torch.random.fork_rng(), quiet, warnings.catch_warnings():
        # Reaching a capped max_epochs (FAST budgets) is recorded as "reached_max_epochs" in the
        # posterior's info instead of a warning that lands, with the library's path, in the book.
        warnings.filterwarnings("ignore", message="Maximum number of epochs", category=UserWarning)
        torch.manual_seed(seed)
        npe = CountingNPE(prior=sbi_prior, density_estimator=lambda th, xx: _build_estimator(settings, th, xx),
                  tracker=_NoTracker(), show_progress_bars=progress)
        npe.append_simulations(theta_t, x_t)
        estimator = npe.train(training_batch_size=settings.batch_size, learning_rate=settings.learning_rate,
                              validation_fraction=settings.validation_fraction,
                              stop_after_epochs=settings.stop_after_epochs, max_num_epochs=settings.max_epochs,
                              show_train_summary=False)
    summ = npe.summary
    epochs = int(summ["epochs_trained"][-1])
    return {"state_dict": {k: v.detach().cpu().clone() for k, v in estimator.state_dict().items()},
            "seed": int(seed), "epochs": epochs,
            "reached_max_epochs": epochs >= settings.max_epochs,
            "best_validation_loss": float(summ["best_validation_loss"][-1]),
            "training_loss": [float(v) for v in summ["training_loss"]],
            "validation_loss": [float(v) for v in summ["validation_loss"]]}


def _train_members(phi: np.ndarray, x: np.ndarray, prior: Prior, settings: EstimatorSettings,
                   seeds: Sequence[int], workers: int, progress: bool) -> list[dict[str, Any]]:
    """Train one flow per seed: in this process (with sbi's epoch counter) or in forked workers.

    Forking after torch has run is safe here because each child trains on one torch thread
    (:func:`torch_threads`), as PyTorch's own DataLoader workers do; a spawned child would instead
    re-import the user's ``__main__`` script.
    """
    if workers <= 1 or len(seeds) == 1:
        return [_train_flow(phi, x, prior, settings, s, progress) for s in seeds]
    import multiprocessing  # noqa: PLC0415

    from tqdm.std import tqdm  # noqa: PLC0415  (tqdm.auto warns in a kernel without ipywidgets, into the book)

    epochs = [multiprocessing.get_context("fork").RawValue("i", 0) for _ in seeds]  # shared with the workers
    results: list[dict[str, Any]] = [{}] * len(seeds)
    with tqdm(total=None, unit="epoch", disable=not progress,
              desc=f"training {len(seeds)} flows in {workers} processes, epochs (all flows)") as bar:
        def refresh() -> None:
            bar.n = sum(e.value for e in epochs)
            bar.set_postfix_str(" + ".join(str(e.value) for e in epochs), refresh=False)
            bar.refresh()

        job = lambda k, _: _train_flow(phi, x, prior, settings, seeds[k], False, epochs[k])  # noqa: E731
        for k, _, result in _parallel.run_chunks(job, [(k, k + 1) for k in range(len(seeds))], workers,
                                                 poll=refresh):
            results[k] = result
        refresh()
    return results


def train(theta: Any, x: Any, prior: Prior, *, settings: EstimatorSettings | None = None, seed: int = 0,
          feature_names: Sequence[str] = SUMMARY_NAMES, cell: str = "", info: Mapping[str, Any] | None = None,
          progress: bool | None = None, workers: int | None = None) -> Posterior:
    """Train q(θ | x), an ensemble of ``settings.ensemble`` flows, with ``sbi``'s NPE on valid (θ, x) pairs.

    Member k starts from seed ``seed + k`` (initialisation and batch order) and sees the same
    pairs. Rows with any non-finite x are dropped here too. Each flow trains on one torch thread
    (STYLE.md §6) with no ``sbi-logs`` tracker; the members train in parallel worker processes,
    with results identical to training them one after the other.

    Args:
        theta: (N, d) parameters in ``prior.names`` order.
        x: (N, F) features.
        prior: The prior the θ were drawn from.
        settings: Estimator settings (default :class:`EstimatorSettings`).
        seed: Torch seed of the first member.
        feature_names: Names of the F features.
        cell: Cell type name (stored with the posterior).
        info: Extra metadata to keep (e.g. the protocol and training-set key).
        progress: Progress display (default: on unless ``CONDSPACE_QUIET`` is set).
        workers: Processes training members at once (default: ``$CONDSPACE_WORKERS``, else one
            per core, at most one per member).

    Raises:
        ValueError: Shapes disagree or fewer than 10 valid rows.
    """
    settings = settings or EstimatorSettings()
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    x = np.atleast_2d(np.asarray(x, dtype=float))
    if theta.shape[0] != x.shape[0] or theta.shape[1] != prior.dim or x.shape[1] != len(feature_names):
        raise ValueError(f"train: theta {theta.shape} and x {x.shape} must be (N, {prior.dim}) and "
                         f"(N, {len(feature_names)})")
    keep = np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(theta), axis=1)
    if keep.sum() < 10:
        raise ValueError(f"train: only {int(keep.sum())} valid simulations; need at least 10")
    if progress is None:
        progress = not os.environ.get("CONDSPACE_QUIET")
    phi = _to_unbounded(theta[keep], prior, settings.transform)
    seeds = [int(seed) + k for k in range(settings.ensemble)]
    n_proc = min(_parallel.worker_count(workers, len(seeds), 2), len(seeds))
    t0 = time.perf_counter()
    members = _train_members(phi, x[keep], prior, settings, seeds, n_proc, progress)
    estimator = _build_ensemble(settings, prior.dim, x.shape[1], len(members))
    estimator.load_state_dict({f"{k}.{name}": v for k, m in enumerate(members) for name, v in m["state_dict"].items()})
    estimator.eval()
    per_member = {key: [m[key] for m in members]  # one entry per flow
                  for key in ("epochs", "reached_max_epochs", "best_validation_loss", "training_loss",
                              "validation_loss")}
    meta = {**dict(info or {}), "n_train": int(keep.sum()), "seed": int(seed), "member_seeds": seeds,
            "train_s": time.perf_counter() - t0, "train_processes": n_proc, "versions": versions(), **per_member}
    return Posterior(estimator, prior, settings, feature_names, cell, meta)


def versions() -> dict[str, str]:
    """Versions of the packages that determine a trained posterior."""
    import sbi  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from condspace import __version__  # noqa: PLC0415

    # str(): torch.__version__ is a TorchVersion, which weights_only loading refuses to unpickle.
    return {"condspace": str(__version__), "sbi": str(sbi.__version__), "torch": str(torch.__version__),
            "numpy": str(np.__version__)}


# ----- saving and loading ------------------------------------------------------------------------
def _plain(obj: Any) -> Any:
    """Convert numpy scalars/arrays inside dicts/lists into plain Python (for weights_only loading)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, str):
        return str(obj)  # str subclasses (TorchVersion) are not plain
    return obj


def save_posterior(path: str | Path, posterior: Posterior) -> Path:
    """Save a posterior as plain tensors and dicts (``torch.save``), atomically, behind a checksum.

    Stores the estimator's ``state_dict``, the builder settings, the prior bounds and names, the
    feature names, the cell name, the training metadata and package versions, and the class
    restriction (classifier) if any; no pickled objects, so :func:`load_posterior` can use
    ``weights_only=True``. The file is a SHA-256 header line followed by the ``torch.save`` bytes
    (:func:`condspace._io.write_checked`): a one-byte change anywhere is detected on load.
    """
    import torch  # noqa: PLC0415

    blob = {
        "format": POSTERIOR_FORMAT,
        "members": len(posterior.estimator),
        "state_dict": {k: v.detach().cpu().clone() for k, v in posterior.estimator.state_dict().items()},
        "settings": _plain(asdict(posterior.settings)),
        "prior": posterior.prior.to_dict(),
        "feature_names": list(posterior.feature_names),
        "cell": posterior.cell,
        "info": _plain(posterior.info),
        "versions": versions(),
        "restriction": None if posterior.restriction is None else {
            "state_dict": {k: v.detach().cpu().clone() for k, v in posterior.restriction.net.state_dict().items()},
            "hidden": posterior.restriction.hidden, "layers": posterior.restriction.layers,
            "accuracy": float(posterior.restriction.accuracy)},
    }
    buf = io.BytesIO()
    torch.save(blob, buf)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return _io.write_checked(path, buf.getvalue())


def load_posterior(path: str | Path) -> Posterior:
    """Rebuild a posterior saved by :func:`save_posterior` (``torch.load(weights_only=True)``).

    Raises:
        ValueError: A damaged file (fails its checksum; :class:`condspace._io.ChecksumError`), a
            file without a checksum (older format), another format, or a state dict that does not
            fit the settings; the message names the file.
    """
    import torch  # noqa: PLC0415

    try:
        payload = _io.read_checked(path)  # ChecksumError (a ValueError) names a damaged file
    except OSError as err:
        raise ValueError(f"posterior file {path} is unreadable ({err.strerror or err})") from err
    try:
        blob = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, unpickling refused, ...
        raise ValueError(f"posterior file {path} is unreadable ({type(err).__name__}: {err})") from err
    if not isinstance(blob, dict) or blob.get("format") != POSTERIOR_FORMAT:
        raise ValueError(f"posterior file {path} is not a {POSTERIOR_FORMAT} file")
    missing = [k for k in ("members", "state_dict", "settings", "prior", "feature_names", "cell") if k not in blob]
    if missing:
        raise ValueError(f"posterior file {path} lacks {missing}")
    members = blob["members"]
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ValueError(f"posterior file {path}: no valid number of flows ('members': {members!r})")
    settings = EstimatorSettings(**blob["settings"])
    prior = Prior.from_dict(blob["prior"])
    names = blob["feature_names"]
    estimator = _build_ensemble(settings, prior.dim, len(names), members)
    try:
        estimator.load_state_dict(blob["state_dict"], strict=True)
    except RuntimeError as err:
        raise ValueError(f"posterior file {path}: the saved weights do not fit the saved settings ({err})") from err
    estimator.eval()
    restriction = None
    if blob.get("restriction") is not None:
        r = blob["restriction"]
        net = _mlp(prior.dim, int(r["hidden"]), int(r["layers"]), len(RESTRICTION_CLASSES))
        try:
            net.load_state_dict(r["state_dict"], strict=True)
        except RuntimeError as err:
            raise ValueError(f"posterior file {path}: the saved restriction does not fit its settings ({err})") from err
        net.eval()
        restriction = ClassRestriction(net, prior, int(r["hidden"]), int(r["layers"]), float(r["accuracy"]))
    return Posterior(estimator, prior, settings, names, blob["cell"], blob.get("info", {}), restriction)


def estimator_code_hash() -> str:
    """Hash of the source of everything that trains or evaluates a posterior.

    Part of the posterior cache key: a change to the estimator code, made without a new package
    version, must not reuse a posterior trained by the old code (a stale cached posterior once
    served a different network under an unchanged key). Comments count too: a retraining too many
    is cheaper than a silently stale result.
    """
    import inspect  # noqa: PLC0415

    parts = (EstimatorSettings, _to_unbounded, _from_unbounded, _log_jacobian, _build_estimator, _logistic_prior,
             FlowEnsemble, _build_ensemble, _mlp, ClassRestriction, train_restriction, Posterior, _train_flow,
             _train_members, train)
    h = hashlib.sha256()
    for obj in parts:
        try:
            h.update(inspect.getsource(obj).encode())
        except (OSError, TypeError):  # no source shipped: fall back on the object's name
            h.update(obj.__qualname__.encode())
    return h.hexdigest()[:16]


def trained_posterior(cell: str | CellType, n: int | None = None, *, settings: EstimatorSettings | None = None,
                      prior: Prior | None = None, protocol: Protocol | None = None, seed: int = 0,
                      backend: str = "numpy", cache_dir: str | Path | None = None, use_cache: bool = True,
                      progress: bool | None = None) -> tuple[Posterior, TrainingSet]:
    """Training set + trained posterior for a cell, both cached (the posterior under a key that
    adds the estimator settings, library versions and :func:`estimator_code_hash` to the
    training-set key). ``n`` training simulations, by default the cell's ``inference_budget``.

    Returns:
        (posterior, training set). ``posterior.info["cached"]`` tells whether it was loaded.
    """
    cell = _cells.get(cell)
    n = cell.inference_budget if n is None else n
    settings = settings or EstimatorSettings()
    prior = prior or make_prior(cell)
    protocol = protocol or Protocol.for_cell(cell)
    ts = training_set(cell, n, prior=prior, protocol=protocol, seed=seed, backend=backend, cache_dir=cache_dir,
                      use_cache=use_cache, progress=progress)
    key = cache_key({"training_set": ts.key, "settings": asdict(settings), "seed": seed, "versions": versions(),
                     "format": POSTERIOR_FORMAT, "estimator_code": estimator_code_hash()})
    path = Path(cache_dir or default_cache_dir()) / f"posterior_{cell.name}_{key[:20]}.pt"
    if use_cache and path.exists():
        try:
            post = load_posterior(path)
            if post.info.get("key") != key:
                raise ValueError(f"posterior file {path} holds another key")
            post.info["cached"] = True
            _buildrecord.note("caches", "posterior hit", append=True)
            return post, ts
        except ValueError as err:
            warnings.warn(f"{err}; retraining", RuntimeWarning, stacklevel=2)
    info = {"protocol": asdict(protocol), "training_key": ts.key, "training": ts.info, "key": key, "cached": False}
    post = train(ts.theta[ts.valid], ts.x[ts.valid], prior, settings=settings, seed=seed, cell=cell.name,
                 info=info, progress=progress)
    if settings.class_restriction:
        t0 = time.perf_counter()
        post.restriction = train_restriction(ts.theta, ts.labels, prior, seed=seed)
        post.info.update({"restriction_accuracy": post.restriction.accuracy,
                          "restriction_train_s": time.perf_counter() - t0})
    if use_cache:
        save_posterior(path, post)
    _buildrecord.note("caches", "posterior built", append=True)  # the book's build-status page
    return post, ts


# ----- synthetic observations ---------------------------------------------------------------------
RECORDING_DECIMALS = 3  # spike times rounded to 1 µs, as a recording system would store them


def synthetic_recordings(cell: str | CellType, spec: Mapping[str, tuple[str, float, int]],
                         protocol: Protocol | None = None) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Simulate "recordings" from published example sets, with a filtered noise current.

    Args:
        cell: Cell type or its name.
        spec: ID → (example label in ``cell.examples``, noise_std µA/cm², noise seed).
        protocol: Simulation protocol without noise (default: the cell's); each recording uses
            its own ``noise_std``. NumPy backend, float64.

    Returns:
        (ID → spike times in ms rounded to 1 µs, ground truth DataFrame indexed by ID with the
        example, every conductance, noise_std, seed, the protocol, ``duration_ms`` and the class and
        main features of the recorded train).
    """
    from condspace.simulate import simulate  # noqa: PLC0415

    cell = _cells.get(cell)
    protocol = protocol or Protocol.for_cell(cell)
    trains, rows = {}, []
    for ident, (label, noise, seed) in spec.items():
        g = cell.example(label)
        res = simulate(cell, [g], t_max=protocol.t_max, transient=protocol.transient, dt=protocol.dt,
                       noise_std=float(noise), seed=int(seed), backend="numpy", dtype="float64",
                       method=protocol.method, progress=False)
        if not res.ok[0]:
            raise RuntimeError(f"synthetic_recordings: {ident} ({label}) was flagged numerically invalid")
        trains[ident] = np.round(res.spike_times[0], RECORDING_DECIMALS)
        feats = _features.extract([trains[ident]], protocol.duration).iloc[0]
        rows.append({"ID": ident, "cell": cell.name, "example": label, **g, "noise_std": float(noise),
                     "seed": int(seed), "t_max": protocol.t_max, "transient": protocol.transient, "dt": protocol.dt,
                     "duration_ms": protocol.duration,
                     **{k: feats[k] for k in ("label", "n_spikes", "rate_hz", "cv_isi", "spikes_per_burst",
                                              "burst_period_ms")}})
    return trains, pd.DataFrame(rows).set_index("ID")


def demonstration_recordings(cell: str | CellType, folder: str | os.PathLike | None = None
                             ) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """The demonstration recordings a cell declares (``cell.recordings``), with their ground truth.

    When ``folder`` holds ``<name>_recordings.csv`` and ``<name>_ground_truth.csv`` (written by
    ``tools/make_recordings.py`` from the same declaration) they are read from there, as a user's
    recordings would be; otherwise they are simulated now by :func:`synthetic_recordings` with the
    cell's protocol. Either way the IDs are those of the declaration.

    Args:
        cell: Cell type or its name.
        folder: Folder of shipped recordings (e.g. ``"data/recordings"``), or ``None`` to simulate.

    Returns:
        (ID → spike times in ms, ground truth DataFrame indexed by ID), as :func:`synthetic_recordings`.

    Raises:
        ValueError: The shipped files do not hold exactly the declared recordings.
    """
    from condspace import recordings as _recordings  # noqa: PLC0415  (file I/O only when asked)

    cell = _cells.get(cell)
    if folder is not None:
        rec_path = Path(folder) / f"{cell.name}_recordings.csv"
        truth_path = Path(folder) / f"{cell.name}_ground_truth.csv"
        if rec_path.exists() and truth_path.exists():
            trains = _recordings.load_csv(rec_path)
            truth = pd.read_csv(truth_path, dtype={"ID": str}).set_index("ID")
            if list(trains) != list(cell.recordings) or list(truth.index) != list(cell.recordings):
                raise ValueError(f"folder: {rec_path} holds recordings {list(trains)}, but cell {cell.name!r} declares "
                                 f"{list(cell.recordings)}; regenerate them with tools/make_recordings.py")
            return trains, truth
    return synthetic_recordings(cell, cell.recordings)


# ----- checks ------------------------------------------------------------------------------------
@dataclass
class PredictiveCheck:
    """Result of :func:`predictive_check`.

    Attributes:
        fraction: Fraction of posterior samples whose simulation reproduces the observation.
        table: One row per sample: conductances, label, rate_hz, spikes_per_burst,
            burst_period_ms (and the other features of :func:`condspace.features.extract`), passed.
        observed: The observation's features (one row of :func:`condspace.features.extract`).
        criterion: The rule that was applied, in words.
    """

    fraction: float
    table: pd.DataFrame
    observed: pd.Series
    criterion: str


def reproduces(observed: pd.Series, simulated: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Which simulated trains reproduce the observed pattern (the predictive-check rule).

    Tonic spiking: same class and ``rate_hz`` within 10 %. Bursting: same class, spikes per burst
    within ±1 and burst period within 15 %. When the observed bursts are too few for a period
    (irregular trains), the rule falls back to class and rate.

    Returns:
        ((n,) bool, the rule in words).

    Raises:
        ValueError: The observation is silent or invalid.
    """
    label = observed["label"]
    same = (simulated["label"] == label).to_numpy()
    rate_ok = (np.abs(simulated["rate_hz"] - observed["rate_hz"]) <= RATE_TOLERANCE * observed["rate_hz"]).to_numpy()
    if label == "spiking":
        return same & rate_ok, "spiking, rate within 10 %"
    if label == "bursting":
        spb, per = observed["spikes_per_burst"], observed["burst_period_ms"]
        if not (np.isfinite(spb) and np.isfinite(per)):
            return same & rate_ok, "bursting (too few bursts for a period), rate within 10 %"
        spb_ok = (np.abs(simulated["spikes_per_burst"] - spb) <= SPB_TOLERANCE).to_numpy()
        per_ok = (np.abs(simulated["burst_period_ms"] - per) <= PERIOD_TOLERANCE * per).to_numpy()
        return same & spb_ok & per_ok, "bursting, spikes per burst ±1, burst period within 15 %"
    raise ValueError(f"observation: class {label!r} has no predictive check (only spiking or bursting trains "
                     "can be inferred)")


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


def held_out(cell: str | CellType, prior: Prior, n: int, protocol: Protocol | None = None, *, seed: int = 10_000,
             training_seed: int = 0, backend: str = "numpy", cache_dir: str | Path | None = None,
             use_cache: bool = True, progress: bool | None = None, client: Any = None) -> TrainingSet:
    """Held-out simulations for calibration: a :func:`training_set` with another seed.

    Raises:
        ValueError: ``seed`` equals ``training_seed``, which would reuse the training draws.
    """
    if seed == training_seed:
        raise ValueError(f"seed: held-out simulations need a seed different from the training seed {training_seed}")
    return training_set(cell, n, prior=prior, protocol=protocol, seed=seed, backend=backend, cache_dir=cache_dir,
                        use_cache=use_cache, progress=progress, client=client)


__all__ = [
    "ClassRestriction", "CloudDistance", "EstimatorSettings", "FEATURE_VERSION", "FlowEnsemble", "Posterior",
    "PredictiveCheck", "Prior", "Protocol", "SUMMARY_FEATURES", "SUMMARY_NAMES",
    "SimulatedFeatures", "TrainingSet", "atomic_write", "cache_key", "cached_simulations", "conductances",
    "default_cache_dir", "demonstration_recordings", "expected_coverage", "feature_cloud_distance", "held_out",
    "hpd_ranks", "leakage",
    "load_posterior", "load_training_set", "make_prior", "observe", "predictive_check", "reproduces",
    "save_posterior", "save_training_set", "simulate_features", "standard_settings", "summary_features",
    "summary_frame", "synthetic_recordings", "torch_threads", "train", "train_restriction", "trained_posterior",
    "versions", "estimator_code_hash",
]
