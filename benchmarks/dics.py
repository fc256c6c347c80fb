"""Throughput of the DIC engine (threshold, DICs at threshold) and of batched compensation.

Prints one table: wall and CPU seconds (``time.process_time``) of

1. V_th and the DICs at V_th of 10^6 STG conductance vectors (a compensated spiking population,
   and uniform draws from the literature box), vectorised NumPy in one process and in one worker
   process per core (``workers``; wall time only, the workers' CPU time is not this process's);
2. compensation of 10^5 STG neurons solving for Na, CaS and H (CaS carries calcium, so the KCa
   column is iterated: 5 calcium iterations after the first solve);

and the same computations done the straightforward way — a Python loop over neurons, each with
its own g_in scan on the same grid, true bisection to the same 1e-6 mV with one DIC evaluation
per step, and a 3 × 3 ``numpy.linalg.solve`` per neuron and iteration — on a subsample,
extrapolated linearly to the full size (marked "extrapolated"). The machine is shared: the load
average before and after is printed with the table.

Usage: .venv/bin/python benchmarks/dics.py [--n-threshold 1000000] [--n-compensate 100000]
       [--loop-threshold 200] [--loop-compensate 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd
from _populations import stg_box_population

from condspace import cells
from condspace._parallel import available_cores
from condspace.dics import BISECT_TOL, SCAN_START, SCAN_STEP, SCAN_STOP, dics, dics_at_threshold, sensitivity
from condspace.populations import compensate, spiking_population

STG = cells.get("stg")


def measure(fn):
    """(result, CPU seconds, wall seconds) of fn()."""
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def loop_threshold(G: np.ndarray) -> np.ndarray:
    """Per-neuron baseline: scan, bisection and DICs at V_th, one neuron at a time."""
    grid = np.arange(SCAN_START, SCAN_STOP + SCAN_STEP / 2, SCAN_STEP)
    out = np.full((G.shape[0], 4), np.nan)
    for i, g in enumerate(G):
        gin = dics(STG, g, grid[:, None])[:, 0].sum(axis=-1)
        cross = np.nonzero((gin[:-1] > 0) & (gin[1:] <= 0))[0]
        if cross.size == 0:
            continue
        a, b = grid[cross[0]], grid[cross[0] + 1]
        while b - a > BISECT_TOL:
            mid = 0.5 * (a + b)
            if dics(STG, g, mid)[0].sum() > 0:
                a = mid
            else:
                b = mid
        vth = 0.5 * (a + b)
        out[i] = (vth, *dics(STG, g, vth)[0])
    return out


def loop_compensate(G: np.ndarray, target: np.ndarray, unknown: list[int], iterations: int) -> np.ndarray:
    """Per-neuron baseline: S(V*) and a 3 × 3 solve per neuron and calcium iteration."""
    out = G.copy()
    drawn = [j for j in range(G.shape[1]) if j not in unknown]
    a, b = STG.population.calcium_guess["CaS"]
    for i in range(G.shape[0]):
        g = out[i]
        g[unknown] = 0.0
        g[STG.index("CaS")] = a + b * target[1]
        for _ in range(iterations + 1):
            S = sensitivity(STG, -51.0, g)
            g[unknown] = np.linalg.solve(S[:, unknown], target - S[:, drawn] @ g[drawn])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-threshold", type=int, default=1_000_000, help="conductance vectors for V_th + DICs")
    ap.add_argument("--n-compensate", type=int, default=100_000, help="neurons compensated")
    ap.add_argument("--loop-threshold", type=int, default=200, help="subsample of the per-neuron V_th loop")
    ap.add_argument("--loop-compensate", type=int, default=1000, help="subsample of the per-neuron solve loop")
    ap.add_argument("--iterations", type=int, default=5, help="calcium iterations after the first solve")
    args = ap.parse_args()
    load0 = os.getloadavg()
    print(f"# condspace DIC benchmark: NumPy {np.__version__}, float64, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), scan step {SCAN_STEP} mV, bracket {BISECT_TOL} mV")
    rows = []

    n = args.n_threshold
    pops = {"spiking population": spiking_population(STG, n, seed=0).g, "literature box": stg_box_population(n)}
    cores = available_cores()
    for label, G in pops.items():
        dics_at_threshold(STG, G[:1000])  # warm-up
        if cores > 1:
            par, _, wall_par = measure(lambda G=G: dics_at_threshold(STG, G, workers=cores))
        table, cpu, wall = measure(lambda G=G: dics_at_threshold(STG, G, workers=1))
        found = int(np.isfinite(table["V_th"]).sum())
        rows.append((f"V_th + DICs, {label}", n, wall, cpu, f"vectorised, one process ({found} with a threshold)"))
        if cores > 1:
            pd.testing.assert_frame_equal(par, table)  # same answers
            rows.append((f"V_th + DICs, {label}, {cores} workers", n, wall_par, float("nan"),
                         "vectorised, worker processes (CPU s: theirs not counted)"))
        m = args.loop_threshold
        ref, cpu_l, wall_l = measure(lambda G=G, m=m: loop_threshold(G[:m]))
        np.testing.assert_allclose(ref, table.to_numpy()[:m], rtol=1e-6, atol=1e-6)  # same answers
        rows.append((f"  per-neuron loop, {label}", n, wall_l * n / m, cpu_l * n / m,
                     f"extrapolated from {m}"))

    n = args.n_compensate
    pop = spiking_population(STG, n, seed=1).g
    unknown = [STG.index(c) for c in ("Na", "CaS", "H")]
    G = pop.copy()
    G[:, unknown] = np.nan
    target = np.array(STG.population.target)
    res, cpu, wall = measure(lambda: compensate(STG, G, target, -51.0, ("Na", "CaS", "H"),
                                                iterations=args.iterations))
    rows.append((f"compensation Na, CaS, H, {args.iterations} Ca iterations", n, wall, cpu,
                 f"vectorised ({res.n_reachable} reachable)"))
    m = args.loop_compensate
    ref, cpu_l, wall_l = measure(lambda: loop_compensate(G[:m], target, unknown, args.iterations))
    np.testing.assert_allclose(ref[:, unknown], res.g[:m, unknown], rtol=1e-9)
    rows.append(("  per-neuron loop", n, wall_l * n / m, cpu_l * n / m, f"extrapolated from {m}"))

    load1 = os.getloadavg()
    print(f"| {'computation':48s} | {'N':>9s} | {'wall s':>9s} | {'CPU s':>9s} | {'µs/neuron':>9s} | "
          f"{'loop/vec':>8s} | note")
    print(f"|{'-' * 50}|{'-' * 11}|{'-' * 11}|{'-' * 11}|{'-' * 11}|{'-' * 10}|------")
    for i, (name, N, wall, cpu, note) in enumerate(rows):
        base = next(r for r in rows[i - 1::-1] if not r[0].startswith("  ") and "workers" not in r[0]) if i else None
        ratio = f"{wall / base[2]:8.0f}" if name.startswith("  ") else f"{'':8s}"
        print(f"| {name:48s} | {N:9d} | {wall:9.2f} | {cpu:9.2f} | {wall / N * 1e6:9.2f} | {ratio} | {note}")
    print(f"# load average (1, 5, 15 min) before {tuple(round(x, 2) for x in load0)}, "
          f"after {tuple(round(x, 2) for x in load1)} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
