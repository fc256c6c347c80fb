"""Every benchmark of the compendium at two commits, in one run, so that a refactor's cost is measured.

Exports both commits with ``git archive`` into a temporary folder and runs each commit's *own*
benchmark scripts with its own library (``PYTHONPATH=<tree>/lib``), from the same virtual
environment, with empty caches (a temporary ``CONDSPACE_CACHE``). Each benchmark runs ``--rounds``
times per commit, round-robin (base, head, then head, base, ...: both commits see the same machine
load), because a single run on a shared 2-core machine varies by ±10 % or more. For each benchmark
and commit, the output of its median round (by wall time) is printed in full; the table at the
end gives the wall time of every round.

The default arguments keep the whole comparison to about 20 minutes on a 2-core machine:
``simulate`` at 250 ms of biology for N = 1,000 and 10,000 (without the SciPy baseline),
``dics`` at 10^6 conductance vectors, ``reachability`` at its defaults and ``inference`` at a
budget of 2,000 simulations and 30 epochs. A script that a commit does not have, or an option it
does not know, is reported, not guessed.

Usage: .venv/bin/python benchmarks/side_by_side.py --base REV [--head REV] [--rounds 3]
           [--only simulate dics ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BENCHMARKS: dict[str, list[str]] = {
    "simulate": ["--t-bio", "250", "--sizes", "1000", "10000"],
    "dics": ["--n-threshold", "1000000"],
    "reachability": [],
    "inference": ["--budget", "2000", "--max-epochs", "30"],
}
"""Benchmark script (benchmarks/<name>.py) → its arguments, the same at both commits."""

EXTRA: dict[tuple[str, str], list[str]] = {("simulate", "--no-baseline"): ["--no-baseline"],
                                           ("inference", "--noise"): ["--noise", "0"]}
"""Options added only where a commit's script knows them: the old simulate.py ran a slow SciPy
baseline unless told not to (the new one has none); the new inference.py infers the noise strength
too unless told ``--noise 0`` (a 9-parameter posterior samples slower than the old 8-parameter
one, which is a change of the science, not of the code's speed)."""


def export(rev: str, dest: Path) -> str:
    """Write the tree of ``rev`` into ``dest``; return its short hash."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    data = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return sha


def arguments(tree: Path, name: str) -> list[str] | None:
    """The arguments for this commit's script, or None when it does not have the script."""
    script = tree / "benchmarks" / f"{name}.py"
    if not script.exists():
        return None
    text = script.read_text()
    args = list(BENCHMARKS[name])
    for (bench, option), extra in EXTRA.items():
        if bench == name and f'"{option}"' in text:
            args += extra
    return args


def run(tree: Path, name: str, cache: Path) -> tuple[str, float]:
    """Run one benchmark script of one tree; (output, wall seconds)."""
    args = arguments(tree, name)
    if args is None:
        return f"(no benchmarks/{name}.py at this commit)\n", 0.0
    env = dict(os.environ, PYTHONPATH=str(tree / "lib"), CONDSPACE_CACHE=str(cache), MPLBACKEND="Agg",
               CONDSPACE_QUIET="1")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(tree / "benchmarks" / f"{name}.py"), *args], cwd=tree, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    out = proc.stdout
    if proc.returncode != 0:
        out += f"\n(exit status {proc.returncode})\n" + proc.stderr[-3000:]
    return out, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the earlier commit (e.g. the one before a refactor)")
    ap.add_argument("--head", default="HEAD", help="the later commit (default: HEAD)")
    ap.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    ap.add_argument("--rounds", type=int, default=3, help="runs per benchmark and commit (default: 3)")
    opts = ap.parse_args()
    if opts.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {opts.rounds}")
    with tempfile.TemporaryDirectory(prefix="condspace-side-by-side-") as tmp:
        trees = {}
        for label, rev in (("base", opts.base), ("head", opts.head)):
            tree = Path(tmp) / label
            tree.mkdir()
            trees[label] = (tree, export(rev, tree))
        print(f"# side by side: base {trees['base'][1]} against head {trees['head'][1]}, {opts.rounds} rounds, "
              f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n", flush=True)
        walls: dict[tuple[str, str], list[float]] = {}
        for name in opts.only:
            outputs: dict[str, list[tuple[float, str]]] = {"base": [], "head": []}
            for r in range(opts.rounds):
                for label in (("base", "head") if r % 2 == 0 else ("head", "base")):
                    tree, _ = trees[label]
                    cache = Path(tmp) / f"cache-{label}-{name}-{r}"
                    cache.mkdir()
                    out, wall = run(tree, name, cache)
                    outputs[label].append((wall, out))
            for label in ("base", "head"):
                ranked = sorted(outputs[label], key=lambda item: item[0])
                wall, out = ranked[len(ranked) // 2]
                print(f"## {name} @ {label} {trees[label][1]} (median round, {wall:.1f} s)\n\n{out.rstrip()}\n",
                      flush=True)
                walls[name, label] = [w for w, _ in outputs[label]]
        print("| benchmark | commit | wall s of each round | median |\n|---|---|---|---|")
        for (name, label), ws in walls.items():
            print(f"| {name} | {label} {trees[label][1]} | {', '.join(f'{w:.1f}' for w in ws)} | "
                  f"{sorted(ws)[len(ws) // 2]:.1f} |")


if __name__ == "__main__":
    main()
