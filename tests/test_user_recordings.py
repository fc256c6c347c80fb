"""The chapters' RECORDINGS / GROUND_TRUTH parameters: a user's files read, checked and refused clearly.

``inference.load_recordings`` (chapters 2-4) and ``identification.load_modulation`` (chapter 5) on
the shipped files and on files written here. A FAST run of chapter 2 on a user's file is in
tests/test_chapters.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from condspace import cells, identification, inference, recordings

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "recordings"
STG_G = ",".join(cells.get("stg").conductance_names)


@pytest.fixture(scope="module")
def shipped():
    return recordings.load_csv(DATA / "stg_recordings.csv")


@pytest.fixture
def mine(tmp_path, shipped):
    """Two shipped trains under the shipped IDs in a user's file."""
    path = tmp_path / "mine.csv"
    recordings.save_csv(path, {k: shipped[k] for k in ("stg_bursting", "stg_tonic")})
    return path


def write(tmp_path, text, name="f.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_default_is_the_demonstration_set_with_its_ground_truth():
    data = inference.load_recordings("stg", folder=DATA)
    assert list(data.trains) == list(cells.get("stg").recordings) and data.has_truth
    assert list(data.truth.columns) == list(cells.get("stg").conductance_names)
    assert data.duration == 3000.0 and (data.table["transient"] == 3000.0).all()


def test_a_users_file_without_ground_truth(mine):
    data = inference.load_recordings("stg", mine)
    assert not data.has_truth and data.truth is None and "mine.csv (2 recordings)" in data.source
    assert list(data.trains) == ["stg_bursting", "stg_tonic"]  # file order
    # the observed classes are computed from the trains, as the shipped truth's were
    demo = inference.load_recordings("stg", folder=DATA).table
    assert data.table["label"].to_dict() == demo.loc[["stg_bursting", "stg_tonic"], "label"].to_dict()
    np.testing.assert_allclose(data.table["rate_hz"], demo.loc[["stg_bursting", "stg_tonic"], "rate_hz"])
    assert data.duration == 3000.0  # the protocol's analysed window (t_max - transient)


def test_a_users_file_with_ground_truth(mine):
    # the shipped truth file is a valid GROUND_TRUTH: extra rows and non-conductance columns are allowed
    data = inference.load_recordings("stg", mine, DATA / "stg_ground_truth.csv")
    assert data.has_truth and list(data.truth.index) == ["stg_bursting", "stg_tonic"]
    assert data.truth.loc["stg_tonic", "g_Na"] == 4759.33 and data.table.loc["stg_tonic", "example"] == "tonic spiking"


def test_ground_truth_given_with_the_default_recordings_replaces_the_shipped_one(tmp_path):
    write(tmp_path, f"ID,{STG_G}\n" + "".join(f"{i},1,2,3,4,5,6,7,0.01\n" for i in cells.get("stg").recordings),
          "t.csv")
    data = inference.load_recordings("stg", None, tmp_path / "t.csv", folder=DATA)
    assert (data.truth["g_Na"] == 1.0).all() and (data.table["g_leak"] == 0.01).all()
    assert data.table.loc["stg_tonic", "label"] == "spiking"  # the observed class is kept


def test_a_fixed_conductance_may_be_omitted_from_the_ground_truth(tmp_path):
    da = cells.get("da")
    ex = da.example("bursting")
    recordings.save_csv(tmp_path / "da.csv", {"d1": np.arange(1.0, 100.0, 10.0)})
    cols = [n for n in da.conductance_names if n != "g_NMDA"]
    write(tmp_path, "ID," + ",".join(cols) + "\nd1," + ",".join(str(ex[n]) for n in cols) + "\n", "t.csv")
    truth = inference.load_recordings("da", tmp_path / "da.csv", tmp_path / "t.csv").truth
    assert truth.loc["d1", "g_NMDA"] == da.fixed["g_NMDA"] and truth.loc["d1", "g_Kd"] == ex["g_Kd"]


@pytest.mark.parametrize(("text", "message"), [
    ('ID,spiking_times\nn1,"[3001.0, 3050.5, 3100.0]"\nn2,"[3001.0, 3000.0, 3200.0]"\n',
     r"f\.csv, line 3: spike times must be strictly increasing"),
    ("ID,spikes\nn1,[1]\n", r"f\.csv, line 1: header must start with ID,spiking_times"),
    ('ID,spiking_times\nn1,"[3001.0, x]"\n', r"f\.csv, line 2: spiking_times holds a non-numeric entry 'x'"),
    ("ID,spiking_times\n", r"f\.csv: no recordings"),
    ('ID,spiking_times\nn1,"[3001.0, 3002.0]"\n', r"recording 'n1' has 2 spike\(s\); inference needs at least 3"),
    ('ID,spiking_times\nn1,"[0.0, 100.0, 5000.0]"\n', r"'n1' spans 5000.0 ms, longer than the analysed window"),
    ("ID,spiking_times\nn1,invalid\n", r"f\.csv: recordings \['n1'\] are flagged invalid"),
])
def test_bad_recordings_files_are_refused_with_file_and_reason(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        inference.load_recordings("stg", write(tmp_path, text))


def test_missing_files_name_the_parameter(tmp_path, mine):
    with pytest.raises(FileNotFoundError, match="RECORDINGS: no such file"):
        inference.load_recordings("stg", tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="GROUND_TRUTH: no such file"):
        inference.load_recordings("stg", mine, tmp_path / "nope.csv")


@pytest.mark.parametrize(("text", "message"), [
    ("g_Na\n1\n", r"t\.csv, line 1: no ID column"),
    ("ID,g_Nav\nstg_tonic,1\n", r"t\.csv, line 1: unknown conductance column 'g_Nav'"),
    (f"ID,{STG_G}\nstg_tonic,1,2,3,4,5,6,7,x\n", r"t\.csv, line 2: column 'g_leak' holds 'x', not a number"),
    (f"ID,{STG_G}\nstg_tonic,1,2,3,4,5,6,7\n", r"t\.csv, line 2: 8 fields for the 9 columns"),
    (f"ID,{STG_G}\nstg_tonic,1,2,3,4,5,6,7,0.01\nstg_bursting,1,2,3,-4,5,6,7,0.01\n",
     r"g_CaS of the neuron on line 3 is -4.0 < 0"),
    (f"ID,{STG_G}\nstg_tonic,1,2,3,4,5,6,7,0.01\nstg_tonic,1,2,3,4,5,6,7,0.01\n",
     r"t\.csv, line 3: duplicate ID 'stg_tonic' \(first on line 2\)"),
    (f"ID,{STG_G}\nstg_tonic,1,2,3,4,5,6,7,0.01\n", r"no ground truth for recordings \['stg_bursting'\]"),
    ("ID,g_Na\nstg_tonic,1\nstg_bursting,1\n", r"missing conductances \['g_Kd'"),
])
def test_bad_ground_truth_files_are_refused_with_file_and_line(tmp_path, mine, text, message):
    with pytest.raises(ValueError, match=message):
        inference.load_recordings("stg", mine, write(tmp_path, text, "t.csv"))


# ----- chapter 5: before and after -------------------------------------------------------------------
def test_chapter_5_default_is_the_worked_example_with_its_subset():
    before, after, truth = identification.load_modulation("stg", folder=DATA)
    assert list(before) == list(after) and len(before) == 10 and truth["subset"].iloc[0] == "CaS+H"


def test_chapter_5_reads_a_users_pair_with_and_without_truth(tmp_path):
    b = recordings.load_csv(DATA / "stg_modulation_before.csv")
    a = recordings.load_csv(DATA / "stg_modulation_after.csv")
    ids = list(b)[:3]
    recordings.save_csv(tmp_path / "b.csv", {i: b[i] for i in ids})
    recordings.save_csv(tmp_path / "a.csv", {i: a[i] for i in reversed(ids)})  # order may differ
    before, after, truth = identification.load_modulation("stg", tmp_path / "b.csv", tmp_path / "a.csv")
    assert truth is None and list(before) == list(after) == ids
    np.testing.assert_array_equal(after[ids[0]], a[ids[0]])
    write(tmp_path, "ID,subset\n" + "".join(f"{i},CaS+H\n" for i in ids), "t.csv")
    _, _, truth = identification.load_modulation("stg", tmp_path / "b.csv", tmp_path / "a.csv", tmp_path / "t.csv")
    assert list(truth.index) == ids and set(truth["subset"]) == {"CaS+H"}


@pytest.mark.parametrize(("case", "message"), [
    ("one side", "give both files"),
    ("ids differ", r"IDs on one side only: \['x2'\] only in"),
    ("unknown subset", r"subset 'H\+CaS' is not a hypothesis of cell 'stg'"),
    ("two subsets", r"the subset column holds \['A', 'CaS\+H'\]"),
    ("no subset column", r"line 1: no subset column"),
])
def test_chapter_5_refuses_bad_pairs(tmp_path, case, message):
    train = '"[3001.0, 3100.0, 3200.0]"'
    write(tmp_path, f"ID,spiking_times\nx1,{train}\nx2,{train}\n", "b.csv")
    write(tmp_path, f"ID,spiking_times\nx1,{train}\n" + ("" if case == "ids differ" else f"x2,{train}\n"), "a.csv")
    truth = {"unknown subset": "ID,subset\nx1,H+CaS\nx2,H+CaS\n", "two subsets": "ID,subset\nx1,CaS+H\nx2,A\n",
             "no subset column": "ID,target\nx1,A\nx2,A\n"}.get(case)
    args = [tmp_path / "b.csv", None if case == "one side" else tmp_path / "a.csv",
            None if truth is None else write(tmp_path, truth, "t.csv")]
    with pytest.raises(ValueError, match=message):
        identification.load_modulation("stg", *args)
