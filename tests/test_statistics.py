"""condspace.statistics: spread and separability of sample clouds, against definitions and brute force."""

import numpy as np
import pytest

from condspace import statistics


def test_iqr_of_a_uniform_grid_and_nan_ignored():
    x = np.linspace(0.0, 1.0, 101)
    samples = np.column_stack([x, 10 * x])
    samples[5, 1] = np.nan  # a missing value does not count
    got = statistics.iqr(samples)
    assert got[0] == pytest.approx(0.5)
    assert got[1] == pytest.approx(np.nanpercentile(samples[:, 1], 75) - np.nanpercentile(samples[:, 1], 25))


def test_spread_ratio_is_the_geometric_mean_of_the_axis_ratios():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(20000, 2))
    narrower = ref * np.array([0.5, 2.0])  # half as wide on one axis, twice as wide on the other
    assert statistics.spread_ratio(narrower, ref) == pytest.approx(1.0, rel=1e-9)
    assert statistics.spread_ratio(ref * 0.25, ref) == pytest.approx(0.25, rel=1e-9)


def test_spread_ratio_refuses_a_constant_reference_column_and_mismatched_columns():
    ref = np.column_stack([np.arange(10.0), np.ones(10)])
    with pytest.raises(ValueError, match="zero"):
        statistics.spread_ratio(ref, ref)
    with pytest.raises(ValueError, match="columns"):
        statistics.spread_ratio(np.ones((5, 3)), np.arange(20.0).reshape(10, 2))


def test_separability_matches_brute_force_pairs():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.0, 1.0, 300), rng.normal(0.7, 1.0, 200)
    b[:10] = np.round(b[:10], 1)
    a[:10] = b[:10]  # ties count half
    greater = (a[:, None] > b[None, :]).mean() + 0.5 * (a[:, None] == b[None, :]).mean()
    assert statistics.separability(a, b) == pytest.approx(max(greater, 1 - greater), abs=1e-12)


def test_separability_limits():
    x = np.arange(50.0)
    assert statistics.separability(x, x) == pytest.approx(0.5)
    assert statistics.separability(x, x + 100) == 1.0
    assert statistics.separability(np.append(x, np.nan), x + 100) == 1.0
    with pytest.raises(ValueError, match="finite"):
        statistics.separability(np.array([np.nan]), x)
