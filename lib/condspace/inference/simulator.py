"""The simulator of inference: a batch of conductance vectors → summary features and a validity mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from condspace import cells as _cells
from condspace import features as _features
from condspace.channels import CellType
from condspace.features.summary import summary_features
from condspace.inference.prior import NOISE_NAME, Prior, conductances

# A stream of its own for the detector's misses, so that they never share draws with the prior or the
# noise current generated from the same seed.
_MISSED_STREAM = 0x6D6973


def miss_spikes(spike_times: list[np.ndarray], p_missed: Any, seed: int | None = 0) -> list[np.ndarray]:
    """The spike trains an imperfect detector reports: each spike missed independently with probability p.

    The observation model of :data:`condspace.inference.prior.MISSED_NAME` (Bernoulli thinning):
    a spike that was fired is reported with probability 1 − p, independently of the others.

    Args:
        spike_times: N spike trains (ms), each 1-D.
        p_missed: (N,) probabilities of missing a spike (one per train), or one for all; in [0, 1].
        seed: Seed of the misses (None: fresh entropy). The same seed and trains give the same
            misses: one generator walks the trains in order, one uniform draw per spike.

    Returns:
        N new arrays, each a subsequence of its train.

    Raises:
        ValueError: ``p_missed`` has the wrong shape or lies outside [0, 1].
    """
    n = len(spike_times)
    p = np.asarray(p_missed, dtype=float)
    p = np.full(n, float(p)) if p.ndim == 0 else p
    if p.shape != (n,):
        raise ValueError(f"p_missed: need one probability per spike train ({n},) or a single one, got shape {p.shape}")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"p_missed: probabilities must lie in [0, 1], got values from {np.nanmin(p)} to "
                         f"{np.nanmax(p)}" + (" and NaN" if np.isnan(p).any() else ""))
    rng = np.random.default_rng(None if seed is None else [int(seed), _MISSED_STREAM])
    trains = [np.asarray(t, dtype=float).ravel() for t in spike_times]
    draws = rng.random(sum(t.size for t in trains))
    out, start = [], 0
    for train, p_i in zip(trains, p, strict=True):
        out.append(train[draws[start:start + train.size] >= p_i])
        start += train.size
    return out


# ----- simulator -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Protocol:
    """How a training simulation is run (passed to :func:`condspace.simulate`).

    Attributes:
        t_max: Simulated time (ms).
        transient: Discarded initial time (ms); the analysed window is t_max − transient.
        dt: Time step (ms).
        noise_std: Standard deviation of the filtered noise current (µA/cm²) of every
            simulation, 0 for none; must be 0 when the prior infers the noise (each θ then
            carries its own, see :meth:`condspace.inference.Prior.noise`).
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
        spike_times: The N spike trains (ms), as detected (after :func:`miss_spikes` when the prior
            infers missed spikes).
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
        theta: (N, d) inferred conductances (mS/cm²), then the recording's parameters the prior
            infers: the noise strength (µA/cm²; each row is simulated with its own noise) and the
            probability of a missed spike (each row's spikes are thinned with it,
            :func:`miss_spikes`, before its features are computed).
        protocol: Simulation protocol; default the cell's literature protocol.
        seed: Seed of the noise and of the missed spikes (used only when there are any).
        backend: Array backend of the integrator.
        progress: Progress bar (see :func:`condspace.simulate`).
        client: A ``distributed.Client`` to run the simulations on (see :func:`condspace.simulate`).
    """
    from condspace.simulate import simulate  # noqa: PLC0415

    cell = _cells.get(cell)
    protocol = protocol or Protocol.for_cell(cell)
    g = conductances(cell, prior, theta)
    noise = prior.noise(theta)
    if noise is not None and protocol.noise_std > 0:
        raise ValueError(f"protocol: noise_std={protocol.noise_std} while the prior infers the noise strength "
                         f"({NOISE_NAME}); set the protocol's noise_std to 0 or use make_prior(..., noise=0)")
    res = simulate(cell, g, t_max=protocol.t_max, transient=protocol.transient, dt=protocol.dt,
                   noise_std=protocol.noise_std if noise is None else noise, seed=seed, backend=backend,
                   method=protocol.method, progress=progress, client=client)
    trains = list(res.spike_times)
    if prior.has_missed:  # what the detector reports, not what the neuron fired
        trains = miss_spikes(trains, prior.missed(theta), seed=seed)
    labels = _features.classify(trains, ok=np.asarray(res.ok, dtype=bool)).to_numpy()
    x = summary_features(trains, protocol.duration)
    valid = np.isin(labels, ("spiking", "bursting")) & np.all(np.isfinite(x), axis=1)
    x[~valid] = np.nan
    return SimulatedFeatures(x, valid, labels.astype(str), trains, float(res.metadata["wall_s"]))


