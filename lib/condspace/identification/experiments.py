"""Simulated modulation experiments: a neuron recorded before and after a neuromodulator.

Two scenarios (SCIENCE.md §6b; issue 12):

* :func:`random_experiments` (the main benchmark): ḡ is a draw of the inference prior, kept if the
  neuron fires before; every channel of the hypothesis S gets its own neuron-specific factor,
  log-uniform in magnitude between ×1.25 and ×4 (:data:`FACTOR_RANGE`), up or down with
  probability 1/2; all other conductances stay. The "before" side *is* an inference training set
  (:func:`condspace.inference.training_set` with the recording noise), so it shares that cache
  with the posterior of the DIC route.
* :func:`dic_path_experiments` (the poster's picture): a compensation population at the cell's
  tonic DIC point is moved to its bursting point along a straight path by each pair S, every
  neuron with its own change (:func:`condspace.neuromodulation.modulate_along`); only neurons that
  reach every point of the path count. Single channels cannot hit a two-dimensional target, so
  this scenario has pair hypotheses only.

Before and after are simulated with the cell's protocol and independent noise currents of the
strength of the shipped recordings (:data:`NOISE_STD`), in batches through
:func:`condspace.simulate` (compiled engine on the CPU by default; ``client=`` runs them on Dask).
A train that falls silent after the drug is kept (silence is data); runs flagged numerically
invalid are excluded and counted. Sets are cached on disk under a hash of everything that
determines them, with a checksum, written atomically (the helpers of the inference cache).
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from condspace import cells as _cells
from condspace import inference as _inf
from condspace.channels import CellType
from condspace.identification.hypotheses import hypotheses, labels, modulable_channels

FORMAT = "condspace.modulation_experiments/1"
FACTOR_RANGE = (1.25, 4.0)  # magnitude of a modulation factor (log-uniform), up or down
NOISE_STD = 0.1  # µA/cm² after filtering: the weak noise of the shipped recordings (cell.recordings)
AFTER_SEED_OFFSET = 7919  # noise seed of the "after" runs = seed + this: independent of "before"


@dataclass
class ExperimentSet:
    """Single-neuron modulation experiments.

    Attributes:
        cell: Cell type name.
        scenario: ``"random"`` or ``"dic_path"``.
        hypothesis: (N,) int index into :func:`hypotheses` of the cell.
        g_before: (N, n_channels) conductances before (mS/cm²).
        log_factor: (N, C) natural log of the factor of each modulable channel (0 = unchanged).
        x_before: (N, 11) summary features before (:data:`condspace.inference.SUMMARY_NAMES`).
        x_after: (N, 11) summary features after; NaN where the neuron fell silent.
        label_before: (N,) activity class before; ``label_after`` likewise.
        usable: (N,) bool: fires before, and both runs are numerically valid.
        key: Cache key (hex).
        info: Counts and timings.
    """

    cell: str
    scenario: str
    hypothesis: np.ndarray
    g_before: np.ndarray
    log_factor: np.ndarray
    x_before: np.ndarray
    x_after: np.ndarray
    label_before: np.ndarray
    label_after: np.ndarray
    usable: np.ndarray
    key: str
    info: dict[str, Any] = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        """The stored arrays (labels as fixed-width unicode: no pickles)."""
        return {"hypothesis": self.hypothesis, "g_before": self.g_before, "log_factor": self.log_factor,
                "x_before": self.x_before, "x_after": self.x_after, "label_before": self.label_before.astype("U16"),
                "label_after": self.label_after.astype("U16"), "usable": self.usable}

    def subset(self, mask: Any) -> ExperimentSet:
        """The experiments where ``mask`` (N,) is true (or at the given indices)."""
        a = {k: v[mask] for k, v in self.arrays().items()}
        return ExperimentSet(self.cell, self.scenario, a["hypothesis"], a["g_before"], a["log_factor"], a["x_before"],
                             a["x_after"], a["label_before"].astype(str), a["label_after"].astype(str), a["usable"],
                             self.key, dict(self.info))

    def __len__(self) -> int:
        return int(self.hypothesis.shape[0])


def save_experiments(path: str | Path, es: ExperimentSet) -> Path:
    """Write ``es`` as an ``.npz`` with its key and a checksum inside, atomically."""
    arrays = es.arrays()
    meta = {"format": FORMAT, "key": es.key, "cell": es.cell, "scenario": es.scenario,
            "checksum": _inf.array_checksum(arrays), "info": es.info}
    return _inf.atomic_write(path, lambda fh: np.savez(fh, **arrays, meta=np.array(json.dumps(meta, default=float))))


def load_experiments(path: str | Path, key: str) -> ExperimentSet:
    """Read and verify a cached experiment set.

    Raises:
        ValueError: Unreadable or truncated file, other format or key, or a failed checksum.
    """
    names = ("hypothesis", "g_before", "log_factor", "x_before", "x_after", "label_before", "label_after", "usable")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in names}
    except Exception as err:  # zip/EOF/KeyError/JSON errors all mean "not a valid cache file"
        raise ValueError(f"cache file {path} is unreadable ({type(err).__name__}: {err})") from err
    if meta.get("format") != FORMAT:
        raise ValueError(f"cache file {path} has format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("key") != key:
        raise ValueError(f"cache file {path} holds key {str(meta.get('key'))[:12]}…, expected {key[:12]}…")
    if _inf.array_checksum(arrays) != meta.get("checksum"):
        raise ValueError(f"cache file {path} fails its checksum (corrupted)")
    return ExperimentSet(meta["cell"], meta["scenario"], arrays["hypothesis"], arrays["g_before"], arrays["log_factor"],
                         arrays["x_before"], arrays["x_after"], arrays["label_before"].astype(str),
                         arrays["label_after"].astype(str), arrays["usable"].astype(bool), key,
                         {**meta.get("info", {}), "cached": True})


def _cached(name: str, parts: dict[str, Any], build, cache_dir: str | Path | None, use_cache: bool) -> ExperimentSet:
    key = _inf.cache_key({"format": FORMAT, "feature_version": _inf.FEATURE_VERSION, **parts})
    path = Path(cache_dir or _inf.default_cache_dir()) / f"{name}_{key[:20]}.npz"
    if use_cache and path.exists():
        try:
            return load_experiments(path, key)
        except ValueError as err:
            warnings.warn(f"{err}; rebuilding it", RuntimeWarning, stacklevel=3)
    es = build(key)
    if use_cache:
        save_experiments(path, es)
    return es


def recording_protocol(cell: str | CellType, noise_std: float = NOISE_STD) -> _inf.Protocol:
    """The cell's literature protocol with the noise current of the shipped recordings."""
    return _inf.Protocol.for_cell(cell, noise_std=float(noise_std))


def draw_modulations(cell: str | CellType, n: int, seed: int, factor_range: tuple[float, float] = FACTOR_RANGE,
                     n_hypotheses: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Hypotheses (uniform) and per-neuron log factors of :func:`random_experiments`.

    Returns:
        (hypothesis (n,) int, log_factor (n, C)): channels outside the hypothesis get 0; those
        inside |log f| ~ U[log lo, log hi] with a random sign.
    """
    hyps = hypotheses(cell)
    names = modulable_channels(cell)
    lo, hi = (float(v) for v in factor_range)
    if not 1.0 <= lo < hi:
        raise ValueError(f"factor_range: need 1 ≤ low < high (a magnitude), got {factor_range}")
    rng = np.random.default_rng([int(seed), 12])
    h = rng.integers(0, n_hypotheses or len(hyps), size=int(n))
    mag = rng.uniform(np.log(lo), np.log(hi), size=(int(n), 2))
    sign = np.where(rng.random((int(n), 2)) < 0.5, -1.0, 1.0)
    log_f = np.zeros((int(n), len(names)))
    for i, hi_ in enumerate(h):
        for k, ch in enumerate(hyps[hi_]):
            log_f[i, names.index(ch)] = sign[i, k] * mag[i, k]
    return h, log_f


def apply_modulation(cell: str | CellType, g: np.ndarray, log_factor: np.ndarray) -> np.ndarray:
    """(N, n_channels) conductances with each modulable channel scaled by exp(log_factor)."""
    cell = _cells.get(cell)
    out = np.array(g, dtype=float, copy=True)
    for c, name in enumerate(modulable_channels(cell)):
        out[:, cell.index(name)] *= np.exp(log_factor[:, c])
    return out


def simulate_pairs(cell: str | CellType, g: np.ndarray, protocol: _inf.Protocol, seed: int, *, backend: str = "numpy",
                   progress: bool | None = None, client: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulate conductance rows (one batch) → (x (N, 11) NaN if silent, labels (N,), ok (N,))."""
    from condspace.simulate import simulate  # noqa: PLC0415

    cell = _cells.get(cell)
    if len(g) == 0:
        return np.empty((0, len(_inf.SUMMARY_NAMES))), np.empty(0, dtype=str), np.empty(0, dtype=bool)
    res = simulate(cell, g, t_max=protocol.t_max, transient=protocol.transient, dt=protocol.dt,
                   noise_std=protocol.noise_std, seed=seed, backend=backend, method=protocol.method,
                   progress=progress, client=client)
    from condspace import features as _features  # noqa: PLC0415

    ok = np.asarray(res.ok, dtype=bool)
    labels = _features.classify(res.spike_times, ok=ok).to_numpy().astype(str)
    x = _inf.summary_features(res.spike_times, protocol.duration)
    ok &= (labels == "silent") | np.all(np.isfinite(x), axis=1)
    return x, labels, ok


def random_experiments(cell: str | CellType, n: int, *, seed: int = 0, noise_std: float = NOISE_STD,
                       factor_range: tuple[float, float] = FACTOR_RANGE, backend: str = "numpy",
                       cache_dir: str | Path | None = None, use_cache: bool = True, progress: bool | None = None,
                       client: Any = None) -> ExperimentSet:
    """``n`` prior draws, each modulated by a random hypothesis; only those active before are kept.

    Args:
        cell: Cell type or its name.
        n: Prior draws (≈ 5 % of STG draws are silent before and dropped).
        seed: Seed of the draws, the hypotheses, the factors and the noise.
        noise_std: Noise current (µA/cm², after filtering) of both recordings.
        factor_range: Magnitude range (low, high) of a factor; its sign is random.
        backend: Simulation backend (not part of the cache key: identical float64 results).
        cache_dir: Cache folder (default :func:`condspace.inference.default_cache_dir`).
        use_cache: Read and write the cache.
        progress: Progress bars of the simulations.
        client: A ``distributed.Client`` to run the simulations on.
    """
    cell = _cells.get(cell)
    protocol = recording_protocol(cell, noise_std)
    prior = _inf.make_prior(cell, noise=0, missed=0)  # the experiments fix the recording (recording_protocol)
    before = _inf.training_set(cell, n, prior=prior, protocol=protocol, seed=seed, backend=backend,
                               cache_dir=cache_dir, use_cache=use_cache, progress=progress, client=client)
    h, log_f = draw_modulations(cell, n, seed, factor_range)
    parts = {"scenario": "random", "before": before.key, "hypotheses": [list(x) for x in hypotheses(cell)],
             "factor_range": list(map(float, factor_range)), "after_seed": seed + AFTER_SEED_OFFSET,
             "protocol": asdict(protocol)}

    def build(key: str) -> ExperimentSet:
        keep = before.valid
        g_b = _inf.conductances(cell, prior, before.theta)
        g_a = apply_modulation(cell, g_b[keep], log_f[keep])
        t0 = time.perf_counter()
        x_a, lab_a, ok_a = simulate_pairs(cell, g_a, protocol, seed + AFTER_SEED_OFFSET, backend=backend,
                                          progress=progress, client=client)
        wall = time.perf_counter() - t0
        es = ExperimentSet(cell.name, "random", h[keep], g_b[keep], log_f[keep], before.x[keep], x_a,
                           before.labels[keep].astype(str), lab_a, ok_a, key)
        es.info = {"n_draws": int(n), "n_active_before": int(keep.sum()), "n_usable": int(ok_a.sum()),
                   "silent_after_fraction": float(np.mean(lab_a[ok_a] == "silent")) if ok_a.any() else 0.0,
                   "simulate_s": float(before.info.get("simulate_s", 0.0)) + wall, "cached": False}
        return es

    return _cached(f"ident_random_{cell.name}", parts, build, cache_dir, use_cache)


def dic_path_experiments(cell: str | CellType, n_neurons: int, *, seed: int = 0, noise_std: float = NOISE_STD,
                         n_points: int = 11, backend: str = "numpy", cache_dir: str | Path | None = None,
                         use_cache: bool = True, progress: bool | None = None, client: Any = None) -> ExperimentSet:
    """A compensation population moved from the tonic to the bursting DIC point by every pair.

    Every neuron of :func:`condspace.populations.spiking_population` (``n_neurons``, ``seed``) is
    simulated once before; for each pair S the neurons that reach every point of the straight
    path (``n_points``) from ``cell.modulation_target("spiking")`` to ``("bursting")`` are
    simulated after with their own modulated conductances. One experiment per (pair, reachable
    neuron) that fires before; every pair lands on the same (g_s, g_u) by construction.
    """
    from condspace import neuromodulation as _nm  # noqa: PLC0415
    from condspace import populations as _pop  # noqa: PLC0415

    cell = _cells.get(cell)
    protocol = recording_protocol(cell, noise_std)
    hyps = hypotheses(cell)
    names = modulable_channels(cell)
    start, end = cell.modulation_target("spiking"), cell.modulation_target("bursting")
    parts = {"scenario": "dic_path", "cell": _inf.cell_fingerprint(cell, protocol), "n_neurons": int(n_neurons),
             "seed": int(seed), "path": [start, end, int(n_points)], "protocol": asdict(protocol),
             "hypotheses": [list(x) for x in hyps]}

    def build(key: str) -> ExperimentSet:
        pop = _pop.spiking_population(cell, n_neurons, seed)
        G = np.asarray(pop.g, dtype=float)[np.asarray(pop.reachable, dtype=bool)]
        t0 = time.perf_counter()
        x_b, lab_b, ok_b = simulate_pairs(cell, G, protocol, seed, backend=backend, progress=progress, client=client)
        active = ok_b & np.isin(lab_b, ("spiking", "bursting"))
        pts = _nm.path(start, end, n_points)
        rows, g_after, hyp = [], [], []
        for j, h in enumerate(hyps):
            if len(h) != 2:
                continue
            traj = _nm.modulate_along(cell, G, pts, h)
            reach = traj.path_reachable & active
            idx = np.flatnonzero(reach)
            rows.append(idx)
            g_after.append(traj.g[-1][idx])
            hyp.append(np.full(idx.size, j))
        rows, hyp = np.concatenate(rows), np.concatenate(hyp)
        g_a = np.concatenate(g_after) if len(rows) else np.empty((0, G.shape[1]))
        x_a, lab_a, ok_a = simulate_pairs(cell, g_a, protocol, seed + AFTER_SEED_OFFSET, backend=backend,
                                          progress=progress, client=client)
        wall = time.perf_counter() - t0
        with np.errstate(divide="ignore", invalid="ignore"):
            cols = [cell.index(c) for c in names]
            log_f = np.log(g_a[:, cols] / G[rows][:, cols])
        log_f = np.where(np.isfinite(log_f), log_f, 0.0)
        es = ExperimentSet(cell.name, "dic_path", hyp, G[rows], log_f, x_b[rows], x_a, lab_b[rows], lab_a, ok_a, key)
        counts = {f"{hyps[j][0]}+{hyps[j][1]}": int((hyp == j).sum()) for j in np.unique(hyp)}
        es.info = {"n_neurons": int(G.shape[0]), "n_active_before": int(active.sum()), "reachable_per_pair": counts,
                   "n_usable": int(ok_a.sum()), "simulate_s": wall, "cached": False,
                   "silent_after_fraction": float(np.mean(lab_a[ok_a] == "silent")) if ok_a.any() else 0.0}
        return es

    return _cached(f"ident_dicpath_{cell.name}", parts, build, cache_dir, use_cache)


# ----- a worked example: n neurons before and after one drug --------------------------------------
EXAMPLE_SEED = 2026
EXAMPLE_NEURONS = 10


def example_subset(cell: str | CellType) -> tuple[str, ...]:
    """The pair of the worked example: the cell's chapter-4 pair for its bursting target (STG CaS+H)."""
    from condspace import populations as _pop  # noqa: PLC0415

    cell = _cells.get(cell)
    return tuple(_pop.modulation_pair(cell, *cell.modulation_target("bursting")))


def modulated_recordings(cell: str | CellType, subset: tuple[str, ...] | None = None, *,
                         n_neurons: int = EXAMPLE_NEURONS, seed: int = EXAMPLE_SEED, up: bool = True,
                         noise_std: float = NOISE_STD, factor_range: tuple[float, float] = FACTOR_RANGE
                         ) -> tuple[dict, dict, Any]:
    """Spike times of ``n_neurons`` prior draws (active before) recorded before and after one drug.

    Every channel of ``subset`` is scaled in the same direction (``up``) by a neuron-specific
    factor, log-uniform in magnitude over ``factor_range``; both recordings use the cell's
    protocol with independent noise (seeds ``seed`` and ``seed + 1``); spike times are absolute
    and rounded to 1 µs (:data:`condspace.inference.RECORDING_DECIMALS`).

    Returns:
        (before ID → times, after ID → times, truth DataFrame indexed by ID: conductances before,
        ``factor_<channel>``, ``subset``, ``noise_std``).
    """
    import pandas as pd  # noqa: PLC0415

    from condspace import features as _features  # noqa: PLC0415
    from condspace.simulate import simulate  # noqa: PLC0415

    cell = _cells.get(cell)
    order = modulable_channels(cell)
    subset = tuple(sorted(subset or example_subset(cell), key=order.index))  # the label of :func:`hypotheses`
    p = recording_protocol(cell, noise_std)

    def spikes(g: np.ndarray, s: int) -> tuple[list[np.ndarray], np.ndarray]:
        res = simulate(cell, g, t_max=p.t_max, transient=p.transient, dt=p.dt, noise_std=p.noise_std, seed=s,
                       backend="numpy", dtype="float64", method=p.method, progress=False)
        trains = [np.round(t, _inf.RECORDING_DECIMALS) for t in res.spike_times]
        return trains, _features.classify(trains, ok=np.asarray(res.ok)).to_numpy()

    prior = _inf.make_prior(cell, noise=0, missed=0)  # the experiments fix the recording (recording_protocol)
    g = _inf.conductances(cell, prior, prior.sample(4 * n_neurons, seed))
    before, lab = spikes(g, seed)
    keep = np.flatnonzero(np.isin(lab, ("spiking", "bursting")))[:n_neurons]
    if keep.size < n_neurons:
        raise RuntimeError(f"modulated_recordings: only {keep.size} of {4 * n_neurons} draws fire; ask for fewer")
    g, before = g[keep], [before[i] for i in keep]
    rng = np.random.default_rng([seed, 1])
    log_f = np.zeros((n_neurons, len(modulable_channels(cell))))
    for ch in subset:
        mag = rng.uniform(np.log(factor_range[0]), np.log(factor_range[1]), n_neurons)
        log_f[:, modulable_channels(cell).index(ch)] = mag if up else -mag
    after, _ = spikes(apply_modulation(cell, g, log_f), seed + 1)
    ids = [f"{cell.name}_mod_{k + 1:02d}" for k in range(n_neurons)]
    truth = pd.DataFrame(g, columns=list(cell.conductance_names), index=pd.Index(ids, name="ID"))
    for ch in subset:
        truth[f"factor_{ch}"] = np.exp(log_f[:, modulable_channels(cell).index(ch)])
    truth["subset"] = "+".join(subset)
    truth["noise_std"] = float(noise_std)
    return dict(zip(ids, before, strict=True)), dict(zip(ids, after, strict=True)), truth


def demonstration_modulation(cell: str | CellType, folder: str | Path | None = None) -> tuple[dict, dict, Any]:
    """The worked example: read ``<cell>_modulation_{before,after,truth}.csv`` from ``folder`` when
    they exist (written by ``tools/make_modulated_recordings.py``), else simulate it now with
    :func:`modulated_recordings`'s defaults. Same return value."""
    import pandas as pd  # noqa: PLC0415

    from condspace import recordings as _rec  # noqa: PLC0415

    cell = _cells.get(cell)
    if folder is not None:
        paths = [Path(folder) / f"{cell.name}_modulation_{s}.csv" for s in ("before", "after", "truth")]
        if all(p.exists() for p in paths):
            truth = pd.read_csv(paths[2], dtype={"ID": str}).set_index("ID")
            return dict(_rec.load_csv(paths[0])), dict(_rec.load_csv(paths[1])), truth
    return modulated_recordings(cell)


def load_modulation(cell: str | CellType, before: str | Path | None = None, after: str | Path | None = None,
                    ground_truth: str | Path | None = None, *, folder: str | Path | None = "data/recordings"
                    ) -> tuple[dict, dict, Any]:
    """The before/after recordings of chapter 5: the worked example by default, or the user's pair of files.

    Args:
        cell: Cell type or its name.
        before: Spike-time CSV (``ID,spiking_times``, :mod:`condspace.recordings`) of the neurons
            before the drug, or ``None`` with ``after`` for :func:`demonstration_modulation` (with its truth).
        after: The same neurons after the drug (an ID pairs one neuron's two trains), or ``None``.
        ground_truth: Optional CSV with columns ``ID`` and ``subset``: the channels the drug targeted,
            joined by ``+`` in the order of :func:`modulable_channels` (e.g. ``CaS+H``), the same on
            every row; it only scores the ranking. Default: none for a user's files.
        folder: Folder of the shipped worked example.

    Returns:
        (before ID → times, after ID → times, truth DataFrame indexed by ID with a ``subset``
        column, or ``None``). The trains are read as windows of the cell's protocol duration.

    Raises:
        FileNotFoundError: A file does not exist (named with its parameter).
        ValueError: One of ``before``/``after`` without the other; a malformed file (file and
            line named by :func:`condspace.recordings.load_csv`); IDs on one side only; no
            recordings; trains flagged invalid or longer than the window; a truth file without an
            ``ID`` or ``subset`` column, missing IDs, several subsets or an unknown one.
    """
    from condspace import recordings as _rec  # noqa: PLC0415

    cell = _cells.get(cell)
    if before is None and after is None:
        b, a, truth = demonstration_modulation(cell, folder)
        if ground_truth is not None:
            truth = _subset_truth(ground_truth, cell, list(b))
        return b, a, truth
    if before is None or after is None:
        raise ValueError("RECORDINGS_BEFORE and RECORDINGS_AFTER: give both files (the same neurons before and after "
                         "the drug) or neither (the worked example)")
    duration = recording_protocol(cell).duration
    sides = {}
    for name, path in (("RECORDINGS_BEFORE", before), ("RECORDINGS_AFTER", after)):
        if not Path(path).exists():
            raise FileNotFoundError(f"{name}: no such file {str(path)!r}; expected a spike-time CSV (ID,spiking_times)")
        trains = _rec.load_csv(path)
        if not trains:
            raise ValueError(f"{path}: no recordings (a header and no rows)")
        if trains.invalid:
            raise ValueError(f"{path}: recordings {sorted(trains.invalid)[:10]} are flagged invalid; remove them from "
                             "both files")
        for ident, times in trains.items():
            if times.size > 1 and float(times[-1] - times[0]) > duration:
                raise ValueError(f"{path}: recording {ident!r} spans {float(times[-1] - times[0]):.1f} ms, longer than "
                                 f"the analysed window of {duration:g} ms (the cell's protocol); cut it to that window")
        sides[name] = (path, trains)
    (pb, b), (pa, a) = sides.values()
    only_b, only_a = [i for i in b if i not in a], [i for i in a if i not in b]
    if only_b or only_a:
        raise ValueError(f"IDs on one side only: {only_b[:10]} only in {pb}, {only_a[:10]} only in {pa}; an ID pairs "
                         "one neuron's trains before and after, so both files need the same IDs")
    truth = None if ground_truth is None else _subset_truth(ground_truth, cell, list(b))
    ids = list(b)
    return {i: b[i] for i in ids}, {i: a[i] for i in ids}, truth


def _subset_truth(path: str | Path, cell: CellType, ids: list[str]) -> Any:
    """The ``ID,subset`` truth of chapter 5 (see :func:`load_modulation`), checked."""
    import pandas as pd  # noqa: PLC0415

    if not Path(path).exists():
        raise FileNotFoundError(f"GROUND_TRUTH: no such file {str(path)!r}; expected a CSV with columns ID,subset")
    try:
        truth = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: unreadable CSV ({str(err).strip()})") from None
    missing_cols = [c for c in ("ID", "subset") if c not in truth.columns]
    if missing_cols:
        raise ValueError(f"{path}, line 1: no {' or '.join(missing_cols)} column; expected a header such as ID,subset")
    truth = truth.set_index("ID")
    missing = [i for i in ids if i not in truth.index]
    if missing:
        raise ValueError(f"{path}: no ground truth for recordings {missing[:10]}; add a row per ID (or leave "
                         "GROUND_TRUTH unset)")
    truth = truth.loc[ids]
    subsets = sorted(set(truth["subset"].str.strip()))
    if len(subsets) != 1:
        raise ValueError(f"{path}: the subset column holds {subsets}; one drug targets one subset, the same on "
                         "every row")
    if subsets[0] not in labels(cell):
        raise ValueError(f"{path}: subset {subsets[0]!r} is not a hypothesis of cell {cell.name!r}; expected one of "
                         f"{list(labels(cell))} (channels joined by '+' in declaration order)")
    truth["subset"] = subsets[0]
    return truth
