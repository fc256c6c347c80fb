"""One integrator for every declared cell type, with three engines behind it.

* ``engine="numba"`` (the CPU default when Numba is importable, :mod:`condspace._numba`): kernels
  generated from the declaration, each neuron's time loop compiled, neurons over threads;
* ``engine="numpy"``: the batched NumPy engine (:mod:`condspace._engine`), the reference;
* ``backend="cupy"``: the fused CUDA kernel (:mod:`condspace._cuda`).

All share the argument checks, the noise streams (:class:`_Noise`) and the result layout; with
``client=`` the chunks of a population run as Dask tasks (:mod:`condspace._dask`).

>>> from condspace import cells, simulate
>>> stg = cells.get("stg")
>>> res = simulate(stg, [stg.example("tonic spiking")], backend="numpy")  # doctest: +SKIP
>>> res.spike_times[0][:3]  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from condspace import _checks
from condspace import cells as _cells
from condspace._engine import SPIKE_REARM, SPIKE_THRESHOLD, V_BOUNDS, Engine
from condspace._parallel import run_chunks, worker_count
from condspace._results import (  # noqa: F401  (re-exported: SimulationResult and the noise constants are public here)
    CHECK_EVERY,
    NOISE_CUTOFF_HZ,
    NOISE_GROUP,
    SimulationResult,
    _Noise,
    _progress_bar,
    _split_spikes,
    chunk_noise,
    empty_outputs,
    noise_summary,
    voltage_traces,
)
from condspace.backend import Backend, resolve
from condspace.channels import CellType

MAX_DT = 1.0  # ms: above this, exponential Euler still runs but spike shapes (≈1 ms) are lost.
PARALLEL_MIN_WORK = 2e8  # neuron-steps below which worker processes (NumPy engine) cost more than they save


# ----- argument checking ---------------------------------------------------------------------
def conductance_matrix(cell: CellType, g: Any) -> np.ndarray:
    """Turn conductances into an (N, n_channels) float64 array in ``cell.conductance_names`` order.

    Args:
        cell: The cell type.
        g: (N, n_channels) or (n_channels,) array, a mapping name → value/array (names with or
            without the ``g_`` prefix; ``cell.fixed`` conductances may be omitted), a sequence
            of such mappings, or a pandas DataFrame with those columns.

    Raises:
        ValueError: Wrong shape, unknown or missing names (the row named for a list of mappings),
            bools or text, negative, NaN or infinite values (see :func:`condspace._checks.conductances`).
    """
    return _checks.conductances(cell, g)


def _current_vector(current: Any, n: int) -> np.ndarray:
    arr = np.asarray(current, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"current: expected a scalar or an array of shape ({n},) (µA/cm²), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("current: applied currents must be finite")
    return arr


def _record_spec(record: Any, n: int, dt: float) -> tuple[np.ndarray, int] | None:
    if record is None:
        return None
    interval = max(dt, 0.1)
    if isinstance(record, Mapping):
        interval = float(record.get("interval", interval))
        record = record.get("neurons", [])
    idx = np.atleast_1d(np.asarray(record, dtype=int))
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"record: neuron indices must lie in [0, {n}), got {idx.tolist()}")
    if interval < dt:
        raise ValueError(f"record: interval {interval} ms is shorter than dt={dt} ms")
    return idx, max(1, int(round(interval / dt)))


# ----- the integrator ----------------------------------------------------------------------------
def simulate(
    cell: str | CellType,
    g: Any,
    *,
    t_max: float | None = None,
    dt: float | None = None,
    transient: float | None = None,
    current: Any = 0.0,
    noise_std: float | Any = 0.0,
    seed: int | None = None,
    backend: str | Backend = "auto",
    dtype: str = "float64",
    record: Any = None,
    method: str = "table",
    chunk_size: int | None = None,
    progress: bool | None = None,
    workers: int | None = None,
    force: bool = False,
    engine: str = "auto",
    client: Any = None,
) -> SimulationResult:
    """Simulate a population of neurons of one cell type, all at once.

    Args:
        cell: Cell type or its registry name (``"stg"``, ``"da"``).
        g: Maximal conductances (mS/cm²): (N, n_channels) array in ``cell.conductance_names``
            order, or a mapping name → values (see :func:`conductance_matrix`).
        t_max: Simulated time (ms); default the cell's literature protocol (STG 6000, DA 12000).
        dt: Time step (ms); default the cell's protocol value (STG 0.05; DA 0.025, which its
            bursting set needs for spike counts within 5 % of a converged solve_ivp run).
        transient: Spikes before this time (ms) are discarded; default the cell's protocol (3000).
        current: Applied current I_app (µA/cm²), scalar or (N,).
        noise_std: Standard deviation (µA/cm²) of the low-pass filtered Gaussian noise current
            (after filtering): a scalar for every neuron or an (N,) array, one per neuron; 0 for
            none. A neuron's noise is its own stream times its σ, so neuron i of a run with
            per-neuron σ gets exactly the current of a run with the scalar σ_i (same seed).
        seed: Seed of the noise; the same seed gives the same noise on every backend.
        backend: ``"auto"``, ``"numpy"`` or ``"cupy"`` (see :func:`condspace.backend.resolve`).
        dtype: ``"float64"`` (default) or ``"float32"``.
        record: Neuron indices whose voltage to keep, or ``{"neurons": [...], "interval": ms}``
            (default interval max(dt, 0.1 ms)). Traces cover the whole run, transient included.
        method: ``"table"`` (interpolated rate tables, default, fast) or ``"exact"``.
        chunk_size: Neurons integrated together (bounds memory); default 16384 on the CPU.
        progress: Show a progress bar; ``None`` shows it for runs expected to take over ~5 s
            (never when the environment variable ``CONDSPACE_QUIET`` is set).
        workers: CPU only: how many chunks of the population run side by side; threads of the
            compiled engine, forked processes of the NumPy engine (results are identical to one
            thread or process, noise included). ``None``: the environment variable
            ``CONDSPACE_WORKERS`` if set, else every available core for runs large enough to repay
            them (compiled: 10⁷ neuron-steps; NumPy: 2·10⁸), one inside a worker process.
        engine: CPU only: ``"auto"`` (default: ``"numba"`` when Numba is importable and the dtype is
            float64, else ``"numpy"``), ``"numba"`` (the compiled engine: each neuron's whole time
            loop in machine code generated from the declaration, like the GPU kernel; compiled
            once, then cached on disk) or ``"numpy"`` (the batched NumPy reference engine). Both
            give the same spike counts, and with ``method="table"`` the same spike times to the
            last bit on x86-64 Linux. The ``cupy`` backend always runs its fused kernel.
        client: A ``distributed.Client``: the chunks of the population run as Dask tasks on its
            workers (one thread each), with results identical to a local run. Needs the optional
            dependency (``pip install -e .[dask]``). ``chunk_size`` then sets the task size
            (default: the population split over twice the workers' threads, at most 16384).
        force: Run even when the estimated time exceeds a day at an optimistic speed
            (:func:`condspace._checks.check_resources`); memory that does not exist is never forced.

    Returns:
        A :class:`SimulationResult`.

    Raises:
        ValueError: Bad conductances, protocol, current, record, seed, method or engine (bools,
            text and fractional seeds included).
        condspace._checks.ResourceError: The run cannot fit in memory, or would take more than a
            day (unless ``force``); the message has the estimate.
        RuntimeError: ``backend="cupy"`` without a GPU.
        ImportError: ``engine="numba"`` without Numba, or ``client`` without Dask.
    """
    cell = _cells.get(cell)
    t_max, dt, transient, noise_std, seed, gmat, n_steps = _checks.simulation_arguments(
        cell, g, t_max=t_max, dt=dt, transient=transient, noise_std=noise_std, seed=seed, record=record, force=force,
        max_dt=MAX_DT)
    n = gmat.shape[0]
    if method not in ("table", "exact"):
        raise ValueError(f"method must be 'table' or 'exact', got {method!r}")
    be = resolve(backend, dtype)
    cur = _current_vector(current, n)
    rec = _record_spec(record, n, dt)
    if chunk_size is None:
        chunk_size = 16384 if be.name == "numpy" else 131072
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be ≥ 1, got {chunk_size}")
    # --- GPU: one fused kernel generated from the declaration (condspace._cuda / _codegen) ---
    if be.name == "cupy":
        from condspace._cuda import simulate_cupy  # noqa: PLC0415  (imports cupy only when asked)

        return simulate_cupy(cell, gmat, cur, n_steps=n_steps, dt=dt, t_max=t_max, transient=transient,
                             noise_std=noise_std, seed=seed, be=be, rec=rec, chunk_size=chunk_size,
                             progress=progress, method=method)
    # --- end GPU branch ---
    engine = _engine_name(engine, be)
    if client is not None:
        from condspace._dask import run_chunks_on  # noqa: PLC0415  (imports dask: only when asked)

        workers = 1
    else:
        workers = _worker_count(workers, n * n_steps, engine)
    if workers > 1 and engine == "numpy":
        chunk_size = min(chunk_size, -(-n // workers))  # at least one chunk per worker process
    if progress is None:
        progress = n * n_steps > 1.5e8 and not os.environ.get("CONDSPACE_QUIET")
    bar = _progress_bar(progress, n * n_steps, cell.name)

    t0 = time.perf_counter()
    spikes, ok, trace_store = empty_outputs(n, n_steps, rec)
    job = _Job(cell, be, method, gmat, cur, n_steps, dt, transient, noise_std, seed, rec, engine, workers)
    if client is not None:
        results = _progress(run_chunks_on(client, job, n, chunk_size), bar, n_steps)
    else:
        bounds = [(start, min(n, start + chunk_size)) for start in range(0, n, chunk_size)]
        if engine == "numpy" and workers > 1 and len(bounds) > 1:
            results = _progress(run_chunks(job.run, bounds, workers), bar, n_steps)
        else:
            compiled = job.compiled()
            results = ((start, stop, job.run(start, stop, compiled, bar)) for start, stop in bounds)
    for start, stop, (sp, ok_c, rows, traces_c) in results:
        spikes[start:stop] = sp
        ok[start:stop] = ok_c
        if rows is not None:
            trace_store[rows] = traces_c
    if bar is not None:
        bar.close()
    traces = voltage_traces(trace_store, rec, dt)
    meta = {"cell": cell.name, "dt": dt, "t_max": t_max, "transient": transient, "duration": t_max - transient,
            "backend": be.name, "device": be.device, "dtype": np.dtype(be.dtype).name, "method": method,
            "engine": engine, "n_neurons": n, "noise_std": noise_summary(noise_std), "seed": seed, "workers": workers,
            "dask": client is not None, "wall_s": time.perf_counter() - t0}
    return SimulationResult(spikes, ok, traces, meta)


ENGINES = ("auto", "numba", "numpy")
COMPILED_MIN_WORK = 1e7  # neuron-steps below which the compiled engine stays on one thread


def _engine_name(engine: str, be: Backend) -> str:
    """Resolve ``engine`` for the CPU backend: ``"numba"`` or ``"numpy"``."""
    from condspace import _numba  # noqa: PLC0415

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    float64 = np.dtype(be.dtype) == np.float64
    if engine == "auto":
        return "numba" if float64 and _numba.available() else "numpy"
    if engine == "numba":
        if not _numba.available():
            raise ImportError("engine='numba' needs Numba: pip install numba (or pip install -e . in the "
                              "condspace checkout); engine='numpy' runs without it")
        if not float64:
            raise ValueError(f"engine='numba' integrates in float64, got dtype={np.dtype(be.dtype).name!r}; "
                             "use dtype='float64' or engine='numpy'")
    return engine


def _worker_count(workers: int | None, work: float, engine: str) -> int:
    """Threads (compiled engine) or processes (NumPy engine) for ``work`` neuron-steps."""
    if engine == "numpy":
        return worker_count(workers, work, PARALLEL_MIN_WORK)
    from condspace import _numba  # noqa: PLC0415

    # Threads need no fork: worker_count's fork check is for processes only.
    count = worker_count(workers, work, COMPILED_MIN_WORK) if workers is None else workers
    if isinstance(count, bool) or int(count) != count or count < 1:
        raise ValueError(f"workers must be a positive integer (or None for automatic), got {workers!r}")
    return int(min(count, _numba.max_threads()))


@dataclass
class _Job:
    """Everything a chunk of one simulate() call needs; a chunk is integrated by :meth:`run`."""

    cell: CellType
    be: Backend
    method: str
    gmat: np.ndarray
    cur: np.ndarray
    n_steps: int
    dt: float
    transient: float
    noise_std: float | np.ndarray  # scalar or (N,) per neuron, rows from ``offset`` on like gmat
    seed: int | None
    rec: tuple[np.ndarray, int] | None
    engine: str = "numpy"
    threads: int = 1
    offset: int = 0  # index of gmat's first row in the whole population (a job sliced for a Dask task)

    def compiled(self) -> Any:
        """What a chunk needs compiled: the NumPy :class:`Engine` or the Numba kernel source."""
        if self.engine == "numba":
            from condspace import _numba  # noqa: PLC0415

            return _numba.kernel_source(self.cell, self.dt, self.method)
        return Engine(self.cell, self.dt, self.be.xp, self.be.dtype, self.method)

    def slice(self, start: int, stop: int) -> _Job:
        """The part of this job that neurons start..stop-1 need (what a Dask task receives)."""
        a, b = start - self.offset, stop - self.offset
        std = self.noise_std if np.ndim(self.noise_std) == 0 else self.noise_std[a:b]
        return replace(self, gmat=self.gmat[a:b], cur=self.cur[a:b], noise_std=std, offset=start)

    def run(self, start: int, stop: int, compiled: Any = None, bar: Any = None) -> tuple:
        """Integrate neurons start..stop-1 → (spike lists, ok, recorded rows or None, their traces)."""
        compiled = self.compiled() if compiled is None else compiled
        noise = chunk_noise(self.noise_std, self.dt, self.seed, start, stop, self.offset)
        rec_chunk, rows, store = None, None, None
        if self.rec is not None:
            sel = (self.rec[0] >= start) & (self.rec[0] < stop)
            rows = np.flatnonzero(sel)
            store = np.empty((rows.size, self.n_steps // self.rec[1] + 1))
            rec_chunk = (np.arange(rows.size), self.rec[0][sel] - start, self.rec[1])
        g = self.gmat[start - self.offset:stop - self.offset]
        cur = self.cur[start - self.offset:stop - self.offset]
        if self.engine == "numba":
            from condspace import _numba  # noqa: PLC0415

            sp, ok = _numba.run_chunk(compiled, self.threads, g, cur, self.n_steps, self.transient, noise,
                                      rec_chunk, store, bar, CHECK_EVERY)
        else:
            sp, ok = _run_chunk(compiled, self.be, g, cur, self.n_steps, self.dt, self.transient, noise,
                                rec_chunk, store, bar)
        return sp, ok, rows, store


def _progress(results, bar: Any, n_steps: int):
    """Pass chunk results through, advancing the progress bar as each chunk completes."""
    for start, stop, out in results:
        if bar is not None:
            bar.update((stop - start) * n_steps)
        yield start, stop, out


def _run_chunk(engine: Engine, be: Backend, g: np.ndarray, cur: np.ndarray, n_steps: int, dt: float,
               transient: float, noise: _Noise | None, rec, trace_store, bar) -> tuple[list, np.ndarray]:
    xp = be.xp
    n = g.shape[0]
    st = engine.initial(n)
    gbar = be.asarray(g[:, :-1].T.copy())
    g_leak = be.asarray(g[:, -1])
    base_drive = g_leak * engine.E_leak + be.asarray(cur)
    drive = base_drive
    armed = st["V"] < SPIKE_REARM
    ok = xp.ones(n, dtype=bool)
    init = engine.initial(1)
    hits_idx, hits_t = [], []
    block = max(100, min(5000, int(4e6 // max(n, 1))))
    noise_block, nb_pos = None, 0
    if rec is not None:
        trace_store[rec[0], 0] = be.to_numpy(st["V"][rec[1]])
    for k in range(n_steps):
        if noise is not None:
            if noise_block is None or nb_pos == noise_block.shape[0]:
                noise_block, nb_pos = be.asarray(noise.block(min(block, n_steps - k))), 0
            drive = base_drive + noise_block[nb_pos]
            nb_pos += 1
        V_old = st["V"]
        V = engine.step(st, gbar, g_leak, drive)
        up = V >= SPIKE_THRESHOLD
        up &= armed
        if up.any():
            idx = xp.flatnonzero(up)
            t = (k + (SPIKE_THRESHOLD - V_old[idx]) / (V[idx] - V_old[idx])) * dt
            armed[idx] = False
            keep = t >= transient
            hits_idx.append(be.to_numpy(idx[keep]))
            hits_t.append(be.to_numpy(t[keep]))
        armed |= V < SPIKE_REARM
        if rec is not None and (k + 1) % rec[2] == 0:
            trace_store[rec[0], (k + 1) // rec[2]] = be.to_numpy(V[rec[1]])
        if (k + 1) % CHECK_EVERY == 0 or k + 1 == n_steps:
            _flag_invalid(engine, st, ok, init)
            if bar is not None:
                bar.update(n * min(CHECK_EVERY, (k % CHECK_EVERY) + 1))
    ok_np = be.to_numpy(ok)
    return _split_spikes(hits_idx, hits_t, n, ok_np), ok_np


def _flag_invalid(engine: Engine, st: dict, ok: Any, init: dict) -> None:
    """Flag neurons whose state became non-finite or left V_BOUNDS; reset them to rest."""
    xp = engine.xp
    V = st["V"]
    bad = ~xp.isfinite(V) | (V < V_BOUNDS[0]) | (V > V_BOUNDS[1]) | ~xp.isfinite(st["ca"])
    bad |= ~xp.isfinite(st["X"]).all(axis=0)
    if st["P"].shape[0]:
        bad |= ~xp.isfinite(st["P"]).all(axis=0)
    if bad.any():
        ok &= ~bad
        for key in ("V", "ca"):
            st[key][bad] = init[key][0]
        st["X"][:, bad] = init["X"][:, :1]
        st["P"][:, bad] = init["P"][:, :1]
