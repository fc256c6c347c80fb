"""The ``identify`` command: spike times before and after a neuromodulator → which channels it targeted.

``python -m condspace identify --cell stg --before B.csv --after A.csv --out DIR`` reads two
recordings files (the ``ID,spiking_times`` format; an ID pairs a neuron's before and after
trains; all pairs are one experiment: one drug), trains or loads the cached classifier of the
cell (amortized model comparison over every single modulable channel and every pair,
:mod:`condspace.identification`), combines the neurons' evidence and writes to DIR:

* ``ranking.csv``: subset, probability, rank, for every hypothesis (best first);
* ``channels.csv``: channel, probability_targeted (P(c ∈ S)), direction (up/down), p_up;
* ``summary.json``: ``top`` (the subsets in rank order with their probabilities),
  ``n_neurons``, ``skipped`` (neurons silent in both recordings carry no information),
  ``method``, the training record, and ``warnings`` (e.g. a neuron outside the simulated
  feature cloud).

A train that falls silent after the drug is data (silence is one of the activity classes).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from condspace import _checks, cells, recordings
from condspace.cli import BACKENDS, CLIError, Command, seed_type

DESCRIPTION = __doc__.split("\n\n", 1)[1] + """
example:
  python -m condspace identify --cell stg --before data/recordings/stg_modulation_before.csv \\
      --after data/recordings/stg_modulation_after.csv --out results/identify
"""


def _positive_int(text: str) -> int:
    from condspace.cli import integer_type  # noqa: PLC0415

    return integer_type(text, minimum=1)


def _positive_float(text: str) -> float:
    from condspace.cli import positive_float  # noqa: PLC0415

    return positive_float(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``identify``."""
    p.add_argument("--cell", default="stg", help=f"cell type, one of: {', '.join(cells.available())} "
                                                 "(default: %(default)s)")
    p.add_argument("--before", required=True, metavar="B.csv", help="recordings before the drug (ID,spiking_times)")
    p.add_argument("--after", required=True, metavar="A.csv", help="recordings after the drug, same IDs")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--duration", type=_positive_float, default=None, metavar="MS",
                   help="length of both recording windows in ms (default: the cell's protocol, 3000 for stg)")
    p.add_argument("--before-duration", type=_positive_float, default=None, metavar="MS",
                   help="length of the before window if it differs from --duration (must equal the after one)")
    p.add_argument("--after-duration", type=_positive_float, default=None, metavar="MS",
                   help="length of the after window if it differs from --duration (must equal the before one)")
    p.add_argument("--budget", type=_positive_int, default=None,
                   help="prior draws of the training experiments (default: the standard budget, 20000)")
    p.add_argument("--max-epochs", type=_positive_int, default=None, help="cap on training epochs")
    p.add_argument("--seed", type=seed_type, default=0, help="seed of the experiments and the training "
                                                              "(default: %(default)s)")
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="array backend of the simulations (default: %(default)s)")
    p.add_argument("--cache", default=None, metavar="DIR", help="cache folder (default: $CONDSPACE_CACHE or "
                                                                 ".cache/condspace in the repository)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--top", type=_positive_int, default=5, help="subsets printed (default: %(default)s)")


def _window(trains: recordings.Recordings) -> float:
    """Span (ms) from the earliest to the latest spike of a file (0 when all are silent)."""
    firsts = [t[0] for t in trains.values() if t.size]
    lasts = [t[-1] for t in trains.values() if t.size]
    return float(max(lasts) - min(firsts)) if firsts else 0.0


def read_pairs(before_path: str, after_path: str, duration_before: float, duration_after: float
               ) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """Load and check both files: same IDs, valid trains, equal windows that hold every spike.

    Raises:
        CLIError: IDs on one side only, trains flagged invalid, different or too short durations.
        ValueError: Malformed or unsorted spike times (from :func:`condspace.recordings.load_csv`).
    """
    for flag, path in (("--before", before_path), ("--after", after_path)):
        if not Path(path).is_file():
            raise CLIError(f"{flag} {path}: no such file")
    before, after = recordings.load_csv(before_path), recordings.load_csv(after_path)
    only_b, only_a = [i for i in before if i not in after], [i for i in after if i not in before]
    if only_b or only_a:
        raise CLIError(f"IDs present on one side only: {only_b[:10]} only in --before {before_path}, "
                       f"{only_a[:10]} only in --after {after_path}; an ID pairs one neuron's trains, so both "
                       "files need the same IDs")
    if not before:
        raise CLIError(f"--before {before_path}: no recordings")
    bad = sorted(before.invalid | after.invalid)
    if bad:
        raise CLIError(f"recordings flagged invalid (numerical blow-up): {bad[:10]}; remove them from both files")
    if not math.isclose(duration_before, duration_after, rel_tol=1e-9):
        raise CLIError(f"different recording durations: --before-duration {duration_before:g} ms, --after-duration "
                       f"{duration_after:g} ms; the classifier compares windows of equal length: trim the longer one")
    for flag, path, trains, dur in (("--before", before_path, before, duration_before),
                                    ("--after", after_path, after, duration_after)):
        span = _window(trains)
        if span > dur:
            raise CLIError(f"{flag} {path}: spikes span {span:.1f} ms, longer than the recording duration "
                           f"{dur:g} ms; pass the true length with --duration (or --before-duration/--after-duration)")
    ids = list(before)
    return ids, [before[i] for i in ids], [after[i] for i in ids]


def _durations(args: argparse.Namespace, cell: cells.CellType) -> tuple[float, float]:
    default = args.duration or float(cell.protocol["t_max"] - cell.protocol["transient"])
    return args.before_duration or default, args.after_duration or default


def _json_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def run(args: argparse.Namespace) -> int:
    """Handler of ``identify`` (see the module docstring)."""
    cell = cells.get(args.cell)  # unknown cell: ValueError naming the known ones
    try:
        _checks.output_folder(args.out, "--out")
    except (ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from None
    d_b, d_a = _durations(args, cell)
    ids, before, after = read_pairs(args.before, args.after, d_b, d_a)
    from condspace import identification, inference  # noqa: PLC0415  (torch loads only for this command)

    x_b = inference.summary_features(before, d_b)
    x_a = inference.summary_features(after, d_a)
    settings = identification.ClassifierSettings(**({"max_epochs": args.max_epochs} if args.max_epochs else {}))
    t0 = time.perf_counter()
    model, es = identification.identifier(cell, args.budget, seed=args.seed, settings=settings, backend=args.backend,
                                          cache_dir=args.cache, use_cache=not args.no_cache, progress=True)
    train_s = time.perf_counter() - t0
    result = identification.identify(model, x_b, x_a, ids)
    out = Path(args.out)
    with _checks.creating_folder(out):
        _write(out, args, cell, model, result, train_s)
    print(f"{cell.name}: {len(result.used)} neuron(s) used, {len(result.skipped)} skipped; classifier "
          f"{'loaded from the cache' if model.classifier.info.get('cached') else 'trained'} ({train_s:.1f} s)",
          file=sys.stderr)
    for r in result.ranking.head(args.top).itertuples():
        print(f"{r.rank:>3}  {r.subset:<10} {r.probability:.3f}")
    for ident, why in result.skipped.items():
        print(f"{ident}: skipped ({why})", file=sys.stderr)
    for ident in result.out_of_cloud:
        print(f"warning: {ident} lies outside the simulated feature cloud", file=sys.stderr)
    return 0


def _write(out: Path, args: argparse.Namespace, cell: cells.CellType, model: Any, result: Any, train_s: float) -> None:
    ranking = result.ranking.to_csv(index=False, lineterminator="\n", float_format="%.6g")
    channels = result.channels.to_csv(index=False, lineterminator="\n", float_format="%.6g")
    warnings = [f"{i}: outside the simulated feature cloud (Mahalanobis distance above the "
                f"{identification_percentile()}th percentile of the training experiments)" for i in result.out_of_cloud]
    summary = {"cell": cell.name, "method": "amortized model comparison (softmax classifier on before/after summary "
                                            "features, evidence combined across neurons)",
               "n_neurons": len(result.used), "used": result.used, "skipped": result.skipped,
               "top": [{"subset": s, "probability": p} for s, p in result.top(len(result.ranking))],
               "channels": result.channels.to_dict(orient="records"), "warnings": warnings,
               "training": {"scenario": model.scenario, "n_experiments": model.info["n_experiments"],
                            "classifier": model.classifier.info, "seconds": train_s}}
    for name, text in (("ranking.csv", ranking), ("channels.csv", channels),
                       ("summary.json", json.dumps(summary, indent=2, default=_json_value) + "\n")):
        recordings.write_text_atomic(out / name, text)
        args._kept = [*getattr(args, "_kept", []), out / name]


def identification_percentile() -> float:
    """The percentile of the out-of-cloud check (:data:`condspace.identification.model.CLOUD_PERCENTILE`)."""
    from condspace.identification.model import CLOUD_PERCENTILE  # noqa: PLC0415

    return CLOUD_PERCENTILE


CLI = Command(add_arguments, run, DESCRIPTION)

__all__ = ["CLI", "add_arguments", "read_pairs", "run"]
