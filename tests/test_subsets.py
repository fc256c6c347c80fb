"""The one channel-subset solver (condspace.subsets), shared by compensation, modulation and maps."""

import numpy as np
import pytest

from condspace import neuromodulation, populations, subsets


@pytest.mark.parametrize("k", [1, 2, 3])
def test_solve_matches_lapack_on_well_conditioned_batches(k):
    rng = np.random.default_rng(k)
    A = rng.standard_normal((500, k, k)) + 3.0 * np.eye(k)
    A *= rng.lognormal(0.0, 3.0, (500, 1, k))  # columns of very different scales (channels' S columns)
    r = rng.standard_normal((500, k))
    x, singular = subsets.solve_stacked(A, r)
    assert not singular.any()
    np.testing.assert_allclose(x, np.linalg.solve(A, r[..., None])[..., 0], rtol=1e-9)


def test_singularity_is_scale_free_and_flags_dependent_columns():
    A = np.array([[[1.0, 2.0], [2.0, 4.0]],  # dependent columns
                  [[1e-8, 0.0], [0.0, 1e8]],  # diagonal: Hadamard ratio 1 whatever the scales
                  [[1.0, 0.0], [0.0, 0.0]],  # a zero column
                  [[np.nan, 1.0], [1.0, 1.0]]])  # NaN entries
    x, singular = subsets.solve_stacked(A, np.ones((4, 2)))
    np.testing.assert_array_equal(singular, [True, False, True, True])
    assert np.isnan(x[singular]).all()
    np.testing.assert_allclose(x[1], [1e8, 1e-8])


def test_list_form_broadcasts_scalar_entries_like_populations_uses_it():
    """Voltage-only columns are scalars, calcium-dependent ones per neuron: both mix in one system."""
    b = [np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.0])]
    x, singular = subsets.solve([[2.0, np.array([0.0, 1.0, 0.0])], [0.0, 1.0]], b)
    np.testing.assert_allclose(np.stack(x, axis=1), [[0.5, 0.0], [0.5, 1.0], [1.5, 0.0]])
    assert not np.any(singular)


def test_outcome_precedence_singular_then_non_finite_then_negative():
    X = np.array([[1.0, 2.0], [-1.0, 2.0], [np.nan, -1.0], [-1.0, np.inf], [1.0, 1.0]])
    singular = np.array([False, False, False, False, True])
    codes = subsets.outcome(X, singular)
    np.testing.assert_array_equal(codes, [0, 3, 2, 2, 1])
    assert [subsets.STATUS[c] for c in codes] == ["reachable", "negative", "non-finite", "non-finite", "singular"]
    assert subsets.REASONS == ("", "singular", "non-finite", "negative")


def test_compensation_modulation_and_maps_share_the_one_solver():
    """Both callers take the solve, its singularity test and its outcome codes from condspace.subsets."""
    assert populations.solve is subsets.solve and populations.outcome is subsets.outcome
    system, maps = neuromodulation.system, neuromodulation.maps  # paths and fixed point; maps
    assert system.solve_stacked is subsets.solve_stacked and maps.solve_stacked is subsets.solve_stacked
    assert system.outcome is subsets.outcome
    assert populations.SINGULAR_RTOL == neuromodulation.SINGULAR_TOL == subsets.SINGULAR_RTOL
    assert neuromodulation.STATUS is subsets.STATUS and populations.REASONS is subsets.REASONS
