"""Ablations behind the estimator's design choices: flow type, ensemble size, class restriction, budget.

For every training budget in ``--sizes`` the standard estimator (an ensemble of two neural spline
flows with the class restriction, ``inference.standard_settings``) is trained once (or loaded from
the cache) and scored in three forms, which need no retraining:

- ``NSF, 2 flows, restriction``: the standard posterior;
- ``NSF, 1 flow, restriction``: its first flow alone (member k of an ensemble is trained with seed
  ``seed + k`` exactly as a single flow would be, so this *is* the single-flow estimator);
- ``NSF, 2 flows, no restriction``: the pair without the classifier P(class | ḡ).

At the comparison budget (``--compare-at``, default the largest size) a masked autoregressive
flow (MAF) pair with the restriction is trained too. Each row gets the predictive-check fraction
of every demonstration recording and the joint-HPD coverage at the 50 % and 90 % levels on
held-out simulations (``condspace.posterior_scores``, the code ``make check`` uses).

The CSV starts with ``#`` lines giving the date, the command, the sizes and the versions; chapter
2 reads it (``pandas.read_csv(..., comment="#")``) and shows them. ``make book`` does not run this
script: at the sizes of issue 15 (5k-60k) it takes hours on a 2-core machine.

Usage:
    .venv/bin/python benchmarks/inference_ablation.py [--sizes 5000,10000,20000,30000,60000]
        [--max-epochs N] [--n-test 1000] [--n-check 500] [--out data/ablation/inference_ablation.csv]
    .venv/bin/python benchmarks/inference_ablation.py --quick --out /tmp/ablation.csv   # seconds-scale smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import io
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from condspace import cells, inference
from condspace.posterior_scores import COVERAGE_LEVELS, score_posterior

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "data" / "ablation" / "inference_ablation.csv"
ISSUE_SIZES = (5000, 10_000, 20_000, 30_000, 60_000)
QUICK = {"sizes": (300,), "max_epochs": 3, "n_test": 30, "n_check": 4, "n_samples": 100}


VARIANT_NAMES = {"nsf": ("NSF, 2 flows, restriction", "NSF, 1 flow, restriction", "NSF, 2 flows, no restriction"),
                 "maf": ("MAF, 2 flows, restriction",)}


def variants(post: inference.Posterior, model: str) -> dict[str, inference.Posterior]:
    """The forms of one trained ensemble that are scored, by name (no retraining)."""
    label = model.upper()
    out = {f"{label}, 2 flows, restriction": post}
    if model != "nsf":
        return out
    first = inference.FlowEnsemble(post.estimator.members[:1])
    single = dataclasses.replace(post.settings, ensemble=1)
    out[f"{label}, 1 flow, restriction"] = inference.Posterior(first, post.prior, single, post.feature_names,
                                                               post.cell, post.info, restriction=post.restriction)
    unrestricted = dataclasses.replace(post.settings, class_restriction=False)
    out[f"{label}, 2 flows, no restriction"] = inference.Posterior(post.estimator, post.prior, unrestricted,
                                                                   post.feature_names, post.cell, post.info)
    return out


def run(cell: str, sizes: list[int], compare_at: int, max_epochs: int | None, n_test: int, n_check: int,
        n_samples: int, seed: int, backend: str, done=None, previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """Train, score and tabulate every variant; one row per (variant, budget).

    ``done(table)``, when given, is called after each trained estimator (the script writes the CSV
    then, so that an interrupted run leaves what it finished). Rows of ``previous``
    (an earlier run of the same command, ``--resume``) are kept and not computed again.
    """
    cell_t = cells.get(cell)
    prior = inference.make_prior(cell_t)
    trains, truth = inference.demonstration_recordings(cell_t, ROOT / "data" / "recordings")
    duration = float(truth["duration_ms"].iloc[0])
    test = inference.held_out(cell_t, prior, n_test, seed=10_000 + seed, training_seed=seed, backend=backend)
    base = inference.standard_settings(max_epochs=max_epochs)
    rows = [] if previous is None else previous.to_dict("records")
    have = {(r["variant"], int(r["n_train"])) for r in rows}
    for n in sizes:
        for model in ("nsf", "maf") if n == compare_at else ("nsf",):
            if all((name, n) in have for name in VARIANT_NAMES[model]):
                continue
            settings = dataclasses.replace(base, model=model)
            t0 = time.perf_counter()
            post, _ = inference.trained_posterior(cell_t, n, settings=settings, prior=prior, seed=seed,
                                                  backend=backend)
            fit_s = time.perf_counter() - t0
            for name, variant in variants(post, model).items():
                if (name, n) in have:
                    continue
                t1 = time.perf_counter()
                row = {"variant": name, "model": model, "flows": len(variant.estimator),
                       "restriction": variant.restriction is not None, "n_train": n,
                       "n_valid": post.info["n_train"], "epochs": "/".join(map(str, post.info["epochs"])),
                       "reached_max_epochs": any(post.info.get("reached_max_epochs", [False]))}
                scores = score_posterior(variant, trains, duration, test, n_check=n_check, n_samples=n_samples,
                                         seed=seed, backend=backend)
                row.update({**{f"coverage_{level:g}": scores.coverage[level] for level in COVERAGE_LEVELS},
                            **{f"predictive_{k}": scores.predictive[k] for k in trains},
                            "n_test": scores.n_test, "n_check": scores.n_check,
                            "note": "; ".join(f"{k}: {v}" for k, v in scores.notes.items()),
                            "train_or_load_s": round(fit_s, 1), "score_s": round(time.perf_counter() - t1, 1)})
                rows.append(row)
                print(f"{name:32s} n={n:6d}  coverage 0.5: {row['coverage_0.5']:.3f}  0.9: {row['coverage_0.9']:.3f}  "
                      f"predictive: {', '.join(format(row['predictive_' + k], '.2f') for k in trains)}", flush=True)
            if done is not None:
                done(pd.DataFrame(rows))
    return pd.DataFrame(rows)


def header(args: argparse.Namespace, argv: list[str], sizes_done) -> str:
    """The ``#`` lines at the top of the CSV: date, command, sizes, versions, commit."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    versions = ", ".join(f"{k} {v}" for k, v in inference.versions().items())
    partial = "" if list(sizes_done) == list(args.sizes) else \
        f" complete (partial run: {','.join(map(str, args.sizes))} asked; the rows of other budgets are incomplete)"
    lines = [f"date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
             f"command: python benchmarks/inference_ablation.py {shlex.join(a for a in argv if a != '--resume')}"
             f"{' (resumed: rows of an interrupted run of the same command kept)' if '--resume' in argv else ''}",
             f"sizes: {','.join(map(str, sizes_done))}{partial}"
             f"; MAF compared at {args.compare_at}; "
             f"max_epochs: {args.max_epochs or 'standard'}; held-out: {args.n_test}; "
             f"samples simulated per recording: {args.n_check}; cell: {args.cell}; seed: {args.seed}",
             f"learning_rate: {inference.standard_settings().learning_rate:g}",
             f"commit: {commit}; {versions}"]
    return "".join(f"# {line}\n" for line in lines)


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cell", default="stg", help=f"cell type, one of {', '.join(cells.available())}")
    ap.add_argument("--sizes", default=",".join(map(str, ISSUE_SIZES)),
                    help="comma-separated training budgets (default: the budget curve of issue 15)")
    ap.add_argument("--compare-at", type=int, default=None, help="budget of the MAF comparison (default: largest)")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap on epochs (default: the standard settings)")
    ap.add_argument("--n-test", type=int, default=1000, help="held-out simulations for the coverage")
    ap.add_argument("--n-check", type=int, default=500, help="posterior samples simulated per recording")
    ap.add_argument("--n-samples", type=int, default=1000, help="posterior samples per held-out simulation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--quick", action="store_true", help="a tiny smoke run (overrides sizes and counts)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the CSV to write (atomically)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the rows --out already holds from an interrupted run of the same command")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.max_epochs, args.n_test = QUICK["sizes"], QUICK["max_epochs"], QUICK["n_test"]
        args.n_check, args.n_samples = QUICK["n_check"], QUICK["n_samples"]
    else:
        try:
            args.sizes = tuple(sorted({int(s) for s in str(args.sizes).split(",") if s.strip()}))
        except ValueError:
            ap.error(f"--sizes must be comma-separated integers, got {args.sizes!r} (e.g. --sizes 5000,10000)")
    if not args.sizes or min(args.sizes) < 50:
        ap.error(f"--sizes: every budget must be at least 50 simulations, got {args.sizes}")
    args.compare_at = args.compare_at or max(args.sizes)
    if args.compare_at not in args.sizes:
        ap.error(f"--compare-at {args.compare_at} is not one of --sizes {args.sizes}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    t0 = time.perf_counter()

    def write(table: pd.DataFrame) -> None:
        present = {(v, int(n)) for v, n in zip(table["variant"], table["n_train"], strict=True)}
        sizes_done = [n for n in args.sizes if all((v, n) in present for m in ("nsf", "maf")
                                                   if m == "nsf" or n == args.compare_at for v in VARIANT_NAMES[m])]
        text = io.StringIO()
        table.to_csv(text, index=False, float_format="%.4f")
        inference.atomic_write(args.out, lambda f: f.write(header(args, argv, sizes_done) + text.getvalue()), mode="w")

    previous = None
    if args.resume and args.out.exists():
        previous = pd.read_csv(args.out, comment="#")
        print(f"resuming: {len(previous)} rows of {args.out} kept")
    table = run(args.cell, list(args.sizes), args.compare_at, args.max_epochs, args.n_test, args.n_check,
                args.n_samples, args.seed, args.backend, done=write, previous=previous)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.drop(columns=["model", "flows", "restriction"]).round(3).to_string(index=False))
    print(f"wrote {args.out} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
