"""Spike-time recordings on disk: the ``ID,spiking_times`` CSV format.

One row per neuron; the spike times (ms) are a quoted, bracketed, comma-separated list::

    ID,spiking_times
    1,"[3057.05, 3157.1, 3257.15]"
    2,"[]"

An empty list is a silent recording. Files written by :func:`save_csv` may carry extra columns
after ``spiking_times`` (e.g. the features of :func:`condspace.features.extract`);
:func:`load_csv` accepts and ignores them.

**Decision (invalid recordings).** A spike train flagged invalid (a simulation whose state blew
up: ``SimulationResult.ok`` False) is written with the marker ``invalid`` in place of the times
list::

    3,invalid

:func:`load_csv` reads it back as an empty train listed in ``Recordings.invalid`` (and
``Recordings.ok``), so the flag survives the round trip; a reader that does not know the marker
fails loudly rather than taking the neuron for a silent one. Files without the marker load as
before.

**Decision (any length).** Rows of any length round-trip: :func:`load_csv` lifts the ``csv``
module's 128 kB field limit while it reads (a train of 7,000 spikes is a 130 kB field).

**Decision (IDs).** IDs are kept as strings exactly as written in the file (surrounding
whitespace stripped): ``"007"`` and ``"7"`` are different recordings and nothing is lost on a
round trip. :func:`save_csv` accepts any IDs (ints included) and writes ``str(id)``.

>>> import numpy as np, tempfile, os
>>> from condspace import recordings
>>> path = os.path.join(tempfile.mkdtemp(), "spikes.csv")
>>> recordings.save_csv(path, [np.array([3057.05, 3157.1]), np.array([])], ids=[1, 2])
>>> recordings.load_csv(path)
{'1': array([3057.05, 3157.1 ]), '2': array([], dtype=float64)}
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from condspace import _checks
from condspace._io import atomic_write

HEADER = ("ID", "spiking_times")
INVALID = "invalid"  #: marker written instead of the times list of a train flagged invalid
FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)  # largest field the csv module may accept on every platform


class Recordings(dict):
    """What :func:`load_csv` returns: a dict ID → spike times (ms) that remembers invalid trains.

    Attributes:
        invalid: IDs whose train was written with the ``invalid`` marker (empty arrays here).
    """

    def __init__(self, *args: Any, invalid: Any = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invalid: set[str] = set(invalid)

    @property
    def ok(self) -> np.ndarray:
        """(N,) bool in key order: False for the trains flagged invalid (for ``features.extract(ok=...)``)."""
        return np.array([k not in self.invalid for k in self], dtype=bool)


@contextlib.contextmanager
def _large_fields():
    """Let the csv module read fields of any length, then restore its limit (a process-wide setting)."""
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, FIELD_LIMIT))
    try:
        yield
    finally:
        csv.field_size_limit(old)


# ----- atomic writing ------------------------------------------------------------------------------
def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` via a temporary file in the same folder and ``os.replace``.

    A reader never sees a half-written file, and an interrupted write leaves the old file intact.

    Raises:
        FileNotFoundError: The destination folder does not exist.
    """
    atomic_write(path, lambda fh: fh.write(text), mode="w")


# ----- reading -----------------------------------------------------------------------------------
def _parse_times(field: str, where: str) -> np.ndarray:
    """Parse ``"[t1, t2, ...]"`` into a validated float array; ``where`` prefixes error messages."""
    text = field.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError(f"{where}: spiking_times must be a bracketed list like \"[3057.05, 3157.1]\", "
                         f"got {_short(text)!r}")
    inner = text[1:-1].strip()
    if not inner:
        return np.empty(0)
    tokens = inner.split(",")
    try:
        times = np.array([float(tok) for tok in tokens], dtype=float)
    except ValueError:
        bad = next(tok for tok in tokens if not _is_float(tok))
        raise ValueError(f"{where}: spiking_times holds a non-numeric entry {_short(bad.strip())!r}") from None
    _check_times(times, where)
    return times


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[:n] + "..."


def _check_times(times: np.ndarray, where: str) -> None:
    """Spike times must be finite, ≥ 0 ms and strictly increasing (:func:`condspace._checks.spike_times`)."""
    _checks.spike_times(times, where)


def load_csv(path: str | os.PathLike) -> Recordings:
    """Read a spike-time recording file.

    Args:
        path: CSV file with header ``ID,spiking_times`` (further columns are allowed and ignored).

    Returns:
        :class:`Recordings`: a dict ID (str, as in the file) → 1-D float array of spike times
        (ms), in file order; trains written with the ``invalid`` marker are empty arrays whose
        IDs are in ``.invalid``.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not UTF-8 text (e.g. a binary file), wrong header, a row with a missing or
            extra column, an empty or duplicate ID, a times field that is not a bracketed list
            of numbers, or times that are negative, non-finite or not strictly increasing. The
            message names the file and the line (the header is line 1).
    """
    path = Path(path)
    if path.exists() and not path.is_file():  # a folder, or a FIFO/device that would block or never end
        raise ValueError(f"{path} is not a regular file; expected a recordings CSV file")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh, _large_fields():
            return _read_rows(csv.reader(fh, skipinitialspace=True), path)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file (byte {err.object[err.start]:#04x} at offset {err.start} "
                         "cannot be decoded); expected a CSV with the header ID,spiking_times") from None


def _read_rows(reader: Any, path: Path) -> Recordings:
    out = Recordings()
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValueError(f"{path}: empty file; expected the header {','.join(HEADER)}") from None
    except csv.Error as err:
        raise ValueError(f"{path}, line 1: unreadable CSV header ({err})") from None
    if tuple(header[:2]) != HEADER:
        raise ValueError(f"{path}, line 1: header must start with {','.join(HEADER)}, got {_short(','.join(header))}")
    width = len(header)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise ValueError(f"{path}, line {reader.line_num}: unreadable CSV ({err})") from None
        where = f"{path}, line {reader.line_num}"
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != width:
            what = "missing" if len(row) < width else "extra"
            raise ValueError(f"{where}: {what} column(s): expected {width} fields ({','.join(header)}), "
                             f"got {len(row)} (is the times list quoted?)")
        ident = row[0].strip()
        if not ident:
            raise ValueError(f"{where}: empty ID")
        if ident in out:
            raise ValueError(f"{where}: duplicate ID {_short(ident)!r}")
        if row[1].strip() == INVALID:
            out[ident] = np.empty(0)
            out.invalid.add(ident)
        else:
            out[ident] = _parse_times(row[1], where)
    return out


# ----- writing ----------------------------------------------------------------------------------
def _format_value(value: Any) -> str:
    """One feature cell: floats exactly (shortest round-trip repr), NaN/None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, np.integer | np.bool_):
        return str(value.item())
    return str(value)


def _csv_field(text: str) -> str:
    """Quote a CSV field only when it needs it (RFC 4180: commas, quotes, line breaks, edge spaces)."""
    if any(ch in text for ch in ',"\n\r') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def _feature_columns(features: Any, n: int) -> dict[str, list]:
    if features is None:
        return {}
    if hasattr(features, "columns") and hasattr(features, "iloc"):  # pandas DataFrame: positional rows
        dup = features.columns[features.columns.duplicated()]
        if len(dup):
            raise ValueError(f"features: duplicate column names {list(dup)}")
        cols = {str(c): features[c].tolist() for c in features.columns}
    elif isinstance(features, Mapping):
        cols = {str(k): np.atleast_1d(np.asarray(v, dtype=object)).tolist() for k, v in features.items()}
    else:
        raise ValueError(f"features: expected a pandas DataFrame or a mapping column → values, "
                         f"got {type(features).__name__}")
    for name, values in cols.items():
        if name in HEADER:
            raise ValueError(f"features: column {name!r} clashes with the recording columns {HEADER}; rename it")
        if len(values) != n:
            raise ValueError(f"features: column {name!r} has {len(values)} rows for {n} spike trains")
    return cols


def save_csv(
    path: str | os.PathLike,
    spike_times: Sequence[Any] | Mapping[Any, Any],
    ids: Sequence[Any] | None = None,
    features: Any = None,
    *,
    decimals: int | None = None,
    ok: Any = None,
) -> None:
    """Write spike trains (and optional feature columns) in the recordings format, atomically.

    Args:
        path: Destination CSV file (its folder must exist).
        spike_times: A list of N 1-D arrays of spike times (ms), or a mapping ID → array.
        ids: N IDs for a list (any type; written as ``str(id)``); default 0..N-1. Not allowed
            together with a mapping, whose keys are the IDs.
        features: Optional DataFrame (rows matched by position) or mapping column → N values,
            appended as columns after ``spiking_times``; NaN is written as an empty cell.
        decimals: Round spike times to this many decimals (default: exact, shortest repr).
        ok: Optional (N,) bool (e.g. ``SimulationResult.ok``): trains where it is False are
            written with the ``invalid`` marker (their times are not written). Default: all
            valid, or the ``.invalid`` IDs of a :class:`Recordings`.

    Raises:
        ValueError: Duplicate or empty IDs, IDs with a NUL character or that cannot be encoded
            as UTF-8, ids of the wrong length, trains that are not 1-D, finite, ≥ 0 and strictly
            increasing (what :func:`load_csv` would reject), ``ok`` of the wrong shape, or bad
            feature columns.
        FileNotFoundError: The destination folder does not exist.
    """
    if ok is None and isinstance(spike_times, Recordings):
        ok = spike_times.ok
    if isinstance(spike_times, Mapping):
        if ids is not None:
            raise ValueError("ids: give ids only with a list of trains; a mapping's keys are already the IDs")
        ids, trains = list(spike_times.keys()), list(spike_times.values())
    else:
        trains = list(spike_times)
        ids = list(range(len(trains))) if ids is None else list(ids)
    if len(ids) != len(trains):
        raise ValueError(f"ids: got {len(ids)} IDs for {len(trains)} spike trains")
    str_ids = [str(i).strip() for i in ids]
    if any(not s for s in str_ids):
        raise ValueError("ids: empty ID")
    for s_id in str_ids:
        if "\x00" in s_id or not _encodable(s_id):
            raise ValueError(f"ids: the ID {_short(s_id)!r} holds a NUL character or text that UTF-8 cannot "
                             "encode; it could not be read back")
    valid = np.ones(len(trains), dtype=bool) if ok is None else _ok_flags(ok, len(trains))
    if len(set(str_ids)) != len(str_ids):
        dup = next(s for s in str_ids if str_ids.count(s) > 1)
        raise ValueError(f"ids: duplicate ID {dup!r} (IDs are compared as strings)")
    cols = _feature_columns(features, len(trains))

    lines = [",".join(_csv_field(h) for h in (*HEADER, *cols))]
    for k, (ident, train) in enumerate(zip(str_ids, trains, strict=True)):
        extra = [_csv_field(_format_value(v[k])) for v in cols.values()]
        if not valid[k]:
            lines.append(",".join([_csv_field(ident), INVALID, *extra]))
            continue
        times = _checks.number_array(train, f"spike_times: train {ident!r}")
        if times.ndim != 1:
            raise ValueError(f"spike_times: train {ident!r} has shape {times.shape}; expected a 1-D array (ms)")
        if decimals is not None:
            times = np.round(times, decimals)
        _check_times(times, f"spike_times: train {ident!r}")
        # The times list is always quoted (it holds commas), "[]" and one-spike lists included.
        field = '"[' + ", ".join(map(repr, times.tolist())) + ']"'
        lines.append(",".join([_csv_field(ident), field, *extra]))
    text = "\n".join(lines) + "\n"
    write_text_atomic(path, text)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _ok_flags(ok: Any, n: int) -> np.ndarray:
    arr = np.asarray(ok)
    if arr.shape != (n,) or arr.dtype.kind != "b":
        raise ValueError(f"ok: expected a boolean array of shape ({n},) (one flag per train), "
                         f"got dtype {arr.dtype} and shape {arr.shape}")
    return arr


def read_annotated_csv(path: str | os.PathLike) -> tuple[Any, dict[str, str]]:
    """A benchmark's result table and its ``# key: value`` header lines (date, command, budget).

    The files of ``benchmarks/inference_ablation.py`` and ``benchmarks/robustness.py`` open with such
    lines, then a plain CSV table; the chapters that show those results read them with this.

    Returns:
        (pandas DataFrame, {key: value}); (None, {}) when the file does not exist.
    """
    import pandas as pd  # noqa: PLC0415  (only the chapters need it)

    try:
        with open(path, encoding="utf-8") as f:
            head = [line[2:].strip() for line in f if line.startswith("# ")]
    except FileNotFoundError:
        return None, {}
    return pd.read_csv(path, comment="#"), dict(line.split(": ", 1) for line in head if ": " in line)


__all__ = ["HEADER", "INVALID", "Recordings", "load_csv", "read_annotated_csv", "save_csv", "write_text_atomic"]
