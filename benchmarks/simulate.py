"""Throughput of the batched simulator against a per-neuron SciPy baseline.

Prints neuron-seconds of biological time per CPU-second (time.process_time) and per wall
second for STG populations drawn from the literature box (dt 0.05 ms, float64), and for
SciPy ``solve_ivp`` (BDF, rtol 1e-2 — the loosest setting in common use) on a few of the same
neurons, all in this one process, with the ratio. The condspace rows run in one process
(``workers=1``); one more row runs the largest population on every core (``workers``), where only
wall time counts (the CPU time of worker processes is not this process's).

Usage: .venv/bin/python benchmarks/simulate.py [--t-bio 1000] [--sizes 1000 10000] [--backend numpy]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from _populations import stg_box_population

from condspace import resolve, simulate
from condspace.reference import simulate_scipy


def measure(fn) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of fn()."""
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--t-bio", type=float, default=1000.0, help="biological time per run (ms)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="population sizes")
    ap.add_argument("--backend", default="numpy", help="numpy or cupy")
    ap.add_argument("--method", default="table", help="table or exact")
    ap.add_argument("--baseline-neurons", type=int, default=3, help="neurons integrated by SciPy")
    ap.add_argument("--no-baseline", action="store_true", help="skip the SciPy baseline")
    args = ap.parse_args()
    be = resolve(args.backend)
    print(f"# condspace simulate benchmark: {be.describe()}, method={args.method}, dt=0.05 ms, "
          f"t_bio={args.t_bio} ms, {platform.processor() or platform.machine()}")
    rows = []
    for n in args.sizes:
        g = stg_box_population(n)
        simulate("stg", g[:8], t_max=20.0, transient=0.0, backend=be, progress=False)  # warm-up
        cpu, wall = measure(lambda g=g: simulate("stg", g, t_max=args.t_bio, transient=0.0, backend=be,
                                                 method=args.method, progress=False, workers=1))
        bio = n * args.t_bio / 1000.0
        rows.append((f"condspace {be.name} N={n}", bio / cpu, bio / wall))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if be.name == "numpy" and cores > 1:
        n = max(args.sizes)
        g = stg_box_population(n)
        _, wall = measure(lambda: simulate("stg", g, t_max=args.t_bio, transient=0.0, backend=be,
                                           method=args.method, progress=False, workers=cores))
        bio = n * args.t_bio / 1000.0
        rows.append((f"condspace {be.name} N={n}, {cores} worker processes", float("nan"), bio / wall))
    if not args.no_baseline:
        g = stg_box_population(args.baseline_neurons)
        cpu, wall = measure(lambda: [simulate_scipy("stg", row, t_max=args.t_bio, transient=0.0, method="BDF",
                                                    rtol=1e-2, atol=1e-6) for row in g])
        bio = args.baseline_neurons * args.t_bio / 1000.0
        rows.append((f"SciPy BDF rtol=1e-2 per neuron (N={args.baseline_neurons})", bio / cpu, bio / wall))
    base = rows[-1][1] if not args.no_baseline else None
    print(f"| {'run':45s} | neuron-s / CPU-s | neuron-s / wall-s | ratio vs SciPy |")
    print(f"|{'-' * 47}|------------------|-------------------|----------------|")
    for name, per_cpu, per_wall in rows:
        ratio = f"{per_cpu / base:14.0f}" if base and per_cpu == per_cpu else f"{'-':>14s}"
        print(f"| {name:45s} | {per_cpu:16.1f} | {per_wall:17.1f} | {ratio} |")


if __name__ == "__main__":
    main()
