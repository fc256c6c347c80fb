"""Synthetic and demonstration recordings: published example sets simulated with a noise current.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from condspace import cells as _cells
from condspace import features as _features
from condspace.channels import CellType
from condspace.inference.simulator import Protocol

# ----- synthetic observations ---------------------------------------------------------------------
RECORDING_DECIMALS = 3  # spike times rounded to 1 µs, as a recording system would store them


def synthetic_recordings(cell: str | CellType, spec: Mapping[str, tuple[str, float, int]],
                         protocol: Protocol | None = None) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Simulate "recordings" from published example sets, with a filtered noise current.

    Args:
        cell: Cell type or its name.
        spec: ID → (example label in ``cell.examples``, noise_std µA/cm², noise seed).
        protocol: Simulation protocol without noise (default: the cell's); each recording uses
            its own ``noise_std``. NumPy backend, float64.

    Returns:
        (ID → spike times in ms rounded to 1 µs, ground truth DataFrame indexed by ID with the
        example, every conductance, noise_std, seed, the protocol, ``duration_ms`` and the class and
        main features of the recorded train).
    """
    from condspace.simulate import simulate  # noqa: PLC0415

    cell = _cells.get(cell)
    protocol = protocol or Protocol.for_cell(cell)
    trains, rows = {}, []
    for ident, (label, noise, seed) in spec.items():
        g = cell.example(label)
        res = simulate(cell, [g], t_max=protocol.t_max, transient=protocol.transient, dt=protocol.dt,
                       noise_std=float(noise), seed=int(seed), backend="numpy", dtype="float64",
                       method=protocol.method, progress=False)
        if not res.ok[0]:
            raise RuntimeError(f"synthetic_recordings: {ident} ({label}) was flagged numerically invalid")
        trains[ident] = np.round(res.spike_times[0], RECORDING_DECIMALS)
        feats = _features.extract([trains[ident]], protocol.duration).iloc[0]
        rows.append({"ID": ident, "cell": cell.name, "example": label, **g, "noise_std": float(noise),
                     "seed": int(seed), "t_max": protocol.t_max, "transient": protocol.transient, "dt": protocol.dt,
                     "duration_ms": protocol.duration,
                     **{k: feats[k] for k in ("label", "n_spikes", "rate_hz", "cv_isi", "spikes_per_burst",
                                              "burst_period_ms")}})
    return trains, pd.DataFrame(rows).set_index("ID")


def demonstration_recordings(cell: str | CellType, folder: str | os.PathLike | None = None
                             ) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """The demonstration recordings a cell declares (``cell.recordings``), with their ground truth.

    When ``folder`` holds ``<name>_recordings.csv`` and ``<name>_ground_truth.csv`` (written by
    ``tools/make_recordings.py`` from the same declaration) they are read from there, as a user's
    recordings would be; otherwise they are simulated now by :func:`synthetic_recordings` with the
    cell's protocol. Either way the IDs are those of the declaration.

    Args:
        cell: Cell type or its name.
        folder: Folder of shipped recordings (e.g. ``"data/recordings"``), or ``None`` to simulate.

    Returns:
        (ID → spike times in ms, ground truth DataFrame indexed by ID), as :func:`synthetic_recordings`.

    Raises:
        ValueError: The shipped files do not hold exactly the declared recordings.
    """
    from condspace import recordings as _recordings  # noqa: PLC0415  (file I/O only when asked)

    cell = _cells.get(cell)
    if folder is not None:
        rec_path = Path(folder) / f"{cell.name}_recordings.csv"
        truth_path = Path(folder) / f"{cell.name}_ground_truth.csv"
        if rec_path.exists() and truth_path.exists():
            trains = _recordings.load_csv(rec_path)
            truth = pd.read_csv(truth_path, dtype={"ID": str}).set_index("ID")
            if list(trains) != list(cell.recordings) or list(truth.index) != list(cell.recordings):
                raise ValueError(f"folder: {rec_path} holds recordings {list(trains)}, but cell {cell.name!r} declares "
                                 f"{list(cell.recordings)}; regenerate them with tools/make_recordings.py")
            return trains, truth
    return synthetic_recordings(cell, cell.recordings)


