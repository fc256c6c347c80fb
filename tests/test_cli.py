"""Tests of the command line (python -m condspace): simulate, features, the registry and errors."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from condspace import cells, features, recordings, simulate
from condspace.__main__ import COMMANDS, build_parser, main

STG = cells.get("stg")
FAST = ["--t-max", "1500", "--transient", "500", "--backend", "numpy"]  # 1000 ms analysed, ~2 s for 2 neurons


def write_conductances(path, rows: dict[str, dict[str, float]], prefix: bool = False, with_id: bool = True):
    table = pd.DataFrame(rows.values())
    if not prefix:
        table.columns = [c.removeprefix("g_") for c in table.columns]
    if with_id:
        table.insert(0, "ID", list(rows))
    table.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The published tonic-spiking and bursting STG sets (Fyon et al. 2024), simulated once via the CLI."""
    folder = tmp_path_factory.mktemp("cli")
    g = write_conductances(folder / "G.csv", {"tonic": STG.example("tonic spiking"),
                                              "burster": STG.example("bursting")})
    out = folder / "spikes.csv"
    rc = main(["simulate", "--cell", "stg", "--conductances", str(g), "--out", str(out), *FAST])
    assert rc == 0
    return folder, out


# ----- simulate ---------------------------------------------------------------------------------
def test_simulate_classifies_the_published_sets(published):
    _, out = published
    table = pd.read_csv(out, dtype={"ID": str})
    assert list(table.columns) == ["ID", "spiking_times", *features.COLUMNS]
    assert table["ID"].tolist() == ["tonic", "burster"]
    assert table["label"].tolist() == ["spiking", "bursting"]
    burster = table.iloc[1]
    assert burster["spikes_per_burst"] >= 3 and burster["burst_period_ms"] > burster["burst_duration_ms"]


def test_simulate_output_honours_the_protocol_and_its_features_match_the_spikes(published):
    _, out = published
    spikes = recordings.load_csv(out)
    table = pd.read_csv(out, dtype={"ID": str}).set_index("ID")
    for ident, t in spikes.items():
        assert t.size > 3
        assert t.min() >= 500.0 and t.max() < 1500.0  # only spikes after the transient, before t_max
        assert table.loc[ident, "rate_hz"] == pytest.approx(t.size / 1.0)  # window t_max - transient = 1 s
    recomputed = features.extract(spikes, duration=1000.0)
    for col in features.FEATURES:
        np.testing.assert_allclose(table[col].to_numpy(float), recomputed[col].to_numpy(float), rtol=1e-12)


def test_simulate_passes_every_option_to_the_library(tmp_path, capsys):
    g = write_conductances(tmp_path / "G.csv", {"a": STG.example("DIC spiking")}, prefix=True, with_id=False)
    out = tmp_path / "s.csv"
    args = dict(t_max=250.0, transient=50.0, dt=0.04, current=0.3, noise_std=0.5, seed=3)
    rc = main(["simulate", "--conductances", str(g), "--out", str(out), "--backend", "numpy",
               "--t-max", "250", "--transient", "50", "--dt", "0.04", "--current", "0.3",
               "--noise-std", "0.5", "--seed", "3"])
    assert rc == 0
    assert "1 stg neuron(s)" in capsys.readouterr().out
    got = recordings.load_csv(out)
    assert list(got) == ["0"]  # no ID column: IDs 0..N-1
    want = simulate(STG, [STG.example("DIC spiking")], backend="numpy", **args).spike_times[0]
    assert want.size > 0
    np.testing.assert_array_equal(got["0"], want)


# ----- features ---------------------------------------------------------------------------------
def test_features_command_writes_the_feature_table(published, capsys):
    folder, spikes = published
    out = folder / "features.csv"
    assert main(["features", "--recordings", str(spikes), "--duration", "1000", "--out", str(out)]) == 0
    assert "1 spiking, 1 bursting" in capsys.readouterr().out
    table = pd.read_csv(out, dtype={"ID": str}).set_index("ID")
    assert list(table.columns) == list(features.COLUMNS)
    sim_table = pd.read_csv(spikes, dtype={"ID": str}).set_index("ID")
    pd.testing.assert_frame_equal(table, sim_table[list(features.COLUMNS)])


def test_features_command_prints_to_stdout_and_uses_the_duration(tmp_path, capsys):
    path = tmp_path / "rec.csv"
    recordings.save_csv(path, {"x": np.arange(0.0, 2000.0, 100.0), "y": []})
    assert main(["features", "--recordings", str(path), "--duration", "2000"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype={"ID": str}).set_index("ID")
    assert table.loc["x", "label"] == "spiking" and table.loc["y", "label"] == "silent"
    assert table.loc["x", "rate_hz"] == pytest.approx(10.0)
    assert main(["features", "--recordings", str(path)]) == 0  # default window: 3000 ms
    table = pd.read_csv(io.StringIO(capsys.readouterr().out)).set_index("ID")
    assert table.loc["x", "rate_hz"] == pytest.approx(20 / 3.0)


# ----- help and the registry ----------------------------------------------------------------------
def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in COMMANDS)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_of_every_command_is_explained(name, capsys):
    parser = build_parser([name])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    options = [a for a in sub._actions if a.option_strings and a.dest != "help"]
    assert options
    for action in options:
        assert action.help and len(action.help) > 15, f"{name} {action.option_strings} has no help"
    assert main([name, "--help"]) == 0
    text = capsys.readouterr().out
    assert all(a.option_strings[0] in text for a in options)


def test_commands_are_imported_lazily_and_can_be_added(tmp_path, monkeypatch, capsys):
    (tmp_path / "extra_cli.py").write_text(
        "from condspace.cli import Command\n"
        "def add(p):\n    p.add_argument('--n', type=int, required=True, help='how many times to greet')\n"
        "def run(args):\n    print('hello ' * args.n)\n    return 0\n"
        "CLI = Command(add, run, 'Say hello.')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(COMMANDS, "hello", ("extra_cli:CLI", "greet"))
    monkeypatch.setitem(COMMANDS, "broken", ("condspace.no_such_module:CLI", "never imported unless used"))
    assert main(["hello", "--n", "2"]) == 0
    assert capsys.readouterr().out.strip() == "hello hello"
    with pytest.raises(ModuleNotFoundError):
        main(["broken"])


# ----- errors: message on stderr, exit status 2, no traceback ----------------------------------------
@pytest.fixture()
def files(tmp_path):
    good = write_conductances(tmp_path / "G.csv", {"a": STG.example("tonic spiking")})
    (tmp_path / "unknown.csv").write_text("g_Na,g_foo\n1,2\n")
    (tmp_path / "text.csv").write_text("Na,Kd,CaT,CaS,KCa,A,H,leak\n1,2,3,4,5,6,7,abc\n")
    (tmp_path / "neg.csv").write_text("Na,Kd,CaT,CaS,KCa,A,H,leak\n1,2,3,4,5,6,7,0.01\n1,2,3,4,5,6,-7,0.01\n")
    (tmp_path / "dupid.csv").write_text("ID,Na,Kd,CaT,CaS,KCa,A,H,leak\n1,1,2,3,4,5,6,7,0.01\n1,1,2,3,4,5,6,7,0.01\n")
    (tmp_path / "badrec.csv").write_text('ID,spiking_times\n1,"[1.0, 3.0, 2.0]"\n')
    (tmp_path / "rec.csv").write_text('ID,spiking_times\n1,"[1.0, 1001.0, 2001.0, 3000.0]"\n')
    return tmp_path, good


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "usage:"),
        (["bogus"], "invalid choice"),
        (["simulate", "--out", "{d}/o.csv"], "--conductances"),
        (["simulate", "--conductances", "{d}/missing.csv", "--out", "{d}/o.csv"], "missing.csv"),
        (["simulate", "--conductances", "{g}", "--out", "{d}/no/o.csv"], "does not exist"),
        (["simulate", "--conductances", "{g}", "--out", "{g}"], "overwrite the input"),
        (["simulate", "--conductances", "{g}", "--out", "{d}/o.csv", "--cell", "squid"], "unknown cell type 'squid'"),
        (["simulate", "--conductances", "{g}", "--out", "{d}/o.csv", "--dt", "0"], "--dt: must be > 0"),
        (["simulate", "--conductances", "{g}", "--out", "{d}/o.csv", "--dt", "2"], "too large"),
        (["simulate", "--conductances", "{g}", "--out", "{d}/o.csv", "--t-max", "100", "--transient", "200"],
         "transient must satisfy"),
        (["simulate", "--conductances", "{g}", "--out", "{d}/o.csv", "--noise-std", "-1"], "must be ≥ 0"),
        (["simulate", "--conductances", "{d}/unknown.csv", "--out", "{d}/o.csv"], "unknown conductance 'g_foo'"),
        (["simulate", "--conductances", "{d}/text.csv", "--out", "{d}/o.csv"], "non-numeric value 'abc'"),
        (["simulate", "--conductances", "{d}/neg.csv", "--out", "{d}/o.csv"], "neuron 1 (line 3)"),
        (["simulate", "--conductances", "{d}/dupid.csv", "--out", "{d}/o.csv"], "duplicate ID '1'"),
        (["features", "--recordings", "{d}/badrec.csv"], "line 2: spike times must be strictly increasing"),
        (["features", "--recordings", "{d}/rec.csv", "--duration", "1000"], "shorter than the spikes"),  # span 2999
        (["features", "--recordings", "{d}/rec.csv", "--duration", "-5"], "--duration: must be > 0"),
        (["features", "--recordings", "{d}/nothere.csv"], "nothere.csv"),
    ],
)
def test_errors_exit_2_with_a_message(files, capsys, argv, message):
    folder, good = files
    argv = [a.format(d=folder, g=good) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (folder / "o.csv").exists()


def test_debug_shows_the_traceback(files):
    folder, _ = files
    with pytest.raises(ValueError, match="strictly increasing"):
        main(["--debug", "features", "--recordings", str(folder / "badrec.csv")])


def test_python_dash_m_entry_point(files):
    folder, _ = files
    env = {**os.environ, "CONDSPACE_QUIET": "1"}
    ok = subprocess.run([sys.executable, "-m", "condspace", "features", "--recordings", str(folder / "rec.csv")],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[1].startswith("1,spiking,4.0,")
    bad = subprocess.run([sys.executable, "-m", "condspace", "features", "--recordings", str(folder / "badrec.csv")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2
    assert "strictly increasing" in bad.stderr and "Traceback" not in bad.stderr
