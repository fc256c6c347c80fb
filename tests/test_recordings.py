"""Tests of condspace.recordings: the ID,spiking_times CSV format."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from condspace import features, recordings


def write(tmp_path, text: str, name: str = "rec.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_the_published_format_in_file_order(tmp_path):
    path = write(tmp_path, 'ID,spiking_times\n7,"[3057.05, 3157.1, 3257.15]"\n1,"[]"\n007,"[12.5]"\n')
    rec = recordings.load_csv(path)
    assert list(rec) == ["7", "1", "007"]  # IDs stay strings, exactly as written
    np.testing.assert_array_equal(rec["7"], [3057.05, 3157.1, 3257.15])
    assert rec["1"].shape == (0,) and rec["1"].dtype == np.float64
    np.testing.assert_array_equal(rec["007"], [12.5])


def test_tolerates_bom_spaces_unquoted_empty_list_blank_lines_and_extra_columns(tmp_path):
    text = '\ufeffID, spiking_times, label\n a , "[ 1.0 ,2.5 ]", x\n\nb,[],silent\n'
    rec = recordings.load_csv(write(tmp_path, text))
    assert list(rec) == ["a", "b"]
    np.testing.assert_array_equal(rec["a"], [1.0, 2.5])
    assert rec["b"].size == 0


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("", 1, "empty file"),
        ("id,times\n1,\"[1]\"\n", 1, "header must start with ID,spiking_times"),
        ("ID,spiking_times\n1\n", 2, "missing column"),
        ("ID,spiking_times\n1,\"[1]\",2\n", 2, "extra column"),
        ("ID,spiking_times\n1,1.0, 2.0\n", 2, "extra column"),  # unquoted list
        ("ID,spiking_times\n1,\"[1.0, 2.0\"\n", 2, "bracketed list"),
        ("ID,spiking_times\n1,\"1.0, 2.0\"\n", 2, "bracketed list"),
        ("ID,spiking_times\n1,\"[1.0]\"\n2,\"[1.0, abc]\"\n", 3, "non-numeric entry 'abc'"),
        ("ID,spiking_times\n1,\"[1.0,,2.0]\"\n", 2, "non-numeric entry ''"),
        ("ID,spiking_times\n1,\"[1.0, nan]\"\n", 2, "finite"),
        ("ID,spiking_times\n1,\"[-1.0, 2.0]\"\n", 2, "≥ 0"),
        ("ID,spiking_times\n1,\"[1.0, 3.0, 2.0]\"\n", 2, "strictly increasing"),
        ("ID,spiking_times\n1,\"[1.0, 1.0]\"\n", 2, "strictly increasing"),
        ("ID,spiking_times\n1,\"[1]\"\n2,\"[]\"\n1,\"[2]\"\n", 4, "duplicate ID '1'"),
        ("ID,spiking_times\n,\"[1]\"\n", 2, "empty ID"),
    ],
)
def test_malformed_files_name_the_file_the_line_and_the_problem(tmp_path, text, line, problem):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as err:
        recordings.load_csv(path)
    msg = str(err.value)
    assert str(path) in msg
    assert f"line {line}" in msg or line == 1 and "empty file" in msg
    assert problem in msg


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        recordings.load_csv(tmp_path / "nope.csv")


def test_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    trains = [np.sort(rng.uniform(3000, 6000, k)) for k in (0, 1, 2, 50)] + [np.array([3057.05, 3157.1])]
    path = tmp_path / "out.csv"
    recordings.save_csv(path, trains, ids=[10, 11, "x,y", " z ", 3])
    back = recordings.load_csv(path)
    assert list(back) == ["10", "11", "x,y", "z", "3"]
    for got, want in zip(back.values(), trains, strict=True):
        np.testing.assert_array_equal(got, want)  # exact: floats are written with their shortest repr
    # Mapping input keeps its keys, and a second save round-trips the loaded dict unchanged.
    recordings.save_csv(path, back)
    again = recordings.load_csv(path)
    assert list(again) == list(back)
    assert all(np.array_equal(again[k], back[k]) for k in back)


def test_written_format_matches_the_published_one(tmp_path):
    path = tmp_path / "out.csv"
    recordings.save_csv(path, [np.array([3057.05, 3157.1]), np.empty(0), np.array([5.0])], ids=[1, 2, 3])
    assert path.read_text() == 'ID,spiking_times\n1,"[3057.05, 3157.1]"\n2,"[]"\n3,"[5.0]"\n'


def test_feature_columns_are_appended_and_readable_by_pandas(tmp_path):
    trains = [np.arange(0.0, 1000.0, 100.0), np.array([5.0])]
    feats = features.extract(trains, 1000.0)
    path = tmp_path / "with_features.csv"
    recordings.save_csv(path, trains, features=feats)
    table = pd.read_csv(path)
    assert list(table.columns) == ["ID", "spiking_times", *features.COLUMNS]
    assert table["label"].tolist() == ["spiking", "silent"]
    pd.testing.assert_series_equal(table["rate_hz"], feats["rate_hz"], check_names=False)
    assert np.isnan(table.loc[1, "cv_isi"])  # NaN written as an empty cell
    # load_csv ignores the extra columns.
    assert list(recordings.load_csv(path)) == ["0", "1"]


def test_decimals_rounds_spike_times(tmp_path):
    path = tmp_path / "r.csv"
    recordings.save_csv(path, [np.array([1.23456, 2.5])], decimals=2)
    np.testing.assert_array_equal(recordings.load_csv(path)["0"], [1.23, 2.5])


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "r.csv"
    recordings.save_csv(path, [np.array([1.0])])
    before = path.read_text()
    with pytest.raises(ValueError, match="strictly increasing"):
        recordings.save_csv(path, [np.array([1.0]), np.array([2.0, 1.0])])
    assert path.read_text() == before  # a failed save does not touch the old file
    assert os.listdir(tmp_path) == ["r.csv"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spike_times": [[1.0], [2.0]], "ids": [1, "1"]}, "duplicate ID '1'"),
        ({"spike_times": [[1.0], [2.0]], "ids": [1]}, "1 IDs for 2"),
        ({"spike_times": [[1.0]], "ids": [""]}, "empty ID"),
        ({"spike_times": {"a": [1.0]}, "ids": ["b"]}, "mapping"),
        ({"spike_times": [[-1.0]]}, "≥ 0"),
        ({"spike_times": [[[1.0]]]}, "1-D"),
        ({"spike_times": [[1.0]], "features": {"ID": [1]}}, "clashes"),
        ({"spike_times": [[1.0]], "features": {"x": [1, 2]}}, "2 rows for 1"),
        ({"spike_times": [[1.0]], "features": [1.0]}, "DataFrame or a mapping"),
    ],
)
def test_save_rejects_bad_input(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        recordings.save_csv(tmp_path / "r.csv", **kwargs)


def test_save_into_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        recordings.save_csv(tmp_path / "no" / "r.csv", [[1.0]])


def test_saved_files_are_not_private(tmp_path):
    """Atomic writes go through mkstemp (mode 0600); the result must look like a normal file."""
    import os
    import stat

    from condspace.recordings import save_csv

    old = os.umask(0o022)
    try:
        path = tmp_path / "spikes.csv"
        save_csv(path, [np.array([1.0, 2.0])])
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(old)
