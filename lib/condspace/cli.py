"""The ``simulate`` and ``features`` commands, and what every command shares.

The dispatcher and the command registry live in :mod:`condspace.__main__` (its docstring says
how to add a command). This module provides :class:`Command`, :class:`CLIError`, argparse
type helpers and :func:`read_conductances`, and implements two commands:

* ``simulate``: conductance table (CSV) → simulation → recordings CSV with feature columns;
* ``features``: recordings CSV → class and features table.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from condspace import cells, features, recordings
from condspace.simulate import conductance_matrix, simulate

BACKENDS = ("auto", "numpy", "cupy", "cpu", "gpu")


class CLIError(Exception):
    """Bad command-line input: printed as ``error: <message>`` with exit status 2."""


@dataclass(frozen=True)
class Command:
    """One subcommand of ``python -m condspace``.

    Attributes:
        add_arguments: Adds the command's options to its ``argparse.ArgumentParser``; every
            option needs a ``help`` string (tests/test_cli.py checks it).
        run: Runs the command from the parsed ``argparse.Namespace``; returns the exit status
            (``None`` counts as 0). Raise ``ValueError``/``OSError``/:class:`CLIError` for bad input.
        description: Paragraph shown by ``COMMAND --help`` (the registry's summary otherwise).
    """

    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]
    description: str = ""


# ----- shared helpers ----------------------------------------------------------------------------
def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number ≥ 0."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, got {text}")
    return value


def finite_float(text: str) -> float:
    """argparse type: any finite number (negative allowed: g_s targets, voltages)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


def check_output_path(path: str | Path, *others: str | Path) -> Path:
    """Fail early (before any long computation) when ``path`` cannot be written or is an input."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CLIError(f"output folder {folder} does not exist (for {path}); create it first")
    if path.is_dir():
        raise CLIError(f"output {path} is a folder; give a file name")
    for other in others:
        if Path(other).resolve() == path.resolve():
            raise CLIError(f"output {path} would overwrite the input {other}; choose another --out")
    return path


def read_conductances(path: str | Path, cell: cells.CellType) -> tuple[list[str], np.ndarray]:
    """Read a conductance table: one row per neuron, one column per conductance.

    Args:
        path: CSV with columns named like ``cell.conductance_names`` (``g_Na``, ..., ``g_leak``;
            the ``g_`` prefix is optional; conductances in ``cell.fixed`` may be omitted) in
            mS/cm², and optionally an ``ID`` column (kept as text; default 0..N-1).
        cell: The cell type whose conductances the columns name.

    Returns:
        The IDs (str) and the (N, n_channels) conductances in ``cell.conductance_names`` order.

    Raises:
        ValueError: Unreadable file, unknown/missing columns, non-numeric, negative or
            non-finite values, duplicate IDs; the message names the file.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"ID": str}, skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV conductance table ({err})") from None
    table.columns = [str(c).strip() for c in table.columns]
    if "ID" in table.columns:
        ids = [str(i).strip() for i in table.pop("ID")]
        dup = pd.Index(ids)[pd.Index(ids).duplicated()]
        if len(dup):
            raise ValueError(f"{path}: duplicate ID {dup[0]!r} in the ID column")
    else:
        ids = [str(i) for i in range(len(table))]
    for col in table.columns:
        if not pd.api.types.is_numeric_dtype(table[col]):
            bad = next(v for v in table[col] if not _is_number(v))
            raise ValueError(f"{path}: column {col!r} holds a non-numeric value {bad!r} (conductances in mS/cm²)")
    try:
        g = conductance_matrix(cell, table)
    except ValueError as err:
        # conductance_matrix counts neurons from 0; point at the file's line instead.
        message = re.sub(r"neuron (\d+)", lambda m: f"neuron {m[1]} (line {int(m[1]) + 2})", str(err))
        raise ValueError(f"{path}: {message}") from None
    return ids, g


def _is_number(value: object) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _count_labels(labels: pd.Series) -> str:
    counts = labels.value_counts()
    return ", ".join(f"{int(counts.get(name, 0))} {name}" for name in features.LABELS)


# ----- simulate -------------------------------------------------------------------------------------
SIMULATE_DESCRIPTION = """\
Simulate one neuron per row of a conductance table with condspace.simulate, then write the
spike times after the transient (ms, from the start of the simulation) in the recordings
format (ID,spiking_times) followed by the class and feature columns of condspace.features
(the analysed window is t_max - transient).

Conductance table: CSV, one row per neuron, columns g_Na, g_Kd, ..., g_leak (mS/cm², the
"g_" prefix is optional), and optionally an ID column copied to the output.

example:
  python -m condspace simulate --cell stg --conductances G.csv --out spikes.csv --backend numpy
"""


def _simulate_arguments(p: argparse.ArgumentParser) -> None:
    names = ", ".join(cells.available())
    p.add_argument("--cell", default="stg", help=f"cell type, one of: {names} (default: %(default)s)")
    p.add_argument("--conductances", required=True, metavar="G.csv",
                   help="CSV of maximal conductances (mS/cm²), one row per neuron (see above)")
    p.add_argument("--out", required=True, metavar="SPIKES.csv",
                   help="output CSV: ID, spiking_times and the feature columns (written atomically)")
    p.add_argument("--t-max", type=positive_float, default=None, metavar="MS",
                   help="simulated time in ms (default: the cell's protocol, 6000 for stg, 12000 for da)")
    p.add_argument("--transient", type=nonnegative_float, default=None, metavar="MS",
                   help="initial time in ms whose spikes are discarded (default: the cell's protocol, 3000)")
    p.add_argument("--dt", type=positive_float, default=None, metavar="MS",
                   help="integration time step in ms (default: the cell's protocol, 0.05 for stg, 0.025 for da)")
    p.add_argument("--current", type=float, default=0.0, metavar="I",
                   help="constant applied current in µA/cm², the same for every neuron (default: %(default)s)")
    p.add_argument("--noise-std", type=nonnegative_float, default=0.0, metavar="SD",
                   help="standard deviation (µA/cm²) of the 1 kHz low-pass filtered Gaussian noise current; "
                        "0 for none (default: %(default)s)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the noise current, for reproducible noisy runs (default: fresh entropy)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="array backend: auto picks cupy when a GPU answers, else numpy; cupy/gpu without a GPU "
                        "is an error (default: %(default)s)")


def _simulate_run(args: argparse.Namespace) -> int:
    cell = cells.get(args.cell)
    out = check_output_path(args.out, args.conductances)
    ids, g = read_conductances(args.conductances, cell)
    t_max = cell.protocol["t_max"] if args.t_max is None else args.t_max
    transient = cell.protocol["transient"] if args.transient is None else args.transient
    dt = cell.protocol["dt"] if args.dt is None else args.dt
    try:
        result = simulate(cell, g, t_max=t_max, dt=dt, transient=transient, current=args.current,
                          noise_std=args.noise_std, seed=args.seed, backend=args.backend)
    except RuntimeError as err:  # cupy requested without a GPU
        raise CLIError(str(err)) from None
    table = features.from_simulation(result)
    recordings.save_csv(out, result.spike_times, ids=ids, features=table)
    meta = result.metadata
    print(f"simulated {len(ids)} {cell.name} neuron(s), {t_max:g} ms (transient {transient:g} ms, dt {dt:g} ms) "
          f"on {meta['backend']} ({meta['device']}) in {meta['wall_s']:.1f} s: {_count_labels(table['label'])} "
          f"-> {out}")
    return 0


SIMULATE = Command(_simulate_arguments, _simulate_run, SIMULATE_DESCRIPTION)


# ----- features -------------------------------------------------------------------------------------
FEATURES_DESCRIPTION = f"""\
Classify every spike train of a recordings file (ID,spiking_times) as silent, spiking or
bursting and compute its features (condspace.features, after Fyon et al. 2024). The output
table has one row per ID: ID, label, then
{textwrap.fill(', '.join(features.FEATURES), 92, initial_indent='  ', subsequent_indent='  ')}.
NaN (an empty cell) marks a feature that does not apply to the train's class.

Only rate_hz depends on --duration, the length of the recording window; it must be at least the
span of every train. The default is the analysed window of the --cell's protocol (t_max - transient:
3000 ms for stg, 6000 ms simulated with the first 3000 discarded; 9000 ms for da).

example:
  python -m condspace features --recordings spikes.csv --duration 3000 --out features.csv
"""


def _features_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recordings", required=True, metavar="SPIKES.csv",
                   help="recordings CSV: header ID,spiking_times, times as a quoted list in ms")
    p.add_argument("--duration", type=positive_float, default=None, metavar="MS",
                   help="length of the recording window in ms, used for rate_hz (default: the analysed window "
                        "t_max - transient of the --cell's protocol)")
    p.add_argument("--cell", default="stg", help="cell type whose protocol gives the default --duration, one of: "
                                                 f"{', '.join(cells.available())} (default: %(default)s)")
    p.add_argument("--out", default=None, metavar="FEATURES.csv",
                   help="output CSV (written atomically); default: print the table to stdout")


def _features_run(args: argparse.Namespace) -> int:
    out = None if args.out is None else check_output_path(args.out, args.recordings)
    trains = recordings.load_csv(args.recordings)
    duration = args.duration
    if duration is None:
        protocol = cells.get(args.cell).protocol
        duration = protocol["t_max"] - protocol["transient"]
    try:
        table = features.extract(trains, duration)
    except ValueError as err:
        raise ValueError(f"{args.recordings}: {err}") from None
    buf = io.StringIO()
    table.to_csv(buf, index_label="ID", lineterminator="\n")
    if out is None:
        sys.stdout.write(buf.getvalue())
    else:
        recordings.write_text_atomic(out, buf.getvalue())
        print(f"{len(table)} recording(s): {_count_labels(table['label'])} -> {out}")
    return 0


FEATURES = Command(_features_arguments, _features_run, FEATURES_DESCRIPTION)

__all__ = ["CLIError", "Command", "FEATURES", "SIMULATE", "check_output_path", "nonnegative_float",
           "positive_float", "read_conductances"]
