"""The compiled CPU engine: Numba kernels generated from the cell declaration.

:func:`condspace.simulate` dispatches here for ``engine="numba"`` (the default on the CPU when
Numba is importable). The kernel source is written by :func:`condspace._codegen.generate_numba`
from the same declaration and the same tracer as the CUDA kernel; each neuron's whole block of
time steps runs in compiled code (with the rate table, 16 neurons as the SIMD lanes of one
vectorised loop), tiles of neurons spread over threads (``numba.prange``). This module writes
that source to a file, compiles it (cached on disk), and
drives it chunk by chunk, block of steps by block of steps, gathering spikes into the layout
:func:`condspace.simulate` returns.

Compilation cache: Numba caches compiled functions next to their source file, so the source is
written (atomically, named by its hash) under :func:`cache_dir`; a second process that
generates the same source imports the same file and loads the machine code instead of compiling.

Noise is drawn by :class:`condspace._results._Noise` on the host, the very streams the NumPy
engine uses, filtered by the module's compiled filter (the arithmetic of ``scipy.signal.sosfilt``)
and handed to the kernel block by block: a neuron's noise depends only on the seed and its index,
never on the number of threads or the chunking.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from condspace._codegen import NUMBA_KERNELS, NUMBA_NOISE, NumbaSource, generate_numba
from condspace._engine import SPIKE_REARM
from condspace._results import _split_spikes
from condspace.channels import CellType

STEPS_PER_LAUNCH = 20_000
"""Time steps per kernel call without noise (1 s of biology at dt 0.05 ms)."""
NOISE_BLOCK_VALUES = 4_000_000
"""Noise values (neurons × steps) drawn per block, as the NumPy engine does (32 MB in float64)."""
SPIKE_BUFFER_HZ = 100.0
"""Initial per-neuron spike buffer of a launch as a rate (Hz); a launch that needs more is rerun."""
SPIKE_BUFFER_MIN = 8
"""Smallest per-neuron spike buffer (entries)."""

GROUP_SIZE: int | None = None
"""Neurons per tile (``method="table"``) or interleaved per loop iteration (``"exact"``) of the
kernels this process generates; None: the generator's defaults (:data:`condspace._codegen.NUMBA_LANES`,
:data:`condspace._codegen.NUMBA_GROUP`). Results do not depend on it; ``benchmarks/simulate.py
--groups`` compares values."""

_SOURCES: dict[tuple, tuple[CellType, NumbaSource]] = {}
_MODULES: dict[str, Any] = {}
_LOCK = threading.Lock()


def available() -> bool:
    """Whether Numba can be imported (the compiled engine's only requirement)."""
    try:
        import numba  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def cache_dir() -> Path:
    """Where generated kernel sources and Numba's compiled code are kept.

    ``$CONDSPACE_CACHE/numba`` if that variable is set; else ``.cache/condspace/numba`` in the
    repository root when running from a writable source checkout; else
    ``~/.cache/condspace/numba``.
    """
    env = os.environ.get("CONDSPACE_CACHE")
    if env:
        return Path(env) / "numba"
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").exists() and os.access(root, os.W_OK):
        return root / ".cache" / "condspace" / "numba"
    return Path.home() / ".cache" / "condspace" / "numba"


def kernel_source(cell: CellType, dt: float, method: str) -> NumbaSource:
    """The generated source for (cell, dt, method), cached in this process (tiled / interleaved by GROUP_SIZE)."""
    key = (id(cell), float(dt), method, GROUP_SIZE)
    hit = _SOURCES.get(key)
    if hit is None or hit[0] is not cell:  # `is`: an id can be reused after garbage collection
        hit = (cell, generate_numba(cell, dt, method, group_size=GROUP_SIZE))
        _SOURCES[key] = hit
    return hit[1]


def _prefer_scalar_loads() -> None:
    """Ask LLVM for scalar loads instead of gather instructions (x86-64, LLVM >= 17), unless the user chose.

    The table kernel's loop over a tile reads each lane's rate-table row: LLVM emits AVX2/AVX-512
    gathers for that, which are slow on AMD Zen and, since the microcode mitigation of Gather Data
    Sampling (2023), on Intel too. With the tuning feature ``prefer-no-gather`` the same loop,
    still vectorised, loads the lanes one by one: measured on a 2-core AMD EPYC (Zen 4, AVX-512),
    STG N = 10,000, one thread, 100 ms: 2,995 against 1,880 neuron-s per CPU-s. The results are
    the same either way (a load is a load). Numba takes its CPU features once per process, when
    it first compiles or loads compiled code, so this runs before the first kernel; it leaves
    ``NUMBA_CPU_FEATURES`` alone when the user set it, and changes nothing when Numba's code
    generator already started (the kernels are then slower, not different). Numba's disk cache
    keys on the features, so kernels compiled with and without never mix.
    """
    import numba  # noqa: PLC0415

    if numba.config.CPU_FEATURES is not None or platform.machine().lower() not in ("x86_64", "amd64"):
        return
    import llvmlite.binding as llvm  # noqa: PLC0415

    if llvm.llvm_version_info < (17,):  # the feature's name is unknown before LLVM 17
        return
    numba.config.CPU_FEATURES = llvm.get_host_cpu_features().flatten() + ",+prefer-no-gather"


def _module(source: str) -> Any:
    """Import the generated module (writing its file first if needed); one import per source."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    with _LOCK:
        mod = _MODULES.get(digest)
        if mod is not None:
            return mod
        _prefer_scalar_loads()
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"kernel_{digest}.py"
        if not path.exists() or path.read_text() != source:
            # Atomic: another process importing the same file never sees half of it. An existing
            # identical file is left alone, so that its mtime (part of Numba's cache key) stays.
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                fh.write(source)
            os.replace(tmp, path)
        name = f"condspace_kernel_{digest}"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        _MODULES[digest] = mod
        return mod


def kernel(src: NumbaSource, threads: int) -> Any:
    """The compiled kernel: the serial variant for one thread, the ``prange`` one otherwise.

    One thread never touches Numba's threading layer, so it is safe in forked processes and in
    Dask worker threads (the default OpenMP layer is neither fork- nor re-entrancy-safe).
    """
    if threads > 1:
        _fork_safe_threads()
    mod = _module(src.source)
    return getattr(mod, NUMBA_KERNELS[1] if threads > 1 else NUMBA_KERNELS[0])


def noise_filter(src: NumbaSource, threads: int) -> Any:
    """The compiled noise filter of the kernel's module (serial for one thread, as :func:`kernel`)."""
    if threads > 1:
        _fork_safe_threads()
    return getattr(_module(src.source), NUMBA_NOISE[1] if threads > 1 else NUMBA_NOISE[0])


class _NoiseBlocks:
    """A chunk's noise current, block by block, in the (neurons, steps) layout the kernel reads.

    The white draws come from :meth:`_Noise.white_groups` (the generators filled in parallel
    threads) and are filtered and scaled by the module's compiled filter, which repeats
    ``scipy.signal.sosfilt``'s arithmetic: the same values :meth:`_Noise.block` gives the NumPy
    engine, without SciPy's transposed copies (measured: the host-side noise took as long as the
    kernel for a noisy STG population).
    """

    def __init__(self, src: NumbaSource, threads: int, noise: Any, m: int) -> None:
        self.noise, self.threads, self.m = noise, threads, m
        self.filter = noise_filter(src, threads)
        n = noise.n
        none = noise.sos is None
        self.sos = np.zeros((1, 6)) if none else np.ascontiguousarray(noise.sos, dtype=np.float64)
        self.n_sos = 0 if none else int(self.sos.shape[0])
        self.zi = np.zeros((n, max(self.n_sos, 1), 2))  # each neuron's filter state, carried between blocks
        self.scale = np.ascontiguousarray(np.broadcast_to(np.asarray(noise.scale, dtype=np.float64), (n,)))
        self.out = np.zeros((m, 0))
        self.white = None

    def next(self, steps: int) -> np.ndarray:
        """(m, steps) noise current of the next block (µA/cm²); rows past the chunk's neurons are 0."""
        if self.out.shape[1] != steps:  # reused between blocks: padding rows stay 0
            self.out = np.zeros((self.m, steps))
        self.white = white = self.noise.white_groups(steps, self.threads, self.white)
        self.filter(white, self.noise.group_of, self.noise.column_of, self.sos, self.n_sos, self.zi,
                    self.scale, self.out)
        return self.out


def _fork_safe_threads() -> None:
    """Run the threaded kernel on Numba's own work queue, not GNU OpenMP (unless the user chose).

    PyTorch ships its own ``libgomp.so.1``; Numba's OpenMP layer then shares it. After the threaded
    kernel ran, the process holds an OpenMP thread pool, and the flows of the posterior are trained
    in forked processes whose PyTorch uses that libgomp: a forked child of a GNU OpenMP process can
    deadlock. A full-mode chapter 2 stopped so (its training workers never started) after the
    compiled engine simulated the training set. The work queue has no such state across a fork.
    Must run before the first threaded launch: Numba picks its layer then, once per process.
    """
    if "NUMBA_THREADING_LAYER" in os.environ:
        return
    import numba  # noqa: PLC0415

    numba.config.THREADING_LAYER = "workqueue"


def max_threads() -> int:
    """The most threads Numba may use in this process (``NUMBA_NUM_THREADS``, by default every core)."""
    import numba  # noqa: PLC0415

    return int(numba.config.NUMBA_NUM_THREADS)


def run_chunk(src: NumbaSource, threads: int, g: np.ndarray, cur: np.ndarray, n_steps: int, transient: float,
              noise: Any, rec: tuple | None, trace_store: np.ndarray | None, bar: Any,
              check_every: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Integrate one chunk of neurons through the whole simulation.

    Args:
        src: Generated source (cell, dt, method).
        threads: Threads for this chunk (1: the serial kernel).
        g: (n, n_channels) conductances (mS/cm²), leak last.
        cur: (n,) applied current (µA/cm²).
        n_steps: Number of time steps.
        transient: Spikes before this time (ms) are not kept.
        noise: A :class:`condspace._results._Noise` for this chunk, or None.
        rec: ``(rows of trace_store, neuron indices in the chunk, steps between samples)`` or None.
        trace_store: (n_rec, samples) array the recorded voltages are written to (mV).
        bar: Progress bar or None.
        check_every: Steps between blow-up checks.

    Returns:
        (one spike-time array per neuron, (n,) ok flags).
    """

    fn = kernel(src, threads)
    if threads > 1:
        import numba  # noqa: PLC0415

        numba.set_num_threads(min(threads, max_threads()))
    n = g.shape[0]
    # Pad the chunk to whole groups of src.group_size neurons with copies of its last neuron; their
    # results are dropped (each neuron's arithmetic is independent of its group mates).
    m = -(-n // src.group_size) * src.group_size
    pad = np.concatenate([np.arange(n), np.full(m - n, n - 1, dtype=np.int64)])
    g, cur = g[pad], cur[pad]
    f64 = np.float64
    state = {
        "V": np.full(m, src.init_v),
        "X": np.repeat(np.asarray(src.init_x, dtype=f64).reshape(-1, 1), m, axis=1).reshape(src.n_x, m),
        "P": np.repeat(np.asarray(src.init_p, dtype=f64).reshape(-1, 1), m, axis=1).reshape(src.n_p, m),
        "CA": np.full(m, src.init_ca),
        "armed": np.full(m, src.init_v < SPIKE_REARM),
        "ok": np.ones(m, dtype=bool),
    }
    g_leak = np.ascontiguousarray(g[:, -1])
    gbar = np.ascontiguousarray(g[:, :-1].T)
    drive0 = g_leak * src.E_leak + cur  # as the NumPy engine forms it
    every, slot, trace = 1, np.full(m, -1, dtype=np.int64), np.zeros((1, 1))
    if rec is not None and len(rec[1]):
        store_rows, local, every = rec
        uniq, inverse = np.unique(local, return_inverse=True)
        slot[uniq] = np.arange(len(uniq))
        trace = np.full((len(uniq), n_steps // every + 1), src.init_v)
    steps_per = STEPS_PER_LAUNCH
    if noise is not None:  # the NumPy engine's block length, so that both draw in the same pieces
        steps_per = max(100, min(5000, int(NOISE_BLOCK_VALUES // max(n, 1))))
    cap = int(steps_per * src.dt * SPIKE_BUFFER_HZ / 1000.0) + SPIKE_BUFFER_MIN
    spk_t = np.empty((m, cap))
    spk_n = np.zeros(m, dtype=np.int64)
    no_noise = np.zeros((1, 1))
    blocks = _NoiseBlocks(src, threads, noise, m) if noise is not None else None
    hits_i, hits_t = [], []
    k = 0
    while k < n_steps:
        steps = min(steps_per, n_steps - k)
        block = no_noise if blocks is None else blocks.next(steps)
        snapshot = {key: arr.copy() for key, arr in state.items()}
        while True:
            fn(steps, k, n_steps, check_every, float(transient), src.dt, src.neg_dt, src.v_rate, src.ca_decay,
               gbar, g_leak, drive0, block, noise is not None,
               state["V"], state["X"], state["P"], state["CA"], state["armed"], state["ok"], src.table,
               spk_t, spk_n, slot, trace, every)
            most = int(spk_n[:n].max())
            if int(spk_n.max()) <= spk_t.shape[1]:
                break
            # A neuron spiked more often than the buffer holds: restore the state and rerun the
            # block with room for all of them (the trace samples are rewritten identically).
            for key, arr in state.items():
                arr[...] = snapshot[key]
            most = int(spk_n.max())
            spk_t = np.empty((m, most + most // 4))
        if most:
            idx, col = np.nonzero(np.arange(most)[None, :] < spk_n[:n, None])
            hits_i.append(idx)
            hits_t.append(spk_t[idx, col])
        if bar is not None:
            bar.update(n * steps)
        k += steps
    if rec is not None and len(rec[1]):
        trace_store[store_rows] = trace[inverse]
    ok = state["ok"][:n].copy()
    return _split_spikes(hits_i, hits_t, n, ok), ok
