"""How robust is the posterior? Predictive checks and HPD ranks on the misspecified recordings.

Loads the STG posterior through the code path of chapter 2 and ``python -m condspace infer``
(:func:`condspace.inference.trained_posterior` with the standard settings: trained once, then read
from the cache) and scores it on every recording of data/recordings/misspecified/ (made by
``tools/make_misspecified_recordings.py``: a different integrator, zero-phase filtered noise at
several strengths, spike-time jitter, missed spikes, 1 s and 3 s recordings of eight ground-truth
sets). Per recording:

- ``predictive``: the predictive-check fraction (:func:`condspace.inference.predictive_check`,
  ``--n-check`` posterior samples simulated with the training simulator);
- ``hpd_rank``: the share of posterior samples denser than the true conductances
  (:func:`condspace.inference.hpd_ranks`); the truth lies in the α-HPD region when it is < α
  (``in_hpd_50``, ``in_hpd_90``). For a calibrated posterior on recordings it was trained for,
  the ranks are uniform;
- ``predictive_refined``, ``hpd_rank_refined``, ``refined``, ``refine_simulations``: the same after
  per-recording refinement (truncated sequential NPE, ``condspace.inference.refine``) of the
  recordings whose amortised posterior fails, with ``--refine``; empty when it was not run (the
  header says why). ``predictive_refined`` is the verdict on fresh samples
  (``Refinement.fraction_verdict``); ``predictive_last_round``, the last round's check that
  stopped the rounds, is kept beside it.

The CSV (``--out``, written atomically) starts with ``#`` lines: date, command, budget, commit and
versions; chapter 2 reads it (``pandas.read_csv(..., comment="#")``). ``make book`` does not run
this script.

Usage (from the repository root)::

    .venv/bin/python benchmarks/robustness.py                  # standard posterior, 200 samples checked per recording
    .venv/bin/python benchmarks/robustness.py --fast           # chapter 2's FAST posterior (1500 simulations), minutes
    .venv/bin/python benchmarks/robustness.py --refine         # also refine the failing recordings
    .venv/bin/python benchmarks/robustness.py --refine --refine-ids tonic_1_noise_5 ...   # refine only these
    .venv/bin/python benchmarks/robustness.py --refine --refine-ids tonic_4_missed_0.02 --update
        # rescore only these recordings and replace their rows in the existing --out file
    .venv/bin/python benchmarks/robustness.py --missed-prior 0.15 --out data/robustness/stg_robustness_missed.csv
        # the posterior that also infers p_missed (a spike detector that misses), on the same recordings

``--update`` gives the rows a full run would give: every recording is scored with the same seed
whatever else is scored, and the posterior is the cached one; the header keeps the file's command
and adds an ``update`` line naming the rows and the command that rescored them.
"""

from __future__ import annotations

import argparse
import datetime
import io
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from condspace import cells, inference, posterior_scores, recordings

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RECORDINGS = ROOT / "data" / "recordings" / "misspecified"
DEFAULT_OUT = ROOT / "data" / "robustness" / "stg_robustness.csv"
CELL = "stg"
RECORDING_FILES = ("stg_misspecified_recordings.csv", "stg_misspecified_recordings_1s.csv")
TRUTH_FILE = "stg_misspecified_truth.csv"
FAST = {"budget": 1500, "max_epochs": 40, "n_check": 20, "n_samples": 300}  # chapter 2's FAST mode
STANDARD = {"n_check": 200, "n_samples": 1000}
COLUMNS = ("ID", "set", "class", "kind", "strength", "unit", "integrator", "noise_sigma", "noise_std", "jitter_ms",
           "missed_fraction", "duration_ms", "observed_label", "n_spikes", "predictive", "rule", "hpd_rank",
           "in_hpd_50", "in_hpd_90", "predictive_refined", "hpd_rank_refined", "refined", "refine_simulations",
           "predictive_last_round", "note")


def refinement_function():
    """``condspace.inference.refine.refine_if_failing`` when that module exists, else None."""
    try:
        from condspace.inference.refine import refine_if_failing  # noqa: PLC0415
    except ImportError:
        return None
    return refine_if_failing


def load_recordings(folder: Path) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """(ID → spike times, truth indexed by ID) of the misspecified set, checked for agreement."""
    trains: dict[str, np.ndarray] = {}
    for name in RECORDING_FILES:
        trains.update(recordings.load_csv(folder / name))
    truth = pd.read_csv(folder / TRUTH_FILE, dtype={"ID": str}).set_index("ID")
    if set(trains) != set(truth.index):
        missing = sorted(set(truth.index) ^ set(trains))[:5]
        raise ValueError(f"{folder}: recordings and truth list different IDs (e.g. {missing}); regenerate them with "
                         "tools/make_misspecified_recordings.py")
    # The true p_missed of a recording, for a posterior that infers it: the share of its fired spikes
    # that were deleted (0 except for the "missed" rows).
    if {"n_spikes", "spikes_dropped"} <= set(truth.columns):
        fired = truth["n_spikes"] + truth["spikes_dropped"]
        truth[inference.MISSED_NAME] = np.where(fired > 0, truth["spikes_dropped"] / fired.where(fired > 0, 1), 0.0)
    else:  # a truth file without the counts: the nominal fraction, if any
        truth[inference.MISSED_NAME] = truth["missed_fraction"] if "missed_fraction" in truth else 0.0
    return {k: trains[k] for k in truth.index}, truth


def score_one(post: inference.Posterior, spikes: np.ndarray, truth: pd.Series, n_check: int, n_samples: int,
              seed: int, backend: str, refine=None, training=None) -> dict[str, Any]:
    """One row of the table (see the module docstring)."""
    duration = float(truth["duration_ms"])
    row: dict[str, Any] = {k: truth[k] for k in COLUMNS[1:12]}
    row["ID"] = truth.name
    try:
        x_obs, observed = inference.observe(spikes, duration)
    except ValueError as err:
        return {**row, "observed_label": "silent", "n_spikes": int(np.size(spikes)), "note": str(err)}
    theta_true = truth[list(post.prior.names)].to_numpy(dtype=float)
    try:
        samples = post.sample(n_samples, x_obs, seed=seed)
    except RuntimeError as err:  # the flow puts (almost) no mass in the box on the observed class
        return {**row, "observed_label": observed["label"], "n_spikes": int(observed["n_spikes"]),
                "note": str(err).split(";")[0]}
    check = inference.predictive_check(post, spikes, n_check, duration=duration, samples=samples[:n_check],
                                       seed=seed, backend=backend)
    rank = float(inference.hpd_ranks(post, theta_true[None], x_obs[None], n_samples=n_samples, seed=seed)[0])
    row.update({"observed_label": observed["label"], "n_spikes": int(observed["n_spikes"]),
                "predictive": check.fraction, "rule": check.criterion, "hpd_rank": rank,
                "in_hpd_50": rank < 0.5, "in_hpd_90": rank < 0.9, "note": ""})
    if refine is not None:
        # the check above is the amortised one refine_if_failing would run: same samples, check and seed
        result = refine(post, spikes, training, check=n_check, samples=n_samples, before=check, duration=duration,
                        seed=seed, backend=backend, progress=False)
        refined_rank = rank
        if result.refined:
            refined_rank = float(inference.hpd_ranks(result.posterior, theta_true[None], x_obs[None],
                                                     n_samples=n_samples, seed=seed)[0])
        row.update({"predictive_refined": result.fraction_verdict, "predictive_last_round": result.fraction_after,
                    "hpd_rank_refined": refined_rank,
                    "refined": bool(result.refined), "refine_simulations": int(result.n_simulations)})
    return row


def run(args: argparse.Namespace, refine=None, log=print) -> pd.DataFrame:
    """Load (or train) the posterior and score every recording; one row per recording."""
    cell = cells.get(CELL)
    trains, truth = load_recordings(args.recordings)
    if args.only:
        keep = truth["kind"].isin(args.only)
        trains, truth = {k: trains[k] for k in truth.index[keep]}, truth[keep]
    if getattr(args, "update", False):
        keep = truth.index.isin(args.refine_ids)
        trains, truth = {k: trains[k] for k in truth.index[keep]}, truth[keep]
    settings = inference.standard_settings(max_epochs=args.max_epochs)
    t0 = time.perf_counter()
    prior = inference.make_prior(cell, missed=args.missed_prior)  # p_missed inferred only with --missed-prior
    post, ts = inference.trained_posterior(cell, args.budget, settings=settings, prior=prior, seed=args.seed,
                                           backend=args.backend)
    log(f"posterior: {args.budget} simulations, {'loaded from the cache' if post.info.get('cached') else 'trained'} "
        f"({time.perf_counter() - t0:.0f} s)")
    rows = []
    for ident, spikes in trains.items():
        t1 = time.perf_counter()
        chosen = getattr(args, "refine_ids", None) is None or ident in args.refine_ids
        row = score_one(post, spikes, truth.loc[ident], args.n_check, args.n_samples, args.seed, args.backend,
                        refine=refine if chosen else None, training=ts)
        rows.append(row)
        log(f"{ident:24s} {row.get('observed_label', ''):9s} predictive {row.get('predictive', np.nan):.2f}  "
            f"HPD rank {row.get('hpd_rank', np.nan):.2f}  ({time.perf_counter() - t1:.1f} s)")
    return pd.DataFrame(rows).reindex(columns=list(COLUMNS))


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (kind, strength): recordings, mean predictive fractions, coverage of the 50 % and 90 % HPD regions."""
    return table.groupby(["kind", "strength"], sort=False).agg(
        recordings=("ID", "size"), predictive=("predictive", "mean"), predictive_tonic=(
            "predictive", lambda s: s[table.loc[s.index, "class"] == "spiking"].mean()),
        predictive_bursting=("predictive", lambda s: s[table.loc[s.index, "class"] == "bursting"].mean()),
        predictive_refined=("predictive_refined", "mean"), coverage_50=("hpd_rank", lambda r: _share_below(r, 0.5)),
        coverage_90=("hpd_rank", lambda r: _share_below(r, 0.9)))


def _share_below(ranks: pd.Series, level: float) -> float:
    """Share of the scored recordings (rank not NaN) whose truth lies in the ``level`` HPD region."""
    ranks = ranks.dropna()
    return float((ranks < level).mean()) if len(ranks) else float("nan")


def budget_kind(args: argparse.Namespace) -> str:
    """"FAST", "standard" (the cell's inference_budget, standard epochs) or "custom"."""
    if args.fast:
        return "FAST"
    standard = args.budget == cells.get(CELL).inference_budget and args.max_epochs is None
    return "standard" if standard else "custom"


LEGACY_LEARNING_RATE = f"{posterior_scores.LEGACY_LEARNING_RATE:g}"  # files whose header records no rate


def header(args: argparse.Namespace, argv: list[str], refine_status: str) -> str:
    """The ``#`` lines at the top of the CSV: date, command, budget, refinement, commit and versions."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    versions = ", ".join(f"{k} {v}" for k, v in inference.versions().items())
    lines = [f"date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
             f"command: python benchmarks/robustness.py {shlex.join(argv)}".rstrip(),
             f"budget: {args.budget} training simulations ({budget_kind(args)}); max_epochs: "
             f"{args.max_epochs or 'standard'}; samples simulated per recording: {args.n_check}; posterior samples "
             f"per HPD rank: {args.n_samples}; cell: {CELL}; seed: {args.seed}"
             + (f"; missed_prior: {args.missed_prior:g} (p_missed inferred)" if args.missed_prior else ""),
             f"refinement: {refine_status}",
             f"learning_rate: {inference.standard_settings().learning_rate:g}",
             f"commit: {commit}; {versions}"]
    return "".join(f"# {line}\n" for line in lines)


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fast", action="store_true",
                    help=f"chapter 2's FAST posterior ({FAST['budget']} simulations, {FAST['max_epochs']} epochs) "
                         f"and {FAST['n_check']} samples checked per recording: minutes, not a measurement")
    ap.add_argument("--budget", type=int, default=None, help="training simulations (default: the cell's "
                                                             "inference_budget; with --fast 1500)")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap on training epochs (default: standard)")
    ap.add_argument("--n-check", type=int, default=None, help="posterior samples simulated per recording "
                                                              "(default 200; --fast 20)")
    ap.add_argument("--n-samples", type=int, default=None, help="posterior samples per HPD rank "
                                                                "(default 1000; --fast 300)")
    ap.add_argument("--refine", action="store_true", help="refine the recordings whose amortised posterior fails "
                                                          "(needs condspace.inference.refine)")
    ap.add_argument("--refine-ids", nargs="+", default=None, metavar="ID",
                    help="with --refine: refine only these recordings (refinement costs minutes per recording; "
                         "the others keep their amortised scores and empty refined columns)")
    ap.add_argument("--update", action="store_true",
                    help="with --refine-ids: score only those recordings and replace their rows in the existing "
                         "--out file (same budget), keeping every other row")
    ap.add_argument("--only", nargs="+", default=None, metavar="KIND",
                    help="score only these perturbation kinds (baseline integrator noise jitter missed duration)")
    ap.add_argument("--missed-prior", type=float, default=None, metavar="P",
                    help="score the posterior that also infers p_missed, uniform on [0, P] (the detector model of "
                         "`infer --missed-prior`); default the cell's missed_prior (0: perfect detection)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--recordings", type=Path, default=DEFAULT_RECORDINGS, help="folder of the misspecified set")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the CSV to write (atomically)")
    args = ap.parse_args(argv)
    base = FAST if args.fast else {"budget": cells.get(CELL).inference_budget, "max_epochs": None, **STANDARD}
    for key in ("budget", "max_epochs", "n_check", "n_samples"):
        if getattr(args, key) is None:
            setattr(args, key, base[key])
    for key in ("budget", "n_check", "n_samples"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be ≥ 1, got {getattr(args, key)}")
    if args.missed_prior is not None and not 0 <= args.missed_prior < 1:
        ap.error(f"--missed-prior must be a probability in [0, 1), got {args.missed_prior}")
    if not (args.recordings / TRUTH_FILE).is_file():
        ap.error(f"--recordings {args.recordings}: no {TRUTH_FILE}; make it with tools/make_misspecified_recordings.py")
    if args.refine_ids is not None:
        if not args.refine:
            ap.error("--refine-ids needs --refine")
        known = set(pd.read_csv(args.recordings / TRUTH_FILE, dtype={"ID": str})["ID"])
        unknown = [i for i in args.refine_ids if i not in known]
        if unknown:
            ap.error(f"--refine-ids: not in {args.recordings / TRUTH_FILE}: {', '.join(unknown)}")
    if args.update and (args.refine_ids is None or not args.out.is_file()):
        ap.error(f"--update needs --refine --refine-ids and an existing --out file ({args.out})")
    return args


def updated(args: argparse.Namespace, argv: list[str], rows: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """(header, table) of ``args.out`` with the rows of ``rows`` replaced (``--update``).

    Raises:
        ValueError: The file was made with another budget, epochs, check size, seed or learning rate.
    """
    old, about = recordings.read_annotated_csv(args.out)
    fresh = header(args, argv, "").splitlines()
    if about.get("budget") != fresh[2].removeprefix("# budget: "):
        raise ValueError(f"--update: {args.out} was made with '{about.get('budget')}', this run is "
                         f"'{fresh[2].removeprefix('# budget: ')}'; rerun the whole file instead")
    rate = fresh[4].removeprefix("# learning_rate: ")
    if about.get("learning_rate", LEGACY_LEARNING_RATE) != rate:  # another posterior: its rows would not mix
        raise ValueError(f"--update: {args.out} was made at learning rate "
                         f"{about.get('learning_rate', LEGACY_LEARNING_RATE)}, this run trains at {rate}; "
                         "rerun the whole file instead")
    table = pd.concat([old[~old["ID"].isin(rows["ID"])], rows]).set_index("ID").loc[old["ID"]].reset_index()
    considered = table.loc[table["predictive_refined"].notna(), "ID"].tolist()
    status = ("recordings whose amortised posterior fails the predictive check were refined among "
              f"{', '.join(considered)} (the others were not considered)")
    note = (f"rows {', '.join(rows['ID'])} rescored on {fresh[0].removeprefix('# date: ')} by "
            f"python benchmarks/robustness.py {shlex.join(argv)}")
    previous = about.get("update")
    lines = [fresh[0], f"# command: {about.get('command', '?')}", fresh[2], f"# refinement: {status}",
             f"# update: {previous + '; ' if previous else ''}{note}", fresh[4], fresh[5]]
    return "".join(f"{line}\n" for line in lines), table[list(COLUMNS)]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    t0 = time.perf_counter()
    refine = refinement_function()
    if args.refine and refine is None:
        status = "asked, but condspace.inference.refine is not importable here: the refined columns are empty"
    elif args.refine:
        status = "recordings whose amortised posterior fails the predictive check were refined"
        if args.refine_ids is not None:
            status += f" among {', '.join(args.refine_ids)} (the others were not considered)"
    else:
        status = "not run (pass --refine)"
    print(f"refinement: {status}")
    table = run(args, refine=refine if args.refine else None)
    head = header(args, argv, status)
    if args.update:
        head, table = updated(args, argv, table)
    text = io.StringIO()
    table.to_csv(text, index=False, float_format="%.4f", lineterminator="\n")
    inference.atomic_write(args.out, lambda f: f.write(head + text.getvalue()), mode="w")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summary(table).round(2).to_string())
    print(f"wrote {args.out} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
