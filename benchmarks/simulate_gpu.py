"""Throughput of the fused CUDA kernel (backend="cupy") against the NumPy backend, same process.

Neuron-seconds of biological time per wall second for STG populations drawn from the literature
box (dt 0.05 ms, float64), at N = 10,000 and 100,000 on the GPU, and the NumPy backend at
N = 10,000 as the baseline (its default rate tables, and the exact rates the kernel computes), with
the ratio. NumPy runs a shorter stretch of biological time (throughput is per neuron-second; the
per-step cost does not depend on how long one simulates). Prints a markdown table headed by the
GPU's name; without a GPU it says so and exits 0 (so that ``make bench`` runs everywhere).

Usage: .venv/bin/python benchmarks/simulate_gpu.py [--t-bio 2000] [--sizes 10000 100000]
       [--numpy-t-bio 100] [--numpy-n 10000]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

from _populations import stg_box_population

from condspace import resolve, simulate
from condspace.backend import gpu_available


def wall(fn) -> float:
    """Wall seconds of fn() (the GPU results are copied to the host inside, so this is synchronous)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--t-bio", type=float, default=2000.0, help="biological time of each GPU run (ms)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="GPU population sizes")
    ap.add_argument("--numpy-t-bio", type=float, default=100.0, help="biological time of the NumPy runs (ms)")
    ap.add_argument("--numpy-n", type=int, default=10_000, help="NumPy population size")
    args = ap.parse_args()
    if not gpu_available():
        print("simulate_gpu: no CUDA device answers (or CuPy is missing); nothing to measure.")
        return 0
    gpu = resolve("cupy")
    dt = 0.05
    print(f"# condspace GPU benchmark: {gpu.device}, STG, dt={dt} ms, float64, "
          f"host {platform.processor() or platform.machine()}")
    simulate("stg", stg_box_population(64), t_max=20.0, transient=0.0, dt=dt, backend=gpu)  # compile, warm up
    rows = []
    for n in args.sizes:
        g = stg_box_population(n)
        secs = wall(lambda g=g: simulate("stg", g, t_max=args.t_bio, transient=0.0, dt=dt, backend=gpu,
                                         progress=False))
        rows.append(("cupy fused kernel (exact rates)", n, args.t_bio, secs))
    g = stg_box_population(args.numpy_n)
    for method in ("table", "exact"):
        secs = wall(lambda m=method: simulate("stg", g, t_max=args.numpy_t_bio, transient=0.0, dt=dt,
                                              backend="numpy", engine="numpy", method=m, progress=False))
        rows.append((f"numpy, method={method}", args.numpy_n, args.numpy_t_bio, secs))
    base = {r[0]: r[1] * r[2] / 1000.0 / r[3] for r in rows if r[0].startswith("numpy")}
    print(f"| {'run':32s} | {'N':>7s} | t_bio (ms) | wall (s) | neuron-s / wall-s | × numpy table | × numpy exact |")
    print(f"|{'-' * 34}|---------|------------|----------|-------------------|---------------|---------------|")
    for name, n, t_bio, secs in rows:
        rate = n * t_bio / 1000.0 / secs
        print(f"| {name:32s} | {n:7d} | {t_bio:10.0f} | {secs:8.2f} | {rate:17.1f} | "
              f"{rate / base['numpy, method=table']:13.1f} | {rate / base['numpy, method=exact']:13.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
