"""Finding degenerate pairs: same features, several-fold different conductances."""

import numpy as np
import pandas as pd
import pytest

from condspace.degeneracy import degenerate_pairs


def _table(rates, labels=None):
    return pd.DataFrame({"label": labels or ["spiking"] * len(rates), "spiking_freq_hz": rates})


def test_finds_the_pair_with_equal_features_and_different_conductances():
    table = _table([10.0, 10.1, 30.0, 60.0])
    g = np.array([[1.0, 5.0], [4.0, 5.0], [1.0, 5.0], [1.0, 5.0]])
    pairs = degenerate_pairs(table, g, ["g_a", "g_b"], ["spiking_freq_hz"], max_feature_diff=0.02, min_fold=3.0)
    assert pairs[["i", "j"]].to_numpy().tolist() == [[0, 1]]
    assert pairs["fold"][0] == pytest.approx(4.0)
    assert pairs["channel"][0] == "g_a"
    assert pairs["max_rel_feature_diff"][0] == pytest.approx(0.1 / 10.1)


def test_respects_thresholds_and_class():
    table = _table([10.0, 10.1], labels=["spiking", "bursting"])
    g = np.array([[1.0], [10.0]])
    assert degenerate_pairs(table, g, ["g_a"], ["spiking_freq_hz"], label="spiking").empty
    same = _table([10.0, 10.1])
    assert degenerate_pairs(same, np.array([[1.0], [2.0]]), ["g_a"], ["spiking_freq_hz"], min_fold=3.0).empty
    assert degenerate_pairs(same, np.array([[1.0], [10.0]]), ["g_a"], ["spiking_freq_hz"],
                            max_feature_diff=0.001).empty


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="expected shape"):
        degenerate_pairs(_table([1.0, 2.0]), np.ones((3, 2)), ["a", "b"], ["spiking_freq_hz"])
