"""Cost of simulation-based inference at the standard budget: simulate, train, sample, check.

Prints CPU and wall seconds (time.process_time / time.perf_counter) for:

1. simulating the training set (``condspace.inference.training_set``: prior draws → one batched
   ``simulate`` call → summary features), on every core (simulate's worker processes, whose CPU
   time this process cannot see: only wall time is printed then; ``CONDSPACE_WORKERS=1`` for one);
2. training the standard ensemble of two neural spline flows on it (``inference.train``, one torch
   thread per flow, the flows in parallel worker processes: wall time only then);
3. drawing 1000 posterior samples for one recording (and for 100 recordings at once);
4. the predictive check of one recording (200 posterior samples simulated);
5. expected coverage on 200 (θ, x) pairs with 1000 samples each (timing only: the pairs are
   training pairs here; chapter 2 computes the real calibration on held-out simulations).

By default everything is computed fresh in a temporary cache folder, so the numbers are real
costs. ``--reuse-cache`` instead loads the training set and posterior from the shared cache
(``.cache/condspace``) when present (and leaves them there when it makes them) and reports the
times stored when they were made.

``--score N`` then scores the posterior as ``make check`` scores the STG one
(``condspace.posterior_scores``): the predictive-check fraction of each of the cell's demonstration
recordings (``--n-check`` samples simulated) and the joint-HPD coverage at 50 % and 90 % on N
held-out simulations (seed 10,000), printed as a second table with the requirements of issue 14
(≥ 0.8; within ±0.1 of nominal).

``--noise 0`` infers the conductances only (no noise current in the simulations), the
configuration before the noise strength became a parameter: what ``benchmarks/side_by_side.py``
uses to compare with such commits like for like.

Usage: .venv/bin/python benchmarks/inference.py [--cell stg] [--budget N] [--reuse-cache]
           [--score 500 [--n-check 200]] [--noise MAX]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import numpy as np
import torch

from condspace import cells, inference
from condspace._parallel import worker_count
from condspace.posterior_scores import score_posterior
from condspace.simulate import PARALLEL_MIN_WORK


def measure(fn):
    """(result, CPU seconds, wall seconds) of fn()."""
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def observation(cell) -> np.ndarray:
    """A recording to condition on: the cell's first tonic demonstration recording (STG: the shipped
    ``stg_tonic``; DA: ``da_fast``, simulated), else its first one."""
    trains, truth = inference.demonstration_recordings(cell, "data/recordings")
    tonic = list(truth.index[truth["label"] == "spiking"]) or list(truth.index)
    return trains[tonic[0]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cell", default="stg", help=f"cell type, one of {', '.join(cells.available())}")
    ap.add_argument("--budget", type=int, default=None,
                    help="training simulations (default: the cell's inference_budget)")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap on epochs (default: standard settings)")
    ap.add_argument("--backend", default="numpy", help="simulation backend")
    ap.add_argument("--reuse-cache", action="store_true", help="load training set and posterior from the cache")
    ap.add_argument("--score", type=int, default=0, metavar="N",
                    help="also score the posterior: predictive checks and coverage on N held-out simulations")
    ap.add_argument("--n-check", type=int, default=200, help="posterior samples simulated per recording (--score)")
    ap.add_argument("--noise", type=float, default=None, metavar="MAX",
                    help="upper bound of the noise-strength prior, µA/cm² (default: the cell's); 0 infers "
                         "conductances only, as before the noise was inferred (to compare with older commits)")
    args = ap.parse_args()
    cell = cells.get(args.cell)
    budget = args.budget or cell.inference_budget
    settings = inference.standard_settings(args.max_epochs)
    cache = None if args.reuse_cache else tempfile.mkdtemp(prefix="condspace-bench-")
    prior = inference.make_prior(cell, noise=args.noise)
    print(f"# condspace inference benchmark: cell {cell.name}, budget {budget}, θ = {', '.join(prior.names)}, "
          f"{settings.model} "
          f"(hidden {settings.hidden_features}, {settings.num_transforms} transforms), backend {args.backend}, "
          f"torch threads 1, {platform.processor() or platform.machine()}, cache {cache or 'shared'}")
    rows = []
    ts, cpu, wall = measure(lambda: inference.training_set(cell, budget, prior=prior, backend=args.backend,
                                                           cache_dir=cache, progress=False))
    sim_wall = ts.info["simulate_s"] if ts.info.get("cached") else wall
    protocol = inference.Protocol.for_cell(cell)
    workers = worker_count(None, budget * protocol.t_max / protocol.dt, PARALLEL_MIN_WORK)
    rows.append((f"simulate {budget} × {protocol.t_max / 1000:g} s (features incl.; "
                 f"{workers} process{'es' if workers > 1 else ''})",
                 "cached" if ts.info.get("cached") else ("workers" if workers > 1 else cpu), sim_wall))
    (post, _), cpu, wall = measure(lambda: inference.trained_posterior(cell, budget, settings=settings, prior=prior,
                                                                         backend=args.backend, cache_dir=cache,
                                                                         progress=False))
    procs = post.info.get("train_processes", 1)
    rows.append((f"train {len(post.info['epochs'])} flows ({'+'.join(map(str, post.info['epochs']))} epochs, "
                 f"{post.info['n_train']} pairs, {procs} process{'es' if procs > 1 else ''})",
                 "cached" if post.info.get("cached") else ("workers" if procs > 1 else cpu), post.info["train_s"]))
    spikes = observation(cell)
    x, _ = inference.observe(spikes, post.protocol.duration)
    post.sample(10, x, seed=0)  # warm-up
    _, cpu, wall = measure(lambda: post.sample(1000, x, seed=0))
    rows.append(("sample 1000 for one recording", cpu, wall))
    xs = ts.x[ts.valid][:100]
    _, cpu, wall = measure(lambda: post.sample_batched(1000, xs, seed=0))
    rows.append(("sample 1000 each for 100 recordings", cpu, wall))
    _, cpu, wall = measure(lambda: inference.predictive_check(post, spikes, 200, seed=0, backend=args.backend))
    rows.append(("predictive check, 200 samples simulated", cpu, wall))
    test = ts  # reuse simulated pairs only for timing; calibration itself uses held-out draws
    _, cpu, wall = measure(lambda: inference.expected_coverage(post, test.theta[test.valid][:200],
                                                               test.x[test.valid][:200], levels=[0.5, 0.9]))
    rows.append(("expected coverage, 200 pairs × 1000 samples", cpu, wall))
    width = max(len(name) for name, _, _ in rows)
    print(f"| {'step':{width}s} |   CPU s | wall s |")
    print(f"|{'-' * (width + 2)}|---------|--------|")
    for name, cpu, wall in rows:
        cpu_s = f"{cpu:7.1f}" if isinstance(cpu, float) else f"{cpu:>7s}"  # "cached", or "workers" (not ours)
        print(f"| {name:{width}s} | {cpu_s} | {wall:6.1f} |")
    print(f"excluded from training: {ts.excluded_fraction:.1%}; torch {torch.__version__}")
    if args.score:
        print_scores(cell, post, prior, args.score, args.n_check, args.backend, cache)


def print_scores(cell, post, prior, n_test: int, n_check: int, backend: str, cache) -> None:
    """The predictive checks of the cell's demonstration recordings and the coverage, as a table."""
    trains, truth = inference.demonstration_recordings(cell, "data/recordings")
    duration = float(truth["duration_ms"].iloc[0])
    t0 = time.perf_counter()
    test = inference.held_out(cell, prior, n_test, seed=10_000, training_seed=0, backend=backend, cache_dir=cache,
                              progress=False)
    scores = score_posterior(post, trains, duration, test, n_check=n_check, seed=0, backend=backend)
    print(f"\n# scores ({time.perf_counter() - t0:.0f} s): {n_check} posterior samples simulated per recording; "
          f"coverage on {scores.n_test} valid of {n_test} held-out simulations")
    rows = scores.verdicts()
    width = max(len(r["check"]) for r in rows)
    print(f"| {'check':{width}s} | value | requirement | passed |")
    print(f"|{'-' * (width + 2)}|-------|-------------|--------|")
    for r in rows:
        verdict = "yes" if r["passed"] else "no"
        print(f"| {r['check']:{width}s} | {r['value']:5.3f} | {r['requirement']:11s} | {verdict:6s} |")
    for name, note in scores.notes.items():
        print(f"note, {name}: {note}")


if __name__ == "__main__":
    main()
