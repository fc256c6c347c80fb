"""The one input layer: every public function and command checks its arguments here.

One validator per kind of input, each raising :class:`ValueError` (or a subclass) whose message
names the argument, the value and the fix:

* numbers, counts, durations and seeds: :func:`number`, :func:`count`, :func:`seed` (no bools,
  no text, no silent truncation of 1.5 to 1);
* conductances: :func:`conductances` (arrays, mappings, lists of mappings, DataFrames);
* spike trains: :func:`spike_times`;
* voltages: :func:`voltage` (inside the physical range of the integrator);
* sizes and durations of work: :func:`check_resources` compares an estimate of the memory and
  time a request needs with what the machine has, *before* anything is allocated, and refuses
  what cannot fit (``force=True``, or ``--force`` on the command line, overrides the time limit;
  memory that does not exist cannot be forced);
* output paths: :func:`output_file` and :func:`output_folder` (regular files only, symlinks
  followed: see :mod:`condspace._io`; nothing is created before the inputs are validated).
"""

from __future__ import annotations

import contextlib
import numbers
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from condspace._io import output_target

#: Refuse work estimated to take longer than this (s) unless forced: a day, at an optimistic speed.
MAX_SECONDS = 24 * 3600.0
#: Refuse work whose estimated memory exceeds this fraction of the memory available now.
MEMORY_FRACTION = 0.8
#: Optimistic simulation speed used by :func:`simulation_cost`: per time step and per neuron-step.
#: (Measured on one CPU core with the NumPy engine: ~450 µs per step and ~0.3 µs per neuron-step;
#: the constants are 90× and 150× faster so that only requests that are hopeless anyway are refused.)
SIM_SECONDS_PER_STEP = 5e-6
SIM_SECONDS_PER_NEURON_STEP = 2e-9
V_RANGE = (-200.0, 150.0)  # mV: the integrator's physical range (condspace._engine.V_BOUNDS)


class ResourceError(ValueError):
    """A request needs more memory or time than the machine can give; the message has the estimate."""


# ----- numbers --------------------------------------------------------------------------------------
def _describe(value: Any) -> str:
    text = repr(value)
    return (text if len(text) <= 60 else text[:57] + "...") + f" ({type(value).__name__})"


def number(value: Any, name: str, *, unit: str = "", minimum: float | None = None, above: float | None = None,
           maximum: float | None = None, fix: str = "") -> float:
    """A finite real number (not a bool, not text) within the given bounds.

    Args:
        value: What the caller passed.
        name: The argument's name, used in messages.
        unit: Unit shown in messages (e.g. ``"ms"``).
        minimum: Smallest allowed value (inclusive).
        above: Exclusive lower bound.
        maximum: Largest allowed value (inclusive).
        fix: Extra advice appended to the message.

    Returns:
        The value as a Python float.

    Raises:
        ValueError: Anything else, named.
    """
    u = f" {unit}" if unit else ""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, str | bytes):
        raise ValueError(f"{name}: expected a number{u}, got the text {value!r}; pass a number "
                         f"(e.g. {name}=200, not {name}=\"200\")")
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a number{u}, got {_describe(value)}")
    x = float(value)
    if not np.isfinite(x):
        raise ValueError(f"{name}: must be finite, got {x}{u}")
    if minimum is not None and x < minimum:
        raise ValueError(f"{name}: must be ≥ {minimum:g}{u}, got {x:g}{u}" + (f"; {fix}" if fix else ""))
    if above is not None and x <= above:
        raise ValueError(f"{name}: must be > {above:g}{u}, got {x:g}{u}" + (f"; {fix}" if fix else ""))
    if maximum is not None and x > maximum:
        raise ValueError(f"{name}: must be ≤ {maximum:g}{u}, got {x:g}{u}" + (f"; {fix}" if fix else ""))
    return x


def count(value: Any, name: str, *, minimum: int = 1) -> int:
    """An integer ≥ ``minimum`` (a float such as 1.5 is refused, not truncated; bools are refused).

    Raises:
        ValueError: Not an integer, or too small.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_) and float(value).is_integer():
            value = int(value)  # 1000.0 is an integer written as a float: nothing is lost
        else:
            raise ValueError(f"{name}: expected an integer ≥ {minimum}, got {_describe(value)}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name}: must be an integer ≥ {minimum}, got {value}")
    return value


def seed(value: Any, name: str = "seed") -> int | None:
    """A random seed: ``None`` (fresh entropy) or an integer ≥ 0; 1.5 and True are refused.

    Raises:
        ValueError: Anything else, named.
    """
    if value is None:
        return None
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: a seed must be an integer ≥ 0 (or None for fresh entropy), got "
                         f"{_describe(value)}; seeds are not rounded")
    if int(value) < 0:
        raise ValueError(f"{name}: a seed must be an integer ≥ 0, got {int(value)}")
    return int(value)


_seed = seed  # for functions whose own argument is called ``seed``


def voltage(value: Any, name: str) -> float:
    """A membrane potential (mV) inside the physical range :data:`V_RANGE`.

    Raises:
        ValueError: Not a finite number, or outside the range (gating functions overflow there).
    """
    lo, hi = V_RANGE
    return number(value, name, unit="mV", minimum=lo, maximum=hi,
                  fix="membrane potentials outside this range are not physical and overflow the gating functions")


def number_array(value: Any, name: str) -> np.ndarray:
    """A float64 array from numbers only: bools, text, complex and other objects are refused.

    Raises:
        ValueError: Naming the argument and the first offending entry.
    """
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:  # ragged nested lists and the like
        raise ValueError(f"{name}: not a rectangular array of numbers ({err})") from None
    kind = arr.dtype.kind
    if kind in "iuf":
        return arr.astype(float)
    if kind == "b":
        raise ValueError(f"{name}: got booleans (True/False), expected numbers; convert deliberately if you "
                         "mean 1.0 and 0.0")
    if kind == "O":
        for item in arr.flat:
            if isinstance(item, bool | np.bool_) or not isinstance(item, numbers.Real):
                raise ValueError(f"{name}: expected numbers, found {_describe(item)}")
        return arr.astype(float)
    what = {"U": "text", "S": "bytes", "c": "complex numbers"}.get(kind, f"dtype {arr.dtype}")
    first = arr.flat[0] if arr.size else ""
    raise ValueError(f"{name}: expected numbers, got {what} (first entry {first!r})")


# ----- conductances ---------------------------------------------------------------------------------
def _rows_to_columns(rows: Sequence[Any], name: str) -> dict[str, list]:
    """A list of mappings → columns; every row must have the keys of row 0, no more, no fewer."""
    keys = list(rows[0].keys())
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"{name}: row {i} is a {type(row).__name__}, expected a mapping like row 0")
        extra = [k for k in row if k not in rows[0]]
        if extra:
            raise ValueError(f"{name}: row {i} has the key {extra[0]!r} that row 0 lacks; every row needs the same "
                             f"conductances ({keys})")
        missing = [k for k in keys if k not in row]
        if missing:
            raise ValueError(f"{name}: row {i} lacks the key {missing[0]!r} that row 0 has; every row needs the same "
                             f"conductances ({keys})")
    return {k: [row[k] for row in rows] for k in keys}


def conductances(cell: Any, g: Any, name: str = "g", unknown: Sequence[int] = ()) -> np.ndarray:
    """Conductances as an (N, n_channels) float64 array in ``cell.conductance_names`` order.

    Args:
        cell: The cell type (:class:`condspace.channels.CellType`).
        g: (N, n_channels) or (n_channels,) numbers, a mapping name → value(s) (``g_`` prefix
            optional; ``cell.fixed`` conductances may be omitted), a list of such mappings with
            the same keys in every row, or a pandas DataFrame with those columns.
        name: The argument's name in messages.
        unknown: Column indices still to be solved for (compensation): they may be missing from a
            mapping (then NaN) and hold anything; the others are the *drawn* conductances, checked.

    Raises:
        ValueError: Wrong shape, unknown or missing names (the row named for a list of
            mappings), bools or text, negative, NaN or infinite values, g_leak ≤ 0.
    """
    names = cell.conductance_names
    drawn = [j for j in range(len(names)) if j not in unknown]
    what = "drawn conductance " if unknown else ""
    if hasattr(g, "columns") and hasattr(g, "to_dict"):  # pandas DataFrame
        g = {c: g[c].to_numpy() for c in g.columns}
    if isinstance(g, Sequence) and not isinstance(g, str) and len(g) and isinstance(g[0], Mapping):
        g = _rows_to_columns(g, name)
    if isinstance(g, Mapping):
        cols = {}
        for key, val in g.items():
            key_name = key if str(key).startswith("g_") else f"g_{key}"
            if key_name not in names:
                raise ValueError(f"{name}: unknown conductance {key!r} for cell {cell.name!r}; expected names {names}")
            cols[key_name] = np.atleast_1d(number_array(val, f"{name}[{key!r}]"))
        for fixed, value in cell.fixed.items():
            cols.setdefault(fixed, np.atleast_1d(value))
        missing = [names[j] for j in drawn if names[j] not in cols]
        if missing:
            raise ValueError(f"{name}: missing {what or 'conductance'}s {missing} for cell {cell.name!r}")
        if any(c.ndim != 1 for c in cols.values()):
            raise ValueError(f"{name}: every conductance must be a number or a 1-D array of numbers")
        n = max(len(c) for c in cols.values())
        try:
            arr = np.stack([np.broadcast_to(cols.get(nm, np.nan), (n,)) for nm in names], axis=1)
        except ValueError:
            raise ValueError(f"{name}: the conductance columns have different lengths") from None
    else:
        arr = number_array(g, name)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise ValueError(f"{name}: expected shape (N, {len(names)}) with columns {names} for cell "
                             f"{cell.name!r}, got shape {np.shape(g)}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: no neurons (N = 0)")
    checked = arr[:, drawn]
    bad = ~np.isfinite(checked)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{name}: {what}{names[drawn[c]]} of neuron {r} is {checked[r, c]}; conductances must be "
                         f"finite ({int(bad.sum())} non-finite entries)")
    neg = checked < 0
    if neg.any():
        r, c = np.argwhere(neg)[0]
        raise ValueError(f"{name}: {names[drawn[c]]} of neuron {r} is {checked[r, c]} < 0; maximal conductances must "
                         f"be non-negative ({int(neg.sum())} negative entries)")
    if np.any(arr[:, -1] <= 0):
        r = int(np.argmax(arr[:, -1] <= 0))
        raise ValueError(f"{name}: g_leak of neuron {r} is {arr[r, -1]}; the leak must be > 0 (it sets the rest)")
    return np.ascontiguousarray(arr, dtype=float)


# ----- spike trains ---------------------------------------------------------------------------------
def spike_times(times: np.ndarray, where: str) -> None:
    """Spike times (ms) must be finite, ≥ 0 and strictly increasing; ``where`` prefixes the message.

    Raises:
        ValueError: The first offending entry, named.
    """
    if not np.all(np.isfinite(times)):
        raise ValueError(f"{where}: spike times must be finite, found {times[~np.isfinite(times)][0]}")
    if times.size and times.min() < 0:
        raise ValueError(f"{where}: spike times must be ≥ 0 ms, found {times.min()}")
    steps = np.diff(times)
    if np.any(steps <= 0):
        k = int(np.argmax(steps <= 0))
        raise ValueError(f"{where}: spike times must be strictly increasing, but entry {k + 1} ({times[k]}) is "
                         f"followed by {times[k + 1]}")


# ----- memory and time --------------------------------------------------------------------------------
def available_memory() -> float:
    """Bytes this process may still allocate: the least of free RAM, the address-space limit and
    the cgroup limit (inf where none is known)."""
    limits = [float("inf")]
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    limits.append(float(line.split()[1]) * 1024)
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource  # noqa: PLC0415  (POSIX only)

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits.append(max(0.0, float(soft) - _address_space_in_use()))
    with contextlib.suppress(OSError, ValueError):
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text != "max":
            used = float(Path("/sys/fs/cgroup/memory.current").read_text())
            limits.append(max(0.0, float(text) - used))
    return min(limits)


def _address_space_in_use() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/statm") as fh:
            return float(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    return 0.0


def _bytes(x: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if x >= size:
            return f"{x / size:.3g} {unit}"
    return f"{x:.0f} B"


def _duration(s: float) -> str:
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if s >= size:
            return f"{s / size:.3g} {unit}"
    return f"{s:.3g} s"


def check_resources(what: str, *, nbytes: float = 0.0, seconds: float = 0.0, fix: str,
                    force: bool = False) -> None:
    """Refuse ``what`` before it starts when it needs more memory or time than the machine gives.

    Args:
        what: The request in words, e.g. ``"population of 10^12 neurons"``.
        nbytes: Estimated peak memory (bytes).
        seconds: Estimated run time at an optimistic speed (s).
        fix: How to make the request smaller (named options).
        force: Run even when the time estimate exceeds :data:`MAX_SECONDS`.

    Raises:
        ResourceError: With the estimate and the limit in the message.
    """
    free = available_memory()
    if nbytes > MEMORY_FRACTION * free:
        raise ResourceError(f"{what} needs about {_bytes(nbytes)} of memory, but this machine has "
                            f"{_bytes(free)} available; {fix}")
    if seconds > MAX_SECONDS and not force:
        raise ResourceError(f"{what} would take at least {_duration(seconds)} even at an optimistic speed "
                            f"(limit {_duration(MAX_SECONDS)}); {fix}, or force it (force=True, --force on the "
                            "command line) if you really mean it")


def simulation_cost(n_neurons: int, n_steps: int, n_trace_values: int = 0) -> tuple[float, float]:
    """(bytes, seconds) a simulation needs at least: traces kept, and an optimistic speed."""
    nbytes = 8.0 * n_trace_values + 200.0 * n_neurons
    seconds = n_steps * SIM_SECONDS_PER_STEP + float(n_neurons) * n_steps * SIM_SECONDS_PER_NEURON_STEP
    return nbytes, seconds


# ----- output paths -----------------------------------------------------------------------------------
def output_file(path: str | os.PathLike, *inputs: str | os.PathLike, name: str = "--out") -> Path:
    """Check an output file before any work: a regular file or a new path, not one of the inputs.

    Symlinks are followed (the target is written, atomically; see :mod:`condspace._io`).

    Returns:
        The path to write (the symlink's target for a symlink).

    Raises:
        ValueError: Folder, device, FIFO, socket, symlink loop, or the same file as an input.
        FileNotFoundError: The folder does not exist.
    """
    target = output_target(path, name)
    for other in inputs:
        if os.path.realpath(other) == os.path.realpath(target):
            raise ValueError(f"{name} {path} would overwrite the input {other}; choose another {name}")
    return target


def output_folder(path: str | os.PathLike, name: str = "--out") -> Path:
    """Check an output folder before any work (it is created later, by :func:`creating_folder`).

    Raises:
        ValueError: The path exists and is not a folder.
        FileNotFoundError: Its parent folder does not exist.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{name} {out} exists and is not a folder; give a folder name")
    parent = out.parent if str(out.parent) else Path(".")
    if not out.exists() and not parent.is_dir():
        raise FileNotFoundError(f"{name} {out}: the parent folder {parent} does not exist; create it first")
    return out


@contextlib.contextmanager
def creating_folder(path: Path) -> Iterator[Path]:
    """Create ``path`` if missing; if this call created it and the block fails, remove it again.

    A ``KeyboardInterrupt`` keeps the folder when it holds finished files (each written
    atomically), and removes it when empty: an interrupted run keeps what it completed, a failed
    one leaves nothing behind.
    """
    created = not path.exists()
    path.mkdir(exist_ok=True)
    try:
        yield path
    except KeyboardInterrupt:
        if created and not any(path.iterdir()):
            path.rmdir()
        raise
    except BaseException:
        if created:
            shutil.rmtree(path, ignore_errors=True)
        raise


# ----- simulate() -------------------------------------------------------------------------------------
def noise_strength(noise_std: Any, n: int) -> float | np.ndarray:
    """The ``noise_std`` of :func:`condspace.simulate`: a float, or an (n,) float64 array per neuron.

    Raises:
        ValueError: Not a number or an (n,) array of finite values ≥ 0 µA/cm².
    """
    if np.ndim(noise_std) == 0:
        return number(noise_std, "noise_std", unit="µA/cm²", minimum=0, fix="noise_std is a standard deviation")
    arr = number_array(noise_std, "noise_std")
    if arr.shape != (n,):
        raise ValueError(f"noise_std: a per-neuron noise needs shape ({n},), one value per neuron, got shape "
                         f"{arr.shape}; pass a scalar for the same noise in every neuron")
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"noise_std[{i}] = {arr[i]} is not a finite value ≥ 0 µA/cm²; noise_std is a standard "
                         "deviation")
    return arr


def simulation_arguments(cell: Any, g: Any, *, t_max: Any, dt: Any, transient: Any, noise_std: Any, seed: Any,
                         record: Any, force: bool, max_dt: float) -> tuple:
    """Check the arguments of :func:`condspace.simulate` before anything is allocated.

    ``None`` for t_max, dt or transient means the cell's protocol value.

    Returns:
        (t_max, dt, transient, noise_std, seed, conductances (N, n_channels), n_steps).

    Raises:
        ValueError: A bad argument, named (see :func:`number`, :func:`seed`, :func:`conductances`).
        ResourceError: The run cannot fit in memory, or takes more than a day unless ``force``.
    """
    t_max = number(cell.protocol["t_max"] if t_max is None else t_max, "t_max", unit="ms", above=0)
    dt = number(cell.protocol.get("dt", 0.05) if dt is None else dt, "dt", unit="ms")
    if dt <= 0:
        raise ValueError(f"dt must be > 0 ms, got {dt}")
    if dt > max_dt:
        raise ValueError(f"dt={dt} ms is too large to resolve spikes; use dt ≤ {max_dt} ms (0.05 is standard)")
    if t_max < dt:
        raise ValueError(f"t_max must be ≥ dt > 0 ms, got t_max={t_max}")
    transient = number(cell.protocol["transient"] if transient is None else transient, "transient", unit="ms",
                       minimum=0)
    if transient >= t_max:
        raise ValueError(f"transient must satisfy 0 ≤ transient < t_max ({t_max} ms), got {transient}")
    seed_value = _seed(seed, "seed")
    gmat = conductances(cell, g)
    noise_std = noise_strength(noise_std, gmat.shape[0])
    n_steps = int(round(t_max / dt))
    n_rec = 0
    if record is not None:
        neurons = record.get("neurons", []) if isinstance(record, Mapping) else record
        n_rec = int(np.size(neurons))
    nbytes, seconds = simulation_cost(gmat.shape[0], n_steps, n_rec * (n_steps + 1))
    check_resources(f"simulating {gmat.shape[0]} neuron(s) for t_max={t_max:g} ms at dt={dt:g} ms "
                    f"({n_steps:.3g} steps)", nbytes=nbytes, seconds=seconds, force=force,
                    fix="shorten t_max, increase dt or simulate fewer neurons")
    return t_max, dt, transient, noise_std, seed_value, gmat, n_steps
