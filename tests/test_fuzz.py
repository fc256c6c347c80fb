"""Property-based fuzzing (Hypothesis) of the input layer: CSV readers and writers, validators,
output paths and the command line on generated bad files.

The number of examples comes from the Hypothesis profile (tests/conftest.py): few under
``make test`` (profile ``quick``), many under ``make fuzz`` (``HYPOTHESIS_PROFILE=fuzz``).
Properties:

* any valid table written by ``recordings.save_csv`` is read back exactly by ``load_csv``
  (IDs, every spike time bit for bit, the invalid flags), at any length;
* arbitrary bytes or CSV-like text given to ``load_csv`` or ``cli.read_conductances`` either
  load into valid data or raise ``ValueError`` (the documented error), nothing else;
* the validators (``_checks.number``, ``count``, ``seed``, ``conductances``) return a value that
  satisfies their contract or raise ``ValueError``;
* an output path of any kind is either refused with ``ValueError``/``FileNotFoundError`` or is a
  regular file (or a new path) that gets written, and nothing that is not a regular file is
  ever replaced;
* ``python -m condspace features``/``dics`` on generated bad files exit 2 with one message and no
  traceback (in a subprocess).
"""

from __future__ import annotations

import math
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import condspace
from condspace import _checks, _io, cells, recordings
from condspace.cli import read_conductances

STG = cells.get("stg")
LIB = str(Path(condspace.__file__).resolve().parents[1])
FUZZ = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
CLI_EXAMPLES = 40 if FUZZ else 3  # each example starts a Python process (~1-2 s)
NO_TMP_CHECK = [HealthCheck.function_scoped_fixture]

# ----- strategies ------------------------------------------------------------------------------------
ids = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=12)
times = st.lists(st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_infinity=False), max_size=40)


@st.composite
def tables(draw):
    """A valid recordings table: unique IDs (compared stripped), sorted unique trains, ok flags."""
    raw = draw(st.lists(ids.map(str.strip).filter(bool), min_size=1, max_size=8, unique=True))
    trains = [np.unique(np.array(draw(times), dtype=float)) for _ in raw]
    ok = np.array(draw(st.lists(st.booleans(), min_size=len(raw), max_size=len(raw))), dtype=bool)
    return raw, trains, ok


CSV_TOKENS = st.sampled_from(['"', "[", "]", ",", " ", "\n", "\r\n", "1", "2.5", "-3", "1e400", "nan", "inf", "x",
                              "invalid", "ID", "spiking_times", "\t", "\x00", "é", "\ufeff", "0x1", "1_0", "--"])
csv_like = st.lists(CSV_TOKENS, max_size=60).map("".join)


def write(tmp: Path, name: str, data: bytes | str) -> Path:
    path = tmp / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    return path


# ----- round trips -----------------------------------------------------------------------------------
@given(tables())
@settings(suppress_health_check=NO_TMP_CHECK)
def test_save_then_load_is_the_identity(tmp_path, table):
    names, trains, ok = table
    path = tmp_path / "R.csv"
    recordings.save_csv(path, trains, ids=names, ok=ok)
    back = recordings.load_csv(path)
    assert list(back) == names
    assert back.ok.tolist() == ok.tolist()
    for name, train, good in zip(names, trains, ok, strict=True):
        expected = train if good else np.empty(0)
        assert back[name].dtype == np.float64 and back[name].tobytes() == expected.tobytes()
    # A second round trip through the Recordings object keeps the flags too.
    recordings.save_csv(tmp_path / "again.csv", back)
    assert path.read_bytes() == (tmp_path / "again.csv").read_bytes()


@given(st.integers(min_value=7000, max_value=60000))
@settings(max_examples=3 if not FUZZ else 20, suppress_health_check=NO_TMP_CHECK)
def test_long_trains_round_trip(tmp_path, n):
    train = np.cumsum(np.random.default_rng(n).uniform(1e-3, 5.0, n))
    recordings.save_csv(tmp_path / "R.csv", [train], ids=["x"])
    assert recordings.load_csv(tmp_path / "R.csv")["x"].tobytes() == train.tobytes()


# ----- readers never raise anything but ValueError -----------------------------------------------------
def _valid_recordings(rec) -> None:
    assert isinstance(rec, recordings.Recordings)
    for key, train in rec.items():
        assert isinstance(key, str) and key == key.strip() and key
        assert train.ndim == 1 and np.all(np.isfinite(train)) and np.all(np.diff(train) > 0)
        assert not train.size or train.min() >= 0


@given(st.binary(max_size=400))
@settings(suppress_health_check=NO_TMP_CHECK)
def test_arbitrary_bytes_load_or_raise_value_error(tmp_path, data):
    path = write(tmp_path, "R.csv", data)
    try:
        rec = recordings.load_csv(path)
    except ValueError as err:
        assert str(path) in str(err)
    else:
        _valid_recordings(rec)


@given(csv_like)
@settings(suppress_health_check=NO_TMP_CHECK)
def test_csv_like_text_loads_or_raises_value_error(tmp_path, body):
    path = write(tmp_path, "R.csv", "ID,spiking_times\n" + body)
    try:
        rec = recordings.load_csv(path)
    except ValueError as err:
        assert str(path) in str(err)
    else:
        _valid_recordings(rec)


conductance_text = st.builds(
    lambda header, rows: header + "\n" + "\n".join(rows),
    st.sampled_from(["ID," + ",".join(STG.conductance_names), ",".join(STG.conductance_names),
                     ",".join(n.removeprefix("g_") for n in STG.conductance_names), "ID,g_Na", "", "ID,,g_Na"]),
    st.lists(st.lists(st.sampled_from(["1", "0.5", "", " ", "-1", "nan", "inf", "x", "True", "1e308", '"2"', "0"]),
                      max_size=10).map(",".join), max_size=4))


@given(st.one_of(st.binary(max_size=300), conductance_text.map(str.encode)))
@settings(suppress_health_check=NO_TMP_CHECK)
def test_conductance_tables_load_or_raise_value_error(tmp_path, data):
    path = write(tmp_path, "G.csv", data)
    try:
        names, g = read_conductances(path, STG)
    except ValueError as err:
        assert str(path) in str(err)
    else:
        assert len(names) == g.shape[0] >= 1 and g.shape[1] == STG.n_channels
        assert np.all(np.isfinite(g)) and np.all(g >= 0) and np.all(g[:, -1] > 0)
        assert all(names) and len(set(names)) == len(names)


# ----- validators -----------------------------------------------------------------------------------------
anything = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
                     st.binary(max_size=3), st.lists(st.integers(), max_size=2), st.complex_numbers(),
                     st.just(np.float32(1.5)), st.just(np.int64(3)), st.just(np.bool_(True)))


@given(anything, st.one_of(st.none(), st.floats(-10, 10)))
def test_number_returns_a_finite_float_within_bounds_or_raises(value, minimum):
    try:
        x = _checks.number(value, "arg", minimum=minimum)
    except ValueError as err:
        assert "arg" in str(err)
    else:
        assert isinstance(x, float) and math.isfinite(x) and (minimum is None or x >= minimum)
        assert not isinstance(value, bool | str | bytes)


@given(anything)
def test_count_and_seed_never_truncate(value):
    for check in (lambda v: _checks.count(v, "n"), lambda v: _checks.seed(v, "seed")):
        try:
            out = check(value)
        except ValueError:
            continue
        if out is not None:
            assert isinstance(out, int) and out == value and not isinstance(value, bool)


conductance_inputs = st.one_of(
    st.lists(st.lists(st.one_of(st.floats(), st.booleans(), st.integers(-3, 3)), max_size=12), max_size=3),
    st.dictionaries(st.sampled_from([*STG.conductance_names, "Na", "leak", "bogus"]),
                    st.one_of(st.floats(), st.lists(st.floats(0, 10), max_size=3), st.text(max_size=2)), max_size=10),
    st.lists(st.dictionaries(st.sampled_from(STG.conductance_names), st.floats(0, 10), max_size=8), max_size=3))


@given(conductance_inputs)
def test_conductances_are_valid_or_a_value_error(g):
    try:
        arr = _checks.conductances(STG, g)
    except ValueError as err:
        assert str(err).startswith("g")
    else:
        assert arr.dtype == np.float64 and arr.shape[1] == STG.n_channels and arr.shape[0] >= 1
        assert np.all(np.isfinite(arr)) and np.all(arr >= 0) and np.all(arr[:, -1] > 0)


# ----- output paths -----------------------------------------------------------------------------------------
KINDS = ("new", "regular", "folder", "fifo", "link-to-regular", "link-to-new", "link-to-folder", "link-to-fifo",
         "link-loop", "missing-folder")


def make(tmp: Path, kind: str) -> Path:
    path = tmp / "out.csv"
    target = tmp / "target"
    if kind == "regular":
        path.write_text("old")
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind.startswith("link-to-"):
        sub = kind.removeprefix("link-to-")
        if sub == "regular":
            target.write_text("old")
        elif sub == "folder":
            target.mkdir()
        elif sub == "fifo":
            os.mkfifo(target)
        path.symlink_to(target)
    elif kind == "link-loop":
        path.symlink_to(tmp / "other")
        (tmp / "other").symlink_to(path)
    elif kind == "missing-folder":
        path = tmp / "nope" / "out.csv"
    return path


@pytest.mark.parametrize("kind", KINDS)
def test_only_regular_files_are_ever_written(tmp_path, kind):
    path = make(tmp_path, kind)
    before = {p.name: os.lstat(p).st_mode for p in tmp_path.iterdir()}
    try:
        written = _io.atomic_write(path, lambda fh: fh.write(b"new"))
    except (ValueError, FileNotFoundError) as err:
        assert kind in ("folder", "fifo", "link-to-folder", "link-to-fifo", "link-loop", "missing-folder")
        assert "out.csv" in str(err)
        assert {p.name: os.lstat(p).st_mode for p in tmp_path.iterdir()} == before  # nothing touched
    else:
        assert kind in ("new", "regular", "link-to-regular", "link-to-new")
        assert stat.S_ISREG(os.lstat(written).st_mode) and written.read_bytes() == b"new"
        if kind.startswith("link"):
            assert path.is_symlink() and written == tmp_path / "target"


# ----- the command line in a subprocess ------------------------------------------------------------------------
def cli(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": LIB, "CONDSPACE_QUIET": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "condspace", *argv], capture_output=True, text=True, env=env,
                          timeout=120)


@given(st.one_of(st.binary(max_size=200), csv_like.map(lambda s: ("ID,spiking_times\n" + s).encode())))
@settings(max_examples=CLI_EXAMPLES, suppress_health_check=NO_TMP_CHECK)
def test_features_command_on_generated_files_never_shows_a_traceback(tmp_path, data):
    path = write(tmp_path, "R.csv", data)
    try:
        recordings.load_csv(path)
    except ValueError:
        pass
    else:
        assume(False)  # only bad files here
    proc = cli("features", "--recordings", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "error:" in proc.stderr


@given(conductance_text)
@settings(max_examples=CLI_EXAMPLES, suppress_health_check=NO_TMP_CHECK)
def test_dics_command_on_generated_tables_never_shows_a_traceback(tmp_path, text):
    path = write(tmp_path, "G.csv", text)
    proc = cli("dics", "--conductances", str(path))
    assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode == 2:
        assert "error:" in proc.stderr
