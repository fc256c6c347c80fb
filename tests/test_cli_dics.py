"""Tests of the ``dics`` and ``population`` commands (condspace.cli_dics) against published check values."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from condspace import cells, dics
from condspace.__main__ import COMMANDS, main
from condspace.populations import spiking_population

STG = cells.get("stg")
DA = cells.get("da")

# V_th (mV) and (g_f, g_s, g_u) at V_th (× g_leak) of the published STG sets (Drion et al. 2015 DICs;
# sets of Fyon et al. 2024, as tabulated by the group), 3 decimals.
PUBLISHED_STG = {
    "DIC spiking": (-50.550, -8.643, 4.435, 4.208),
    "DIC bursting a": (-50.531, -2.254, -3.858, 6.112),
    "DIC bursting b": (-52.019, -2.484, -3.839, 6.322),
    "tonic spiking": (-49.923, -5.372, 2.584, 2.789),
    "bursting": (-51.576, 0.961, -8.466, 7.505),
}
# Compensation check sets and their DICs at V* (Fyon et al. 2024): STG at −51 mV, DA at −55.5 mV.
CHECK_STG = ({"Na": 6591.636717, "Kd": 105, "CaT": 5, "CaS": 14, "KCa": 160, "A": 361.013078, "H": 0.320987,
              "leak": 0.01}, -51.0, (-6.2, 4.0, 5.0))
CHECK_DA = ({"Na": 35.469348, "Kd": 8, "CaL": 0.045, "CaN": 0.040696, "ERG": 0.150159, "NMDA": 0.012,
             "leak": 0.01285}, -55.5, (-12.95, 0.5, 5.0))


def write_table(path, rows: dict[str, dict[str, float]], with_id: bool = True):
    table = pd.DataFrame(list(rows.values()))
    if with_id:
        table.insert(0, "ID", list(rows))
    table.to_csv(path, index=False)
    return path


def read(text_or_path) -> pd.DataFrame:
    source = io.StringIO(text_or_path) if isinstance(text_or_path, str) else text_or_path
    return pd.read_csv(source, dtype={"ID": str}).set_index("ID")


def test_commands_are_registered():
    assert COMMANDS["dics"][0] == "condspace.cli_dics:DICS"
    assert COMMANDS["population"][0] == "condspace.cli_dics:POPULATION"


# ----- dics -------------------------------------------------------------------------------------
def test_dics_reproduces_the_published_threshold_and_dics(tmp_path, capsys):
    g = write_table(tmp_path / "G.csv", {k: STG.example(k) for k in PUBLISHED_STG})
    assert main(["dics", "--cell", "stg", "--conductances", str(g)]) == 0
    captured = capsys.readouterr()
    table = read(captured.out)
    assert list(table.columns) == ["V_th", "g_f", "g_s", "g_u"]
    assert list(table.index) == list(PUBLISHED_STG)
    for label, want in PUBLISHED_STG.items():
        np.testing.assert_allclose(table.loc[label].to_numpy(), want, atol=6e-4, err_msg=label)
    assert captured.err == ""  # every published set has a threshold: no warning


def test_dics_out_file_equals_stdout_and_numbers_round_trip(tmp_path, capsys):
    g = write_table(tmp_path / "G.csv", {"a": STG.example("DIC spiking"), "b": STG.example("bursting")},
                    with_id=False)
    out = tmp_path / "d.csv"
    assert main(["dics", "--conductances", str(g), "--out", str(out)]) == 0
    assert "2 stg neuron(s) at V_th (2 with a threshold)" in capsys.readouterr().out
    assert main(["dics", "--conductances", str(g)]) == 0
    assert out.read_text() == capsys.readouterr().out
    table = read(out)
    assert list(table.index) == ["0", "1"]  # no ID column: 0..N-1
    lib = dics.dics_at_threshold(STG, [STG.example("DIC spiking"), STG.example("bursting")])
    np.testing.assert_array_equal(table.to_numpy(), lib.to_numpy())  # full precision, nothing rounded


def test_dics_reports_a_missing_threshold_without_crashing(tmp_path, capsys):
    leak_only = {name: 0.0 for name in STG.conductance_names} | {"g_leak": 0.01}  # g_in = 1 > 0 everywhere
    g = write_table(tmp_path / "G.csv", {"burster": STG.example("bursting"), "passive": leak_only})
    out = tmp_path / "d.csv"
    assert main(["dics", "--conductances", str(g), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "1 of 2 neuron(s) have no threshold" in err and "passive" in err
    table = read(out)
    assert table.loc["passive"].isna().all()
    assert np.isfinite(table.loc["burster"].to_numpy()).all()
    assert out.read_text().splitlines()[2] == "passive,,,,"  # NaN is an empty cell, like the features table


@pytest.mark.parametrize(("cell", "check"), [(STG, CHECK_STG), (DA, CHECK_DA)], ids=["stg", "da"])
def test_dics_at_a_fixed_voltage_gives_the_compensation_check_values(cell, check, tmp_path, capsys):
    g_set, V, want = check
    g = write_table(tmp_path / "G.csv", {"x": g_set})
    assert main(["dics", "--cell", cell.name, "--conductances", str(g), "--at", str(V)]) == 0
    table = read(capsys.readouterr().out)
    assert list(table.columns) == ["V", "g_f", "g_s", "g_u"]
    assert table.loc["x", "V"] == V
    np.testing.assert_allclose(table.loc["x", ["g_f", "g_s", "g_u"]].to_numpy(float), want, atol=2e-3)


def test_dics_rejects_bad_input_with_a_clear_message(tmp_path, capsys):
    g = tmp_path / "G.csv"
    g.write_text("g_Na,g_Kd\n1,2\n")
    assert main(["dics", "--conductances", str(g)]) == 2
    assert "missing conductances" in capsys.readouterr().err
    good = write_table(tmp_path / "ok.csv", {"a": STG.example("bursting")})
    assert main(["dics", "--conductances", str(good), "--out", str(tmp_path / "no" / "d.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["dics", "--conductances", str(good), "--out", str(good)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert main(["dics", "--conductances", str(good), "--at", "nan"]) == 2
    assert "must be finite" in capsys.readouterr().err


# ----- population -------------------------------------------------------------------------------
def test_population_hits_its_target_and_is_degenerate(tmp_path, capsys):
    out = tmp_path / "G.csv"
    assert main(["population", "--cell", "stg", "--n", "60", "--target-gs", "-4", "--target-gu", "5",
                 "--seed", "3", "--out", str(out)]) == 0
    msg = capsys.readouterr()
    lib = spiking_population(STG, 60, 3, target=(-4.0, 5.0))
    assert f"seed 3: {lib.n_reachable} of 60 reachable" in msg.out
    assert lib.n_reachable >= 50
    table = read(out)
    assert list(table.columns) == list(STG.conductance_names)
    assert list(table.index) == [str(i) for i in np.nonzero(lib.reachable)[0]]
    n = len(table)
    # the population's DICs at V* = −51 mV are the target, g_f on the cell's rule g_f = −g_s − 2.2,
    # read back through the dics command
    assert main(["dics", "--conductances", str(out), "--at", "-51", "--out", str(tmp_path / "d.csv")]) == 0
    d = read(tmp_path / "d.csv")
    np.testing.assert_allclose(d[["g_f", "g_s", "g_u"]].to_numpy(), np.tile([1.8, -4.0, 5.0], (n, 1)), atol=1e-9)
    # degenerate: one DIC target, conductances spread over a wide range
    assert table["g_Na"].max() / table["g_Na"].min() > 2.0
    assert table["g_Kd"].max() / table["g_Kd"].min() > 1.5
    # the drawn conductances follow the recipe: U[70, 140] scaled by g_leak / mean g_leak (0.0105)
    kd_unscaled = table["g_Kd"] / (table["g_leak"] / 0.0105)
    assert kd_unscaled.between(70.0, 140.0).all()


def test_population_is_the_library_population_and_seeded(tmp_path, capsys):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    for path, seed in ((a, "7"), (b, "7"), (c, "8")):
        assert main(["population", "--cell", "da", "--n", "5", "--seed", seed, "--out", str(path)]) == 0
    out = capsys.readouterr().out
    assert "target (g_f, g_s, g_u) = (-12.95, 0.5, 5)" in out  # the DA spiking population by default
    assert a.read_text() == b.read_text() != c.read_text()
    lib = spiking_population(DA, 5, 7)
    np.testing.assert_array_equal(read(a).to_numpy(), lib.g)


def test_population_without_seed_prints_the_seed_that_reproduces_it(tmp_path, capsys):
    first = tmp_path / "a.csv"
    assert main(["population", "--n", "3", "--out", str(first)]) == 0
    seed = capsys.readouterr().out.split("seed ")[1].split(":")[0]
    again = tmp_path / "b.csv"
    assert main(["population", "--n", "3", "--seed", seed, "--out", str(again)]) == 0
    assert first.read_text() == again.read_text()


def test_population_counts_and_drops_unreachable_neurons(tmp_path, capsys):
    # STG at (g_s, g_u) = (−4, 0): some draws need a negative g_A or g_H (not reachable with Na, A, H)
    args = ["population", "--n", "200", "--target-gs", "-4", "--target-gu", "0", "--seed", "0"]
    lib = spiking_population(STG, 200, 0, target=(-4.0, 0.0))
    n_bad = 200 - lib.n_reachable
    assert 0 < n_bad < 200, "the test needs a target with some, not all, neurons unreachable"
    out = tmp_path / "G.csv"
    assert main([*args, "--out", str(out)]) == 0
    msg = capsys.readouterr()
    assert f"warning: {n_bad} of 200 neuron(s) unreachable ({n_bad} negative); dropped" in msg.err
    table = read(out)
    assert len(table) == lib.n_reachable
    assert list(table.index) == [str(i) for i in np.nonzero(lib.reachable)[0]]  # IDs are the draw indices
    assert (table.to_numpy() >= 0).all()

    kept = tmp_path / "all.csv"
    assert main([*args, "--out", str(kept), "--keep-unreachable"]) == 0
    assert "kept with reachable=False" in capsys.readouterr().err
    full = read(kept)
    assert len(full) == 200 and list(full.columns[-2:]) == ["reachable", "reason"]
    assert (~full["reachable"]).sum() == n_bad
    assert set(full.loc[~full["reachable"], "reason"]) == {"negative"}
    pd.testing.assert_frame_equal(full[full["reachable"]][table.columns], table)


def test_population_with_no_reachable_neuron_is_an_error_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "G.csv"
    assert main(["population", "--n", "20", "--target-gs", "-20", "--target-gu", "5", "--seed", "0",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no neuron of 20 is reachable" in err and "nothing written" in err
    assert not out.exists()


def test_population_rejects_bad_arguments(tmp_path, capsys):
    out = str(tmp_path / "G.csv")
    assert main(["population", "--n", "0", "--out", out]) == 2
    assert "argument --n: must be an integer ≥ 1" in capsys.readouterr().err
    assert main(["population", "--n", "3", "--target-gu", "inf", "--out", out]) == 2
    assert "must be finite" in capsys.readouterr().err
    assert main(["population", "--n", "3", "--cell", "nope", "--out", out]) == 2
    assert "nope" in capsys.readouterr().err
