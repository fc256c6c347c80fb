"""Missed spikes in the inference: the probability that the detector missed a spike as an inferred
parameter (an observation model: each fired spike is reported with probability 1 − p_missed).

A detector that misses a few spikes of a tonic train leaves a few doubled intervals: a CV that no
regular spiker makes, noisy or not, so a posterior without this model can only call the train
irregular (issue 14's misspecified recordings). A cell type opts in by declaring ``missed_prior``
(the STG does not; these tests ask for it with ``make_prior(..., missed=0.15)``). The posterior here
is small (a ±20 % box around the STG "tonic spiking" set, no noise, p_missed on [0, 0.15], 1,200
simulations with a 5 s window, one small flow): enough to see whether the misses are identified
and whether the predictive check then holds, in about a minute on one core.
"""

from __future__ import annotations

import dataclasses

import _small_posteriors
import numpy as np
import pytest

from condspace import cells, features, inference, simulate

STG = cells.get("stg")
TONIC = "tonic spiking"  # 15 Hz, CV < 0.01 without noise
WINDOW = inference.Protocol.for_cell(STG, t_max=6000.0, transient=1000.0)
MISSED_MAX = 0.15


def _tonic_train() -> np.ndarray:
    g = np.array([[STG.examples[TONIC][n] for n in STG.conductance_names]])
    return simulate(STG, g, t_max=WINDOW.t_max, transient=WINDOW.transient, progress=False).spike_times[0]


@pytest.fixture(scope="module")
def missed_posterior() -> inference.Posterior:
    post = _small_posteriors.around_example(TONIC, WINDOW, noise=0, missed=MISSED_MAX)
    assert post.prior.names[-1] == inference.MISSED_NAME and not post.prior.has_noise
    return post


# ----- the prior and the observation model ---------------------------------------------------------
def test_p_missed_follows_the_noise_and_earlier_draws_do_not_move():
    both, noise_only = inference.make_prior("stg", missed=MISSED_MAX), inference.make_prior("stg")
    assert STG.missed_prior == 0.0 and not noise_only.has_missed  # no cell type ships with it declared
    declared = dataclasses.replace(STG, missed_prior=MISSED_MAX)  # a declaration that opts in
    assert inference.make_prior(declared).names == both.names
    assert both.names == (*noise_only.names, "p_missed") and both.has_missed and not noise_only.has_missed
    assert both.observation_names == ("noise_std", "p_missed") and both.conductance_names == STG.inferred_names
    assert (both.low[-1], both.high[-1]) == (0.0, 0.15)
    a, b = both.sample(50, seed=3), noise_only.sample(50, seed=3)
    np.testing.assert_array_equal(a[:, :-1], b)  # p_missed is drawn after the conductances and the noise
    np.testing.assert_array_equal(both.missed(a), a[:, -1])
    np.testing.assert_array_equal(both.noise(a), b[:, -1])
    assert noise_only.missed(b) is None and both.to_dict() != noise_only.to_dict()  # caches differ
    no_noise = inference.make_prior("stg", noise=0, missed=MISSED_MAX)
    assert no_noise.names == (*STG.inferred_names, "p_missed") and no_noise.noise(no_noise.sample(2)) is None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"missed": -0.1}, "missed: the largest probability of a missed spike must be a number in"),
    ({"missed": 1.0}, "missed: the largest probability of a missed spike must be a number in"),
    ({"missed": True}, "missed: the largest probability"),
    ({"missed": 0.1, "bounds": {"p_missed": (0.0, 1.5)}}, "p_missed is a probability; its bounds must lie in"),
])
def test_bad_missed_priors_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        inference.make_prior("stg", **kwargs)


def test_recording_parameters_must_follow_the_conductances_in_order():
    for names in (("p_missed", "g_Na"), ("g_Na", "p_missed", "noise_std")):
        with pytest.raises(ValueError, match="noise_std and p_missed must follow the conductances, in that order"):
            inference.Prior(names, np.zeros(len(names)), np.full(len(names), 0.5))


def test_miss_spikes_is_seeded_thinning():
    trains = [np.arange(20_000.0), np.arange(20_000.0), np.arange(5.0), np.empty(0)]
    out = inference.miss_spikes(trains, [0.0, 0.1, 1.0, 0.5], seed=7)
    assert len(out[0]) == 20_000 and len(out[2]) == 0 and len(out[3]) == 0
    assert abs(1 - len(out[1]) / 20_000 - 0.1) < 0.01  # binomial sd 0.002
    assert np.isin(out[1], trains[1]).all() and np.all(np.diff(out[1]) > 0)  # a subsequence, order kept
    again = inference.miss_spikes(trains, [0.0, 0.1, 1.0, 0.5], seed=7)
    np.testing.assert_array_equal(again[1], out[1])
    assert not np.array_equal(inference.miss_spikes(trains, 0.1, seed=8)[1], out[1])
    with pytest.raises(ValueError, match=r"p_missed: need one probability per spike train \(4,\)"):
        inference.miss_spikes(trains, [0.1, 0.2])
    with pytest.raises(ValueError, match=r"p_missed: probabilities must lie in \[0, 1\]"):
        inference.miss_spikes(trains, [0.1, 0.2, 1.2, np.nan])


def test_training_simulations_report_what_the_detector_saw():
    """Each θ row's train is the neuron's train thinned with that row's p_missed (p = 0: untouched)."""
    prior = inference.make_prior("stg", noise=0, missed=MISSED_MAX)
    g = [STG.examples[TONIC][n] for n in prior.conductance_names]
    sim = inference.simulate_features(STG, prior, np.array([g + [0.0], g + [0.3]]), WINDOW, seed=5, progress=False)
    fired = _tonic_train()
    np.testing.assert_array_equal(sim.spike_times[0], fired)
    assert np.isin(sim.spike_times[1], fired).all() and 0.5 * len(fired) < len(sim.spike_times[1]) < len(fired)
    cv = features.extract(sim.spike_times, WINDOW.duration)["cv_isi"].to_numpy()
    assert cv[0] < 0.02 < 0.2 < cv[1]  # the misses, not the neuron, make the train irregular


# ----- inference -------------------------------------------------------------------------------------
# sbi warns that the training features have outliers "beyond 10x IQR" for z-scoring: a single missed
# spike takes a tonic train's CV from ~0.01 to ~0.2, so the thinned rows are outliers by design.
@pytest.mark.filterwarnings("ignore:Data has extreme outliers:UserWarning")
def test_missed_spikes_are_inferred_and_the_check_holds(missed_posterior):
    """A clean and a 10 %-missed recording of one tonic set: the posterior tells them apart and brackets
    the true p_missed; its samples reproduce the thinned recording in the predictive check, while the
    same samples with perfect detection (p_missed = 0) do not."""
    fired = _tonic_train()
    thinned = inference.miss_spikes([fired], 0.1, seed=3)[0]
    samples = _small_posteriors.samples_of(missed_posterior, [fired, thinned], WINDOW.duration)
    summaries = [missed_posterior.missed_summary(theta) for theta in samples]
    p_true = 1 - len(thinned) / len(fired)  # the share this draw missed (3 of 76)
    # a few misses identify p_missed only loosely (their count is binomial), but the clean train is
    # read as nearly perfectly detected and the thinned one's share lies inside its 90 % interval
    assert summaries[0]["median"] < 0.03 < summaries[1]["median"] and summaries[0]["q95"] < 0.05
    assert summaries[1]["q05"] <= p_true <= summaries[1]["q95"]
    # The ceiling: the true set, detected with the true p_missed, passes only as often as the count of
    # its fresh misses lands near this draw's (the CV is set by it: ±0.07 is about ±2 misses of 76).
    truth = np.tile([STG.examples[TONIC][n] for n in missed_posterior.prior.conductance_names] + [p_true], (60, 1))
    ceiling = inference.predictive_check(missed_posterior, thinned, 60, samples=truth, seed=2).fraction
    chk = inference.predictive_check(missed_posterior, thinned, 60, samples=samples[1][:60], seed=2)
    assert 0.5 <= ceiling and chk.fraction >= ceiling - 0.15 and "p_missed" in chk.table
    perfect = samples[1][:60].copy()
    perfect[:, -1] = 0.0
    assert inference.predictive_check(missed_posterior, thinned, 60, samples=perfect, seed=2).fraction <= 0.1
