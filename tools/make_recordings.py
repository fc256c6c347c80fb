"""Generate the synthetic recordings shipped in data/recordings/ (deterministic).

Usage (from the repository root)::

    .venv/bin/python tools/make_recordings.py                # writes data/recordings/ (STG)
    .venv/bin/python tools/make_recordings.py --check        # regenerates in memory, compares with the files
    .venv/bin/python tools/make_recordings.py --cell da      # another cell type's recordings

The recordings are the ones the cell declares (``CellType.recordings``: ID → published example
set, noise, seed; for the STG the sets of Fyon et al. 2024 and Brandoit et al. 2025), simulated by
:func:`condspace.inference.synthetic_recordings` with the cell's protocol (STG: 6000 ms, the first
3000 ms discarded, dt 0.05 ms; NumPy backend, float64, ``method="table"``) plus a low-pass
filtered Gaussian noise current (4th-order Butterworth, 1 kHz; ``noise_std`` is the standard
deviation after filtering, SCIENCE.md §5). Spike times are absolute (ms from the start of the
simulation, so they lie in [3000, 6000] for the STG) and rounded to 1 µs.

Writes ``<cell>_recordings.csv`` (``ID,spiking_times``, the format of :mod:`condspace.recordings`)
and ``<cell>_ground_truth.csv`` (per ID the conductances in mS/cm², noise, seed, protocol, and the
class and features of the recorded train from :func:`condspace.features.extract`). The chapters
read them through :func:`condspace.inference.demonstration_recordings`, which simulates the
declared recordings instead when a cell has no files here.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from condspace import cells, inference, recordings

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` verify) data/recordings/."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "recordings", help="output folder")
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing")
    parser.add_argument("--cell", default="stg", choices=cells.available(), help="cell type (default: %(default)s)")
    args = parser.parse_args(argv)
    cell = cells.get(args.cell)
    trains, truth = inference.synthetic_recordings(cell, cell.recordings)
    rec_path, truth_path = args.out / f"{cell.name}_recordings.csv", args.out / f"{cell.name}_ground_truth.csv"
    buf = io.StringIO()
    truth.to_csv(buf, float_format="%.10g", lineterminator="\n")
    if args.check:
        old = recordings.load_csv(rec_path)
        same = old.keys() == trains.keys() and all(np.array_equal(old[k], trains[k]) for k in trains)
        same = same and truth_path.read_text() == buf.getvalue()
        print("data/recordings is up to date" if same else "data/recordings differs from a fresh generation")
        return 0 if same else 1
    args.out.mkdir(parents=True, exist_ok=True)
    recordings.save_csv(rec_path, trains)
    recordings.write_text_atomic(truth_path, buf.getvalue())
    cols = ["example", "noise_std", "label", "n_spikes", "rate_hz", "cv_isi", "spikes_per_burst", "burst_period_ms"]
    print(truth[cols].round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
