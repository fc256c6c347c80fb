"""V_th and DICs at V_th of 10^6 STG conductance vectors on the GPU (CuPy) against NumPy, same process.

Both backends run the same code (:func:`condspace.dics.dics_at_threshold` with ``backend="cupy"`` or
``"numpy"``) on the same conductance vectors: a compensated spiking population and uniform draws from
the literature box. The GPU time includes the copy of the results back to the host (the function
returns a pandas table), so it is synchronous. Prints a markdown table headed by the GPU's name,
with the largest difference between the two backends' V_th; without a GPU it says so and exits 0.

Usage: .venv/bin/python benchmarks/dics_gpu.py [--n 1000000] [--chunks 32768 1048576]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _populations import stg_box_population

from condspace import cells
from condspace.backend import gpu_available, resolve
from condspace.dics import dics_at_threshold
from condspace.populations import spiking_population

STG = cells.get("stg")


def timed(fn):
    """(result, wall seconds) of fn()."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="conductance vectors")
    ap.add_argument("--chunks", type=int, nargs="+", default=[1 << 15, 1 << 20], help="GPU chunk sizes")
    args = ap.parse_args()
    if not gpu_available():
        print("dics_gpu: no CUDA device answers (or CuPy is missing); nothing to measure.")
        return 0
    import cupy  # noqa: PLC0415  (only with a device)

    print(f"# condspace DIC benchmark on {resolve('cupy').device}: V_th + DICs at V_th, STG, float64, "
          f"N = {args.n:,}")
    pops = {"spiking population": spiking_population(STG, args.n, seed=0).g,
            "literature box": stg_box_population(args.n)}
    print("| population | backend | chunk | wall s | µs/neuron | NumPy/this | max |ΔV_th| mV | found |")
    print("|---|---|---|---|---|---|---|---|")
    for label, G in pops.items():
        dics_at_threshold(STG, G[:1000])
        ref, t_np = timed(lambda G=G: dics_at_threshold(STG, G))
        print(f"| {label} | numpy | 32768 | {t_np:.2f} | {t_np / args.n * 1e6:.2f} | 1 | 0 | "
              f"{int(np.isfinite(ref['V_th']).sum())} |", flush=True)
        Gd = cupy.asarray(G)
        for chunk in args.chunks:
            dics_at_threshold(STG, Gd[:1000], backend="cupy", chunk=chunk)  # compile the elementwise kernels
            cupy.cuda.Device().synchronize()
            got, t = timed(lambda Gd=Gd, chunk=chunk: dics_at_threshold(STG, Gd, backend="cupy", chunk=chunk))
            a, b = ref["V_th"].to_numpy(), got["V_th"].to_numpy()
            both = np.isfinite(a) & np.isfinite(b)
            diff = float(np.max(np.abs(a[both] - b[both]))) if both.any() else float("nan")
            mismatch = int((np.isfinite(a) != np.isfinite(b)).sum())
            print(f"| {label} | cupy | {chunk} | {t:.3f} | {t / args.n * 1e6:.3f} | {t_np / t:.1f} | "
                  f"{diff:.1e} | {int(np.isfinite(b).sum())} ({mismatch} differ) |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
