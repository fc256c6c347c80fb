"""Generate the before/after recordings of chapter 5's worked example (deterministic).

Usage (from the repository root)::

    .venv/bin/python tools/make_modulated_recordings.py            # writes data/recordings/ (STG)
    .venv/bin/python tools/make_modulated_recordings.py --check    # regenerates in memory, compares

:func:`condspace.identification.modulated_recordings` with its defaults: ten neurons drawn from
the inference prior (seed 2026) among those that fire before; the drug scales the cell's
chapter-4 pair for its bursting target (STG: {CaS, H}) up, in every neuron by its own factor,
log-uniform between ×1.25 and ×4 (the law of the random-modulation experiments, with one
direction for the drug). Both recordings follow the cell's protocol (STG 6000 ms, the first
3000 ms discarded, dt 0.05 ms) with independent noise currents of 0.1 µA/cm² (the weak noise of
the shipped recordings); spike times are absolute and rounded to 1 µs.

Writes ``<cell>_modulation_before.csv`` and ``<cell>_modulation_after.csv`` (``ID,spiking_times``)
and ``<cell>_modulation_truth.csv`` (per ID the conductances before, the factors, the targeted
subset): chapter 5 reads the truth file only to score its ranking.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from condspace import cells, identification, recordings

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` verify) the three files."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "recordings", help="output folder")
    parser.add_argument("--cell", default="stg", choices=cells.available(), help="cell type (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing")
    args = parser.parse_args(argv)
    before, after, truth = identification.modulated_recordings(args.cell)
    paths = [args.out / f"{args.cell}_modulation_{s}.csv" for s in ("before", "after", "truth")]
    buf = io.StringIO()
    truth.to_csv(buf, float_format="%.10g", lineterminator="\n")
    if args.check:
        same = all(_same(recordings.load_csv(p), d) for p, d in zip(paths[:2], (before, after), strict=True))
        same = same and paths[2].read_text() == buf.getvalue()
        print("modulation recordings are up to date" if same else "modulation recordings differ from a fresh run")
        return 0 if same else 1
    args.out.mkdir(parents=True, exist_ok=True)
    recordings.save_csv(paths[0], list(before.values()), ids=list(before))
    recordings.save_csv(paths[1], list(after.values()), ids=list(after))
    recordings.write_text_atomic(paths[2], buf.getvalue())
    print(truth.round(3).to_string())
    return 0


def _same(old: dict, new: dict) -> bool:
    return list(old) == list(new) and all(np.array_equal(old[k], new[k]) for k in new)


if __name__ == "__main__":
    sys.exit(main())
