"""Throughput of the CPU engines of ``condspace.simulate``, side by side in one process.

Prints neuron-seconds of biological time per CPU-second (``time.process_time``, all threads of
this process) and per wall second, for STG populations drawn from the literature box (dt 0.05 ms,
float64, ``method="table"``) of N = 1,000 and 10,000 neurons, with

* the NumPy engine (``engine="numpy"``, one process) — the baseline of the ratio column;
* the compiled engine (``engine="numba"``) on 1 thread and on 2 threads;
* Brian2, when it is installed (skipped with a message otherwise);

then the DA cell at its own dt (0.025 ms). Before that, the first compilation of the compiled
engine's kernels (into an empty, temporary disk cache) and the cost of loading them from that
cache in a fresh process are timed.

``--groups 8 32`` adds the compiled engine on one thread with each of these tile widths (neurons
stepped together as the SIMD lanes of one loop: :data:`condspace._numba.GROUP_SIZE`; the default is
:data:`condspace._codegen.NUMBA_LANES`).

Every configuration of a population is timed ``--rounds`` times (default 3) in round-robin order, and
the table gives the medians (the ratio column: median against the NumPy engine's median), so that a
slow spell of a shared machine does not land on one configuration alone.

Usage: .venv/bin/python benchmarks/simulate.py [--t-bio 250] [--sizes 1000 10000] [--da-size 1000] [--groups 8 32]
       [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from _populations import stg_box_population

from condspace import _numba, cells, inference, simulate


def measure(fn) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) of fn()."""
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def compile_costs() -> list[str]:
    """First compilation of each kernel variant into an empty cache, then a fresh process loading it."""
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get("CONDSPACE_CACHE")
        os.environ["CONDSPACE_CACHE"] = tmp
        try:
            for name in ("stg", "da"):
                cell = cells.get(name)
                g = [cell.example(next(iter(cell.examples)))] * 4
                dt = float(cell.protocol.get("dt", 0.05))
                simulate(name, g, t_max=1.0, transient=0.0, dt=dt, engine="numpy")  # rate table built (shared)
                for threads in (1, 2):
                    _, wall = measure(lambda n=name, g=g, dt=dt, w=threads: simulate(
                        n, g, t_max=1.0, transient=0.0, dt=dt, engine="numba", workers=w, progress=False))
                    lines.append(f"first compilation, {name}, {'serial' if threads == 1 else 'threaded'} kernel: "
                                 f"{wall:.1f} s")
            script = ("import time; t = time.perf_counter(); from condspace import simulate; "
                      "simulate('stg', [[100, 100, 1, 5, 10, 20, 0.01, 0.01]], t_max=1.0, transient=0.0, "
                      "engine='numba', workers=1); print(time.perf_counter() - t)")
            out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                                 env={**os.environ, "CONDSPACE_QUIET": "1"}).stdout
            lines.append(f"fresh process, stg kernel from the disk cache (import condspace included): "
                         f"{float(out.split()[-1]):.1f} s")
        finally:
            if old is None:
                os.environ.pop("CONDSPACE_CACHE")
            else:
                os.environ["CONDSPACE_CACHE"] = old
    return lines


def brian2_row(n: int, t_bio: float) -> tuple | str:
    """Brian2 is not part of this benchmark's dependencies; say so (the row is optional)."""
    try:
        import brian2  # noqa: F401
    except ImportError:
        return "Brian2 row skipped: brian2 is not installed (pip install brian2 to compare)"
    return "Brian2 row skipped: brian2 is installed, but no STG model for it ships with this benchmark yet"


def run_config(name: str, g, t_bio: float, dt: float, kw: dict, group: int | None) -> None:
    """One timed simulation; ``group`` (compiled engine only) sets the tile width (neurons per SIMD loop)."""
    default = _numba.GROUP_SIZE
    if group is not None:
        _numba.GROUP_SIZE = group
    try:
        simulate(name, g, t_max=t_bio, transient=0.0, dt=dt, progress=False, **kw)
    finally:
        _numba.GROUP_SIZE = default


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--t-bio", type=float, default=250.0, help="biological time per run (ms)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="STG population sizes")
    ap.add_argument("--da-size", type=int, default=1000, help="DA population size (0: skip DA)")
    ap.add_argument("--no-compile", action="store_true", help="skip timing the first compilation")
    ap.add_argument("--rounds", type=int, default=3,
                    help="round-robin rounds over the configurations; the table gives medians (default 3)")
    ap.add_argument("--groups", type=int, nargs="*", default=[],
                    help="also time the compiled engine on 1 thread with each of these tile widths "
                         "(default of the engine: condspace._codegen.NUMBA_LANES)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    print(f"# condspace CPU engines: float64, method=table, t_bio={args.t_bio} ms, {cores} cores, "
          f"{platform.processor() or platform.machine()}, load average {os.getloadavg()[0]:.1f}; "
          f"medians of {args.rounds} round-robin rounds")
    if not args.no_compile:
        for line in compile_costs():
            print(f"# {line}")
    rows, notes = [], []
    runs = [("stg", n, stg_box_population(n)) for n in args.sizes]
    if args.da_size:
        da = cells.get("da")
        prior = inference.make_prior(da)
        runs.append(("da", args.da_size, inference.conductances(da, prior, prior.sample(args.da_size, seed=0))))
    for name, n, g in runs:
        dt = float(cells.get(name).protocol.get("dt", 0.05))
        configs = [("NumPy engine", {"engine": "numpy", "workers": 1}, None),
                   ("compiled, 1 thread", {"engine": "numba", "workers": 1}, None),
                   ("compiled, 2 threads", {"engine": "numba", "workers": 2}, None)]
        configs += [(f"compiled, 1 thread, tile {k}", {"engine": "numba", "workers": 1}, k) for k in args.groups]
        for _, kw, group in configs:  # rate tables, imports, kernels compiled (or loaded) before timing
            run_config(name, g[:8], 5.0, dt, kw, group)
        bio = n * args.t_bio / 1000.0
        per_cpu = {label: [] for label, _, _ in configs}
        per_wall = {label: [] for label, _, _ in configs}
        for _ in range(args.rounds):  # round-robin: a slow spell of the machine hits every configuration
            for label, kw, group in configs:
                cpu, wall = measure(lambda kw=kw, group=group, g=g, name=name, dt=dt: run_config(
                    name, g, args.t_bio, dt, kw, group))
                per_cpu[label].append(bio / cpu)
                per_wall[label].append(bio / wall)
        base = statistics.median(per_cpu["NumPy engine"])
        for label, _, _ in configs:
            cpu_rate = statistics.median(per_cpu[label])
            rows.append((f"{name} dt={dt} N={n}: {label}", cpu_rate, statistics.median(per_wall[label]),
                         cpu_rate / base))
        if name == "stg":
            out = brian2_row(n, args.t_bio)
            if isinstance(out, str):
                notes.append(out)
            else:
                rows.append(out)
    print(f"| {'run':50s} | neuron-s / CPU-s | neuron-s / wall-s | × NumPy |")
    print(f"|{'-' * 52}|------------------|-------------------|---------|")
    for label, cpu_rate, wall_rate, ratio in rows:
        print(f"| {label:50s} | {cpu_rate:16.0f} | {wall_rate:17.0f} | {ratio:7.1f} |")
    for note in sorted(set(notes)):
        print(f"# {note}")


if __name__ == "__main__":
    main()
