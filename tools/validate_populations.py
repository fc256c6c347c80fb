"""Validation by simulation of DIC populations (SCIENCE.md §4): print a table of class fractions.

For each cell type, a spiking population is built by compensation at the cell's spiking target
(STG (g_f, g_s, g_u) = (−6.2, 4, 5) at −51 mV; DA (−12.95, 0.5, 5) at −55.5 mV), then modulated to
the bursting target (g_s, g_u) = (−4, 5) by re-solving one channel pair (STG {CaS, H}, DA
{ERG, CaL}). Both populations are simulated with the cell's protocol (STG 6 s, DA 12 s, first
3 s discarded) and classified (condspace.features). Fractions are over all n drawn neurons:
an unreachable neuron (no non-negative solution) counts against the expected class.

    .venv/bin/python tools/validate_populations.py --n 1000            # both cells, ~15 min on 2 cores
    .venv/bin/python tools/validate_populations.py --cells stg --n 200

The test suite checks the STG case with 200 neurons (tests/test_validation.py).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from condspace import cells, features, simulate
from condspace.populations import modulate, spiking_population

BURSTING_TARGET = (-4.0, 5.0)  # (g_s, g_u) × g_leak: slow positive feedback (SCIENCE.md §3–4)
PAIRS = {"stg": ("CaS", "H"), "da": ("ERG", "CaL")}  # SCIENCE.md §4 default pairs for g_s < 0


def validate(cell_name: str, n: int, seed: int, backend: str) -> list[dict]:
    """Rows of the table for one cell type: the spiking population and its modulation."""
    cell = cells.get(cell_name)
    base = spiking_population(cell, n, seed)
    mod = modulate(cell, base.g[base.reachable], BURSTING_TARGET, channels=PAIRS[cell_name])
    G = np.concatenate([base.g[base.reachable], mod.g[mod.reachable]])
    t0 = time.perf_counter()
    res = simulate(cell, G, backend=backend, **cell.protocol)
    wall = time.perf_counter() - t0
    table = features.from_simulation(res)
    k = base.n_reachable
    parts = [("spiking", tuple(base.meta["target"][1:]), "+".join(base.solve_for), "spiking", table.iloc[:k]),
             ("modulated", BURSTING_TARGET, "+".join(PAIRS[cell_name]), "bursting", table.iloc[k:])]
    rows = []
    for name, target, channels, expected, sub in parts:
        counts = sub["label"].value_counts()
        row = {"cell": cell_name, "population": name, "(g_s, g_u)": target, "solved": channels, "n": n,
               "reachable": len(sub)}
        for label in features.LABELS:
            row[label] = int(counts.get(label, 0)) / n
        row["expected"] = expected
        row["fraction expected"] = row[expected]
        if expected == "spiking":
            row["median feature"] = f"{sub['spiking_freq_hz'].median():.1f} Hz"
        else:
            row["median feature"] = (f"{sub['spikes_per_burst'].median():.1f} spikes/burst, "
                                     f"period {sub['burst_period_ms'].median():.0f} ms")
        row["sim wall (s)"] = round(wall, 1)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["stg", "da"], choices=sorted(PAIRS), help="cell types")
    parser.add_argument("--n", type=int, default=1000, help="neurons per population (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the population draw (default: %(default)s)")
    parser.add_argument("--backend", default="auto", help="simulation backend (default: %(default)s)")
    args = parser.parse_args()
    rows = [row for name in args.cells for row in validate(name, args.n, args.seed, args.backend)]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
