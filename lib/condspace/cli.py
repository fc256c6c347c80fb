"""The ``simulate`` and ``features`` commands, and what every command shares.

The dispatcher and the command registry live in :mod:`condspace.__main__` (its docstring says
how to add a command). This module provides :class:`Command`, :class:`CLIError`, argparse
type helpers and :func:`read_conductances`, and implements two commands:

* ``simulate``: conductance table (CSV) → simulation → recordings CSV with feature columns;
* ``features``: recordings CSV → class and features table.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from condspace import _checks, cells, features, recordings
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


def integer_type(text: str, minimum: int = 1) -> int:
    """argparse type: an integer ≥ ``minimum``; "1e6" is read as 1000000, "1.5" is refused (not truncated)."""
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not (np.isfinite(number) and number.is_integer()):
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        value = int(number)
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ {minimum}, got {text}")
    return value


def seed_type(text: str) -> int:
    """argparse type: a seed, an integer ≥ 0 (argparse names the option in its message)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed must be an integer ≥ 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed must be an integer ≥ 0, got {text}")
    return value


def check_output_path(path: str | Path, *others: str | Path) -> Path:
    """Fail early (before any long computation) when ``path`` cannot be written or is an input.

    Only regular files (or new paths) are written; a symlink is followed to its target (see
    :mod:`condspace._io`). Devices (``/dev/null``), FIFOs, sockets and folders are refused.

    Returns:
        The file to write (a symlink's target).

    Raises:
        CLIError: Any of the above, with the path named.
    """
    try:
        return _checks.output_file(path, *others, name="--out")
    except (ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from None


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
        ValueError: Not UTF-8 text, no header or no rows, rows with more or fewer fields than
            the header (a trailing comma named as such), empty cells or IDs, unknown/missing
            columns, non-numeric, negative or non-finite values, duplicate IDs; the message
            names the file and the line.
    """
    path = Path(path)
    if path.exists() and not path.is_file():  # a folder, or a FIFO/device that would block or never end
        raise ValueError(f"{path} is not a regular file (a folder?); expected a conductance table (CSV)")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header, rows, lines = _conductance_rows(csv.reader(fh, skipinitialspace=True), path)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file (byte {err.object[err.start]:#04x} at offset {err.start}); "
                         "expected a CSV conductance table") from None
    except csv.Error as err:
        raise ValueError(f"{path}: unreadable CSV ({err})") from None
    columns = {name: [row[k] for row in rows] for k, name in enumerate(header)}
    if "ID" in columns:
        ids = columns.pop("ID")
        for k, ident in enumerate(ids):
            if not ident:
                raise ValueError(f"{path}, line {lines[k]}: empty ID; give every neuron an ID (or drop the ID column "
                                 "for IDs 0..N-1)")
        seen: dict[str, int] = {}
        for k, ident in enumerate(ids):
            if ident in seen:
                raise ValueError(f"{path}, line {lines[k]}: duplicate ID {ident!r} (first on line {seen[ident]})")
            seen[ident] = lines[k]
    else:
        ids = [str(i) for i in range(len(rows))]
    table = {name: _numbers(values, name, lines, path) for name, values in columns.items()}
    try:
        g = conductance_matrix(cell, pd.DataFrame(table))
    except ValueError as err:
        # conductance_matrix counts neurons from 0; point at the file's line instead.
        message = _point_at_lines(str(err), lines)
        raise ValueError(f"{path}: {message}") from None
    return ids, g


def _conductance_rows(reader, path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows (stripped cells) and their line numbers; field counts checked."""
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValueError(f"{path}: empty file; expected a header such as ID,g_Na,...,g_leak") from None
    if any(not h for h in header):
        k = header.index("")
        hint = " (a trailing comma?)" if k == len(header) - 1 else ""
        raise ValueError(f"{path}, line 1: column {k + 1} of the header has no name{hint}")
    dup = next((h for h in header if header.count(h) > 1), None)
    if dup is not None:
        raise ValueError(f"{path}, line 1: the column {dup!r} appears twice in the header")
    rows, lines = [], []
    for row in reader:
        if not row or all(not cell.strip() for cell in row) and len(row) <= 1:
            continue  # blank line
        line = reader.line_num
        if len(row) == len(header) + 1 and not row[-1].strip():
            raise ValueError(f"{path}, line {line}: trailing comma: the row has {len(row)} fields for the "
                             f"{len(header)} columns of the header; remove the comma at the end of the line")
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} fields for the {len(header)} columns of the header "
                             f"({','.join(header)})")
        rows.append([cell.strip() for cell in row])
        lines.append(line)
    if not rows:
        raise ValueError(f"{path}: the table has a header but no rows (no neurons)")
    return header, rows, lines


def _numbers(values: list[str], column: str, lines: list[int], path: Path) -> list[float]:
    out = []
    for k, text in enumerate(values):
        if not text:
            raise ValueError(f"{path}, line {lines[k]}: column {column!r} is empty (conductances in mS/cm²)")
        try:
            out.append(float(text))
        except ValueError:
            raise ValueError(f"{path}, line {lines[k]}: column {column!r} holds a non-numeric value {text!r} "
                             "(conductances in mS/cm²)") from None
    return out


def _point_at_lines(message: str, lines: list[int]) -> str:
    """Replace 'neuron <k>' (counted from 0) with the neuron's line in the file."""
    return re.sub(r"neuron (\d+)", lambda m: f"neuron {m[1]} (line {lines[int(m[1])]})", message)


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
    p.add_argument("--seed", type=seed_type, default=None,
                   help="seed of the noise current (an integer ≥ 0), for reproducible noisy runs (default: fresh "
                        "entropy)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="array backend: auto picks cupy when a GPU answers, else numpy; cupy/gpu without a GPU "
                        "is an error (default: %(default)s)")
    p.add_argument("--force", action="store_true",
                   help="run even when the estimated time exceeds a day (runs that cannot fit in memory are "
                        "always refused)")


def _simulate_run(args: argparse.Namespace) -> int:
    cell = cells.get(args.cell)
    out = check_output_path(args.out, args.conductances)
    ids, g = read_conductances(args.conductances, cell)
    t_max = cell.protocol["t_max"] if args.t_max is None else args.t_max
    transient = cell.protocol["transient"] if args.transient is None else args.transient
    dt = cell.protocol["dt"] if args.dt is None else args.dt
    try:
        result = simulate(cell, g, t_max=t_max, dt=dt, transient=transient, current=args.current,
                          noise_std=args.noise_std, seed=args.seed, backend=args.backend, force=args.force)
    except _checks.ResourceError as err:
        raise CLIError(str(err).replace("t_max=", "--t-max ").replace("force=True, ", "")) from None
    except RuntimeError as err:  # cupy requested without a GPU
        raise CLIError(str(err)) from None
    table = features.from_simulation(result)
    recordings.save_csv(out, result.spike_times, ids=ids, features=table, ok=np.asarray(result.ok, dtype=bool))
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
        table = features.extract(trains, duration, ok=trains.ok)
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
           "integer_type", "positive_float", "read_conductances", "seed_type"]
