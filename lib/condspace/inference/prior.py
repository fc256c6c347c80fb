"""The uniform box prior on named conductances and the noise strength, and θ → full conductance matrix.
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
(µA/cm², after filtering; SCIENCE.md §5), always the last column when present."""


# ----- prior -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prior:
    """A uniform box prior on named conductances (mS/cm²) and, optionally, the noise strength.

    Attributes:
        names: Parameter names (``"g_Na"``, ..., and :data:`NOISE_NAME` last when the noise is
            inferred), the order of every θ array.
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
        if NOISE_NAME in names[:-1]:
            raise ValueError(f"Prior: {NOISE_NAME} must be the last parameter, got names {names}")
        if names and names[-1] == NOISE_NAME and low[-1] < 0:
            raise ValueError(f"Prior: {NOISE_NAME} is a standard deviation; its lower bound must be ≥ 0, got {low[-1]}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def has_noise(self) -> bool:
        """Whether the noise strength is inferred (the last column of θ)."""
        return bool(self.names) and self.names[-1] == NOISE_NAME

    @property
    def conductance_names(self) -> tuple[str, ...]:
        """The inferred conductances: every name but :data:`NOISE_NAME`."""
        return self.names[:-1] if self.has_noise else self.names

    def noise(self, theta: Any) -> np.ndarray | None:
        """(N,) inferred noise strengths (µA/cm²) of θ (N, d), or None when the noise is not inferred."""
        if not self.has_noise:
            return None
        return np.atleast_2d(np.asarray(theta, dtype=float))[:, -1]

    def conductance_columns(self, theta: Any) -> np.ndarray:
        """θ (N, d) without the noise column: (N, len(conductance_names)), mS/cm²."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        return theta[:, :len(self.conductance_names)]

    @property
    def dim(self) -> int:
        """Number of inferred parameters d."""
        return len(self.names)

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """(n, d) independent uniform draws (float64).

        The conductances are drawn first and the noise after them, so a seed gives the same
        conductances with and without an inferred noise column.
        """
        rng = np.random.default_rng(seed)
        u = rng.random((int(n), len(self.conductance_names)))
        if self.has_noise:
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
        """``theta`` (n, d) as a DataFrame with one column per parameter (``noise_std`` last, if inferred)."""
        return pd.DataFrame(np.atleast_2d(np.asarray(theta, dtype=float)), columns=list(self.names))


def make_prior(cell: str | CellType, bounds: Mapping[str, tuple[float, float]] | None = None,
               widen: bool = True, noise: float | None = None) -> Prior:
    """The uniform prior on a cell's inferred conductances and noise strength.

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

    Args:
        cell: Cell type or its name.
        bounds: Optional overrides name → (low, high) in mS/cm² (µA/cm² for ``noise_std``).
        widen: Apply the cell's ``prior_widening`` (default), e.g. so that the published examples
            lie inside (:meth:`condspace.channels.CellType.prior_box`).
        noise: Upper bound of the noise strength (µA/cm²); default the cell's ``noise_prior``;
            0: the noise is not inferred (θ holds conductances only).

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
    for name, lohi in (bounds or {}).items():
        if name not in box:
            raise KeyError(f"bounds: {name!r} is not an inferred parameter of {cell.name!r}; "
                           f"inferred: {tuple(box)}")
        box[name] = (float(lohi[0]), float(lohi[1]))
    names = cell.inferred_names + ((NOISE_NAME,) if NOISE_NAME in box else ())
    return Prior(names, np.array([box[n][0] for n in names]), np.array([box[n][1] for n in names]))


def conductances(cell: str | CellType, prior: Prior, theta: Any) -> np.ndarray:
    """(N, n_channels) conductance matrix: θ (N, d) in ``prior.names`` order plus ``cell.fixed``.

    An inferred noise column is not a conductance and is left out (:meth:`Prior.noise` reads it).
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


