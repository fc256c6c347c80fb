"""The science check (``make check``): do the book's standard results still hold?

Prints one table and exits with status 1 when any check misses its requirement:

- **posterior** (the standard STG posterior of chapter 2: the cell's ``inference_budget``, the
  standard estimator, seed 0, loaded from ``.cache/condspace`` or trained, ≈ 20 min on 2 cores):
  the predictive-check fraction of every shipped recording ≥ 0.8 and the joint-HPD coverage at
  the 50 % and 90 % levels within ±0.1 of nominal (``condspace.posterior_scores``). A recording
  below 0.8 is refined as chapter 2 refines it (truncated sequential NPE, at most
  ``--refine-rounds`` rounds of ``--refine-budget`` simulations, stopping once a ``--refine-check``-sample
  check passes and a confirmation of ``--n-check`` fresh samples passes too) and judged by that
  confirmation (``Refinement.fraction_verdict``); the table shows both fractions;
- **dics**: V_th and (g_f, g_s, g_u) at V_th of the five published STG sets against the values of
  Fyon et al. (2024) / Brandoit et al. (2025), to 1e-3;
- **reachability** (chapter 4's compensation population: 1,000 STG neurons at (−6.2, 4, 5), seed
  0): the literature's pair {CaS, H} carries the whole population along chapter 4's path from
  (4, 5) to (−4, 5); {Na, Kd} is singular; at (−5, 7) {H, CaS} and {H, CaT} reach the population
  at the costs Fyon et al. (2024) report (within 5 %) and {A, CaS} reaches no neuron.

Usage::

    .venv/bin/python tools/science_check.py [--only posterior,dics,reachability] [--budget N]
        [--max-epochs N] [--n-test 1000] [--n-check 500] [--refine-rounds 5] [--refine-budget 1000]
        [--refine-check 200]

``--budget`` / ``--max-epochs`` score a posterior other than the standard one (the table says
which); the requirements stay the same.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))  # runs before or without the editable install too

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from condspace import cells, dics, inference, populations  # noqa: E402
from condspace import neuromodulation as nm  # noqa: E402
from condspace.posterior_scores import PREDICTIVE_MIN, score_posterior  # noqa: E402

GROUPS = ("posterior", "dics", "reachability")
CELL = "stg"
SEED = 0
# V_th (mV) and (g_f, g_s, g_u) at V_th (× g_leak) of the published STG sets: Fyon A et al. (2024)
# PNAS Nexus 3:pgae415; Brandoit J et al. (2025) arXiv:2509.12783.
PUBLISHED_DICS = {
    "DIC spiking": (-50.550, -8.643, 4.435, 4.208),
    "DIC bursting a": (-50.531, -2.254, -3.858, 6.112),
    "DIC bursting b": (-52.019, -2.484, -3.839, 6.322),
    "tonic spiking": (-49.923, -5.372, 2.584, 2.789),
    "bursting": (-51.576, 0.961, -8.466, 7.505),
}
DIC_TOLERANCE = 1e-3  # the published values are given to three decimals
# Median fold changes at (g_s, g_u) = (−5, 7) from the (4, 5) spiking population, Fyon et al. (2024):
# medians of their own random population to 2–3 digits, hence a 5 % tolerance.
LITERATURE_COSTS = {("H", "CaS"): {"CaS": 2.67, "H": 1.37}, ("H", "CaT"): {"CaT": 10.2, "H": 1.36}}
COST_TOLERANCE = 0.05
REACHED = 0.99  # "the whole population": at most one neuron in a hundred left behind
N_POPULATION = 1000  # chapter 4's compensation population
N_PATH = 21  # chapter 4's points along the path


def _row(group: str, check: str, value, requirement: str, passed: bool | None) -> dict:
    """One line of the table; ``passed`` None: information only, not a check."""
    return {"group": group, "check": check, "value": value, "requirement": requirement,
            "passed": None if passed is None else bool(passed)}


def standard_posterior(budget: int | None, max_epochs: int | None):
    """Chapter 2's posterior (cache or training), its training set, and what it is, in words."""
    cell = cells.get(CELL)
    n = budget or cell.inference_budget
    settings = inference.standard_settings(max_epochs=max_epochs)
    post, ts = inference.trained_posterior(cell, n, settings=settings, seed=SEED)
    how = "cache" if post.info.get("cached") else "trained now"
    label = "standard" if (n == cell.inference_budget and max_epochs is None) else "NOT the standard budget"
    return post, ts, f"{n} simulations, max_epochs {settings.max_epochs} ({label}; {how})"


class Refining(NamedTuple):  # not a dataclass: the tests load this script without a module entry
    """How a recording that fails the amortised predictive check is refined (chapter 2's policy).

    Attributes:
        rounds: At most this many TSNPE rounds (0: no refinement, the amortised fraction is the verdict).
        per_round: Simulations per round.
        check: Posterior samples simulated by the check after each round (a pass is then confirmed
            on fresh samples before the rounds stop).
    """

    rounds: int = inference.DEFAULT_ROUNDS
    per_round: int = inference.DEFAULT_PER_ROUND
    check: int = inference.REFINE_CHECK


def refined_row(post, ts, name: str, train, duration: float, amortised: float, what: str, n_check: int,
                refining: Refining) -> dict:
    """The verdict row of a recording refined by TSNPE, judged by a fresh predictive check.

    The rounds stop on a check of ``refining.check`` samples confirmed by a second, independent
    check of ``n_check`` samples (another seed); that confirmation is the verdict, so stopping on a
    lucky draw does not pass it.
    """
    result = inference.refine_if_failing(post, train, ts, check=refining.check, confirm=n_check,
                                         rounds=refining.rounds, per_round=refining.per_round, duration=duration,
                                         seed=SEED)
    fresh = result.fraction_verdict
    label = (f"predictive check, {name}, refined: amortised {amortised:.3g}, then {len(result.rounds)} TSNPE "
             f"round(s), {result.n_simulations:,} simulations [{what}; n={n_check}, fresh samples]")
    return _row("posterior", label, fresh, f">= {PREDICTIVE_MIN} after refinement", fresh >= PREDICTIVE_MIN)


def posterior_rows(budget: int | None = None, max_epochs: int | None = None, n_test: int = 1000,
                   n_check: int = 500, refining: Refining | None = None) -> list[dict]:
    """Predictive checks of the shipped recordings and coverage, on chapter 2's posterior.

    A recording whose amortised fraction misses :data:`PREDICTIVE_MIN` is refined as chapter 2
    and ``infer --refine`` do (``refining``; None: not refined): its amortised row stays in the
    table as information, and the refined row carries the verdict.
    """
    cell = cells.get(CELL)
    refining = Refining() if refining is None else refining
    post, ts, what = standard_posterior(budget, max_epochs)
    trains, truth = inference.demonstration_recordings(cell, ROOT / "data" / "recordings")
    duration = float(truth["duration_ms"].iloc[0])
    test = inference.held_out(cell, post.prior, n_test, seed=10_000 + SEED, training_seed=SEED)
    scores = score_posterior(post, trains, duration, test, n_check=n_check, seed=SEED)
    rows = []
    for v in scores.verdicts():
        n = scores.n_check if v["check"].startswith("predictive") else scores.n_test
        name = next((k for k in trains if v["check"].startswith(f"predictive check, {k} ")), None)
        if name is not None and not v["passed"] and refining.rounds > 0 and np.isfinite(v["value"]):
            rows.append(_row("posterior", f"{v['check']} [{what}; n={n}], amortised", v["value"],
                             f"{v['requirement']}, else refined (next row)", None))
            rows.append(refined_row(post, ts, name, trains[name], duration, v["value"], what, n_check, refining))
            continue
        rows.append(_row("posterior", f"{v['check']} [{what}; n={n}]", v["value"], v["requirement"], v["passed"]))
    return rows


def dic_rows() -> list[dict]:
    """V_th and DICs at V_th of the published STG sets against the literature's values."""
    cell = cells.get(CELL)
    G = np.array([list(cell.example(label).values()) for label in PUBLISHED_DICS])
    table = dics.dics_at_threshold(cell, G).to_numpy()
    rows = []
    for (label, expected), got in zip(PUBLISHED_DICS.items(), table, strict=True):
        err = float(np.max(np.abs(got - np.array(expected))))
        rows.append(_row("dics", f"{label}: V_th, g_f, g_s, g_u = {', '.join(f'{g:.3f}' for g in got)}", err,
                         f"max |error| <= {DIC_TOLERANCE:g}", err <= DIC_TOLERANCE))
    return rows


def reachability_rows() -> list[dict]:
    """Chapter 4's path fractions and the literature's reachability and costs at (−5, 7)."""
    cell = cells.get(CELL)
    pop = populations.spiking_population(cell, N_POPULATION, seed=SEED)
    g = pop.g[pop.reachable]
    start, end = cell.modulation_target("spiking"), cell.modulation_target("bursting")
    summary = nm.path_summary(cell, g, nm.path(start, end, N_PATH))[0].set_index("pair")
    default = nm.pair_label(sorted(populations.modulation_pair(cell, *end), key=cell.index))
    rows = [_row("reachability", f"path {start} -> {end}: {default} (the literature's pair) follows it",
                 float(summary.loc[default, "reachable_fraction"]), f">= {REACHED}",
                 summary.loc[default, "reachable_fraction"] >= REACHED),
            _row("reachability", "path: Na+Kd is singular (no ultraslow component at V*)",
                 float(summary.loc["Na+Kd", "reachable_fraction"]), "0, reason singular",
                 summary.loc["Na+Kd", "reachable_fraction"] == 0 and summary.loc["Na+Kd", "reason"] == "singular")]
    for pair, expected in LITERATURE_COSTS.items():
        r = nm.reachability(cell, g, [[-5.0, 7.0]], pair)
        rows.append(_row("reachability", f"(-5, 7): {{{', '.join(pair)}}} reaches the population",
                         float(r.fraction[0]), f">= {REACHED}", r.fraction[0] >= REACHED))
        cost = nm.cost(r.baseline, r.modulated[0], r.channels, r.reachable[0])
        for channel, value in expected.items():
            got = float(cost.loc[channel, "median"])
            rows.append(_row("reachability", f"(-5, 7): {{{', '.join(pair)}}} median fold change of {channel}", got,
                             f"{value} ± {COST_TOLERANCE:.0%}", abs(got / value - 1) <= COST_TOLERANCE))
    r = nm.reachability(cell, g, [[-5.0, 7.0]], ("A", "CaS"))
    rows.append(_row("reachability", "(-5, 7): {A, CaS} reaches no neuron (g_A < 0)", float(r.fraction[0]), "0",
                     r.fraction[0] == 0))
    return rows


def table_text(rows: list[dict]) -> str:
    """The printed table: one line per check, PASS or MISS."""
    frame = pd.DataFrame(rows)
    frame["value"] = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in frame["value"]]
    frame["result"] = [{True: "pass", False: "MISS", None: "info"}[p] for p in frame.pop("passed")]
    with pd.option_context("display.max_colwidth", 120, "display.width", 250):
        return frame.to_string(index=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated groups among {', '.join(GROUPS)}")
    ap.add_argument("--budget", type=int, default=None, help="training simulations (default: the standard budget)")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap on epochs (default: the standard settings)")
    ap.add_argument("--n-test", type=int, default=1000, help="held-out simulations for the coverage (chapter 2's)")
    ap.add_argument("--n-check", type=int, default=500, help="posterior samples simulated per recording (chapter 2's)")
    ap.add_argument("--refine-rounds", type=int, default=inference.DEFAULT_ROUNDS,
                    help="refine a recording that fails the amortised check by at most N TSNPE rounds, as chapter 2 "
                         "does (0: no refinement, the amortised fraction is the verdict)")
    ap.add_argument("--refine-budget", type=int, default=inference.DEFAULT_PER_ROUND, help="simulations per round")
    ap.add_argument("--refine-check", type=int, default=inference.REFINE_CHECK,
                    help="posterior samples simulated by the check that ends the rounds")
    args = ap.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown or not groups:
        ap.error(f"--only: unknown group(s) {unknown or args.only!r}; choose among {', '.join(GROUPS)}")
    t0 = time.perf_counter()
    rows = []
    if "posterior" in groups:
        rows += posterior_rows(args.budget, args.max_epochs, args.n_test, args.n_check,
                               Refining(args.refine_rounds, args.refine_budget, args.refine_check))
    if "dics" in groups:
        rows += dic_rows()
    if "reachability" in groups:
        rows += reachability_rows()
    print(table_text(rows))
    checks = [r for r in rows if r["passed"] is not None]
    missed = sum(not r["passed"] for r in checks)
    print(f"science check: {len(checks) - missed} of {len(checks)} checks pass"
          f"{f', {missed} MISS' if missed else ''} ({time.perf_counter() - t0:.0f} s)")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
