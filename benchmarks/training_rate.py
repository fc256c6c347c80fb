"""Epochs, wall time and validation loss of one standard flow against the Adam learning rate.

Trains one flow (``ensemble=1``) of the standard STG estimator on the standard training set (from
the cache, or simulated first: a few minutes) for each learning rate and seed asked, two at a time
in worker processes (one per core, as the two members of the standard pair train), with the
standard batch size, patience and epoch cap, and prints a table: epochs trained, best validation
loss (lower is better; the same validation split for every run of a seed) and wall seconds. This
is how the default learning rate of :class:`condspace.inference.EstimatorSettings` was chosen.

Usage: .venv/bin/python benchmarks/training_rate.py [--rates 1e-3 2e-3 3e-3] [--seeds 0 1] [--workers 2]
"""

from __future__ import annotations

import argparse
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context

import numpy as np

from condspace import cells, inference
from condspace.inference.estimators import EstimatorSettings
from condspace.inference.simulator import Protocol
from condspace.inference.training import train


def standard_set(cell) -> tuple:
    """The standard training set of ``cell`` (valid rows) and its prior, as chapter 2 builds them."""
    protocol = Protocol.for_cell(cell)
    prior = inference.make_prior(cell, noise=0 if protocol.noise_std > 0 else None)
    ts = inference.training_set(cell, cell.inference_budget, prior=prior, seed=0, protocol=protocol)
    return ts.theta[ts.valid], ts.x[ts.valid], prior


def one_flow(cell_name: str, rate: float, seed: int) -> dict:
    """Train one flow at ``rate`` with member seed ``seed`` (in a worker process)."""
    warnings.filterwarnings("ignore")
    cell = cells.get(cell_name)
    theta, x, prior = standard_set(cell)
    settings = replace(EstimatorSettings(), learning_rate=rate, ensemble=1)
    t0 = time.perf_counter()
    post = train(theta, x, prior, settings=settings, seed=seed, cell=cell.name, workers=1, progress=False)
    loss = np.asarray(post.info["validation_loss"][0])
    return {"rate": rate, "seed": seed, "epochs": int(post.info["epochs"][0]), "best": float(loss.min()),
            "best_epoch": int(loss.argmin()), "wall_s": time.perf_counter() - t0, "n": len(theta)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", type=float, nargs="+", default=[1e-3, 2e-3, 3e-3], help="Adam learning rates")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="member seeds")
    ap.add_argument("--workers", type=int, default=2, help="flows trained at once (one process each)")
    ap.add_argument("--cell", default="stg", help="cell type (its standard training set)")
    args = ap.parse_args()
    if any(not (r > 0) for r in args.rates) or args.workers < 1:
        ap.error("--rates must be > 0 and --workers >= 1")
    cell = cells.get(args.cell)
    standard_set(cell)  # simulated once here, so that the workers read it from the cache
    base = EstimatorSettings()
    print(f"# {cell.name}: one flow per run, batch {base.batch_size}, patience {base.stop_after_epochs}, "
          f"cap {base.max_epochs} epochs, {args.workers} at a time; standard rate {base.learning_rate:g}")
    jobs = [(r, s) for r in args.rates for s in args.seeds]
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        rows = list(pool.map(one_flow, [cell.name] * len(jobs), *zip(*jobs, strict=True)))
    print("| learning rate | seed | epochs | best validation loss (epoch) | wall s | simulations |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['rate']:g} | {r['seed']} | {r['epochs']} | {r['best']:.3f} ({r['best_epoch']}) | "
              f"{r['wall_s']:.0f} | {r['n']} |")


if __name__ == "__main__":
    main()
