"""Training sets of (θ, x) cached on disk under a hash of everything that determines them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from condspace import _io
from condspace import cells as _cells
from condspace import features as _features
from condspace.channels import CellType
from condspace.features.summary import FEATURE_VERSION, SUMMARY_NAMES, summary_features
from condspace.inference.prior import Prior, make_prior
from condspace.inference.simulator import Protocol, simulate_features

CACHE_FORMAT = "condspace.training_set/1"


# ----- the training-set cache --------------------------------------------------------------------
def default_cache_dir() -> Path:
    """Where training sets and posteriors are cached.

    ``$CONDSPACE_CACHE`` if set; else ``.cache/condspace`` in the repository root when the package
    runs from a source checkout (gitignored); else ``~/.cache/condspace``.
    """
    env = os.environ.get("CONDSPACE_CACHE")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[3]  # lib/condspace/inference/cache.py → the checkout
    if (root / "pyproject.toml").exists() and os.access(root, os.W_OK):
        return root / ".cache" / "condspace"
    return Path.home() / ".cache" / "condspace"


FINGERPRINT_MS = 300.0  # ms simulated from rest per published example to fingerprint the numerics
NOISE_FINGERPRINT = 1.0  # µA/cm²: noise of the fingerprint run of a prior that infers the noise


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


def cell_fingerprint(cell: CellType, protocol: Protocol) -> dict[str, Any]:
    from condspace import __version__  # noqa: PLC0415

    return {"name": cell.name, "conductances": list(cell.conductance_names), "fixed": dict(cell.fixed),
            "library_version": str(__version__), "numerics": _numerical_fingerprint(cell, protocol)}


def cache_key(parts: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON-serialisable description (sorted keys), as 64 hex digits."""
    text = json.dumps(parts, sort_keys=True, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    return hashlib.sha256(text.encode()).hexdigest()


def array_checksum(arrays: Mapping[str, np.ndarray]) -> str:
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
    meta = {"format": CACHE_FORMAT, "key": ts.key, "family": ts.info.get("family"), "checksum": array_checksum(arrays),
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
    if array_checksum(arrays) != meta.get("checksum"):
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
        prior: Default :func:`make_prior` of the cell: conductances and noise strength, or the
            conductances only when ``protocol`` fixes the noise (``noise_std > 0``).
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
    protocol = protocol or Protocol.for_cell(cell)
    prior = prior or make_prior(cell, noise=0 if protocol.noise_std > 0 else None)  # a fixed noise is not inferred

    def simulator(theta: np.ndarray):
        sim = simulate_features(cell, prior, theta, protocol, seed=seed, backend=backend, progress=progress,
                                client=client)
        return sim.x, sim.valid, sim.labels

    parts = {"cell": cell_fingerprint(cell, protocol), "protocol": asdict(protocol), "features": list(SUMMARY_NAMES),
             "classes": {"min_spikes": _features.MIN_SPIKES, "cv_threshold": _features.CV_THRESHOLD}}
    if prior.has_noise:  # the prior's noise column (in prior.to_dict) drives the noise generator: fingerprint it
        parts["noise_numerics"] = _numerical_fingerprint(cell, replace(protocol, noise_std=NOISE_FINGERPRINT))
    # A row's noise stream and its misses depend on its index in the batch, so only sets with neither may be
    # extended.
    return cached_simulations(simulator, prior, n, seed=seed, key_parts=parts, cache_dir=cache_dir,
                              use_cache=use_cache, name=f"train_{cell.name}",
                              row_independent=protocol.noise_std == 0 and not prior.has_noise and not prior.has_missed)




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

