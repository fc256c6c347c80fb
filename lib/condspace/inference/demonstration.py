"""Synthetic and demonstration recordings: published example sets simulated with a noise current.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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



# ----- the user's recordings (the chapters' RECORDINGS and GROUND_TRUTH parameters) -----------------
OBSERVED_COLUMNS = ("label", "n_spikes", "rate_hz", "cv_isi", "spikes_per_burst", "burst_period_ms")


@dataclass(frozen=True)
class RecordingSet:
    """Recordings a chapter works on, their observed classes and, when known, their ground truth.

    Attributes:
        trains: ID → spike times (ms), in file order.
        table: Per ID (index): the class and main features of the recorded train
            (:data:`OBSERVED_COLUMNS`, :func:`condspace.features.extract`), ``duration_ms`` and
            ``transient`` (ms, start of the analysed window), then every column of the ground truth
            when there is one (conductances in mS/cm² and any other column of its file).
        truth: (IDs × ``cell.conductance_names``) ground-truth conductances (mS/cm²), or ``None``
            when the recordings come without one: the chapters then skip what needs it.
        duration: Length of the analysed window (ms) used for rates.
        source: Where the recordings come from, in words (for the chapters' prose).
    """

    trains: dict[str, np.ndarray]
    table: pd.DataFrame
    truth: pd.DataFrame | None
    duration: float
    source: str

    @property
    def has_truth(self) -> bool:
        """Whether ground-truth conductances are known for every recording."""
        return self.truth is not None


def load_recordings(cell: str | CellType, recordings: str | os.PathLike | None = None,
                    ground_truth: str | os.PathLike | None = None, *,
                    folder: str | os.PathLike | None = "data/recordings") -> RecordingSet:
    """The recordings of chapters 2–4: the cell's demonstration set by default, or the user's file.

    Args:
        cell: Cell type or its name.
        recordings: Spike-time CSV in the ``ID,spiking_times`` format of
            :mod:`condspace.recordings` (times in ms), or ``None`` for the cell's demonstration
            recordings (:func:`demonstration_recordings`, with their ground truth).
        ground_truth: Optional CSV of conductances per recording ID (:func:`load_ground_truth`);
            with ``recordings=None`` it replaces the shipped ground truth.
        folder: Folder of shipped recordings for the default (see :func:`demonstration_recordings`).

    Returns:
        A :class:`RecordingSet`. A user's spike times are read as a window of the cell's protocol
        duration (``t_max − transient``: 3000 ms for the STG), the window the posterior was trained on.

    Raises:
        FileNotFoundError: A file does not exist (named, with the parameter).
        ValueError: A malformed file (the message names the file and the line, from
            :func:`condspace.recordings.load_csv` or :func:`load_ground_truth`), no recordings, a
            train flagged invalid, a train with fewer than three spikes (nothing to infer from), a
            train longer than the analysed window, or ground truth missing some IDs.
    """
    from condspace import recordings as _recordings  # noqa: PLC0415  (file I/O only when asked)

    cell = _cells.get(cell)
    duration = Protocol.for_cell(cell).duration
    if recordings is None:
        trains, table = demonstration_recordings(cell, folder)
        truth = table[list(cell.conductance_names)]
        source = f"the demonstration recordings of cell {cell.name!r} (synthetic, ground truth known)"
        if ground_truth is not None:
            truth = load_ground_truth(ground_truth, cell, list(trains))
            table = table.drop(columns=[c for c in table.columns if c in truth.columns]).join(truth)
            truth = truth[list(cell.conductance_names)]
        return RecordingSet(dict(trains), table, truth, float(table["duration_ms"].iloc[0]), source)

    path = _existing_file(recordings, "RECORDINGS", "a spike-time CSV (header ID,spiking_times)")
    trains = _recordings.load_csv(path)
    _check_trains(trains, path, duration)
    table = _features.extract(list(trains.values()), duration)[list(OBSERVED_COLUMNS)]
    table.index = pd.Index(list(trains), name="ID")
    table["duration_ms"] = duration
    table["transient"] = float(min(t[0] for t in trains.values()))
    truth = None
    if ground_truth is not None:
        full = load_ground_truth(ground_truth, cell, list(trains))
        table = table.join(full.drop(columns=[c for c in full.columns if c in table.columns]))
        truth = full[list(cell.conductance_names)]
    return RecordingSet(dict(trains), table, truth, duration, f"{Path(path).name} ({len(trains)} recordings)")


def _existing_file(path: str | os.PathLike, name: str, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{name}: no such file {str(path)!r}; expected {what}")
    return path


def _check_trains(trains: Any, path: Path, duration: float) -> None:
    """What a chapter needs of a user's trains beyond a well-formed file (see :func:`load_recordings`)."""
    if not trains:
        raise ValueError(f"{path}: no recordings (a header and no rows); add one row per neuron")
    if trains.invalid:
        raise ValueError(f"{path}: recordings {sorted(trains.invalid)[:10]} are flagged invalid (a simulation that "
                         "blew up); remove them from the file")
    for ident, times in trains.items():
        if times.size < _features.MIN_SPIKES:
            raise ValueError(f"{path}: recording {ident!r} has {times.size} spike(s); inference needs at least "
                             f"{_features.MIN_SPIKES} (an active neuron): remove it from the file")
        span = float(times[-1] - times[0])
        if span > duration:
            raise ValueError(f"{path}: recording {ident!r} spans {span:.1f} ms, longer than the analysed window of "
                             f"{duration:g} ms (the cell's protocol, t_max − transient) that rates are computed "
                             "over; cut it to that window")


def load_ground_truth(path: str | os.PathLike, cell: str | CellType, ids: list[str] | None = None) -> pd.DataFrame:
    """Read ground-truth conductances per recording ID (the chapters' ``GROUND_TRUTH``).

    Args:
        path: CSV with an ``ID`` column (the recordings' IDs) and one column per conductance,
            named like ``cell.conductance_names`` (``g_Na`` …, mS/cm²). Conductances the cell
            fixes may be omitted (their fixed value is used). Columns not starting with ``g_``
            are kept as text (e.g. the shipped file's ``example`` and ``noise_std``).
        cell: Cell type or its name.
        ids: The recordings' IDs: each needs a row (extra rows are ignored); default every row.

    Returns:
        DataFrame indexed by ID (in ``ids`` order): the conductances (float, every
        ``cell.conductance_names`` column), then the other columns.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not a UTF-8 CSV, no ``ID`` column, a row with a missing or extra field, an
            empty or duplicate ID, an unknown ``g_`` column, a missing, non-numeric, negative or
            non-finite conductance, g_leak ≤ 0, or an ID of ``ids`` without a row. The message
            names the file and the line.
    """
    import csv  # noqa: PLC0415

    from condspace import _checks  # noqa: PLC0415

    cell = _cells.get(cell)
    path = _existing_file(path, "GROUND_TRUTH", "a CSV of conductances per recording ID (ID,g_Na,...)")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh, skipinitialspace=True))
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file; expected a CSV of conductances per ID") from None
    except csv.Error as err:
        raise ValueError(f"{path}: unreadable CSV ({err})") from None
    if not rows:
        raise ValueError(f"{path}: empty file; expected a header such as ID,{','.join(cell.conductance_names)}")
    header = [h.strip() for h in rows[0]]
    if "ID" not in header:
        raise ValueError(f"{path}, line 1: no ID column; the header needs ID and the conductances "
                         f"({','.join(cell.conductance_names)})")
    unknown = [h for h in header if h.startswith("g_") and h not in cell.conductance_names]
    if unknown:
        raise ValueError(f"{path}, line 1: unknown conductance column {unknown[0]!r} for cell {cell.name!r}; "
                         f"expected names {cell.conductance_names}")
    data, lines = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} fields for the {len(header)} columns of the header")
        data.append([c.strip() for c in row])
        lines.append(line)
    frame = pd.DataFrame(data, columns=header, dtype=str)
    seen: dict[str, int] = {}
    for ident, line in zip(frame["ID"], lines, strict=True):
        if not ident:
            raise ValueError(f"{path}, line {line}: empty ID")
        if ident in seen:
            raise ValueError(f"{path}, line {line}: duplicate ID {ident!r} (first on line {seen[ident]})")
        seen[ident] = line
    g_cols = [h for h in header if h in cell.conductance_names]
    numbers = {}
    for col in g_cols:
        values = []
        for text, line in zip(frame[col], lines, strict=True):
            try:
                values.append(float(text))
            except ValueError:
                raise ValueError(f"{path}, line {line}: column {col!r} holds {text!r}, not a number "
                                 "(conductances in mS/cm²)") from None
        numbers[col] = values
    try:
        g = _checks.conductances(cell, pd.DataFrame(numbers, columns=g_cols), name=str(path))
    except ValueError as err:
        message = re.sub(r"neuron (\d+)", lambda m: f"the neuron on line {lines[int(m[1])]}", str(err))
        raise ValueError(message) from None
    out = pd.DataFrame(g, columns=list(cell.conductance_names), index=pd.Index(list(frame["ID"]), name="ID"))
    out = out.join(frame.set_index("ID").drop(columns=g_cols))
    if ids is not None:
        missing = [i for i in ids if i not in out.index]
        if missing:
            raise ValueError(f"{path}: no ground truth for recordings {missing[:10]}; add a row for each ID of the "
                             "recordings (or leave GROUND_TRUTH unset to skip the comparisons)")
        out = out.loc[list(ids)]
    return out
