"""Noise in the inference: the noise strength as an inferred parameter, and a predictive check that
holds the truth under noise and still rejects a wrong posterior (SCIENCE.md §5-6).

The posterior here is small and short (a ±20 % box around the STG "DIC spiking" set, the noise
strength on [0, 10] µA/cm², 1,200 simulations of 2.5 s with the first 1 s discarded, one small
flow): enough to see whether the noise is identified, in about a minute on one core.
"""

from __future__ import annotations

import _small_posteriors
import numpy as np
import pytest

from condspace import cells, features, inference, simulate

STG = cells.get("stg")
IRREGULAR = STG.recordings["stg_irregular"]  # ("DIC spiking", σ = 8 µA/cm², seed)
SHORT = inference.Protocol.for_cell(STG, t_max=2500.0, transient=1000.0)


def _train(example: str, sigma, seed: int = 4, protocol: inference.Protocol = SHORT) -> list[np.ndarray]:
    """Spike trains of one published set at each noise strength of ``sigma`` (one neuron each)."""
    g = np.tile([STG.examples[example][n] for n in STG.conductance_names], (len(sigma), 1))
    res = simulate(STG, g, t_max=protocol.t_max, transient=protocol.transient, noise_std=np.asarray(sigma, float),
                   seed=seed, progress=False)
    return res.spike_times


@pytest.fixture(scope="module")
def noise_posterior() -> inference.Posterior:
    # the noise alone (missed=0): what the missed-spike model adds is tested in test_inference_missed.py
    return _small_posteriors.around_example(IRREGULAR[0], SHORT, missed=0)


# ----- the prior -----------------------------------------------------------------------------------
def test_noise_follows_the_conductances_and_conductance_draws_do_not_move():
    with_noise, without = inference.make_prior("stg", missed=0), inference.make_prior("stg", noise=0, missed=0)
    assert with_noise.names == (*without.names, "noise_std") and with_noise.has_noise and not without.has_noise
    assert (with_noise.low[-1], with_noise.high[-1]) == (0.0, STG.noise_prior)
    a, b = with_noise.sample(50, seed=3), without.sample(50, seed=3)
    np.testing.assert_array_equal(a[:, :-1], b)  # the noise column is drawn after the conductances
    np.testing.assert_array_equal(with_noise.noise(a), a[:, -1])
    np.testing.assert_array_equal(inference.conductances(STG, with_noise, a), inference.conductances(STG, without, b))
    assert list(with_noise.frame(a).columns)[-1] == "noise_std"
    assert with_noise.to_dict() != without.to_dict()  # so the training-set and posterior caches differ


def test_bad_noise_prior_and_protocol_conflict_are_refused():
    with pytest.raises(ValueError, match="noise: the largest noise strength must be a finite number"):
        inference.make_prior("stg", noise=-1.0)
    with pytest.raises(ValueError, match="noise_std and p_missed must follow the conductances"):
        inference.Prior(("noise_std", "g_Na"), np.zeros(2), np.ones(2))
    with pytest.raises(ValueError, match="lower bound must be ≥ 0"):
        inference.Prior(("g_Na", "noise_std"), np.array([0.0, -1.0]), np.ones(2))
    prior = inference.make_prior("stg")
    noisy = inference.Protocol.for_cell(STG, t_max=200.0, transient=100.0, noise_std=1.0)
    with pytest.raises(ValueError, match="the prior infers the noise strength"):
        inference.simulate_features(STG, prior, prior.sample(2, seed=0), noisy, progress=False)


def test_training_simulations_use_each_rows_noise():
    """A row of θ is simulated with its own σ: the same as simulate() with that per-neuron σ."""
    prior = inference.make_prior("stg", missed=0)
    g = [STG.examples["DIC spiking"][n] for n in prior.conductance_names]
    theta = np.array([g + [0.0], g + [8.0]])
    proto = inference.Protocol.for_cell(STG, t_max=1500.0, transient=500.0)
    sim = inference.simulate_features(STG, prior, theta, proto, seed=5, progress=False)
    direct = simulate(STG, np.array([g, g]), t_max=1500.0, transient=500.0, noise_std=np.array([0.0, 8.0]), seed=5,
                      progress=False)
    for a, b in zip(sim.spike_times, direct.spike_times, strict=True):
        np.testing.assert_array_equal(a, b)
    cv = features.extract(sim.spike_times, 1000.0)["cv_isi"].to_numpy()
    assert cv[1] > 5 * cv[0]  # the strong noise makes the regular train irregular


# ----- the predictive check under noise ------------------------------------------------------------
def test_tolerances_hold_the_truth_at_the_irregular_recordings_noise():
    """Repeats of the irregular recording's ḡ at its noise (σ = 8, 3 s window): the check accepts a
    repeat for another ≥ 95 % of the time, and the 95 % band of pairwise feature differences lies
    inside the tolerances (the reason for them, see condspace.inference.diagnostics)."""
    for example in (IRREGULAR[0], "bursting"):
        rep = inference.feature_spread(STG, STG.examples[example], IRREGULAR[1], n_repeats=60, seed=11)
        assert inference.truth_pass_fraction(rep) >= 0.95, example
        off = ~np.eye(len(rep), dtype=bool)
        rate, cv = rep["rate_hz"].to_numpy(), rep["cv_isi"].to_numpy()
        assert np.percentile(np.abs(rate[:, None] - rate[None, :])[off] / rate[:, None].repeat(len(rep), 1)[off],
                             95) <= inference.RATE_TOLERANCE
        if example == IRREGULAR[0]:  # noisy tonic: straddles CV 0.15 but stays tonic-like
            assert np.all(cv <= inference.CV_TONIC_LIKE) and set(rep["label"]) == {"spiking", "bursting"}
            assert np.percentile(np.abs(cv[:, None] - cv[None, :])[off], 95) <= inference.CV_TOLERANCE
        else:
            spb, per = rep["spikes_per_burst"].to_numpy(), rep["burst_period_ms"].to_numpy()
            assert np.percentile(np.abs(spb[:, None] - spb[None, :])[off], 95) <= inference.SPB_TOLERANCE
            assert np.percentile(np.abs(per[:, None] - per[None, :])[off] / per[:, None].repeat(len(rep), 1)[off],
                                 95) <= inference.PERIOD_TOLERANCE


def test_the_class_boundary_alone_does_not_decide():
    """A noisy tonic train classed bursting (CV just above 0.15) matches a spiking one of the same rate
    and CV range, but not a real burster of the same rate."""
    isi = np.full(40, 50.0)
    tonic = np.cumsum(isi * (1 + 0.14 * np.resize([1, -1], 40)))  # CV 0.14: spiking
    noisy = np.cumsum(isi * (1 + 0.17 * np.resize([1, -1], 40)))  # CV 0.17: bursting by the class rule
    burster = np.concatenate([k * 400.0 + np.arange(8) * 6.0 for k in range(5)])  # 20 Hz in bursts
    obs = features.extract([noisy], 2000.0).iloc[0]
    sims = features.extract([tonic, burster], 2000.0)
    assert obs["label"] == "bursting" and sims["label"].tolist() == ["spiking", "bursting"]
    passed, rule = inference.reproduces(obs, sims)
    assert passed.tolist() == [True, False] and "tonic-like" in rule
    far = features.extract([np.cumsum(isi * (1 + 0.3 * np.resize([1, -1], 40)))], 2000.0)  # CV 0.30
    assert not inference.reproduces(features.extract([tonic], 2000.0).iloc[0], far)[0][0]  # CV beyond ±0.07


def test_noise_strength_is_inferred_and_a_wrong_posterior_fails(noise_posterior):
    """Clean and noisy recordings of one set: the posterior orders their noise and brackets the noisy
    one's σ; its samples pass the check, while prior draws and a burster's posterior fail it."""
    clean, noisy = _train(IRREGULAR[0], [0.1, IRREGULAR[1]])
    samples = _small_posteriors.samples_of(noise_posterior, [clean, noisy], SHORT.duration)
    summaries = [noise_posterior.noise_summary(theta) for theta in samples]
    assert summaries[0]["median"] < 1.5 < 5.0 < summaries[1]["median"]
    assert summaries[1]["q05"] <= IRREGULAR[1] <= summaries[1]["q95"]
    assert summaries[0]["q95"] < summaries[1]["q05"]
    for train, theta in zip((clean, noisy), samples, strict=True):
        assert inference.predictive_check(noise_posterior, train, 40, samples=theta[:40], seed=2).fraction >= 0.8
    # wrong posteriors: draws from the whole STG prior, and samples of a bursting set (with noise)
    wide = inference.make_prior("stg", missed=0)
    prior_draws = wide.sample(40, seed=3)
    burster = np.tile([STG.examples["bursting"][n] for n in wide.conductance_names] + [0.1], (40, 1))
    burster[:, :-1] *= np.random.default_rng(4).uniform(0.95, 1.05, (40, len(wide.conductance_names)))
    for train in (clean, noisy):
        for wrong in (prior_draws, burster):
            chk = inference.predictive_check(noise_posterior, train, 40, samples=wrong, seed=2)
            assert chk.fraction <= 0.15, chk.criterion
    # and the clean posterior's samples do not pass the noisy recording (the CV carries the noise)
    assert inference.predictive_check(noise_posterior, noisy, 40, samples=samples[0][:40], seed=2).fraction <= 0.2
