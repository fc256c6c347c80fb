"""The uniform box prior on named conductances and the recording's parameters, and θ → conductance matrix.

θ holds the inferred conductances and, after them, the parameters of how the recording was made
(:data:`OBSERVATION_NAMES`, each optional, in that order): the strength of the noise current and
the probability that the spike detector missed a spike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from condspace import cells as _cells
from condspace.channels import CellType

NOISE_NAME = "noise_std"
"""Name of the inferred noise strength in θ: the standard deviation of the filtered noise current
(µA/cm², after filtering; SCIENCE.md §5)."""
MISSED_NAME = "p_missed"
"""Name of the inferred probability that the spike detector misses a spike (each spike
independently; dimensionless, in [0, 1))."""
OBSERVATION_NAMES = (NOISE_NAME, MISSED_NAME)
"""The recording's parameters, in the order they follow the conductances in θ (each optional)."""


# ----- prior -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prior:
    """A uniform box prior on named conductances (mS/cm²) and, optionally, the recording's parameters.

    Attributes:
        names: Parameter names (``"g_Na"``, ..., then :data:`NOISE_NAME` and :data:`MISSED_NAME`
            when inferred, in that order), the order of every θ array.
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
        names = tuple(self.names)
        trailing = tuple(n for n in names if n in OBSERVATION_NAMES)
        if names[len(names) - len(trailing):] != trailing or trailing != tuple(
                n for n in OBSERVATION_NAMES if n in trailing):
            raise ValueError(f"Prior: {' and '.join(OBSERVATION_NAMES)} must follow the conductances, in that order; "
                             f"got names {names}")
        if NOISE_NAME in names and low[names.index(NOISE_NAME)] < 0:
            raise ValueError(f"Prior: {NOISE_NAME} is a standard deviation; its lower bound must be ≥ 0, "
                             f"got {low[names.index(NOISE_NAME)]}")
        if MISSED_NAME in names and not 0 <= low[names.index(MISSED_NAME)] < high[names.index(MISSED_NAME)] <= 1:
            raise ValueError(f"Prior: {MISSED_NAME} is a probability; its bounds must lie in [0, 1], got "
                             f"[{low[names.index(MISSED_NAME)]}, {high[names.index(MISSED_NAME)]}]")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def has_noise(self) -> bool:
        """Whether the noise strength is inferred."""
        return NOISE_NAME in self.names

    @property
    def has_missed(self) -> bool:
        """Whether the probability of a missed spike is inferred."""
        return MISSED_NAME in self.names

    @property
    def observation_names(self) -> tuple[str, ...]:
        """The inferred parameters of the recording (a part of :data:`OBSERVATION_NAMES`), after the conductances."""
        return tuple(n for n in self.names if n in OBSERVATION_NAMES)

    @property
    def conductance_names(self) -> tuple[str, ...]:
        """The inferred conductances: every name before the recording's parameters."""
        return self.names[:len(self.names) - len(self.observation_names)]

    def _column(self, theta: Any, name: str) -> np.ndarray | None:
        if name not in self.names:
            return None
        return np.atleast_2d(np.asarray(theta, dtype=float))[:, self.names.index(name)]

    def noise(self, theta: Any) -> np.ndarray | None:
        """(N,) inferred noise strengths (µA/cm²) of θ (N, d), or None when the noise is not inferred."""
        return self._column(theta, NOISE_NAME)

    def missed(self, theta: Any) -> np.ndarray | None:
        """(N,) inferred probabilities of a missed spike of θ (N, d), or None when not inferred."""
        return self._column(theta, MISSED_NAME)

    def conductance_columns(self, theta: Any) -> np.ndarray:
        """θ (N, d) without the recording's parameters: (N, len(conductance_names)), mS/cm²."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        return theta[:, :len(self.conductance_names)]

    @property
    def dim(self) -> int:
        """Number of inferred parameters d."""
        return len(self.names)

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """(n, d) independent uniform draws (float64).

        The conductances are drawn first, then each parameter of the recording in turn, so a seed
        gives the same conductances (and noise strengths) with and without the later columns.
        """
        rng = np.random.default_rng(seed)
        u = rng.random((int(n), len(self.conductance_names)))
        for _ in self.observation_names:
            u = np.column_stack([u, rng.random(int(n))])
        return self.low + (self.high - self.low) * u

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
        """``theta`` (n, d) as a DataFrame with one column per parameter (the recording's last, if inferred)."""
        return pd.DataFrame(np.atleast_2d(np.asarray(theta, dtype=float)), columns=list(self.names))


def make_prior(cell: str | CellType, bounds: Mapping[str, tuple[float, float]] | None = None,
               widen: bool = True, noise: float | None = None, missed: float | None = None) -> Prior:
    """The uniform prior on a cell's inferred conductances, noise strength and spike-detection misses.

    Uniform, not log-uniform: the literature box starts at 0 for every active channel ("channel
    absent" is a legitimate member of a degenerate set, and log-uniform needs an arbitrary positive
    floor); a log-uniform prior would put most of its mass at conductances too small to matter;
    and SCIENCE.md §6 and Gonçalves et al. (2020) measured with uniform priors, so our numbers stay
    comparable. Conductances in ``cell.fixed`` are not inferred, except those the cell lists in
    ``inferred_fixed`` (the DA's g_NMDA), whose declared range is their prior.

    The noise strength (:data:`NOISE_NAME`, µA/cm² after filtering) is uniform on [0, max]: the
    training simulations then include the noise current, so that one posterior serves clean and
    noisy recordings and says how noisy it thinks a recording is. Uniform from 0 because a clean
    recording is a legitimate answer.

    The probability that the detector missed a spike (:data:`MISSED_NAME`) is uniform on [0, max]
    when the cell declares ``missed_prior`` > 0: each training simulation then loses each of its
    spikes with its own probability, as a detector that misses spikes would (Bernoulli thinning,
    :func:`condspace.inference.simulator.miss_spikes`), so that a recording with a few undetected
    spikes lies inside the model instead of looking irregular. Uniform from 0: perfect detection is
    a legitimate answer.

    Args:
        cell: Cell type or its name.
        bounds: Optional overrides name → (low, high) in mS/cm² (µA/cm² for ``noise_std``, a
            probability for ``p_missed``).
        widen: Apply the cell's ``prior_widening`` (default), e.g. so that the published examples
            lie inside (:meth:`condspace.channels.CellType.prior_box`).
        noise: Upper bound of the noise strength (µA/cm²); default the cell's ``noise_prior``;
            0: the noise is not inferred.
        missed: Upper bound of the probability of a missed spike; default the cell's
            ``missed_prior``; 0: detection is taken as perfect (not inferred).

    Raises:
        KeyError: ``bounds`` names a conductance that is not inferred for this cell.
    """
    cell = _cells.get(cell)
    ranges = {**cell.box, **cell.inferred_fixed}
    box = cell.prior_box() if widen else {name: tuple(map(float, ranges[name])) for name in cell.inferred_names}
    noise_max = cell.noise_prior if noise is None else noise
    if isinstance(noise_max, bool) or not isinstance(noise_max, int | float) or not 0 <= noise_max < np.inf:
        raise ValueError(f"noise: the largest noise strength must be a finite number ≥ 0 µA/cm² (0: not inferred), "
                         f"got {noise_max!r}")
    if noise_max > 0:
        box[NOISE_NAME] = (0.0, float(noise_max))
    missed_max = cell.missed_prior if missed is None else missed
    if isinstance(missed_max, bool) or not isinstance(missed_max, int | float) or not 0 <= missed_max < 1:
        raise ValueError(f"missed: the largest probability of a missed spike must be a number in [0, 1) "
                         f"(0: perfect detection, not inferred), got {missed_max!r}")
    if missed_max > 0:
        box[MISSED_NAME] = (0.0, float(missed_max))
    for name, lohi in (bounds or {}).items():
        if name not in box:
            raise KeyError(f"bounds: {name!r} is not an inferred parameter of {cell.name!r}; "
                           f"inferred: {tuple(box)}")
        box[name] = (float(lohi[0]), float(lohi[1]))
    names = cell.inferred_names + tuple(n for n in OBSERVATION_NAMES if n in box)
    return Prior(names, np.array([box[n][0] for n in names]), np.array([box[n][1] for n in names]))


def conductances(cell: str | CellType, prior: Prior, theta: Any) -> np.ndarray:
    """(N, n_channels) conductance matrix: θ (N, d) in ``prior.names`` order plus ``cell.fixed``.

    The recording's parameters are not conductances and are left out (:meth:`Prior.noise` and
    :meth:`Prior.missed` read them).
    """
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


