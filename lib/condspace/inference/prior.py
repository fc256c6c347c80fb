"""The uniform box prior on named conductances, and θ → full conductance matrix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from condspace import cells as _cells
from condspace.channels import CellType


# ----- prior -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prior:
    """A uniform box prior on named conductances (mS/cm²).

    Attributes:
        names: Conductance names (``"g_Na"``, ...), the order of every θ array.
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
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def dim(self) -> int:
        """Number of inferred parameters d."""
        return len(self.names)

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """(n, d) independent uniform draws (float64)."""
        rng = np.random.default_rng(seed)
        return self.low + (self.high - self.low) * rng.random((int(n), self.dim))

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
        """``theta`` (n, d) as a DataFrame with one column per conductance."""
        return pd.DataFrame(np.atleast_2d(np.asarray(theta, dtype=float)), columns=list(self.names))


def make_prior(cell: str | CellType, bounds: Mapping[str, tuple[float, float]] | None = None,
               widen: bool = True) -> Prior:
    """The uniform prior on a cell's inferred conductances.

    Uniform, not log-uniform: the literature box starts at 0 for every active channel ("channel
    absent" is a legitimate member of a degenerate set, and log-uniform needs an arbitrary positive
    floor); a log-uniform prior would put most of its mass at conductances too small to matter;
    and SCIENCE.md §6 and Gonçalves et al. (2020) measured with uniform priors, so our numbers stay
    comparable. Conductances in ``cell.fixed`` are not inferred, except those the cell lists in
    ``inferred_fixed`` (the DA's g_NMDA), whose declared range is their prior.

    Args:
        cell: Cell type or its name.
        bounds: Optional overrides name → (low, high) in mS/cm².
        widen: Apply the cell's ``prior_widening`` (default), e.g. so that the published examples
            lie inside (:meth:`condspace.channels.CellType.prior_box`).

    Raises:
        KeyError: ``bounds`` names a conductance that is not inferred for this cell.
    """
    cell = _cells.get(cell)
    ranges = {**cell.box, **cell.inferred_fixed}
    box = cell.prior_box() if widen else {name: tuple(map(float, ranges[name])) for name in cell.inferred_names}
    for name, lohi in (bounds or {}).items():
        if name not in box:
            raise KeyError(f"bounds: {name!r} is not an inferred conductance of {cell.name!r}; "
                           f"inferred: {cell.inferred_names}")
        box[name] = (float(lohi[0]), float(lohi[1]))
    names = cell.inferred_names
    return Prior(names, np.array([box[n][0] for n in names]), np.array([box[n][1] for n in names]))


def conductances(cell: str | CellType, prior: Prior, theta: Any) -> np.ndarray:
    """(N, n_channels) conductance matrix: θ (N, d) in ``prior.names`` order plus ``cell.fixed``."""
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


