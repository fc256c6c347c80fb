"""The ``infer`` command: recorded spike times → posterior over conductances (NPE) → checks.

``python -m condspace infer --cell stg --recordings R.csv --samples 1000 --check 200 --out DIR``
trains (or loads from the cache) the posterior of the standard budget, then for every recording
writes to DIR:

* ``<ID>_posterior.csv``: posterior samples, one column per conductance (mS/cm²; fixed
  conductances such as the DA ``g_NMDA`` included), usable as ``simulate --conductances``;
* ``<ID>_dics.csv``: per sample V_th (mV) and the DICs g_f, g_s, g_u there (multiples of g_leak,
  :func:`condspace.dics.dics_at_threshold`), same row order;
* ``<ID>_predictive.csv``: the first ``--check`` samples simulated, their class and features and
  whether each reproduces the observation;

and ``summary.json`` mapping every ID to its ``predictive_check_fraction``, the class and
features of the observation, those of the posterior predictive, and the inferred noise strength
(``noise_std``: median and 90 % interval, µA/cm² after filtering; the per-sample values are in
the predictive table), and with ``--missed-prior`` the inferred probability that the detector
missed a spike (``p_missed``, likewise); ``posterior.json`` records the
training run (budget, estimator, excluded fraction, cache key, timings, versions).

With ``--refine``, a recording whose predictive-check fraction is below ``--refine-threshold``
(0.8) gets its own posterior: truncated sequential NPE (Deistler et al. 2022), up to
``--refine-rounds`` rounds of ``--refine-budget`` simulations drawn from the prior truncated to the
posterior's high-probability region, rechecked after each round and stopped once it passes. Its
three CSV files then hold the refined posterior, ``<ID>_refined_posterior.pt`` keeps it
(:func:`condspace.inference.load_posterior`), and ``summary.json`` says under ``refinement``
whether it was refined, by how many simulations, and the fractions before and after. The budget
is printed before any work and a table of the outcome at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from condspace import _checks, cells, features, recordings
from condspace.cli import BACKENDS, CLIError, Command, positive_float, seed_type

DESCRIPTION = __doc__.split("\n\n", 1)[1] + """
example:
  python -m condspace infer --cell stg --recordings data/recordings/stg_recordings.csv \\
      --samples 1000 --check 200 --out results/infer
  python -m condspace infer --recordings data/recordings/stg_recordings.csv --out results/refined \\
      --refine --refine-rounds 5 --refine-budget 1000
  python -m condspace infer --recordings my_extracellular.csv --out results/missed --missed-prior 0.15
"""
FEATURE_KEYS = ("rate_hz", "cv_isi", "spiking_freq_hz", "spikes_per_burst", "burst_duration_ms",
                "intraburst_freq_hz", "burst_period_ms", "duty_cycle", "burstiness")


def missed_fraction(text: str) -> float:
    """argparse type: a probability in [0, 1) (the largest chance of a missed spike the prior allows)."""
    from condspace.cli import finite_float  # noqa: PLC0415

    value = finite_float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1), got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1 ("1e4" allowed, "1.5" refused)."""
    from condspace.cli import integer_type  # noqa: PLC0415

    return integer_type(text, minimum=1)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``infer``."""
    p.add_argument("--cell", default="stg", help=f"cell type, one of: {', '.join(cells.available())} "
                                                 "(default: %(default)s)")
    p.add_argument("--recordings", required=True, metavar="R.csv",
                   help="recordings CSV: header ID,spiking_times, times as a quoted list in ms")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--samples", type=positive_int, default=1000, help="posterior samples per recording "
                                                                     "(default: %(default)s)")
    p.add_argument("--check", type=int, default=200, metavar="N",
                   help="posterior samples simulated for the predictive check, ≤ --samples; 0 skips it "
                        "(default: %(default)s)")
    p.add_argument("--duration", type=positive_float, default=None, metavar="MS",
                   help="length of the recording window in ms (default: the cell's protocol, 3000 for stg, "
                        "9000 for da)")
    p.add_argument("--budget", type=positive_int, default=None,
                   help="training simulations (default: the cell's declared inference_budget, "
                        "30000 for stg, 20000 for da)")
    p.add_argument("--max-epochs", type=positive_int, default=None,
                   help="cap on training epochs (default: the standard estimator settings)")
    p.add_argument("--missed-prior", type=missed_fraction, default=None, metavar="P",
                   help="your spike detector misses spikes: also infer p_missed, the probability that it missed "
                        "one, uniform on [0, P] (a posterior of its own, trained once and cached; README 'What the "
                        "checks mean'); 0: perfect detection (default: the cell's missed_prior, 0 for the shipped "
                        "cells)")
    p.add_argument("--seed", type=seed_type, default=0,
                   help="seed of the training set, training and sampling, an integer ≥ 0 (default: %(default)s)")
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="array backend of the simulations (default: %(default)s)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="cache folder for training sets and posteriors (default: $CONDSPACE_CACHE or "
                        ".cache/condspace in the repository)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--refine", action="store_true",
                   help="refine the posterior of every recording whose predictive check is below "
                        "--refine-threshold with truncated sequential NPE (needs --check > 0)")
    p.add_argument("--refine-rounds", type=positive_int, default=None, metavar="N",
                   help=f"with --refine: at most N rounds per recording (default: {REFINE_DEFAULTS['refine_rounds']})")
    p.add_argument("--refine-budget", type=positive_int, default=None, metavar="N",
                   help=f"with --refine: simulations per round, ≥ 10 (default: {REFINE_DEFAULTS['refine_budget']})")
    p.add_argument("--refine-threshold", type=positive_float, default=None, metavar="F",
                   help="with --refine: predictive-check fraction in (0, 1] that passes (default: 0.8)")
    p.add_argument("--force", action="store_true",
                   help="run even when the estimated time exceeds a day (what cannot fit in memory is always refused)")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``infer`` subcommand to an ``argparse`` subparsers object (handler in ``_run``)."""
    p = subparsers.add_parser("infer", help="infer conductance posteriors from recorded spike times (NPE)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(_run=run)
    return p


def _json_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _observed(row: pd.Series) -> dict[str, Any]:
    return {"label": row["label"], **{k: _json_value(row[k]) for k in ("n_spikes", *FEATURE_KEYS)}}


def _predictive(table: pd.DataFrame) -> dict[str, Any]:
    """Class fractions and median features of the simulated posterior samples."""
    labels = table["label"].value_counts(normalize=True)
    active = table[table["label"].isin(["spiking", "bursting"])]
    med = {k: _json_value(float(active[k].median())) if active[k].notna().any() else None for k in FEATURE_KEYS}
    return {"label_fractions": {k: float(v) for k, v in labels.items()}, "features_median": med,
            "n_simulated": int(len(table))}


def _check_args(args: argparse.Namespace, cell: cells.CellType) -> None:
    """Everything that can be checked before loading torch: ranges, paths, memory and time."""
    if args.check < 0 or args.check > args.samples:
        raise CLIError(f"--check must lie in [0, --samples={args.samples}], got {args.check}")
    try:
        _checks.output_folder(args.out, "--out")
    except (ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from None
    if not Path(args.recordings).is_file():
        raise CLIError(f"--recordings {args.recordings}: no such file")
    n_params = cell.n_channels
    _check_refine_args(args, cell)
    if args.budget is not None:
        steps = int(cell.protocol["t_max"] / cell.protocol.get("dt", 0.05))
        nbytes, seconds = _checks.simulation_cost(args.budget, steps)
        _checks.check_resources(f"a training set of --budget {args.budget:,} simulations",
                                nbytes=nbytes + 8.0 * 64 * args.budget, seconds=seconds, force=args.force,
                                fix="use a smaller --budget (the standard one is the cell's inference_budget)")
    _checks.check_resources(f"--samples {args.samples:,} posterior samples per recording",
                            nbytes=8.0 * 4 * n_params * args.samples, fix="ask for fewer --samples")


# The refine module's DEFAULT_ROUNDS, DEFAULT_PER_ROUND and REFINE_THRESHOLD, written out because importing
# it loads torch (tests/test_refine.py checks that they agree).
REFINE_DEFAULTS = {"refine_rounds": 5, "refine_budget": 1000, "refine_threshold": 0.8}


def _check_refine_args(args: argparse.Namespace, cell: cells.CellType) -> None:
    """``--refine`` options: used only with ``--refine``, in range, with a check to decide by; fills defaults."""
    given = [name for name in REFINE_DEFAULTS if getattr(args, name) is not None]
    if not args.refine:
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise CLIError(f"{flag} has no effect without --refine; add --refine to refine failing recordings")
        return
    for name, default in REFINE_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.check == 0:
        raise CLIError("--refine decides by the predictive check, which --check 0 skips; give --check N > 0 "
                       "(e.g. --check 200)")
    if args.refine_budget < 10:
        raise CLIError(f"--refine-budget must be ≥ 10 simulations per round, got {args.refine_budget}")
    if args.refine_threshold > 1:
        raise CLIError(f"--refine-threshold is a fraction of posterior samples in (0, 1], "
                       f"got {args.refine_threshold:g}")
    steps = int(cell.protocol["t_max"] / cell.protocol.get("dt", 0.05))
    per_recording = args.refine_rounds * (args.refine_budget + args.check)
    nbytes, seconds = _checks.simulation_cost(args.refine_budget, steps)
    _checks.check_resources(f"--refine with {args.refine_rounds:,} rounds of --refine-budget {args.refine_budget:,} "
                            f"simulations ({per_recording:,} per recording with the checks)",
                            nbytes=nbytes, seconds=seconds * args.refine_rounds, force=args.force,
                            fix="use fewer --refine-rounds or a smaller --refine-budget")


def run(args: argparse.Namespace) -> int:
    """Handler of ``infer`` (see the module docstring).

    Returns:
        0 when every recording was inferred, 1 when any failed (their IDs and reasons are on stderr
        and in ``summary.json``).
    """
    cell = cells.get(args.cell)
    _check_args(args, cell)
    trains = recordings.load_csv(args.recordings)  # malformed files raise ValueError here
    if not trains:
        raise CLIError(f"{args.recordings}: no recordings")
    stems = [_file_stem(i) for i in trains]
    if len(set(stems)) != len(stems):
        raise CLIError(f"{args.recordings}: recording IDs collide once made file-name safe ({stems})")
    from condspace import dics, inference  # noqa: PLC0415  (torch/sbi load only for this command)

    out = Path(args.out)
    with _checks.creating_folder(out):
        summary = _infer_all(args, cell, trains, out, dics, inference)
    failed = {k: v["error"] for k, v in summary.items() if "error" in v}
    print(f"{len(summary) - len(failed)}/{len(summary)} recording(s) inferred -> {out}/summary.json", file=sys.stderr)
    if failed:
        listed = "; ".join(f"{k}: {v}" for k, v in list(failed.items())[:10])
        more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
        print(f"error: {len(failed)} of {len(summary)} recording(s) failed: {listed}{more}", file=sys.stderr)
        return 1
    return 0


def _infer_all(args: argparse.Namespace, cell: cells.CellType, trains: recordings.Recordings, out: Path,
               dics: Any, inference: Any) -> dict[str, Any]:
    budget = args.budget or cell.inference_budget
    settings = inference.standard_settings(max_epochs=args.max_epochs)
    t0 = time.perf_counter()
    prior = inference.make_prior(cell, missed=args.missed_prior)  # noise inferred; misses only if asked or declared
    post, ts = inference.trained_posterior(cell, budget, settings=settings, prior=prior, seed=args.seed,
                                           backend=args.backend, cache_dir=args.cache, use_cache=not args.no_cache)
    print(f"posterior for {cell.name}: {budget} simulations ({ts.excluded_fraction:.1%} excluded), "
          f"{'loaded from the cache' if post.info.get('cached') else 'trained'} in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    duration = post.protocol.duration if args.duration is None else args.duration
    if args.refine:
        each = args.refine_rounds * args.refine_budget
        print(f"refinement budget: a recording whose predictive check is below {args.refine_threshold:g} gets up to "
              f"{args.refine_rounds} round(s) of {args.refine_budget:,} simulations ({each:,} per recording, "
              f"{each * len(trains):,} at most for {len(trains)} recording(s)), plus {args.check:,} simulations "
              "per round for the recheck", file=sys.stderr)
    summary: dict[str, Any] = {}
    for ident, spikes in trains.items():
        if ident in trains.invalid:
            message = "flagged invalid in the recordings file (a numerical blow-up of the simulation that made it)"
            print(f"{ident}: not inferred: {message}", file=sys.stderr)
            summary[ident] = {"error": message}
            continue
        summary[ident] = _infer_one(ident, spikes, duration, post, ts, cell, dics, args, out)
    recordings.write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    if args.check:
        print(_summary_table(summary), file=sys.stderr)
    meta = {"cell": cell.name, "budget": budget, "settings": dataclasses.asdict(post.settings),
            "prior": post.prior.to_dict(), "features": list(post.feature_names), "training": ts.info,
            "posterior": {k: v for k, v in post.info.items() if k not in ("training",)}}
    recordings.write_text_atomic(out / "posterior.json", json.dumps(meta, indent=2, default=_json_value) + "\n")
    return summary


def _infer_one(ident: str, spikes: np.ndarray, duration: float, post, ts, cell, dics, args, out: Path) -> dict:
    from condspace import inference  # noqa: PLC0415

    try:
        x_obs, observed = inference.observe(spikes, duration)
    except ValueError as err:
        print(f"{ident}: not inferred: {err}", file=sys.stderr)
        return {"error": str(err), "observed": _observed(features.extract([spikes], duration).iloc[0])}
    theta = post.sample(args.samples, x_obs, seed=args.seed)
    entry = {"observed": _observed(observed), "n_samples": int(args.samples),
             "feature_cloud_percentile": inference.feature_cloud_distance(x_obs, ts.x[ts.valid]).percentile}
    chk = None
    if args.check:
        chk = inference.predictive_check(post, spikes, args.check, duration=duration, samples=theta[:args.check],
                                         seed=args.seed, backend=args.backend)
        print(f"{ident}: {observed['label']}, predictive check {chk.fraction:.2f} ({chk.criterion})", file=sys.stderr)
    if args.refine:
        chk, theta, entry["refinement"] = _refine_one(ident, spikes, x_obs, duration, post, ts, chk, theta, args,
                                                      out)
    if post.prior.has_noise:  # how noisy the (refined) posterior thinks the recording is
        entry["noise_std"] = {k: float(v) for k, v in post.noise_summary(theta).items()}
    if post.prior.has_missed:  # and how many spikes it thinks the detector missed
        entry["p_missed"] = {k: float(v) for k, v in post.missed_summary(theta).items()}
    g = inference.conductances(cell, post.prior, theta)
    table = pd.DataFrame(g, columns=list(cell.conductance_names))
    _write_csv(out / f"{_file_stem(ident)}_posterior.csv", table, args)
    _write_csv(out / f"{_file_stem(ident)}_dics.csv", dics.dics_at_threshold(cell, g), args)
    if chk is not None:
        _write_csv(out / f"{_file_stem(ident)}_predictive.csv", chk.table, args)
        entry.update({"predictive_check_fraction": chk.fraction, "criterion": chk.criterion,
                      "predictive": _predictive(chk.table)})
    return entry


def _refine_one(ident: str, spikes: np.ndarray, x_obs: np.ndarray, duration: float, post, ts, before, theta,
                args, out: Path) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """Refine one recording if its amortised check fails: (final check, samples to write, summary entry).

    A refinement that cannot run (its truncated region too small to sample) leaves the amortised
    posterior in place and says why in the entry.
    """
    from condspace import inference  # noqa: PLC0415

    try:
        result = inference.refine_if_failing(post, spikes, ts, threshold=args.refine_threshold, check=args.check,
                                             samples=args.samples, before=before, rounds=args.refine_rounds,
                                             per_round=args.refine_budget, duration=duration, seed=args.seed,
                                             backend=args.backend)
    except (RuntimeError, ValueError) as err:
        print(f"{ident}: refinement failed, the amortised posterior is kept: {err}", file=sys.stderr)
        return before, theta, {"refined": False, "simulations": 0, "fraction_before": before.fraction,
                               "fraction_after": before.fraction, "fraction_verdict": before.fraction,
                               "error": str(err)}
    # The verdict of a refined posterior is its confirmation on fresh samples: the last round's
    # check was picked for crossing the threshold (condspace.inference.refine).
    entry = {"refined": result.refined, "simulations": result.n_simulations, "rounds": len(result.rounds),
             "fraction_before": result.fraction_before, "fraction_after": result.fraction_after,
             "fraction_verdict": result.fraction_verdict,
             "passed": bool(result.fraction_verdict >= args.refine_threshold), "threshold": args.refine_threshold,
             "wall_s": result.wall_s}
    if not result.refined:
        return before, theta, entry
    entry["per_round"] = [{"simulations": r.n_simulations, "valid": r.n_valid, "fraction": r.fraction,
                           "confirmed": r.confirmed, "prior_volume_fraction": r.volume_fraction}
                          for r in result.rounds]
    path = out / f"{_file_stem(ident)}_refined_posterior.pt"
    inference.save_posterior(path, result.posterior)
    args._kept = [*getattr(args, "_kept", []), path]
    print(f"{ident}: refined with {result.n_simulations:,} simulations in {len(result.rounds)} round(s): predictive "
          f"check {result.fraction_before:.2f} -> {result.fraction_after:.2f}, on fresh samples "
          f"{result.fraction_verdict:.2f} ({result.wall_s:.0f} s)", file=sys.stderr)
    # The refinement's last check simulated the first --check of these very samples (same seed).
    return result.checks[-1], result.posterior.sample(args.samples, x_obs, seed=args.seed), entry


def _summary_table(summary: dict[str, Any]) -> str:
    """Per recording: class, amortised fraction, whether refined and by how many simulations, final fractions.

    ``final`` is the check of the written samples; ``fresh`` the verdict on fresh samples of a
    refined posterior (the final check otherwise).
    """
    rows = [("recording", "class", "amortised", "refined", "simulations", "final", "fresh")]
    for ident, entry in summary.items():
        if "error" in entry:
            rows.append((ident, entry.get("observed", {}).get("label", "-"), "-", "-", "-", "not inferred", "-"))
            continue
        ref = entry.get("refinement")
        before = ref["fraction_before"] if ref else entry["predictive_check_fraction"]
        final = entry["predictive_check_fraction"]
        rows.append((ident, entry["observed"]["label"], f"{before:.2f}",
                     ("yes" if ref["refined"] else "failed" if "error" in ref else "no") if ref else "-",
                     f"{ref['simulations']:,}" if ref else "-", f"{final:.2f}",
                     f"{ref['fraction_verdict'] if ref else final:.2f}"))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _file_stem(ident: str) -> str:
    """A file-name-safe version of a recording ID (IDs are free text)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", ident) or "_"


def _write_csv(path: Path, df: pd.DataFrame, args: argparse.Namespace | None = None) -> None:
    recordings.write_text_atomic(path, df.to_csv(index=False, lineterminator="\n", float_format="%.8g"))
    if args is not None:
        args._kept = [*getattr(args, "_kept", []), path]  # named by the Ctrl-C message of python -m condspace


CLI = Command(add_arguments, run, DESCRIPTION)

__all__ = ["CLI", "add_arguments", "add_parser", "run"]
