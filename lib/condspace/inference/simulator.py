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
from condspace.inference.prior import Prior, conductances


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
        theta: (N, d) inferred conductances (mS/cm²), and the noise strength (µA/cm²) last when
            the prior infers it: each row is simulated with its own noise.
        protocol: Simulation protocol; default the cell's literature protocol.
        seed: Noise seed (only used when there is noise).
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
                         f"({prior.names[-1]}); set the protocol's noise_std to 0 or use make_prior(..., noise=0)")
    res = simulate(cell, g, t_max=protocol.t_max, transient=protocol.transient, dt=protocol.dt,
                   noise_std=protocol.noise_std if noise is None else noise, seed=seed, backend=backend,
                   method=protocol.method, progress=progress, client=client)
    labels = _features.classify(res.spike_times, ok=np.asarray(res.ok, dtype=bool)).to_numpy()
    x = summary_features(res.spike_times, protocol.duration)
    valid = np.isin(labels, ("spiking", "bursting")) & np.all(np.isfinite(x), axis=1)
    x[~valid] = np.nan
    return SimulatedFeatures(x, valid, labels.astype(str), res.spike_times, float(res.metadata["wall_s"]))


