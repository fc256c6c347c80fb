"""Generate the misspecified STG test recordings in data/recordings/misspecified/ (deterministic).

Usage (from the repository root)::

    .venv/bin/python tools/make_misspecified_recordings.py               # writes the folder
    .venv/bin/python tools/make_misspecified_recordings.py --workers 2   # the reference runs in 2 processes
    .venv/bin/python tools/make_misspecified_recordings.py --check       # regenerates in memory, compares

Chapter 2's posterior is trained on noiseless simulations of the batched engine (exponential
Euler, dt 0.05 ms) and tested on recordings of the same engine: an inverse crime. These recordings
are made otherwise, one axis at a time, from eight ground-truth sets:

- **sets**: draws of the inference prior (seed :data:`DRAW_SEED`) simulated by the engine, kept in
  draw order until :data:`SETS_PER_CLASS` are tonic spiking and as many bursting, both by the
  engine and by the reference integrator (so each set fires in its class whichever integrator
  made it);
- ``baseline``: the training simulator itself (engine, noiseless), not misspecified: the point of
  comparison;
- ``integrator``: :func:`condspace.reference.simulate_scipy` (SciPy ``solve_ivp``, LSODA, rtol
  1e-8, atol 1e-10), noiseless. The run is split at :data:`LEAD_START` ms (the state there,
  :func:`condspace.reference.state_at`, is continued), so every reference recording of a set
  shares its first 2.5 s;
- ``noise``: the same integrator continued from that state with a noise current made as the
  published datasets make theirs (Brandoit et al. 2025; SCIENCE.md §5): Gaussian white noise of
  standard deviation σ (:data:`NOISE_SIGMAS`, σ = 5 µA/cm² in the published STG datasets)
  sampled every 0.1 ms, low-pass filtered forward and backward (``scipy.signal.sosfiltfilt``,
  zero phase) by a 4th-order Butterworth filter at 1 kHz, interpolated linearly in time. Under
  the project's Decision the strength is the std *after* filtering, ``noise_std`` in the truth
  file (:func:`filtered_std`, ≈ 0.42 σ); σ is ``noise_sigma``. The noise starts
  :data:`LEAD_START` ms into the run, 500 ms before the recorded window, and the solver runs at
  rtol 1e-5, atol 1e-7 with steps ≤ 0.1 ms: under noise LSODA needs about seven times the
  evaluations of a noiseless run at rtol 1e-8, and the looser tolerance costs a quarter of that.
  On a 300 ms noisy run of the published tonic set (σ = 5), V at the end differed by 2.4e-3 mV
  between rtol 1e-5 and 1e-8; V was −9.2 mV there, mid-spike, where it moves by more than
  10 mV/ms, so the spike's timing differed by well under the 1 µs the times are rounded to;
- ``jitter``: the ``integrator`` train with every spike moved by an independent uniform offset in
  ±``jitter_ms`` (:data:`JITTERS_MS`; ±0.5 ms is a spike detector's slop);
- ``missed``: the ``integrator`` train with exactly round(f·n) of its n spikes deleted at random
  (:data:`MISSED_FRACTIONS`; 2 % is a detector missing spikes; ``spikes_dropped`` says how many:
  none when f·n < 0.5, e.g. 2 % of a slow tonic train of 22 spikes);
- ``duration``: the first 1 s and all 3 s of the ``integrator`` train (:data:`DURATIONS_MS`).

Spike times are absolute (ms from the start of the simulation, the window starts at 3000 ms) and
rounded to 1 µs, as in data/recordings/. Writes to ``--out``:

- ``stg_misspecified_recordings.csv``: every 3 s recording (``ID,spiking_times``, the format of
  :mod:`condspace.recordings`; ``python -m condspace infer --recordings`` reads it);
- ``stg_misspecified_recordings_1s.csv``: the 1 s recordings (infer them with ``--duration 1000``);
- ``stg_misspecified_truth.csv``: per ID the set, its class, conductances (mS/cm²), the
  perturbation (``kind``, ``strength``, ``unit``) and every axis's setting (``integrator``,
  ``rtol``, ``noise_sigma``, ``noise_std``, ``jitter_ms``, ``missed_fraction``, ``duration_ms``),
  the seeds, and the class and features of the recorded train.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from condspace import cells, features, inference, recordings, reference, simulate

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "data" / "recordings" / "misspecified"
CELL = "stg"
FILES = {"recordings": "stg_misspecified_recordings.csv", "recordings_1s": "stg_misspecified_recordings_1s.csv",
         "truth": "stg_misspecified_truth.csv"}

SETS_PER_CLASS = 4  # tonic and bursting sets each
DRAW_SEED = 1414  # prior draws of the ground-truth sets
N_CANDIDATES = 48  # prior draws simulated by the engine to find them (≈ 40 % tonic, 50 % bursting)
NOISE_SIGMAS = (2.5, 5.0, 10.0)  # µA/cm², white σ before filtering (published STG datasets: 5)
NOISE_DT = 0.1  # ms, sampling step of the published noise (10 kHz)
NOISE_CUTOFF_HZ = 1000.0
NOISE_ORDER = 4
JITTERS_MS = (0.5, 2.0)  # half-width of the uniform spike-time jitter
MISSED_FRACTIONS = (0.02, 0.10)  # fraction of spikes deleted
DURATIONS_MS = (1000.0, 3000.0)  # recording lengths
LEAD_START = 2500.0  # ms: the reference runs share the state here; the noise starts here
CLEAN_TOL = (1e-8, 1e-10)  # rtol, atol of the noiseless reference runs
NOISE_TOL = (1e-5, 1e-7)  # rtol, atol under noise (max step NOISE_DT): see the module docstring
FEATURES = ("label", "n_spikes", "rate_hz", "cv_isi", "spikes_per_burst", "burst_period_ms")


# ----- the perturbations ---------------------------------------------------------------------------
def filtfilt_gain(dt: float = NOISE_DT) -> float:
    """Std of zero-phase filtered unit white noise sampled every ``dt`` ms (the filter's RMS gain).

    ``sosfiltfilt`` applies the filter forward and backward: its impulse response is the
    autocorrelation of the causal one, and the std of filtered white noise is the 2-norm of that
    response.
    """
    from scipy import signal  # noqa: PLC0415

    fs = 1000.0 / dt
    sos = signal.butter(NOISE_ORDER, NOISE_CUTOFF_HZ, btype="low", fs=fs, output="sos")
    half = int(40 * fs / NOISE_CUTOFF_HZ)
    impulse = np.zeros(2 * half + 1)
    impulse[half] = 1.0
    return float(np.sqrt(np.sum(signal.sosfiltfilt(sos, impulse) ** 2)))


def filtered_std(sigma: float, dt: float = NOISE_DT) -> float:
    """Std (µA/cm²) after filtering of white noise of std ``sigma`` sampled every ``dt`` ms."""
    return float(sigma) * filtfilt_gain(dt)


def filtfilt_noise(n: int, sigma: float, seed: int, dt: float = NOISE_DT) -> np.ndarray:
    """A noise current as the published datasets make it: (n,) samples, µA/cm², every ``dt`` ms.

    Gaussian white noise of std ``sigma`` (before filtering), then a zero-phase (forward-backward)
    4th-order Butterworth low-pass at 1 kHz. Its std is :func:`filtered_std` (``sigma``).
    """
    from scipy import signal  # noqa: PLC0415

    if sigma < 0:
        raise ValueError(f"sigma must be ≥ 0 µA/cm², got {sigma}")
    sos = signal.butter(NOISE_ORDER, NOISE_CUTOFF_HZ, btype="low", fs=1000.0 / dt, output="sos")
    white = np.random.default_rng(seed).standard_normal(int(n)) * float(sigma)
    return signal.sosfiltfilt(sos, white)


def jitter(spikes: np.ndarray, half_width: float, seed: int) -> np.ndarray:
    """Every spike moved by an independent uniform offset in [−half_width, +half_width] ms.

    The result is sorted and rounded to 1 µs; since the input times lie on the 1 µs grid, rounding
    keeps every offset within ±half_width.
    """
    spikes = np.asarray(spikes, dtype=float)
    moved = spikes + np.random.default_rng(seed).uniform(-half_width, half_width, spikes.size)
    return np.sort(np.round(moved, inference.RECORDING_DECIMALS))


def drop(spikes: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The train with exactly round(fraction · n) of its n spikes deleted, chosen at random."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must lie in [0, 1), got {fraction}")
    spikes = np.asarray(spikes, dtype=float)
    n_drop = int(round(fraction * spikes.size))
    gone = np.random.default_rng(seed).choice(spikes.size, size=n_drop, replace=False)
    return np.delete(spikes, gone)


def window(spikes: np.ndarray, start: float, duration: float) -> np.ndarray:
    """The spikes in [start, start + duration) ms."""
    spikes = np.asarray(spikes, dtype=float)
    return spikes[(spikes >= start) & (spikes < start + duration)]


# ----- the ground-truth sets -----------------------------------------------------------------------
def candidate_sets(n: int = N_CANDIDATES, seed: int = DRAW_SEED) -> tuple[np.ndarray, list[np.ndarray], pd.DataFrame]:
    """(n, 8) prior draws in conductance order, their engine spike trains and features (noiseless)."""
    cell = cells.get(CELL)
    prior = inference.make_prior(cell)
    protocol = inference.Protocol.for_cell(cell)
    g = inference.conductances(cell, prior, prior.sample(n, seed=seed))
    res = simulate(cell, g, t_max=protocol.t_max, transient=protocol.transient, dt=protocol.dt, backend="numpy",
                   dtype="float64", method=protocol.method, progress=False)
    trains = [np.round(s, inference.RECORDING_DECIMALS) for s in res.spike_times]
    return g, trains, features.extract(trains, protocol.duration, ok=res.ok)


def _reference_runs(job: tuple) -> dict[str, np.ndarray]:
    """Every reference-integrator train of one set: clean and one per noise σ (a worker's job).

    The noisy runs are skipped when the clean one does not fire in the set's ``label``.
    """
    g, label, sigmas, seeds = job
    cell = cells.get(CELL)
    t_max = cell.protocol["t_max"]
    state = reference.state_at(cell, g, LEAD_START, rtol=CLEAN_TOL[0], atol=CLEAN_TOL[1])
    common = dict(t_max=t_max, transient=cell.protocol["transient"], t_start=LEAD_START, initial=state)
    out = {"clean": reference.simulate_scipy(cell, g, rtol=CLEAN_TOL[0], atol=CLEAN_TOL[1], **common)}
    if _label(out["clean"], t_max - cell.protocol["transient"]) != label:
        return {"clean": np.round(out["clean"], inference.RECORDING_DECIMALS)}
    n = int(round((t_max - LEAD_START) / NOISE_DT)) + 1
    for sigma, seed in zip(sigmas, seeds, strict=True):
        current = reference.sampled_current(filtfilt_noise(n, sigma, seed), NOISE_DT, t0=LEAD_START)
        out[f"noise {sigma:g}"] = reference.simulate_scipy(cell, g, rtol=NOISE_TOL[0], atol=NOISE_TOL[1],
                                                           current=current, max_step=NOISE_DT, **common)
    return {k: np.round(v, inference.RECORDING_DECIMALS) for k, v in out.items()}


def _label(train: np.ndarray, duration: float) -> str:
    return str(features.extract([train], duration)["label"].iloc[0])


def _log(message: str) -> None:
    print(message, flush=True)  # progress of a run of many minutes, also when stdout is a file


def build(workers: int = 1, sets_per_class: int = SETS_PER_CLASS, noise_sigmas=NOISE_SIGMAS,
          log=_log) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], pd.DataFrame]:
    """Every misspecified recording and its truth.

    Returns:
        (ID → 3 s train, ID → 1 s train, truth DataFrame indexed by ID).
    """
    cell = cells.get(CELL)
    protocol = inference.Protocol.for_cell(cell)
    start, full = protocol.transient, protocol.duration
    g, engine_trains, feats = candidate_sets()
    order = {c: [i for i in range(len(g)) if feats["label"].iloc[i] == c] for c in ("spiking", "bursting")}
    chosen: list[tuple[str, int, dict]] = []
    with ProcessPoolExecutor(max_workers=workers) if workers > 1 else _Serial() as pool:
        for label, short in (("spiking", "tonic"), ("bursting", "bursting")):
            kept, queue = 0, list(order[label])
            while kept < sets_per_class:
                if not queue:
                    raise RuntimeError(f"fewer than {sets_per_class} {label} draws among {len(g)}: raise N_CANDIDATES")
                batch, queue = queue[:max(workers, 1)], queue[max(workers, 1):]
                t0 = time.perf_counter()
                jobs = [(g[i], label, noise_sigmas, [_noise_seed(i, s) for s in noise_sigmas]) for i in batch]
                for i, runs in zip(batch, pool.map(_reference_runs, jobs), strict=True):
                    same = _label(runs["clean"], full) == label
                    log(f"draw {i:2d} ({label}): reference {'same class' if same else 'other class, skipped'} "
                        f"({time.perf_counter() - t0:.0f} s)")
                    if same and kept < sets_per_class:
                        kept += 1
                        chosen.append((f"{short}_{kept}", i, runs))
    names = list(cell.conductance_names)
    trains, trains_1s, rows = {}, {}, []

    def add(set_id: str, i: int, kind: str, strength: float, unit: str, train: np.ndarray, **axes: Any) -> None:
        setting = {"integrator": "reference", "rtol": CLEAN_TOL[0], "noise_sigma": 0.0, "noise_std": 0.0,
                   "noise_seed": -1, "jitter_ms": 0.0, "missed_fraction": 0.0, "spikes_dropped": 0, "duration_ms": full,
                   "seed": -1,
                   **axes}
        ident = f"{set_id}_{kind}" + ("" if kind in ("baseline", "integrator") else f"_{strength:g}")
        (trains_1s if setting["duration_ms"] < full else trains)[ident] = train
        obs = features.extract([train], setting["duration_ms"]).iloc[0]
        rows.append({"ID": ident, "set": set_id, "class": feats["label"].iloc[i], "draw": i,
                     **dict(zip(names, g[i], strict=True)), "kind": kind, "strength": strength, "unit": unit,
                     **setting, "t_max": protocol.t_max, "transient": start, **{k: obs[k] for k in FEATURES}})

    for set_id, i, runs in chosen:
        clean = runs["clean"]
        add(set_id, i, "baseline", 0.0, "", engine_trains[i], integrator="engine", rtol=np.nan)
        add(set_id, i, "integrator", 0.0, "", clean)
        for sigma in noise_sigmas:
            add(set_id, i, "noise", sigma, "µA/cm² (σ before filtering)", runs[f"noise {sigma:g}"], rtol=NOISE_TOL[0],
                noise_sigma=sigma, noise_std=filtered_std(sigma), noise_seed=_noise_seed(i, sigma))
        for k, half in enumerate(JITTERS_MS):
            seed = 10_000 + 100 * i + k
            add(set_id, i, "jitter", half, "ms (half-width)", jitter(clean, half, seed), jitter_ms=half, seed=seed)
        for k, frac in enumerate(MISSED_FRACTIONS):
            seed = 20_000 + 100 * i + k
            dropped = drop(clean, frac, seed)
            add(set_id, i, "missed", frac, "fraction of spikes", dropped, missed_fraction=frac,
                spikes_dropped=clean.size - dropped.size, seed=seed)
        for dur in DURATIONS_MS:
            add(set_id, i, "duration", dur / 1000.0, "s", window(clean, start, dur), duration_ms=dur)
    truth = pd.DataFrame(rows).set_index("ID")
    return trains, trains_1s, truth


def _noise_seed(draw: int, sigma: float) -> int:
    return 30_000 + 100 * draw + int(round(10 * sigma))


class _Serial:
    """A stand-in for a process pool that runs the jobs here (``--workers 1``)."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    @staticmethod
    def map(fn, jobs):
        return [fn(j) for j in jobs]


def write(out: Path, trains: dict, trains_1s: dict, truth: pd.DataFrame) -> None:
    """Write the three files atomically."""
    out.mkdir(parents=True, exist_ok=True)
    recordings.save_csv(out / FILES["recordings"], list(trains.values()), ids=list(trains))
    recordings.save_csv(out / FILES["recordings_1s"], list(trains_1s.values()), ids=list(trains_1s))
    recordings.write_text_atomic(out / FILES["truth"], truth_text(truth))


def truth_text(truth: pd.DataFrame) -> str:
    buf = io.StringIO()
    truth.to_csv(buf, float_format="%.10g", lineterminator="\n")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` verify) data/recordings/misspecified/."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="processes for the reference runs (default: 1)")
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be ≥ 1, got {args.workers}")
    t0 = time.perf_counter()
    trains, trains_1s, truth = build(workers=args.workers)
    if args.check:
        same = all(_same(recordings.load_csv(args.out / FILES[k]), d)
                   for k, d in (("recordings", trains), ("recordings_1s", trains_1s)))
        same = same and (args.out / FILES["truth"]).read_text() == truth_text(truth)
        print("misspecified recordings are up to date" if same else "misspecified recordings differ from a fresh run")
        return 0 if same else 1
    write(args.out, trains, trains_1s, truth)
    cols = ["kind", "strength", "class", "label", "n_spikes", "rate_hz", "cv_isi", "spikes_per_burst"]
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(truth[cols].round(3).to_string())
    print(f"wrote {len(trains) + len(trains_1s)} recordings to {args.out} ({time.perf_counter() - t0:.0f} s)")
    return 0


def _same(old: dict, new: dict) -> bool:
    return list(old) == list(new) and all(np.array_equal(old[k], new[k]) for k in new)


if __name__ == "__main__":
    sys.exit(main())
