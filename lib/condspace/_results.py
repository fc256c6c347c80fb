"""What every engine of :func:`condspace.simulate` shares: the result, the noise streams, spikes.

The NumPy engine (:mod:`condspace.simulate`), the compiled CPU engine (:mod:`condspace._numba`)
and the CUDA launcher (:mod:`condspace._cuda`) all draw the same noise (:class:`_Noise`), gather
spikes the same way (:func:`_split_spikes`) and assemble one :class:`SimulationResult`
(:func:`empty_outputs`, :func:`voltage_traces`). They import this module, and no engine imports
:mod:`condspace.simulate`, which dispatches to them: no import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

NOISE_CUTOFF_HZ = 1000.0  # SCIENCE.md §5: 4th-order Butterworth low-pass at 1 kHz
NOISE_GROUP = 256  # neurons sharing one noise stream: noise does not depend on the chunk size
CHECK_EVERY = 200  # steps between checks for numerical blow-ups


@dataclass
class SimulationResult:
    """What :func:`simulate` returns.

    Attributes:
        spike_times: One float array per neuron: spike times (ms, from the start of the
            simulation) after the transient. Empty for neurons flagged not ``ok``.
        ok: (N,) bool: False where a state became NaN/inf or V left the physical range.
        traces: ``None`` or ``{"t": (T,) ms, "V": (n_rec, T) mV, "neurons": (n_rec,) int}``.
        metadata: dt, t_max, transient, duration (ms), backend, device, dtype, method, cell,
            n_neurons, wall time (s).
    """

    spike_times: list[np.ndarray]
    ok: np.ndarray
    traces: dict[str, np.ndarray] | None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_spikes(self) -> np.ndarray:
        """(N,) number of spikes after the transient."""
        return np.array([len(s) for s in self.spike_times])

    @property
    def duration(self) -> float:
        """Analysed duration t_max − transient (ms)."""
        return float(self.metadata["duration"])


class _Noise:
    """Low-pass filtered Gaussian current, std = noise_std after filtering (SCIENCE.md §5).

    Each group of NOISE_GROUP consecutive neurons has its own stream seeded by (seed, group), so
    a neuron's noise does not depend on how the population is chunked. ``std`` is one standard
    deviation for the chunk or one per neuron of the chunk, (n,): it only scales the filtered
    stream, so neuron i with σ_i draws exactly what a run with the scalar σ_i gives it.
    """

    def __init__(self, std: float | np.ndarray, dt: float, seed: int | None, start: int, n: int) -> None:
        from scipy import signal  # noqa: PLC0415

        fs = 1000.0 / dt  # Hz
        self.sos = None
        if NOISE_CUTOFF_HZ < 0.95 * fs / 2:
            self.sos = signal.butter(4, NOISE_CUTOFF_HZ, btype="low", fs=fs, output="sos")
            impulse = np.zeros(int(20 * fs / NOISE_CUTOFF_HZ) + 1000)
            impulse[0] = 1.0
            gain = np.sqrt(np.sum(signal.sosfilt(self.sos, impulse) ** 2))
            self.zi = np.zeros((self.sos.shape[0], 2, n))
        else:
            gain = 1.0
        self.scale = np.asarray(std, dtype=float) / gain  # () or (n,): broadcast over the neurons
        base = 0 if seed is None else int(seed)
        entropy = np.random.SeedSequence().entropy if seed is None else base
        g0, g1 = start // NOISE_GROUP, (start + n - 1) // NOISE_GROUP
        self.streams = [(max(start, g * NOISE_GROUP) - start, min(start + n, (g + 1) * NOISE_GROUP) - start,
                         np.random.default_rng([entropy, g])) for g in range(g0, g1 + 1)]
        self.offsets = [max(0, start - g * NOISE_GROUP) for g in range(g0, g1 + 1)]
        self.n = n
        # Where neuron i of the chunk reads its stream in white_groups(): (group, column).
        self.group_of = (start + np.arange(n)) // NOISE_GROUP - g0
        self.column_of = (start + np.arange(n)) % NOISE_GROUP

    def white_groups(self, steps: int, threads: int = 1, out: np.ndarray | None = None) -> np.ndarray:
        """The next ``steps`` white draws of every stream of the chunk, before filtering and scaling.

        The very draws :meth:`block` makes (each group's generator fills ``(steps, NOISE_GROUP)``
        in the same order), so a chunk must use one of the two methods only. Used by the compiled
        engine, which filters and scales them in compiled code (``noise_serial``/``noise_parallel``
        of the generated module, the arithmetic of ``scipy.signal.sosfilt``), instead of SciPy's
        filter on a transposed copy.

        Args:
            steps: Time steps.
            threads: Generators filled at once (NumPy's generators release the GIL).
            out: A (n_groups, steps, NOISE_GROUP) float64 array to fill (reused between blocks), or None.

        Returns:
            (n_groups, steps, NOISE_GROUP) float64; neuron i of the chunk reads
            ``[group_of[i], :, column_of[i]]``.
        """
        shape = (len(self.streams), steps, NOISE_GROUP)
        if out is None or out.shape != shape:
            out = np.empty(shape)

        def fill(k: int) -> None:
            self.streams[k][2].standard_normal(out=out[k])

        if threads > 1 and len(self.streams) > 1:
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

            with ThreadPoolExecutor(min(threads, len(self.streams))) as pool:
                list(pool.map(fill, range(len(self.streams))))
        else:
            for k in range(len(self.streams)):
                fill(k)
        return out

    def block(self, steps: int) -> np.ndarray:
        """The next ``steps`` time steps of current: shape (steps, n), µA/cm²."""
        from scipy import signal  # noqa: PLC0415

        white = np.empty((steps, self.n))
        for (a, b, rng), off in zip(self.streams, self.offsets, strict=True):
            # Draw the whole group so that a neuron's stream does not depend on chunk borders.
            full = rng.standard_normal((steps, NOISE_GROUP))
            white[:, a:b] = full[:, off:off + (b - a)]
        if self.sos is not None:
            white, self.zi = signal.sosfilt(self.sos, white, axis=0, zi=self.zi)
        white *= self.scale
        return white


def chunk_noise(std: float | np.ndarray, dt: float, seed: int | None, start: int, stop: int,
                offset: int = 0) -> _Noise | None:
    """The noise of neurons start..stop-1, or None when all of them are noiseless.

    Args:
        std: Scalar or per-neuron (µA/cm², after filtering) standard deviation; an array holds the
            neurons from index ``offset`` on (a job sliced for a Dask task).
        dt: Time step (ms).
        seed: Noise seed.
        start: The chunk's first neuron (index in the whole population).
        stop: One past the chunk's last neuron.
        offset: Population index of ``std[0]``.
    """
    local = std if np.ndim(std) == 0 else np.asarray(std, dtype=float)[start - offset:stop - offset]
    if not np.any(np.asarray(local) > 0):
        return None
    return _Noise(local, dt, seed, start, stop - start)


def noise_summary(std: float | np.ndarray) -> float | list[float]:
    """``noise_std`` as the result's metadata holds it: a float, or a list of per-neuron floats."""
    return float(std) if np.ndim(std) == 0 else [float(v) for v in np.asarray(std)]


# ----- assembling a result ---------------------------------------------------------------------
def empty_outputs(n: int, n_steps: int, rec: tuple[np.ndarray, int] | None
                  ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray | None]:
    """(spike trains, ok mask, trace buffer or None) for n neurons before any chunk has run.

    Args:
        n: Neurons.
        n_steps: Time steps.
        rec: ``(neuron indices, steps between samples)`` of the recorded traces, or None.
    """
    spikes: list[np.ndarray] = [np.empty(0)] * n
    trace_store = None if rec is None else np.empty((len(rec[0]), n_steps // rec[1] + 1))
    return spikes, np.ones(n, dtype=bool), trace_store


def voltage_traces(trace_store: np.ndarray | None, rec: tuple[np.ndarray, int] | None,
                   dt: float) -> dict[str, np.ndarray] | None:
    """The ``traces`` of a :class:`SimulationResult`: sample times (ms), voltages (mV), neurons."""
    if rec is None:
        return None
    return {"t": np.arange(trace_store.shape[1]) * rec[1] * dt, "V": trace_store, "neurons": rec[0]}


def _progress_bar(show: bool, total: float, name: str):
    if not show:
        return None
    from tqdm.std import tqdm  # noqa: PLC0415  (tqdm.auto warns in a kernel without ipywidgets, into the book)

    return tqdm(total=int(total), unit="neuron-step", unit_scale=True, desc=f"simulate {name}")


def _split_spikes(hits_idx: list, hits_t: list, n: int, ok: np.ndarray) -> list[np.ndarray]:
    if not hits_idx:
        return [np.empty(0) for _ in range(n)]
    idx = np.concatenate(hits_idx)
    t = np.concatenate(hits_t)
    order = np.argsort(idx, kind="stable")  # stable: times stay in temporal order per neuron
    idx, t = idx[order], t[order]
    bounds = np.searchsorted(idx, np.arange(n + 1))
    return [t[bounds[i]:bounds[i + 1]] if ok[i] else np.empty(0) for i in range(n)]
