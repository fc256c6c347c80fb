"""Every subcommand over a table of bad inputs: exit status 2, one ``error:`` message that names the
problem, no traceback, nothing written (issue 16).

The table runs in-process through ``condspace.__main__.main`` (fast); a handful of rows also run
through ``python -m condspace`` in a subprocess, where a traceback would really reach the user.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import condspace
from condspace import cells, recordings
from condspace.__main__ import main

STG = cells.get("stg")
LIB = str(Path(condspace.__file__).resolve().parents[1])
ROW = ",".join(str(STG.example("tonic spiking")[k]) for k in STG.conductance_names)
HEADER = "ID," + ",".join(STG.conductance_names)

# name → file content (str or bytes), created in a fresh folder for every case
FILES: dict[str, str | bytes] = {
    "G.csv": f"{HEADER}\na,{ROW}\nb,{ROW}\n",
    "header_only.csv": HEADER + "\n",
    "empty.csv": "",
    "binary.csv": b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 8,
    "trailing_comma.csv": f"{HEADER}\na,{ROW},\n",
    "text_value.csv": f"{HEADER}\na,{ROW.replace(ROW.split(',')[0], 'abc', 1)}\n",
    "negative.csv": f"{HEADER}\na,-{ROW}\n",
    "empty_id.csv": f"{HEADER}\n,{ROW}\n",
    "duplicate_id.csv": f"{HEADER}\na,{ROW}\na,{ROW}\n",
    "unknown_column.csv": f"{HEADER},g_Bogus\na,{ROW},1\n",
    "missing_column.csv": "ID,g_Na\na,1\n",
    "bool_column.csv": f"{HEADER}\na,{ROW.replace(ROW.split(',')[-1], 'True')}\n",
    "R.csv": 'ID,spiking_times\nt,"[3000.0, 3100.0, 3200.0, 3300.0]"\n',
    "R_unquoted.csv": "ID,spiking_times\nt,[3000.0, 3100.0]\n",
    "R_negative.csv": 'ID,spiking_times\nt,"[-1.0, 2.0]"\n',
    "R_header.csv": 'id,times\nt,"[1.0]"\n',
}

G, R = "G.csv", "R.csv"
REACH = ["--from", "4,5", "--to", "-4,5", "--n-points", "3", "--no-maps"]

# (argv with {tmp} for the case folder, words the message must contain)
CASES = [
    # simulate
    (["simulate", "--conductances", "{tmp}/nope.csv", "--out", "{tmp}/S.csv"], ["nope.csv"]),
    (["simulate", "--conductances", "{tmp}", "--out", "{tmp}/S.csv"], ["folder"]),
    (["simulate", "--conductances", "{tmp}/fifo", "--out", "{tmp}/S.csv"], ["not a regular file"]),
    (["simulate", "--conductances", "{tmp}/binary.csv", "--out", "{tmp}/S.csv"], ["binary.csv", "UTF-8"]),
    (["simulate", "--conductances", "{tmp}/header_only.csv", "--out", "{tmp}/S.csv"], ["no rows"]),
    (["simulate", "--conductances", "{tmp}/empty.csv", "--out", "{tmp}/S.csv"], ["empty file"]),
    (["simulate", "--conductances", "{tmp}/text_value.csv", "--out", "{tmp}/S.csv"], ["line 2", "'abc'"]),
    (["simulate", "--conductances", "{tmp}/negative.csv", "--out", "{tmp}/S.csv"], ["line 2", "< 0"]),
    (["simulate", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/S.csv", "--t-max", "0"], ["--t-max"]),
    (["simulate", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/S.csv", "--t-max", "nan"], ["--t-max"]),
    (["simulate", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/S.csv", "--t-max", "1e12"], ["t_max", "years"]),
    (["simulate", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/S.csv", "--dt", "5"], ["dt"]),
    (["simulate", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/S.csv", "--t-max", "100", "--transient", "200"],
     ["transient"]),
    (["simulate", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/S.csv", "--seed", "1.5"], ["--seed"]),
    (["simulate", "--conductances", "{tmp}/G.csv", "--out", "{tmp}"], ["folder"]),
    (["simulate", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/no/S.csv"], ["does not exist"]),
    (["simulate", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/G.csv"], ["overwrite the input"]),
    (["simulate", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/fifo"], ["FIFO"]),
    (["simulate", "--cell", "nope", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/S.csv"], ["nope"]),
    (["simulate", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/S.csv", "--backend", "tpu"], ["--backend"]),
    # features
    (["features", "--recordings", "{tmp}/nope.csv"], ["nope.csv"]),
    (["features", "--recordings", "{tmp}/binary.csv"], ["binary.csv", "UTF-8"]),
    (["features", "--recordings", "{tmp}/fifo"], ["not a regular file"]),
    (["features", "--recordings", "{tmp}/empty.csv"], ["empty file"]),
    (["features", "--recordings", "{tmp}/R_header.csv"], ["header"]),
    (["features", "--recordings", "{tmp}/R_unquoted.csv"], ["line 2", "quoted"]),
    (["features", "--recordings", "{tmp}/R_negative.csv"], ["line 2", "≥ 0"]),
    (["features", "--recordings", "{tmp}/R.csv", "--duration", "0"], ["--duration"]),
    (["features", "--recordings", "{tmp}/R.csv", "--duration", "10"], ["R.csv"]),
    (["features", "--recordings", "{tmp}/R.csv", "--out", "{tmp}/fifo"], ["FIFO"]),
    (["features", "--recordings", "{tmp}/R.csv", "--out", "{tmp}/loop"], ["loop", "resolved"]),
    # dics
    (["dics", "--conductances", "{tmp}/header_only.csv"], ["no rows"]),
    (["dics", "--conductances", "{tmp}/trailing_comma.csv"], ["line 2", "trailing comma"]),
    (["dics", "--conductances", "{tmp}/empty_id.csv"], ["line 2", "empty ID"]),
    (["dics", "--conductances", "{tmp}/duplicate_id.csv"], ["line 3", "duplicate ID"]),
    (["dics", "--conductances", "{tmp}/unknown_column.csv"], ["g_Bogus"]),
    (["dics", "--conductances", "{tmp}/missing_column.csv"], ["missing"]),
    (["dics", "--conductances", "{tmp}/bool_column.csv"], ["'True'"]),
    (["dics", "--conductances", "{tmp}/G.csv", "--at", "1e300"], ["--at", "mV"]),
    (["dics", "--conductances", "{tmp}/G.csv", "--at", "nan"], ["--at"]),
    (["dics", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/fifo"], ["FIFO"]),
    # population
    (["population", "--n", "0", "--out", "{tmp}/P.csv"], ["--n"]),
    (["population", "--n", "1.5", "--out", "{tmp}/P.csv"], ["--n"]),
    (["population", "--n", "1e12", "--out", "{tmp}/P.csv"], ["memory"]),
    (["population", "--n", "10", "--seed", "-1", "--out", "{tmp}/P.csv"], ["--seed"]),
    (["population", "--n", "10", "--target-gs", "nan", "--out", "{tmp}/P.csv"], ["--target-gs"]),
    (["population", "--n", "10", "--out", "{tmp}"], ["folder"]),
    (["population", "--n", "10", "--out", "{tmp}/fifo"], ["FIFO"]),
    # infer (all refused before torch is imported)
    (["infer", "--recordings", "{tmp}/nope.csv", "--out", "{tmp}/O"], ["nope.csv"]),
    (["infer", "--recordings", "{tmp}/binary.csv", "--out", "{tmp}/O"], ["binary.csv", "UTF-8"]),
    (["infer", "--recordings", "{tmp}/R.csv", "--out", "{tmp}/O", "--samples", "10", "--check", "20"], ["--check"]),
    (["infer", "--recordings", "{tmp}/R.csv", "--out", "{tmp}/O", "--samples", "0"], ["--samples"]),
    (["infer", "--recordings", "{tmp}/R.csv", "--out", "{tmp}/O", "--seed", "-1"], ["--seed"]),
    (["infer", "--recordings", "{tmp}/R.csv", "--out", "{tmp}/R.csv"], ["not a folder"]),
    (["infer", "--recordings", "{tmp}/R.csv", "--out", "{tmp}/O", "--budget", "1e15"], ["--budget"]),
    (["infer", "--recordings", "{tmp}/R.csv", "--out", "{tmp}/O", "--refine", "--check", "0"], ["--refine", "--check"]),
    (["infer", "--recordings", "{tmp}/R.csv", "--out", "{tmp}/O", "--refine-rounds", "2"],
     ["--refine-rounds", "without --refine"]),
    (["infer", "--recordings", "{tmp}/R.csv", "--out", "{tmp}/O", "--refine", "--refine-rounds", "0"],
     ["--refine-rounds"]),
    (["infer", "--recordings", "{tmp}/R.csv", "--out", "{tmp}/O", "--refine", "--refine-budget", "5"],
     ["--refine-budget", "≥ 10"]),
    (["infer", "--recordings", "{tmp}/R.csv", "--out", "{tmp}/O", "--refine", "--refine-budget", "1e15"],
     ["--refine-budget"]),
    (["infer", "--recordings", "{tmp}/R.csv", "--out", "{tmp}/O", "--refine", "--refine-threshold", "1.5"],
     ["--refine-threshold", "(0, 1]"]),
    (["infer", "--recordings", "{tmp}/R.csv", "--out", "{tmp}/O", "--refine", "--refine-threshold", "0"],
     ["--refine-threshold"]),
    (["infer", "--recordings", "{tmp}/R.csv", "--out", "{tmp}/O", "--missed-prior", "1"],
     ["--missed-prior", "probability in [0, 1)"]),
    (["infer", "--recordings", "{tmp}/R.csv", "--out", "{tmp}/O", "--missed-prior", "-0.1"],
     ["--missed-prior", "probability in [0, 1)"]),
    # reachability
    (["reachability", "--conductances", "{tmp}/header_only.csv", "--out", "{tmp}/O", *REACH], ["no rows"]),
    (["reachability", "--conductances", "{tmp}/binary.csv", "--out", "{tmp}/O", *REACH], ["UTF-8"]),
    (["reachability", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/O", "--from", "a,b", "--to", "1,1"],
     ["--from"]),
    (["reachability", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/O", "--from", "1,1", "--to", "1"], ["--to"]),
    (["reachability", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/O", *REACH, "--n-points", "1"],
     ["--n-points"]),
    (["reachability", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/O", *REACH, "--n-points", "1e12"],
     ["--n-points", "memory"]),
    (["reachability", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/O", "--from", "4,5", "--to", "-4,5",
      "--grid-step", "1e-9"], ["--grid-step"]),
    (["reachability", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/O", *REACH, "--grid-step", "0"],
     ["--grid-step"]),
    (["reachability", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/O", *REACH, "--V", "1e300"], ["--V"]),
    (["reachability", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/O", *REACH, "--eps", "-1"], ["--eps"]),
    (["reachability", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/G.csv", *REACH], ["not a folder"]),
    (["reachability", "--conductances", "{tmp}/G.csv", "--out", "{tmp}/no/O", *REACH], ["does not exist"]),
    # identify (all refused before torch is imported or anything is simulated)
    (["identify", "--before", "{tmp}/nope.csv", "--after", "{tmp}/R.csv", "--out", "{tmp}/O"], ["nope.csv"]),
    (["identify", "--before", "{tmp}/binary.csv", "--after", "{tmp}/R.csv", "--out", "{tmp}/O"], ["UTF-8"]),
    (["identify", "--before", "{tmp}/R.csv", "--after", "{tmp}/R_unquoted.csv", "--out", "{tmp}/O"],
     ["line 2", "quoted"]),
    (["identify", "--before", "{tmp}/R.csv", "--after", "{tmp}/R_negative.csv", "--out", "{tmp}/O"], ["≥ 0"]),
    (["identify", "--before", "{tmp}/R.csv", "--after", "{tmp}/R.csv", "--out", "{tmp}/R.csv"], ["not a folder"]),
    (["identify", "--cell", "nope", "--before", "{tmp}/R.csv", "--after", "{tmp}/R.csv", "--out", "{tmp}/O"],
     ["nope"]),
    (["identify", "--before", "{tmp}/R.csv", "--after", "{tmp}/R.csv", "--out", "{tmp}/O", "--before-duration",
      "3000", "--after-duration", "2000"], ["different recording durations"]),
    (["identify", "--before", "{tmp}/R.csv", "--after", "{tmp}/R.csv", "--out", "{tmp}/O", "--budget", "0"],
     ["--budget"]),
]


def setup_folder(tmp: Path) -> None:
    for name, content in FILES.items():
        (tmp / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    os.mkfifo(tmp / "fifo")
    (tmp / "loop").symlink_to(tmp / "loop2")
    (tmp / "loop2").symlink_to(tmp / "loop")


def listing(tmp: Path) -> dict[str, float]:
    return {p.name: os.lstat(p).st_mtime_ns for p in tmp.iterdir()}


@pytest.mark.parametrize(("argv", "words"), CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CASES])
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path, capsys, argv, words):
    setup_folder(tmp_path)
    before = listing(tmp_path)
    rc = main([a.format(tmp=tmp_path) for a in argv])
    captured = capsys.readouterr()
    assert rc == 2, captured.err
    assert "Traceback" not in captured.err
    message = captured.err.strip().splitlines()[-1]
    assert "error:" in message
    for word in words:
        assert word in message, (word, message)
    assert listing(tmp_path) == before  # no output file, no output folder, inputs untouched


SUBPROCESS_CASES = [CASES[i] for i in (3, 10, 22, 31, 43, 52, 57)]


@pytest.mark.parametrize(("argv", "words"), SUBPROCESS_CASES,
                         ids=[" ".join(c[0][:1] + c[0][-2:]) for c in SUBPROCESS_CASES])
def test_bad_input_through_python_dash_m_shows_no_traceback(tmp_path, argv, words):
    setup_folder(tmp_path)
    env = {**os.environ, "PYTHONPATH": LIB, "CONDSPACE_QUIET": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "condspace", *(a.format(tmp=tmp_path) for a in argv)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert all(word in proc.stderr for word in words), proc.stderr


def test_table_covers_every_subcommand():
    from condspace.__main__ import COMMANDS

    assert {argv[0] for argv, _ in CASES} == set(COMMANDS)


def test_a_valid_table_still_works_after_the_checks(tmp_path, capsys):
    """The happy path of the files above (guards against a table that only tests refusals)."""
    setup_folder(tmp_path)
    assert main(["dics", "--conductances", str(tmp_path / G), "--out", str(tmp_path / "D.csv")]) == 0
    assert pd.read_csv(tmp_path / "D.csv", dtype={"ID": str})["ID"].tolist() == ["a", "b"]
    assert main(["features", "--recordings", str(tmp_path / R)]) == 0
    assert "spiking" in capsys.readouterr().out
    assert list(recordings.load_csv(tmp_path / R)) == ["t"]
