"""The ``reachability`` command of ``python -m condspace``: which channel pairs can move a population.

A conductance table (one neuron per row) is moved along a path in the (g_s, g_u) plane with every
channel pair of the cell (:func:`condspace.neuromodulation.path_summary`); the reachable fraction
and the cost of each pair are written as ``DIR/summary.csv``, and the reachability maps of all
pairs as ``DIR/reachability_maps.png`` with the path drawn on them. ``--simulate`` checks the end
of the path by simulation (:func:`condspace.neuromodulation.validate`).

Registered in :data:`condspace.__main__.COMMANDS`.
"""

from __future__ import annotations

import argparse
import io
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from condspace import _checks, cells, neuromodulation, recordings
from condspace._io import atomic_write
from condspace.cli import BACKENDS, CLIError, Command, integer_type, positive_float, read_conductances
from condspace.cli_dics import voltage_type

DESCRIPTION = """\
Move a population (a conductance table: compensation population, posterior samples, ...) from
one point of the (g_s, g_u) plane to another by re-solving every pair of channels at the
reference voltage V* (g_f left free; Fyon et al. 2024), and report for each pair the fraction of
neurons that can follow the whole path (non-negative conductances, DICs recomputed at V* within
--eps of every point) and the cost, the median fold change ḡ_new / ḡ_baseline of each modulated
channel at the end of the path over those neurons.

Outputs in DIR (created if missing; files written atomically):
  summary.csv               one row per pair: pair (e.g. CaS+H), reachable_fraction, reason
                            ("singular" when no neuron can solve the pair), n_neurons, n_singular,
                            n_negative, n_missed, median_cost_<channel> and iqr_cost_<channel>
                            (empty for channels outside the pair); with --simulate also
                            n_validated, n_failed and validated_fraction (fraction of the
                            population whose simulated activity at the end of the path is the
                            target class: bursting for g_s < 0, else spiking)
  reachability_maps.png     reachable fraction of every pair over the (g_s, g_u) grid, path drawn
                            (skipped with --no-maps)

example:
  python -m condspace reachability --cell stg --conductances G.csv --from 4,5 --to -4,5 --out DIR
"""

SUMMARY = "summary.csv"
# Cost of the work, measured with tracemalloc and a timer on the STG population (all pairs):
# path_summary ~2 kB and ~2 ms per (point × neuron); a map ~0.1 ms per (grid point × neuron).
# The time constants are 10× faster than measured: only hopeless requests are refused.
PATH_BYTES_PER_POINT_NEURON = 2000.0
PATH_SECONDS_PER_POINT_NEURON = 2e-4
MAP_BYTES_PER_GRID_POINT = 8.0 * 3 * 16  # fraction, reason and cost of up to 16 pairs
MAP_SECONDS_PER_GRID_POINT_NEURON = 1e-5
MAPS = "reachability_maps.png"
# argparse reads "-4,5" as an option flag; let the parser of this command read it as a value.
_NEGATIVE_VALUE = re.compile(r"^-\d+$|^-\d*\.\d+$|^-[\d.eE+-]*,[\d.eE+-]*$")


def _point(text: str) -> tuple[float, float]:
    """argparse type: ``"g_s,g_u"`` → (g_s, g_u), finite numbers (× g_leak)."""
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected g_s,g_u (two numbers), got {text!r}") from None
    if len(values) != 2 or not np.all(np.isfinite(values)):
        raise argparse.ArgumentTypeError(f"expected g_s,g_u (two finite numbers), got {text!r}")
    return values


def _count(text: str) -> int:
    """argparse type: an integer ≥ 2 ("1e3" allowed)."""
    return integer_type(text, minimum=2)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p._negative_number_matcher = _NEGATIVE_VALUE  # "--to -4,5"
    names = ", ".join(cells.available())
    p.add_argument("--cell", default="stg", help=f"cell type, one of: {names} (default: %(default)s)")
    p.add_argument("--conductances", required=True, metavar="G.csv",
                   help="CSV of maximal conductances (mS/cm²), one row per neuron (g_Na, ..., g_leak; optional ID)")
    p.add_argument("--from", dest="start", type=_point, required=True, metavar="GS,GU",
                   help="start of the path (g_s,g_u) in multiples of g_leak, e.g. 4,5 (tonic spiking)")
    p.add_argument("--to", dest="end", type=_point, required=True, metavar="GS,GU",
                   help="end of the path (g_s,g_u), e.g. -4,5 (bursting)")
    p.add_argument("--via", type=_point, action="append", default=[], metavar="GS,GU",
                   help="intermediate vertex of a polyline path (repeat for several, in order)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--n-points", type=_count, default=21, metavar="N",
                   help="points along the path, vertices included (default: %(default)s)")
    p.add_argument("--eps", type=positive_float, default=neuromodulation.DEFAULT_EPS, metavar="EPS",
                   help="tolerance on the recomputed DICs (× g_leak) (default: %(default)s)")
    p.add_argument("--V", type=voltage_type, default=None, metavar="MV",
                   help="reference voltage V* in mV (default: the cell's, stg -51, da -55.5)")
    p.add_argument("--simulate", action="store_true",
                   help="simulate the population before and at the end of the path with every pair and "
                        "count who reaches the target class (adds validated_fraction)")
    p.add_argument("--t-max", type=positive_float, default=None, metavar="MS",
                   help="simulated time for --simulate in ms (default: the cell's protocol)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="simulation backend for --simulate (default: %(default)s)")
    p.add_argument("--no-maps", action="store_true", help="skip the reachability maps (the slowest part)")
    p.add_argument("--grid-step", type=positive_float, default=neuromodulation.GRID_STEP, metavar="STEP",
                   help="spacing of the map grid (× g_leak) (default: %(default)s)")
    p.add_argument("--force", action="store_true",
                   help="run even when the estimated time exceeds a day (what cannot fit in memory is always refused)")


def _output_folder(path: str) -> Path:
    """Check --out before any work; the folder is created only when there is something to write."""
    try:
        return _checks.output_folder(path, "--out")
    except (ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from None


def _grid_size(cell: cells.CellType, step: float) -> tuple[int, int]:
    """Points of the map axes at ``step`` (as :func:`condspace.neuromodulation.grid`, without allocating)."""
    (s0, s1), (u0, u1) = neuromodulation.map_ranges(cell)
    return int(round((s1 - s0) / step)) + 1, int(round((u1 - u0) / step)) + 1


def _check_work(cell: cells.CellType, n_neurons: int, args: argparse.Namespace) -> None:
    """Refuse a path or a map grid that cannot fit in memory or would take more than a day."""
    n = float(n_neurons)
    _checks.check_resources(f"a path of {args.n_points:,} points for {n_neurons} neurons",
                            nbytes=PATH_BYTES_PER_POINT_NEURON * args.n_points * n,
                            seconds=PATH_SECONDS_PER_POINT_NEURON * args.n_points * n, force=args.force,
                            fix="use fewer --n-points (21 resolves a straight path)")
    if not args.no_maps:
        n_gs, n_gu = _grid_size(cell, args.grid_step)
        points = float(n_gs) * n_gu
        _checks.check_resources(f"maps on a {n_gs:,} × {n_gu:,} grid (--grid-step {args.grid_step:g}) for "
                                f"{n_neurons} neurons", nbytes=MAP_BYTES_PER_GRID_POINT * points + 8.0 * (n_gs + n_gu),
                                seconds=MAP_SECONDS_PER_GRID_POINT_NEURON * points * n, force=args.force,
                                fix=f"use a coarser --grid-step (default {neuromodulation.GRID_STEP:g}) or --no-maps")


def _save_figure_atomic(fig, path: Path) -> None:
    atomic_write(path, lambda fh: fig.savefig(fh, format="png"))


def summary_table(cell: cells.CellType, g: np.ndarray, points: np.ndarray, *, eps: float, V: float | None,
                  simulate: bool = False, t_max: float | None = None, backend: str = "auto") -> pd.DataFrame:
    """The rows of ``summary.csv`` (see the command's description)."""
    table, trajectories = neuromodulation.path_summary(cell, g, points, V=V, eps=eps)
    table.insert(3, "n_neurons", g.shape[0])
    if simulate:
        moved = {k: tr for k, tr in trajectories.items() if tr.reachable[-1].any()}
        validated = {}
        if moved:
            val, _ = neuromodulation.validate(cell, moved, points="end", t_max=t_max, backend=backend)
            validated = {r.channels: r for r in val.itertuples() if r.channels != "before"}
        table["n_validated"] = [getattr(validated.get(p), "n_validated", 0) for p in table["pair"]]
        table["n_failed"] = [getattr(validated.get(p), "n_failed", 0) for p in table["pair"]]
        table["validated_fraction"] = table["n_validated"] / g.shape[0]
    return table


def _write_maps(cell: cells.CellType, g: np.ndarray, points: np.ndarray, args: argparse.Namespace, out: Path) -> None:
    from condspace import plotting  # noqa: PLC0415  (matplotlib only when maps are drawn)

    gs, gu = neuromodulation.grid(cell, args.grid_step)
    m = neuromodulation.reachability_map(cell, g, gs=gs, gu=gu, V=args.V, eps=args.eps)
    fig = plotting.plot_reachability_maps(m.gs, m.gu, dict(zip(m.labels, m.fraction, strict=True)),
                                          path=points, reasons=dict(zip(m.labels, m.reason, strict=True)))
    _save_figure_atomic(fig, out / MAPS)
    args._kept = [*getattr(args, "_kept", []), out / MAPS]


def _run(args: argparse.Namespace) -> int:
    cell = cells.get(args.cell)
    out = _output_folder(args.out)
    _, g = read_conductances(args.conductances, cell)
    _check_work(cell, g.shape[0], args)
    points = neuromodulation.path(args.start, args.end, args.n_points, via=args.via)
    t0 = time.perf_counter()
    table = summary_table(cell, g, points, eps=args.eps, V=args.V, simulate=args.simulate, t_max=args.t_max,
                          backend=args.backend)
    buf = io.StringIO()
    table.to_csv(buf, index=False, lineterminator="\n", float_format="%.6g")
    with _checks.creating_folder(out):
        recordings.write_text_atomic(out / SUMMARY, buf.getvalue())
        args._kept = [*getattr(args, "_kept", []), out / SUMMARY]
        if not args.no_maps:
            _write_maps(cell, g, points, args, out)
    best = table.sort_values("reachable_fraction", ascending=False).iloc[0]
    print(f"{len(table)} pairs, {g.shape[0]} {cell.name} neurons, path ({args.start[0]:g}, {args.start[1]:g}) -> "
          f"({args.end[0]:g}, {args.end[1]:g}) in {len(points)} points: "
          f"{int((table['reachable_fraction'] > 0).sum())} pairs move some neurons, best {best['pair']} "
          f"({best['reachable_fraction']:.0%}); {time.perf_counter() - t0:.1f} s -> {out}")
    return 0


CLI = Command(_add_arguments, _run, DESCRIPTION)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``reachability`` subcommand to an argparse ``subparsers`` object (handler in ``_run``).

    ``python -m condspace`` registers :data:`CLI` in its command table instead; this is for
    embedding the command in another argparse program.
    """
    p = subparsers.add_parser("reachability", help="reachable fraction and cost of every channel pair along a path",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    p.set_defaults(_run=_run)
    return p


__all__ = ["CLI", "add_parser", "summary_table"]
