"""The ``dics`` and ``population`` commands of ``python -m condspace``.

* ``dics``: conductance table (CSV) → threshold voltage V_th and the dynamic input conductances
  (g_f, g_s, g_u) there (:func:`condspace.dics.dics_at_threshold`), or at a voltage of your choice;
* ``population``: DIC target (g_s, g_u) → a degenerate population by compensation
  (:func:`condspace.populations.spiking_population`), written as a conductance table that the
  ``simulate`` and ``dics`` commands read back.

Both are registered in :data:`condspace.__main__.COMMANDS`.
"""

from __future__ import annotations

import argparse
import io
import sys

import numpy as np
import pandas as pd

from condspace import _checks, cells, dics, populations, recordings
from condspace.cli import CLIError, Command, check_output_path, finite_float, integer_type, read_conductances, seed_type

MAX_LISTED_IDS = 10  # IDs named in a warning before it says "and k more"
POPULATION_BYTES_PER_NEURON = 500.0  # peak memory of spiking_population (measured with tracemalloc: ~450 B)


def voltage_type(text: str) -> float:
    """argparse type: a membrane potential in mV inside the physical range (:func:`condspace._checks.voltage`)."""
    try:
        return _checks.voltage(finite_float(text), "voltage")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("voltage: ")) from None


def _cell_argument(p: argparse.ArgumentParser) -> None:
    names = ", ".join(cells.available())
    p.add_argument("--cell", default="stg", help=f"cell type, one of: {names} (default: %(default)s)")


def _list_ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_LISTED_IDS])
    more = len(ids) - MAX_LISTED_IDS
    return shown + (f" and {more} more" if more > 0 else "")


def _table_text(table: pd.DataFrame) -> str:
    buf = io.StringIO()
    table.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


# ----- dics -----------------------------------------------------------------------------------------
DICS_DESCRIPTION = f"""\
Dynamic input conductances (Drion et al. 2015) of one neuron per row of a conductance table:
the threshold voltage V_th (mV), the first voltage above {dics.SCAN_START:g} mV where
g_in = g_f + g_s + g_u turns from positive to non-positive, and the fast, slow and ultraslow
DICs g_f, g_s, g_u there, in multiples of g_leak (g_f includes +1 from the leak).

Some neurons have no threshold (g_in stays positive up to {dics.SCAN_STOP:g} mV): their V_th and
DICs are NaN (an empty cell in the CSV) and their IDs are listed on stderr; this is a property of
the neuron, not an error. With --at V the DICs are evaluated at that voltage instead (column V).

Conductance table: CSV, one row per neuron, columns g_Na, g_Kd, ..., g_leak (mS/cm², the
"g_" prefix is optional), and optionally an ID column copied to the output (default IDs 0..N-1).

examples:
  python -m condspace dics --cell stg --conductances G.csv
  python -m condspace dics --cell stg --conductances G.csv --out dics.csv
  python -m condspace dics --cell stg --conductances G.csv --at -51
"""


def _dics_arguments(p: argparse.ArgumentParser) -> None:
    _cell_argument(p)
    p.add_argument("--conductances", required=True, metavar="G.csv",
                   help="CSV of maximal conductances (mS/cm²), one row per neuron (see above)")
    p.add_argument("--out", default=None, metavar="DICS.csv",
                   help="output CSV ID,V_th,g_f,g_s,g_u (written atomically); default: print it to stdout")
    p.add_argument("--at", type=voltage_type, default=None, metavar="MV",
                   help="evaluate the DICs at this voltage (mV) for every neuron instead of at V_th "
                        "(e.g. the reference voltage V* of the populations: -51 for stg, -55.5 for da); "
                        f"within [{_checks.V_RANGE[0]:g}, {_checks.V_RANGE[1]:g}] mV")


def dic_table(cell: cells.CellType, ids: list[str], g: np.ndarray, at: float | None = None) -> pd.DataFrame:
    """The table the ``dics`` command writes.

    Args:
        cell: Cell type.
        ids: (N,) neuron IDs.
        g: (N, n_channels) maximal conductances (mS/cm²).
        at: Voltage (mV) at which to evaluate the DICs; ``None`` for each neuron's V_th.

    Returns:
        Columns ``ID``, ``V_th`` (mV; or ``V`` when ``at`` is given), ``g_f``, ``g_s``, ``g_u``
        (multiples of g_leak); NaN where a neuron has no threshold.
    """
    if at is None:
        table = dics.dics_at_threshold(cell, g)
    else:
        d = dics.dics(cell, g, at)
        table = pd.DataFrame({"V": np.full(len(ids), float(at)), "g_f": d[:, 0], "g_s": d[:, 1], "g_u": d[:, 2]})
    table.insert(0, "ID", ids)
    return table


def _dics_run(args: argparse.Namespace) -> int:
    cell = cells.get(args.cell)
    out = None if args.out is None else check_output_path(args.out, args.conductances)
    ids, g = read_conductances(args.conductances, cell)
    table = dic_table(cell, ids, g, args.at)
    text = _table_text(table)
    where = "stdout"
    if out is None:
        sys.stdout.write(text)
    else:
        recordings.write_text_atomic(out, text)
        where = str(out)
    no_vth = [i for i, v in zip(ids, table.iloc[:, 1], strict=True) if not np.isfinite(v)]
    if no_vth:
        print(f"warning: {len(no_vth)} of {len(ids)} neuron(s) have no threshold voltage (g_in stays positive "
              f"from {dics.SCAN_START:g} to {dics.SCAN_STOP:g} mV); V_th and DICs are NaN for ID {_list_ids(no_vth)}",
              file=sys.stderr)
    if out is not None:
        at = "at V_th" if args.at is None else f"at V = {args.at:g} mV"
        print(f"DICs of {len(ids)} {cell.name} neuron(s) {at} ({len(ids) - len(no_vth)} with a threshold) -> {where}")
    return 0


DICS = Command(_dics_arguments, _dics_run, DICS_DESCRIPTION)


# ----- population -----------------------------------------------------------------------------------
def _recipes() -> str:
    lines = []
    for name in cells.available():
        r = cells.get(name).population
        if r is None:
            continue
        drawn = ", ".join(k.removeprefix("g_") for k in r.drawn)
        a, b = r.gf_rule
        lines.append(f"  {name}: V* = {r.V_ref:g} mV; drawn {drawn} and leak; solved {', '.join(r.solve_for)};\n"
                     f"    g_f = {a:g}·g_s {'+' if b >= 0 else '-'} {abs(b):g}; default (g_s, g_u) = "
                     f"({r.target[1]:g}, {r.target[2]:g})")
    return "\n".join(lines)


POPULATION_DESCRIPTION = f"""\
A degenerate population built by DIC compensation (Fyon et al. 2024): for every neuron some
conductances and g_leak are drawn at random (cell recipe), then the remaining channels are solved
so that the DICs at the reference voltage V* equal the target (g_f, g_s, g_u), in multiples of
g_leak. g_f defaults to the cell's rule; the default target is the cell's spiking population:
{_recipes()}

Some draws have no solution with non-negative conductances (or a singular system): such
unreachable neurons are dropped, counted by reason on stderr, and their IDs are missing from the
ID column (IDs are the draw index 0..n-1), so the output is a valid conductance table for the
simulate and dics commands. --keep-unreachable keeps every row and adds the columns reachable and
reason instead (for inspection; that file is not a conductance table). Strongly negative g_s
(stg: -6 and below) makes the g_f rule ask for g_f > 0, i.e. for a negative g_Na: no neuron is
reachable there with the solved channels. The bursting side of the plane is reached by
neuromodulation instead (re-solving a channel pair of an existing population,
condspace.populations.modulate), or with --target-gf.

examples:
  python -m condspace population --cell stg --n 1000 --target-gs -4 --target-gu 5 --seed 1 --out G.csv
  python -m condspace simulate --cell stg --conductances G.csv --out spikes.csv
"""


def _population_arguments(p: argparse.ArgumentParser) -> None:
    _cell_argument(p)
    p.add_argument("--n", type=integer_type, required=True, metavar="N", help="number of neurons drawn (≥ 1)")
    p.add_argument("--target-gs", type=finite_float, default=None, metavar="GS",
                   help="slow DIC target g_s (× g_leak) at V*; default: the cell's spiking population")
    p.add_argument("--target-gu", type=finite_float, default=None, metavar="GU",
                   help="ultraslow DIC target g_u (× g_leak) at V*; default: the cell's spiking population")
    p.add_argument("--target-gf", type=finite_float, default=None, metavar="GF",
                   help="fast DIC target g_f (× g_leak) at V*; default: the cell's rule g_f = a·g_s + b")
    p.add_argument("--seed", type=seed_type, default=None,
                   help="seed of the random draws; default: fresh entropy (the seed used is printed, "
                        "to reproduce the population)")
    p.add_argument("--out", required=True, metavar="G.csv",
                   help="output conductance table ID,g_Na,...,g_leak in mS/cm² (written atomically)")
    p.add_argument("--keep-unreachable", action="store_true",
                   help="keep unreachable neurons, with columns reachable and reason (default: drop and count them)")


def _target(cell: cells.CellType, args: argparse.Namespace) -> np.ndarray:
    """(g_f, g_s, g_u) from the options, the cell's default target and its g_f rule."""
    recipe = cell.population
    gs = recipe.target[1] if args.target_gs is None else args.target_gs
    gu = recipe.target[2] if args.target_gu is None else args.target_gu
    if args.target_gf is not None:
        return np.array([args.target_gf, gs, gu])
    return populations.full_target(cell, (gs, gu))


def population_table(result: populations.CompensationResult, keep_unreachable: bool = False) -> pd.DataFrame:
    """The table the ``population`` command writes.

    Args:
        result: A compensation result (all neurons, reachable or not).
        keep_unreachable: Keep every row and add ``reachable``/``reason`` columns; otherwise only
            the reachable rows.

    Returns:
        Columns ``ID`` (draw index, as text), then the conductances (mS/cm²) in the cell's order.
    """
    cell = cells.get(result.cell)
    table = pd.DataFrame(result.g, columns=list(cell.conductance_names))
    table.insert(0, "ID", [str(i) for i in range(len(table))])
    if keep_unreachable:
        table["reachable"] = result.reachable
        table["reason"] = result.reason
        return table
    return table[result.reachable].reset_index(drop=True)


def _population_run(args: argparse.Namespace) -> int:
    cell = cells.get(args.cell)
    if cell.population is None:
        raise CLIError(f"cell {cell.name!r} declares no population recipe; choose another --cell")
    if args.n < 1:
        raise CLIError(f"--n must be at least 1, got {args.n}")
    out = check_output_path(args.out)
    _checks.check_resources(f"a population of {args.n:,} neurons", nbytes=POPULATION_BYTES_PER_NEURON * args.n,
                            fix="ask for fewer neurons with --n (and concatenate several runs with different seeds)")
    target = _target(cell, args)
    seed = int(np.random.SeedSequence().entropy) if args.seed is None else args.seed
    result = populations.spiking_population(cell, args.n, seed, target=target)
    counts = result.counts()
    n_ok = counts["reachable"]
    where = ", ".join(f"{k} {r}" for r, k in counts.items() if r != "reachable" and k)
    tgt = ", ".join(f"{x:g}" for x in target)
    if n_ok == 0 and not args.keep_unreachable:
        raise CLIError(f"no neuron of {args.n} is reachable at (g_f, g_s, g_u) = ({tgt}) ({where}); nothing "
                       "written. Choose another target, or --keep-unreachable to inspect the solutions")
    recordings.write_text_atomic(out, _table_text(population_table(result, args.keep_unreachable)))
    if n_ok < args.n:
        fate = "kept with reachable=False" if args.keep_unreachable else "dropped"
        print(f"warning: {args.n - n_ok} of {args.n} neuron(s) unreachable ({where}); {fate}", file=sys.stderr)
    print(f"{cell.name} population at V* = {cell.population.V_ref:g} mV, target (g_f, g_s, g_u) = ({tgt}) × g_leak, "
          f"solved for {', '.join(result.solve_for)}, seed {seed}: {n_ok} of {args.n} reachable -> {out}")
    return 0


POPULATION = Command(_population_arguments, _population_run, POPULATION_DESCRIPTION)

__all__ = ["DICS", "POPULATION", "dic_table", "population_table"]
