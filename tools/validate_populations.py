"""Validation by simulation of DIC populations (SCIENCE.md §4): print a table of class fractions.

For each cell type, a spiking population is built by compensation at the cell's spiking target
(its population recipe: STG (g_f, g_s, g_u) = (−6.2, 4, 5) at −51 mV; DA (−12.95, 0.5, 5) at
−55.5 mV), then modulated to the cell's declared bursting target (``modulation_targets``: STG
(g_s, g_u) = (−4, 5), DA (−2, 5)) by re-solving the recipe's default channel pair for it (STG
{CaS, H}, DA {ERG, CaL}). Both populations are simulated with the cell's protocol (STG 6 s at
dt 0.05 ms, DA 12 s at dt 0.025 ms, first 3 s discarded) and classified (condspace.features).
Fractions are over all n drawn neurons: an unreachable neuron (no non-negative solution) counts
against the expected class.

    .venv/bin/python tools/validate_populations.py --n 1000            # every cell, ~15 min on 2 cores (STG + DA)
    .venv/bin/python tools/validate_populations.py --cells stg --n 200

The test suite checks the STG case with 200 neurons (tests/test_validation.py).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from condspace import cells, features, simulate
from condspace.populations import modulate, modulation_pair, spiking_population


def validate(cell_name: str, n: int, seed: int, backend: str) -> list[dict]:
    """Rows of the table for one cell type: the spiking population and its modulation."""
    cell = cells.get(cell_name)
    target = cell.modulation_target("bursting")
    pair = modulation_pair(cell, *target)  # SCIENCE.md §4 default pair for the target
    base = spiking_population(cell, n, seed)
    mod = modulate(cell, base.g[base.reachable], target, channels=pair)
    G = np.concatenate([base.g[base.reachable], mod.g[mod.reachable]])
    t0 = time.perf_counter()
    res = simulate(cell, G, backend=backend, **cell.protocol)
    wall = time.perf_counter() - t0
    table = features.from_simulation(res)
    k = base.n_reachable
    parts = [("spiking", tuple(base.meta["target"][1:]), "+".join(base.solve_for), "spiking", table.iloc[:k]),
             ("modulated", target, "+".join(pair), "bursting", table.iloc[k:])]
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
    with_recipe = [name for name in cells.available() if cells.get(name).population is not None]
    parser.add_argument("--cells", nargs="+", default=with_recipe, choices=with_recipe,
                        help="cell types (default: every one with a population recipe)")
    parser.add_argument("--n", type=int, default=1000, help="neurons per population (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the population draw (default: %(default)s)")
    parser.add_argument("--backend", default="auto", help="simulation backend (default: %(default)s)")
    args = parser.parse_args()
    rows = [row for name in args.cells for row in validate(name, args.n, args.seed, args.backend)]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
