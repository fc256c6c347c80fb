"""Validation by simulation: the modulated neurons' activity against the regime of their target.
"""


from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from condspace import cells as _cells
from condspace import features as _features
from condspace.channels import CellType
from condspace.neuromodulation.paths import Trajectory
from condspace.neuromodulation.system import pair_label
from condspace.simulate import simulate


# ----- validation by simulation --------------------------------------------------------------------
def expected_label(g_s: float) -> str:
    """The activity the DICs predict at V_th (SCIENCE.md §3): g_s < 0 bursting, else tonic spiking."""
    return "bursting" if g_s < 0 else "spiking"


def validate(cell: CellType | str, trajectories: Trajectory | Mapping[str, Trajectory], points: Any = "end",
             target_label: str | None = None, t_max: float | None = None, transient: float | None = None,
             dt: float | None = None, backend: str = "auto", seed: int | None = 0,
             record: int = 0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Simulate populations before, along and after their paths and count who reached the target.

    The starting population is simulated once; at each chosen path point, the neurons reachable
    there (in DIC space) are simulated with their modulated conductances, all in one
    :func:`condspace.simulate` call, and classified by :func:`condspace.features.extract`.

    Args:
        cell: Cell type or registry name.
        trajectories: One :class:`Trajectory` or label → trajectory (all from the same population).
        points: Path indices to simulate: ``"end"`` (default), ``"all"`` or a list of ints.
        target_label: The class that counts as success (``"bursting"``, ``"spiking"``, ``"silent"``);
            default the DIC reading of the path's end (:func:`expected_label`).
        t_max: Simulated time (ms); default the cell's protocol.
        transient: Initial time whose spikes are discarded (ms); default the cell's protocol.
        dt: Time step (ms); default the cell's protocol (STG 0.05, DA 0.025).
        backend: Integrator backend.
        seed: Seed (no noise is injected; kept for reproducible defaults).
        record: Voltage traces of this many neurons per (subset, point) and of the baseline are kept.

    Returns:
        (table, extra). ``table`` has one row per subset and point (``point`` −1 and ``channels``
        "before" for the starting population) with ``g_s``, ``g_u``, ``target_label``,
        ``n_neurons``, ``n_reachable`` (in DIC space), ``n_validated`` (reachable and in the target
        class), ``n_failed`` (reachable but another class in simulation), ``validated_fraction``
        (n_validated / n_neurons), ``validated_of_reachable`` and the fraction of each class among
        the simulated neurons. ``extra`` holds ``labels`` ((subset, point) → (N,) class, "" where
        not simulated), ``traces`` ((subset, point) → (neuron indices, t, V)) and ``wall_s``.

    Raises:
        ValueError: Trajectories of different populations, unknown points or label.
    """
    cell = _cells.get(cell)
    if isinstance(trajectories, Trajectory):
        trajectories = {pair_label(trajectories.channels): trajectories}
    if not trajectories:
        raise ValueError("trajectories: give at least one Trajectory")
    first = next(iter(trajectories.values()))
    for label, tr in trajectories.items():
        if tr.baseline.shape != first.baseline.shape or not np.array_equal(tr.baseline, first.baseline):
            raise ValueError(f"trajectories: {label!r} starts from another population; validate one population at a "
                             "time")
    if target_label is not None and target_label not in _features.LABELS:
        raise ValueError(f"target_label: one of {_features.LABELS}, got {target_label!r}")
    n_pts = first.targets.shape[0]
    if isinstance(points, str):
        if points not in ("end", "all"):
            raise ValueError(f"points: 'end', 'all' or a list of path indices, got {points!r}")
        idx = [n_pts - 1] if points == "end" else list(range(n_pts))
    else:
        idx = [int(i) % n_pts for i in np.atleast_1d(points)]
    t_max = cell.protocol["t_max"] if t_max is None else t_max
    transient = cell.protocol["transient"] if transient is None else transient
    dt = cell.protocol["dt"] if dt is None else dt

    # one batch: the baseline, then each (subset, point) with its reachable neurons
    N = first.baseline.shape[0]
    blocks: list[tuple[str, int, np.ndarray, np.ndarray]] = [("before", -1, np.arange(N), first.baseline)]
    for label, tr in trajectories.items():
        for i in idx:
            who = np.nonzero(tr.reachable[i])[0]
            blocks.append((label, i, who, tr.g[i][who]))
    G = np.concatenate([b[3] for b in blocks])
    rec = []
    offsets = np.cumsum([0] + [len(b[2]) for b in blocks])
    for o, b in zip(offsets[:-1], blocks, strict=True):
        rec.extend(range(o, o + min(record, len(b[2]))))
    res = simulate(cell, G, t_max=t_max, dt=dt, transient=transient, backend=backend, seed=seed,
                   record=rec or None)
    labels_all = _features.extract(res.spike_times, res.duration, ok=res.ok)["label"].to_numpy()
    rows, labels, traces = [], {}, {}
    for o, (label, i, who, _) in zip(offsets[:-1], blocks, strict=True):
        lab = np.full(N, "", dtype=object)
        lab[who] = labels_all[o:o + len(who)]
        labels[(label, i)] = lab
        tr = trajectories[label] if label != "before" else first
        g_s, g_u = (tr.targets[0, 1], tr.targets[0, 2]) if i < 0 else (tr.targets[i, 1], tr.targets[i, 2])
        end_gs = tr.targets[-1, 1]
        want = target_label or expected_label(end_gs)
        sim = lab[who]
        row = {"channels": label, "point": i, "g_s": g_s, "g_u": g_u, "target_label": want, "n_neurons": N,
               "n_reachable": len(who), "n_validated": int((sim == want).sum()),
               "n_failed": int((sim != want).sum())}
        row["validated_fraction"] = row["n_validated"] / N
        row["validated_of_reachable"] = row["n_validated"] / len(who) if len(who) else np.nan
        for cls in _features.LABELS:
            row[f"fraction_{cls}"] = float((sim == cls).mean()) if len(who) else np.nan
        rows.append(row)
        if res.traces is not None:
            sel = [k for k in range(len(res.traces["neurons"])) if o <= res.traces["neurons"][k] < o + len(who)]
            if sel:
                traces[(label, i)] = (who[np.asarray(res.traces["neurons"])[sel] - o], res.traces["t"],
                                      res.traces["V"][sel])
    # trajectories of pairs are labelled by their own target regime; "before" by the first one's
    return pd.DataFrame(rows), {"labels": labels, "traces": traces, "wall_s": res.metadata["wall_s"]}

