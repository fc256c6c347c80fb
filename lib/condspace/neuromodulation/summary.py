"""Every channel pair along one path, and the cost table of a set of trajectories.
"""


from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from condspace import cells as _cells
from condspace.channels import CellType
from condspace.neuromodulation.paths import Trajectory, modulate_along
from condspace.neuromodulation.system import DEFAULT_EPS, DEFAULT_ITERATIONS, active_channels, channel_pairs, pair_label


# ----- summary of every pair along one path --------------------------------------------------------
def path_summary(cell: CellType | str, g: Any, points: Any, pairs: Sequence[Sequence[str]] | None = None,
                 V: float | None = None, eps: float = DEFAULT_EPS,
                 iterations: int = DEFAULT_ITERATIONS) -> tuple[pd.DataFrame, dict[str, Trajectory]]:
    """Reachable fraction and cost of every pair along one path.

    Args:
        cell: Cell type or registry name.
        g: (N, n_channels) starting conductances (mS/cm²).
        points: (n_points, 2|3) path points, e.g. :func:`path`.
        pairs: Channel subsets; default every pair of :func:`active_channels`.
        V: Reference voltage V* (mV); default the cell's recipe.
        eps: Tolerance on the achieved DICs (× g_leak).
        iterations: Maximum calcium fixed-point passes per point.

    Returns:
        (table, trajectories). The table has one row per subset: ``pair``, ``reachable_fraction``
        (neurons reaching every point), ``reason`` (``"singular"`` or ``"ok"``),
        ``n_singular``, ``n_negative``, ``n_missed`` (neurons failing somewhere on the path, by
        first failure), and ``median_cost_<channel>``, ``iqr_cost_<channel>`` at the end of the
        path over the neurons reaching the whole path (NaN for channels not in the subset).
        ``trajectories`` maps the pair label to its :class:`Trajectory`.
    """
    cell = _cells.get(cell)
    pairs = channel_pairs(cell) if pairs is None else [tuple(p) for p in pairs]
    rows, trajectories = [], {}
    for pair in pairs:
        tr = modulate_along(cell, g, points, pair, V=V, iterations=iterations, eps=eps)
        label = pair_label(tr.channels)
        trajectories[label] = tr
        worst = np.where(tr.status == 0, 0, tr.status).max(axis=0)  # a code per neuron (0 = reaches all)
        row: dict[str, Any] = {"pair": label, "reachable_fraction": tr.reachable_fraction,
                               "reason": "singular" if bool((tr.status == 1).all()) else "ok",
                               "n_singular": int((worst == 1).sum()), "n_nonfinite": int((worst == 2).sum()),
                               "n_negative": int((worst == 3).sum()), "n_missed": int((worst == 4).sum())}
        table = tr.cost()
        for name in active_channels(cell):
            row[f"median_cost_{name}"] = table.loc[name, "median"] if name in table.index else np.nan
        for name in active_channels(cell):
            row[f"iqr_cost_{name}"] = table.loc[name, "iqr"] if name in table.index else np.nan
        rows.append(row)
    return pd.DataFrame(rows), trajectories


def cost_table(trajectories: Mapping[str, Trajectory], point: int = -1) -> pd.DataFrame:
    """Long table of the cost of every subset that moves some neurons along its whole path.

    Args:
        trajectories: label → :class:`Trajectory` (e.g. the second result of :func:`path_summary`).
        point: Path index where the cost is read (default: the end).

    Returns:
        One row per (subset, channel): ``pair``, ``channel``, ``median``, ``q25``, ``q75``, ``iqr``,
        ``n`` (fold changes over the neurons reaching the whole path) and ``reachable_fraction``;
        sorted by the subset's largest median |log fold change| (cheapest first).
    """
    rows = []
    for label, tr in trajectories.items():
        if tr.reachable_fraction == 0:
            continue
        for channel, r in tr.cost(point).iterrows():
            rows.append({"pair": label, "channel": channel, **r.to_dict(), "reachable_fraction": tr.reachable_fraction})
    table = pd.DataFrame(rows, columns=["pair", "channel", "median", "q25", "q75", "iqr", "n", "reachable_fraction"])
    if table.empty:
        return table
    size = np.abs(np.log(table["median"].astype(float))).groupby(table["pair"]).transform("max")
    order = np.lexsort((table["pair"].to_numpy(), size.to_numpy()))
    return table.iloc[order].reset_index(drop=True)


