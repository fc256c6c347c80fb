"""Which channels did the neuromodulator target? Accuracy of both methods on held-out experiments.

For each scenario (random modulation; DIC-path modulation) this script simulates (or loads from
``.cache/condspace``) a training set and a held-out pool of single-neuron modulation
experiments, trains (or loads) the classifier, and prints for n = 1, 5, 20 neurons per
experiment: top-1 and top-3 accuracy of the classifier, of the DIC route and of chance; the
expected calibration error of the classifier (10 equal-width bins); top-1 over identifiability
groups (hypotheses linked when their symmetrised confusion at n = 1 exceeds
``identification.GROUP_THRESHOLD``, groups = connected components); per-channel AUC of the
marginals; the accuracy of the direction of change of each modulated channel; the groups; and
simulation, training and ranking times.

The standard budget of the issue is ``--train 20000 --test 6000 --experiments 2000`` (random
modulation); on a busy 2-core machine use less and say so. Multi-neuron experiments are drawn
from the held-out pool (see :mod:`condspace.identification.evaluation`): ``pool`` in the table is
the number of distinct held-out neurons behind them.

Usage: .venv/bin/python benchmarks/identification.py [--cell stg] [--train N] [--test N]
       [--experiments E] [--dic-per-hypothesis K] [--dic-path N] [--max-epochs M]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from condspace import cells, identification, inference
from condspace.identification import evaluation


def _times(label: str, es, model, rank_s: float) -> dict:
    return {"scenario": label, "simulate_s (train)": round(es.info.get("simulate_s", float("nan")), 1),
            "train_s": round(model.classifier.info.get("train_s", float("nan")), 1),
            "epochs": model.classifier.info.get("epochs"), "cached": bool(model.classifier.info.get("cached")),
            "rank_ms_per_neuron": round(1000 * rank_s, 3)}


def _scenario(args, cell, label: str, make):
    t0 = time.perf_counter()
    settings = identification.ClassifierSettings(**({"max_epochs": args.max_epochs} if args.max_epochs else {}))
    model, es = identification.identifier(cell, make("train"), scenario=label, seed=0, settings=settings)
    pool = (identification.random_experiments(cell, args.test, seed=1) if label == "random"
            else identification.dic_path_experiments(cell, args.dic_path, seed=1))
    t1 = time.perf_counter()
    lp, y = evaluation.pool_log_posteriors(model, pool)
    rank_s = (time.perf_counter() - t1) / max(1, len(y))
    ev = evaluation.evaluate_classifier(cell.name, lp, y, model.classifier.log_prior, n_experiments=args.experiments)
    print(f"\n=== {cell.name}, {label} modulation: {model.info['n_experiments']} training experiments, "
          f"pool of {len(y)} held-out neurons (pool simulated in {pool.info.get('simulate_s', 0):.0f} s), "
          f"{time.perf_counter() - t0:.0f} s ===")
    table = ev.table.assign(method="classifier")
    if args.dic_per_hypothesis:
        t2 = time.perf_counter()
        post, _ = inference.trained_posterior(cell, args.train, protocol=identification.recording_protocol(cell),
                                              settings=inference.standard_settings(max_epochs=args.max_epochs))
        tp = time.perf_counter() - t2
        t3 = time.perf_counter()
        fr, co, yd = evaluation.dic_route_pool(cell.name, post, pool, args.dic_per_hypothesis, n_samples=args.samples)
        dic_s = (time.perf_counter() - t3) / max(1, len(yd))
        dic = evaluation.evaluate_dic_route(cell.name, fr, co, yd, n_experiments=args.experiments, groups=ev.groups)
        # the classifier on exactly the DIC route's neurons, for a side-by-side on the same experiments
        sel = np.concatenate([np.flatnonzero(pool.usable & np.all(np.isfinite(pool.x_after), axis=1)
                                             & (pool.hypothesis == h))[:args.dic_per_hypothesis]
                              for h in np.unique(pool.hypothesis)])
        lp_d = model.log_posterior(pool.x_before[sel], pool.x_after[sel])
        same = evaluation.evaluate_classifier(cell.name, lp_d, pool.hypothesis[sel], model.classifier.log_prior,
                                              n_experiments=args.experiments, groups=ev.groups)
        table = pd.concat([table, same.table.assign(method="classifier (DIC-route neurons)"),
                           dic.assign(method="DIC route")], ignore_index=True)
        print(f"DIC route: posterior ({args.train} simulations) ready in {tp:.0f} s; {dic_s:.2f} s per neuron "
              f"({args.samples} posterior samples before and after)")
    cols = ["method", "n", "top1", "top3", "chance_top1", "chance_top3", "ece", "group_top1", "n_experiments", "pool"]
    print(table.reindex(columns=cols).round(3).to_string(index=False))
    print("\nper-channel AUC of P(c ∈ S):")
    print(ev.auc.round(3).T.to_string())
    print("\ndirection of change, given the channel was modulated (single neurons, chance 0.5):")
    print(evaluation.direction_accuracy(model, pool).round(3).to_frame().T.to_string(index=False))
    groups = ev.group_names(cell.name)
    print(f"\nidentifiability groups (symmetrised confusion > {identification.GROUP_THRESHOLD} at n = 1): "
          + ("; ".join("{" + ", ".join(g) + "}" for g in groups) if groups else "none"))
    return _times(label, es, model, rank_s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cell", default="stg", help=f"cell type, one of {', '.join(cells.available())}")
    ap.add_argument("--train", type=int, default=identification.DEFAULT_BUDGET, help="prior draws for training")
    ap.add_argument("--test", type=int, default=6000, help="prior draws of the held-out pool (random scenario)")
    ap.add_argument("--experiments", type=int, default=2000, help="held-out experiments per n")
    ap.add_argument("--dic-per-hypothesis", type=int, default=0,
                    help="pool neurons per hypothesis scored by the DIC route (0: skip it; it needs a posterior)")
    ap.add_argument("--samples", type=int, default=30, help="posterior samples per recording (DIC route)")
    ap.add_argument("--dic-path", type=int, default=0,
                    help="population size of the DIC-path scenario (0: skip it)")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap on training epochs")
    args = ap.parse_args()
    cell = cells.get(args.cell)
    print(f"condspace identification benchmark | cell {cell.name} | {len(identification.hypotheses(cell))} "
          f"hypotheses | train {args.train} draws, test {args.test} draws, {args.experiments} experiments per n")
    times = [_scenario(args, cell, "random", lambda _: args.train)]
    if args.dic_path:
        times.append(_scenario(args, cell, "dic_path", lambda _: args.dic_path))
    print("\ntimes:")
    print(pd.DataFrame(times).to_string(index=False))


if __name__ == "__main__":
    main()
