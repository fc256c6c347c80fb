"""Tests of condspace.inference: prior, summary features, cache, NPE plumbing on a toy simulator
with a known posterior, save/load, predictive-check rules and calibration.

The toy problem: θ ~ U([-4, 4]²), x = θ + N(0, 0.3² I). For an observation far from the box edges
the posterior is N(x, 0.3² I) up to a negligible truncation, so trained samples can be compared
with exact ones (C2ST ≈ 0.5 when they are indistinguishable; Lopez-Paz & Oquab 2017).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from condspace import _io, cells, features, inference

TOY_SIGMA = 0.3
TOY_PRIOR = inference.Prior(("a", "b"), np.array([-4.0, -4.0]), np.array([4.0, 4.0]))
TOY_SETTINGS = inference.EstimatorSettings(hidden_features=32, num_transforms=2, max_epochs=40, batch_size=128,
                                           learning_rate=5e-4, transform="logit")


def toy_simulate(theta: np.ndarray, seed: int = 1) -> np.ndarray:
    return theta + TOY_SIGMA * np.random.default_rng(seed).standard_normal(theta.shape)


@pytest.fixture(scope="module")
def toy_posterior() -> inference.Posterior:
    theta = TOY_PRIOR.sample(3000, seed=0)
    return inference.train(theta, toy_simulate(theta), TOY_PRIOR, settings=TOY_SETTINGS, seed=0,
                           feature_names=("x1", "x2"), cell="toy", progress=False)


def periodic(rate_hz: float, duration: float, start: float = 3000.0) -> np.ndarray:
    return start + np.arange(0.0, duration, 1000.0 / rate_hz)


def bursts(n: int, spikes: int, isi: float, period: float, start: float = 3000.0) -> np.ndarray:
    return np.concatenate([start + k * period + np.arange(spikes) * isi for k in range(n)])


# ----- prior ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["stg", "da"])
def test_prior_contains_every_published_example(name):
    cell = cells.get(name)
    prior = inference.make_prior(cell)
    recording = ("noise_std",) + (("p_missed",) if cell.missed_prior else ())  # neither declares missed_prior
    assert prior.conductance_names == cell.inferred_names and prior.names == (*cell.inferred_names, *recording)
    for label, g in cell.examples.items():
        theta = np.array([g[n] for n in prior.conductance_names] + [0.1] + [0.0] * (len(recording) - 1))
        assert prior.contains(theta)[0], f"{name} {label} outside the prior"
    noise_max = prior.high[prior.names.index("noise_std")]
    for ident, (_, noise, _) in cell.recordings.items():  # every declared recording's noise is inside too
        assert 0 <= noise < noise_max, f"{ident}: noise {noise} outside [0, {noise_max}]"


def test_prior_stg_widening_and_da_inferred_nmda():
    stg = inference.make_prior("stg")
    assert dict(zip(stg.names, zip(stg.low, stg.high, strict=True), strict=True))["g_CaS"] == (0.0, 60.0)
    assert stg.low[stg.names.index("g_leak")] == 0.005  # leak > 0: simulate() rejects 0
    lit = inference.make_prior("stg", widen=False)
    assert lit.high[lit.names.index("g_CaT")] == 12.0
    da = inference.make_prior("da")
    # g_NMDA is inferred over the box the declaration justifies; the published sets (0.0085–0.0116,
    # the values the DA recordings are made with) lie inside it, the fixed 0.012 too
    assert "g_NMDA" in da.conductance_names and len(da.conductance_names) == 7 and da.names[-1] == "noise_std"
    j = da.names.index("g_NMDA")
    assert (da.low[j], da.high[j]) == (0.004, 0.02)
    published = [ex["g_NMDA"] for ex in cells.get("da").examples.values()]
    assert all(da.low[j] < v < da.high[j] for v in [*published, cells.get("da").fixed["g_NMDA"]])
    theta = da.sample(3, seed=1)
    g = inference.conductances("da", da, theta)
    np.testing.assert_array_equal(g[:, cells.get("da").index("NMDA")], theta[:, j])  # the draws, not 0.012
    assert inference.make_prior("da", widen=False).names == da.names


def test_prior_torch_boxuniform_and_errors():
    prior = inference.make_prior("stg")
    box = prior.torch()
    s = box.sample((500,)).numpy()
    assert s.shape == (500, 9) and prior.contains(s).all()  # 8 conductances and noise_std
    assert torch.isinf(box.log_prob(torch.as_tensor(prior.high * 1.01, dtype=torch.float32)))
    with pytest.raises(KeyError, match="g_NMDA"):
        inference.make_prior("stg", bounds={"g_NMDA": (0, 1)})
    with pytest.raises(ValueError, match="g_Kd"):
        inference.Prior(("g_Na", "g_Kd"), np.array([0.0, 5.0]), np.array([1.0, 5.0]))


# ----- summary features ---------------------------------------------------------------------------
def test_summary_features_of_a_periodic_train():
    x = inference.summary_frame([periodic(10.0, 3000.0)], 3000.0).iloc[0]
    assert x["log10_rate_hz"] == pytest.approx(1.0)
    assert x["log10_inst_freq_hz"] == pytest.approx(1.0)
    for q in ("q05", "q25", "q50", "q75", "q95"):
        assert x[f"log10_isi_{q}"] == pytest.approx(2.0)
    assert x["cv_isi"] == pytest.approx(0.0, abs=1e-12)
    assert x["log10_isi_sd"] == pytest.approx(0.0, abs=1e-12)
    assert x["isi_serial_corr"] == pytest.approx(0.0, abs=1e-6)
    assert x["long_isi_fraction"] == 0.0


def test_summary_features_of_regular_bursts():
    # 4 spikes 10 ms apart every 200 ms: ISIs 10, 10, 10, 170 → one long ISI in four.
    train = bursts(15, 4, 10.0, 200.0)
    x = inference.summary_frame([train], 3000.0).iloc[0]
    assert x["long_isi_fraction"] == pytest.approx(14 / 59)  # 59 ISIs, 14 of them interburst gaps
    assert x["log10_isi_q05"] == pytest.approx(1.0)
    assert x["log10_isi_q95"] == pytest.approx(np.log10(170.0))
    assert x["log10_rate_hz"] == pytest.approx(np.log10(20.0))
    assert x["isi_serial_corr"] < -0.2  # a long ISI is followed by a short one
    # Cross-check CV against the project's feature extractor (same ddof).
    assert x["cv_isi"] == pytest.approx(features.extract([train], 3000.0)["cv_isi"].iloc[0])


def test_summary_features_do_not_depend_on_the_recording_length():
    # The spike count triples from a 3 s to a 9 s window; the features only move by the edge
    # effect of the last, gap-less burst (14 gaps in 59 ISIs versus 44 in 179).
    short = inference.summary_features([bursts(15, 4, 10.0, 200.0)], 3000.0)[0]
    long = inference.summary_features([bursts(45, 4, 10.0, 200.0)], 9000.0)[0]
    np.testing.assert_allclose(short, long, rtol=0.04, atol=0.012)


def test_summary_features_silent_rows_are_nan_and_bad_trains_rejected():
    x = inference.summary_features([np.array([3000.0, 3100.0]), np.array([]), periodic(5, 3000)], 3000.0)
    assert np.isnan(x[:2]).all() and np.isfinite(x[2]).all()
    with pytest.raises(ValueError, match="increasing"):
        inference.summary_features([np.array([3000.0, 3100.0, 3050.0])], 3000.0)
    with pytest.raises(ValueError, match="duration"):
        inference.summary_features([periodic(5, 3000)], 0.0)
    with pytest.raises(ValueError, match="silent"):
        inference.observe(np.array([3000.0, 3500.0]), 3000.0)


def test_feature_cloud_distance_inside_and_outside():
    rng = np.random.default_rng(0)
    cloud = rng.standard_normal((4000, 3)) * [1.0, 2.0, 0.5]
    inside = inference.feature_cloud_distance([0.1, -0.2, 0.0], cloud)
    outside = inference.feature_cloud_distance([0.0, 0.0, 4.0], cloud)  # 8 sd along the narrow axis
    assert inside.percentile < 20 and outside.percentile == 100.0
    assert outside.distance == pytest.approx(8.0, rel=0.05)
    assert outside.nearest > 5 * outside.nearest_typical > 0


# ----- simulator ----------------------------------------------------------------------------------
def test_simulate_features_excludes_silent_and_counts_it():
    cell = cells.get("stg")
    prior = inference.make_prior(cell)
    tonic = [cell.example("tonic spiking")[n] for n in prior.conductance_names] + [0.0]  # noise_std 0
    silent = [0, 0, 0, 0, 0, 0, 0, 0.01, 0.0]  # leak only: rests at E_leak
    proto = inference.Protocol.for_cell(cell, t_max=2000.0, transient=1000.0)
    sim = inference.simulate_features(cell, prior, np.array([tonic, silent]), proto, progress=False)
    assert sim.labels.tolist() == ["spiking", "silent"]
    assert sim.valid.tolist() == [True, False] and sim.excluded_fraction == 0.5
    assert np.isnan(sim.x[1]).all()
    assert 10 ** sim.x[0, 0] == pytest.approx(15.3, abs=1.0)  # ≈ 15 Hz (SCIENCE.md §1)


def test_cached_simulations_count_nan_and_flagged_runs(tmp_path):
    def simulator(theta):
        x = toy_simulate(theta)
        x[::10] = np.nan  # a failed feature computation
        ok = np.ones(len(theta), dtype=bool)
        ok[1::10] = False  # a numerically invalid run
        return x, ok, np.where(ok, "spiking", "invalid")

    ts = inference.cached_simulations(simulator, TOY_PRIOR, 100, seed=0, key_parts={"sim": "toy"}, cache_dir=tmp_path)
    assert ts.info["n_nonfinite"] == 10 and ts.info["n_flagged"] == 10
    assert ts.valid.sum() == 80 and ts.excluded_fraction == pytest.approx(0.2)
    assert np.isnan(ts.x[~ts.valid]).all() and np.isfinite(ts.x[ts.valid]).all()


# ----- cache -------------------------------------------------------------------------------------
class CountingSimulator:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, theta):
        self.calls += 1
        return toy_simulate(theta), np.ones(len(theta), bool), np.full(len(theta), "spiking")


def test_cache_is_reused_and_a_changed_key_rebuilds(tmp_path):
    sim = CountingSimulator()
    a = inference.cached_simulations(sim, TOY_PRIOR, 50, seed=0, key_parts={"noise": 0.3}, cache_dir=tmp_path)
    b = inference.cached_simulations(sim, TOY_PRIOR, 50, seed=0, key_parts={"noise": 0.3}, cache_dir=tmp_path)
    assert sim.calls == 1 and b.info["cached"] and not a.info["cached"]
    np.testing.assert_array_equal(a.x, b.x)
    c = inference.cached_simulations(sim, TOY_PRIOR, 50, seed=0, key_parts={"noise": 0.4}, cache_dir=tmp_path)
    assert sim.calls == 2 and c.key != a.key and not c.info["cached"]
    inference.cached_simulations(sim, TOY_PRIOR, 50, seed=1, key_parts={"noise": 0.3}, cache_dir=tmp_path)
    assert sim.calls == 3  # the seed is part of the key
    assert len(list(tmp_path.glob("*.npz"))) == 3 and not list(tmp_path.glob("*.tmp"))  # atomic: no leftovers


def test_row_independent_sets_are_extended_or_sliced_not_resimulated(tmp_path):
    rows = []

    def simulator(theta):  # deterministic per row
        rows.append(len(theta))
        return 2.0 * theta, np.ones(len(theta), bool), np.full(len(theta), "spiking")

    kw = {"seed": 3, "key_parts": {"sim": "double"}, "cache_dir": tmp_path, "row_independent": True}
    inference.cached_simulations(simulator, TOY_PRIOR, 30, **kw)
    grown = inference.cached_simulations(simulator, TOY_PRIOR, 50, **kw)
    assert rows == [30, 20] and grown.info["extended_from"] == 30  # only the 20 missing draws simulated
    small = inference.cached_simulations(simulator, TOY_PRIOR, 10, **kw)
    assert rows == [30, 20] and small.info["prefix_of"] == 30
    fresh = inference.cached_simulations(simulator, TOY_PRIOR, 50, **{**kw, "cache_dir": tmp_path / "new"})
    np.testing.assert_array_equal(grown.theta, fresh.theta)
    np.testing.assert_array_equal(grown.x, fresh.x)
    np.testing.assert_array_equal(small.x, fresh.x[:10])
    # Without row independence (e.g. a noisy simulator) nothing is reused.
    inference.cached_simulations(simulator, TOY_PRIOR, 40, **{**kw, "row_independent": False})
    assert rows[-1] == 40


def test_truncated_or_tampered_cache_is_detected_and_rebuilt(tmp_path):
    sim = CountingSimulator()
    first = inference.cached_simulations(sim, TOY_PRIOR, 50, seed=0, key_parts={}, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated (an interrupted copy)
    with pytest.warns(RuntimeWarning, match="unreadable"):
        again = inference.cached_simulations(sim, TOY_PRIOR, 50, seed=0, key_parts={}, cache_dir=tmp_path)
    assert sim.calls == 2 and not again.info["cached"]
    np.testing.assert_array_equal(first.theta, again.theta)
    # Arrays changed behind the cache's back: the checksum catches it.
    tampered = dict(np.load(path))
    tampered["x"] = tampered["x"] + 1.0
    np.savez(path, **tampered)
    with pytest.warns(RuntimeWarning, match="checksum"):
        inference.cached_simulations(sim, TOY_PRIOR, 50, seed=0, key_parts={}, cache_dir=tmp_path)
    assert sim.calls == 3
    # A valid file with another key (e.g. copied over) is refused by load_training_set.
    with pytest.raises(ValueError, match="key"):
        inference.load_training_set(path, "0" * 64)


# ----- NPE on the toy problem ----------------------------------------------------------------------
def test_toy_posterior_matches_the_analytic_one(toy_posterior):
    from sbi.utils.metrics import c2st

    x_obs = np.array([0.5, -1.0])
    samples = toy_posterior.sample(1000, x_obs, seed=0)
    exact = x_obs + TOY_SIGMA * np.random.default_rng(5).standard_normal((1000, 2))
    score = float(c2st(torch.as_tensor(samples, dtype=torch.float32), torch.as_tensor(exact, dtype=torch.float32)))
    assert 0.4 <= score <= 0.6, f"C2ST {score}"
    np.testing.assert_allclose(np.median(samples, axis=0), x_obs, atol=0.1)
    assert TOY_PRIOR.contains(samples).all()


def test_toy_posterior_is_calibrated_and_does_not_leak(toy_posterior):
    theta = TOY_PRIOR.sample(200, seed=9)
    cov = inference.expected_coverage(toy_posterior, theta, toy_simulate(theta, seed=9), levels=[0.5, 0.9],
                                      n_samples=500)
    np.testing.assert_allclose(cov["empirical"], [0.5, 0.9], atol=0.1)
    assert len(cov.attrs["ranks"]) == 200
    # Logit transform: every raw sample lies inside the box, even for an observation at the edge.
    assert inference.leakage(toy_posterior, np.array([[3.95, -3.95]]), n=2000)[0] == 0.0


def test_rejection_rounds_grow_with_a_low_acceptance(toy_posterior, monkeypatch):
    """With one proposal in a hundred accepted, a few rounds collect the samples (not one round of 16
    per sample found); with none accepted, sampling stops after max_tries · max(2n, 16) proposals
    with a clear error."""
    from condspace.inference import posterior as post_mod  # noqa: PLC0415

    sizes = []
    raw = type(toy_posterior)._raw

    def counting_raw(self, n, cond):
        sizes.append(n)
        return raw(self, n, cond)

    monkeypatch.setattr(type(toy_posterior), "_raw", counting_raw)
    monkeypatch.setattr(toy_posterior, "weights", lambda theta, x: np.full(theta.shape[:-1], 0.01))
    out = toy_posterior.sample(20, np.array([0.5, -0.5]), seed=3)
    assert out.shape == (20, 2) and len(sizes) <= 6, sizes
    assert sizes[0] == 40 and sizes[1] > 1000  # the second round sized on the acceptance seen
    assert post_mod._proposals(3, 0, 0) == 16 and post_mod._proposals(5, 2, 200) == 754
    assert post_mod._proposals(5, 0, 10**9) == post_mod.MAX_PROPOSALS
    monkeypatch.setattr(toy_posterior, "weights", lambda theta, x: np.zeros(theta.shape[:-1]))
    sizes.clear()
    with pytest.raises(RuntimeError, match=r"fewer than 4 samples accepted after 160 proposals"):
        toy_posterior.sample(4, np.array([0.5, -0.5]), seed=3, max_tries=10)
    assert sum(sizes) == 160 and len(sizes) < 10


class ConstantFlow:
    """A stand-in flow: every draw equals ``value``, the density is exp(``logp``) everywhere."""

    def __init__(self, value: float, logp: float) -> None:
        self.value, self.logp = value, logp

    def sample(self, shape, condition):
        return torch.full((shape[0], condition.shape[0], 2), self.value)

    def log_prob(self, theta, condition):
        return torch.full(theta.shape[:-1], self.logp)


def test_flow_ensemble_is_an_equal_mixture_of_its_members():
    ensemble = inference.FlowEnsemble([ConstantFlow(1.0, np.log(0.2)), ConstantFlow(2.0, np.log(0.6))])
    torch.manual_seed(0)
    draws = ensemble.sample((4000,), condition=torch.zeros(3, 2))
    assert draws.shape == (4000, 3, 2)
    assert set(np.unique(draws.numpy())) == {1.0, 2.0}
    assert abs(float((draws[:, 0, 0] == 2.0).float().mean()) - 0.5) < 0.03  # binomial sd 0.008
    lp = ensemble.log_prob(torch.zeros(5, 3, 2), condition=torch.zeros(3, 2))
    np.testing.assert_allclose(lp.numpy(), np.log((0.2 + 0.6) / 2), rtol=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        inference.FlowEnsemble([])


def test_toy_ensemble_density_is_the_mean_of_two_different_members(toy_posterior):
    ensemble = toy_posterior.estimator
    assert len(ensemble) == toy_posterior.settings.ensemble == 2
    assert toy_posterior.info["member_seeds"] == [0, 1] and len(toy_posterior.info["epochs"]) == 2
    theta = torch.tensor([[0.1, -0.3], [0.2, -0.2], [1.0, 1.0]])  # on the flows' (logit) space
    cond = torch.tensor([[0.5, -1.0]])
    with torch.no_grad():
        members = np.stack([m.log_prob(theta, condition=cond).numpy() for m in ensemble.members])
        mixture = ensemble.log_prob(theta, condition=cond).numpy()
    np.testing.assert_allclose(mixture, np.log(np.exp(members).mean(axis=0)), rtol=1e-5)
    assert not np.allclose(members[0], members[1])  # different seeds: two different flows


@pytest.mark.filterwarnings("ignore:Maximum number of epochs:UserWarning")  # a few epochs on purpose
def test_ensemble_members_trained_in_parallel_equal_those_trained_in_turn():
    theta = TOY_PRIOR.sample(600, seed=4)
    settings = inference.EstimatorSettings(hidden_features=16, num_transforms=2, max_epochs=3, batch_size=128)
    kw = {"settings": settings, "feature_names": ("x1", "x2"), "progress": False, "seed": 3}
    in_turn = inference.train(theta, toy_simulate(theta, seed=4), TOY_PRIOR, workers=1, **kw)
    parallel = inference.train(theta, toy_simulate(theta, seed=4), TOY_PRIOR, workers=2, **kw)
    assert in_turn.info["member_seeds"] == [3, 4]
    assert (in_turn.info["train_processes"], parallel.info["train_processes"]) == (1, 2)
    a, b = in_turn.estimator.state_dict(), parallel.estimator.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_training_reports_its_epochs_to_a_shared_counter():
    """The progress display of parallel training relies on sbi calling the epoch hook (sbi 0.27).

    Stopping at the epoch cap (as FAST budgets do) is recorded in the result, not warned about:
    the warning would land in the book's output with the library's path.
    """
    import multiprocessing
    import warnings

    theta = TOY_PRIOR.sample(400, seed=6)
    settings = inference.EstimatorSettings(hidden_features=16, num_transforms=1, max_epochs=4, batch_size=128)
    counter = multiprocessing.get_context("fork").RawValue("i", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        x = toy_simulate(theta, seed=6)
        result = inference.training._train_flow(theta, x, TOY_PRIOR, settings, 0, False, counter)
    assert counter.value == result["epochs"] > 0
    assert result["reached_max_epochs"] is True


def test_training_without_progress_prints_nothing(capfd):
    """sbi announces convergence on stdout; with progress off (parallel members) it must stay silent."""
    theta = TOY_PRIOR.sample(400, seed=7)
    settings = inference.EstimatorSettings(hidden_features=16, num_transforms=1, max_epochs=200, batch_size=128,
                                           stop_after_epochs=2)
    post = inference.train(theta, toy_simulate(theta, seed=7), TOY_PRIOR, settings=settings,
                           feature_names=("x1", "x2"), progress=False, workers=1)
    assert max(post.info["epochs"]) < 200  # converged: the case in which sbi prints
    assert capfd.readouterr().out == ""


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_ensemble_size_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="ensemble"):
        inference.EstimatorSettings(ensemble=bad)


def test_untransformed_flow_leaks_but_samples_stay_inside():
    theta = TOY_PRIOR.sample(3000, seed=0)
    settings = inference.EstimatorSettings(hidden_features=32, num_transforms=2, max_epochs=30, batch_size=128,
                                           learning_rate=5e-4, transform="none", class_restriction=False)
    post = inference.train(theta, toy_simulate(theta), TOY_PRIOR, settings=settings, feature_names=("x1", "x2"),
                           progress=False)
    # At the corner the exact posterior is N(edge, 0.3²) truncated to the box. The flow never saw
    # θ outside the box, so it spills some mass (its edges are smooth) but far less than the 75 %
    # an untruncated Gaussian would put outside.
    edge = np.array([[3.9, -3.9]])
    leak = inference.leakage(post, edge, n=4000)[0]
    assert 0.01 < leak < 0.5
    samples = post.sample(500, edge[0], seed=0)
    assert TOY_PRIOR.contains(samples).all()
    # Ranks use the truncated posterior: leaked samples are discarded, not counted as less dense.
    ranks = inference.hpd_ranks(post, np.array([[3.7, -3.7]]), edge, n_samples=2000)
    assert 0.0 <= ranks[0] <= 1.0


def test_no_sbi_logs_written(toy_posterior, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    theta = TOY_PRIOR.sample(200, seed=3)
    inference.train(theta, toy_simulate(theta), TOY_PRIOR, settings=inference.EstimatorSettings(max_epochs=1),
                    feature_names=("x1", "x2"), progress=False)
    assert not (tmp_path / "sbi-logs").exists()


class GaussianPosterior:
    """Exact-form posterior N(x, (scale·σ)² I) with the Posterior interface used by hpd_ranks."""

    def __init__(self, scale: float) -> None:
        self.sd = scale * TOY_SIGMA

    def sample_batched(self, n, x, seed=None):
        x = np.atleast_2d(x)
        return x[None] + self.sd * np.random.default_rng(seed).standard_normal((n, *x.shape))

    def log_prob(self, theta, x):
        return -0.5 * np.sum((np.asarray(theta) - np.atleast_2d(x)) ** 2, axis=-1) / self.sd**2

    def weights(self, theta, x):
        return np.ones(np.shape(theta)[:-1])


def test_expected_coverage_detects_over_and_under_confidence():
    theta = TOY_PRIOR.sample(400, seed=2)
    x = toy_simulate(theta, seed=2)
    cov = lambda s: inference.expected_coverage(GaussianPosterior(s), theta, x, levels=[0.5, 0.9])["empirical"]
    np.testing.assert_allclose(cov(1.0), [0.5, 0.9], atol=0.07)
    # 2-D Gaussian: coverage of the exact HPD region at level a for a posterior s times too narrow
    # is 1 − (1 − a)^(1/s²).
    np.testing.assert_allclose(cov(0.5), 1 - (1 - np.array([0.5, 0.9])) ** 0.25, atol=0.07)
    assert (cov(2.0) > [0.8, 0.98]).all()


# ----- save / load ---------------------------------------------------------------------------------
def test_save_load_round_trip_gives_identical_samples(toy_posterior, tmp_path):
    path = inference.save_posterior(tmp_path / "post.pt", toy_posterior)
    loaded = inference.load_posterior(path)
    x_obs = np.array([1.0, 2.0])
    np.testing.assert_array_equal(loaded.sample(300, x_obs, seed=4), toy_posterior.sample(300, x_obs, seed=4))
    theta = np.array([[1.0, 2.0], [0.0, 0.0]])
    np.testing.assert_allclose(loaded.log_prob(theta, x_obs), toy_posterior.log_prob(theta, x_obs))
    assert loaded.prior.names == ("a", "b") and loaded.feature_names == ("x1", "x2") and loaded.cell == "toy"
    assert loaded.settings == toy_posterior.settings
    assert not list(tmp_path.glob("*.tmp"))
    # A file claiming more flows than its weights hold is refused.
    blob = torch.load(io.BytesIO(_io.read_checked(path)), weights_only=True)
    blob["members"] = 3
    checked_torch_save(blob, tmp_path / "three.pt")
    with pytest.raises(ValueError, match="do not fit"):
        inference.load_posterior(tmp_path / "three.pt")


class Unsafe:
    """An arbitrary class: unpickling it would run code, so weights_only loading must refuse it."""


def checked_torch_save(blob, path):
    """torch.save behind the checksum header of condspace._io.write_checked (the posterior file layout)."""
    buf = io.BytesIO()
    torch.save(blob, buf)
    _io.write_checked(path, buf.getvalue())


def test_load_posterior_refuses_pickles_and_foreign_files(tmp_path):
    checked_torch_save({"format": inference.POSTERIOR_FORMAT, "payload": Unsafe()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="unreadable"):  # weights_only=True refuses arbitrary classes
        inference.load_posterior(tmp_path / "evil.pt")
    checked_torch_save({"hello": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a"):
        inference.load_posterior(tmp_path / "other.pt")
    checked_torch_save({"format": inference.POSTERIOR_FORMAT, "members": 2}, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="lacks"):
        inference.load_posterior(tmp_path / "partial.pt")
    _io.write_checked(tmp_path / "trunc.pt", b"PK\x03\x04garbage")
    with pytest.raises(ValueError, match="unreadable"):
        inference.load_posterior(tmp_path / "trunc.pt")
    torch.save({"format": inference.POSTERIOR_FORMAT}, tmp_path / "plain.pt")  # no checksum header
    with pytest.raises(ValueError, match="no condspace checksum"):
        inference.load_posterior(tmp_path / "plain.pt")


def test_sampling_rejects_silent_or_misshapen_observations(toy_posterior):
    with pytest.raises(ValueError, match="non-finite"):
        toy_posterior.sample(10, np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match="expected 2 features"):
        toy_posterior.sample(10, np.array([1.0, 2.0, 3.0]))


# ----- predictive check rules ----------------------------------------------------------------------
def _row(label, rate, spb=np.nan, period=np.nan, cv=None):
    cv = (0.02 if label == "spiking" else 1.2) if cv is None else cv
    return {"label": label, "rate_hz": rate, "spikes_per_burst": spb, "burst_period_ms": period, "cv_isi": cv}


def test_reproduces_rules():
    tonic = pd.Series(_row("spiking", 10.0))
    sims = pd.DataFrame([_row("spiking", 10.9), _row("spiking", 11.1), _row("bursting", 10.0, 4, 100)])
    ok, rule = inference.reproduces(tonic, sims)
    assert ok.tolist() == [True, False, False] and "10 %" in rule
    # under noise: a tonic train classed bursting by CV (0.18 > 0.15) is tonic-like, matched on rate and CV
    noisy = pd.Series(_row("bursting", 20.0, 3.0, 160.0, cv=0.18))
    sims = pd.DataFrame([_row("spiking", 21.0, cv=0.14), _row("bursting", 19.0, 6.0, 300.0, cv=0.22),
                         _row("spiking", 20.0, cv=0.01), _row("bursting", 20.0, 3.0, 160.0, cv=0.9)])
    ok, rule = inference.reproduces(noisy, sims)
    assert ok.tolist() == [True, True, False, False] and "tonic-like" in rule
    burst = pd.Series(_row("bursting", 30.0, 4.0, 140.0))
    sims = pd.DataFrame([_row("bursting", 1, 5.0, 160.0), _row("bursting", 1, 5.2, 140.0),
                         _row("bursting", 1, 4.0, 162.0), _row("spiking", 30, np.nan, np.nan)])
    ok, _ = inference.reproduces(burst, sims)
    assert ok.tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="silent"):
        inference.reproduces(pd.Series(_row("silent", 0.3)), sims)


def test_malformed_recordings_are_rejected(tmp_path):
    from condspace import recordings

    bad = tmp_path / "bad.csv"
    bad.write_text('ID,spiking_times\n1,"[3000.0, 2990.0, 3100.0]"\n')
    with pytest.raises(ValueError, match="increasing"):
        recordings.load_csv(bad)
    with pytest.raises(ValueError, match="train 0 contains NaN or infinite"):
        inference.summary_features([np.array([3000.0, np.inf, 3200.0])], 3000.0)


def test_shipped_recordings_and_ground_truth_agree():
    root = Path(__file__).resolve().parents[1] / "data" / "recordings"
    if not (root / "stg_recordings.csv").exists():
        pytest.skip("data/recordings not generated yet (tools/make_recordings.py)")
    from condspace import recordings

    recs = recordings.load_csv(root / "stg_recordings.csv")
    truth = pd.read_csv(root / "stg_ground_truth.csv", dtype={"ID": str}).set_index("ID")
    assert set(recs) == set(truth.index)
    labels = features.extract(recs, float(truth["duration_ms"].iloc[0]))["label"]
    for ident, row in truth.iterrows():
        assert labels[ident] == row["label"], ident



# ----- the infer command ---------------------------------------------------------------------------
def test_infer_command_rejects_malformed_recordings(tmp_path, capsys):
    from condspace.__main__ import main

    bad = tmp_path / "bad.csv"
    bad.write_text('ID,spiking_times\nn1,"[3000.0, 3100.0, oops]"\n')
    assert main(["infer", "--recordings", str(bad), "--out", str(tmp_path / "out"), "--no-cache"]) == 2
    assert "non-numeric" in capsys.readouterr().err
    assert main(["infer", "--recordings", str(bad), "--out", str(tmp_path / "o"), "--samples", "10",
                 "--check", "20"]) == 2
    assert "--check" in capsys.readouterr().err


def test_infer_command_end_to_end(tmp_path):
    import json

    from condspace import recordings
    from condspace.__main__ import main

    rec = tmp_path / "r.csv"
    recordings.save_csv(rec, {"tonic": periodic(12.0, 3000.0), "quiet": np.array([3100.0])})
    out = tmp_path / "out"
    args = ["infer", "--recordings", str(rec), "--out", str(out), "--budget", "200", "--max-epochs", "3",
            "--samples", "20", "--check", "5", "--cache", str(tmp_path / "cache")]
    # Exit status 1: "quiet" cannot be inferred (silent), and a command that processed several
    # recordings says when any failed; the others are still inferred and written.
    assert main(args) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"tonic", "quiet"}
    assert "error" in summary["quiet"] and summary["quiet"]["observed"]["label"] == "silent"
    entry = summary["tonic"]
    assert entry["observed"]["label"] == "spiking" and entry["observed"]["rate_hz"] == pytest.approx(12.0, rel=0.01)
    assert entry["predictive"]["n_simulated"] == 5
    assert 0 <= entry["noise_std"]["q05"] <= entry["noise_std"]["median"] <= entry["noise_std"]["q95"] <= 10.0
    assert "p_missed" not in entry  # the STG takes detection as perfect (no missed_prior)
    post = pd.read_csv(out / "tonic_posterior.csv")
    assert list(post.columns) == list(cells.get("stg").conductance_names) and len(post) == 20
    assert inference.make_prior("stg", noise=0, missed=0).contains(post.to_numpy()).all()  # conductances only
    dic = pd.read_csv(out / "tonic_dics.csv")
    assert list(dic.columns) == ["V_th", "g_f", "g_s", "g_u"] and len(dic) == 20
    predictive = pd.read_csv(out / "tonic_predictive.csv")
    assert len(predictive) == 5
    # The fraction reported is the share of the written samples that reproduce the recording under
    # the predictive-check rule, recomputed here from their simulated features.
    passed, _ = inference.reproduces(pd.Series(entry["observed"]), predictive)
    assert predictive["passed"].tolist() == passed.tolist()
    assert entry["predictive_check_fraction"] == pytest.approx(passed.mean())
    # Second run: the training set and the posterior come from the cache, samples are identical.
    assert main(args) == 1
    pd.testing.assert_frame_equal(pd.read_csv(out / "tonic_posterior.csv"), post)
    assert json.loads((out / "posterior.json").read_text())["posterior"]["cached"] is True
    # --missed-prior: a posterior of its own that also infers p_missed, reported like the noise.
    missed = tmp_path / "missed"
    assert main([*args[:4], str(missed), *args[5:], "--missed-prior", "0.1"]) == 1
    entry = json.loads((missed / "summary.json").read_text())["tonic"]
    assert 0 <= entry["p_missed"]["q05"] <= entry["p_missed"]["median"] <= entry["p_missed"]["q95"] <= 0.1
    assert entry["p_missed"]["prior_max"] == 0.1
    assert list(pd.read_csv(missed / "tonic_posterior.csv").columns) == list(cells.get("stg").conductance_names)


# ----- class restriction -------------------------------------------------------------------------
def toy_labels(theta: np.ndarray) -> np.ndarray:
    """A hard class boundary at a = 0 (spiking left, bursting right), silent in a corner."""
    labels = np.where(theta[:, 0] < 0, "spiking", "bursting").astype(object)
    labels[theta[:, 1] > 3.5] = "silent"
    return labels.astype(str)


def test_class_restriction_removes_mass_across_the_class_boundary(toy_posterior, tmp_path):
    theta = TOY_PRIOR.sample(4000, seed=5)
    restriction = inference.train_restriction(theta, toy_labels(theta), TOY_PRIOR, seed=0, epochs=30)
    assert restriction.accuracy > 0.95
    p = restriction.probability(np.array([[-2.0, 0.0], [2.0, 0.0]]), "spiking")
    assert p[0] > 0.95 and p[1] < 0.05
    # The toy flow relabelled: its first feature plays the CV, so x = (0.1, 0) is a tonic observation
    # whose unrestricted posterior N((0.1, 0), 0.3²) straddles the boundary.
    post = inference.Posterior(toy_posterior.estimator, TOY_PRIOR, toy_posterior.settings, ("cv_isi", "x2"), "toy",
                               restriction=restriction)
    x_obs = np.array([0.1, 0.0])
    assert post.observed_class(x_obs).tolist() == ["spiking"]
    plain = toy_posterior.sample(2000, x_obs, seed=1)
    restricted = post.sample(2000, x_obs, seed=1)
    assert 0.25 < np.mean(plain[:, 0] < 0) < 0.5
    assert np.mean(restricted[:, 0] < 0) > 0.9
    assert post.log_prob(np.array([[-0.5, 0.0]]), x_obs)[0] > post.log_prob(np.array([[0.7, 0.0]]), x_obs)[0]
    # The restriction survives saving and loading.
    loaded = inference.load_posterior(inference.save_posterior(tmp_path / "r.pt", post))
    assert loaded.restriction is not None and loaded.restriction.accuracy == restriction.accuracy
    np.testing.assert_array_equal(loaded.sample(300, x_obs, seed=2), post.sample(300, x_obs, seed=2))


def test_train_restriction_needs_every_active_class():
    theta = TOY_PRIOR.sample(100, seed=1)
    with pytest.raises(ValueError, match="bursting"):
        inference.train_restriction(theta, np.full(100, "spiking"), TOY_PRIOR)


def test_posterior_cache_follows_the_estimator_code(tmp_path, monkeypatch):
    """A cached posterior is reused, but not once the estimator code changed (same versions, settings, data)."""
    kw = {"settings": inference.standard_settings(max_epochs=2), "cache_dir": tmp_path, "progress": False}
    first, _ = inference.trained_posterior("stg", 120, **kw)
    again, _ = inference.trained_posterior("stg", 120, **kw)
    assert not first.info["cached"] and again.info["cached"]
    assert len(list(tmp_path.glob("posterior_stg_*.pt"))) == 1
    monkeypatch.setattr(inference.training, "estimator_code_hash", lambda: "edited-estimator")
    edited, _ = inference.trained_posterior("stg", 120, **kw)
    assert not edited.info["cached"] and edited.info["key"] != first.info["key"]
    assert len(list(tmp_path.glob("posterior_stg_*.pt"))) == 2


def test_estimator_code_hash_is_stable_and_short():
    assert inference.estimator_code_hash() == inference.estimator_code_hash()
    assert len(inference.estimator_code_hash()) == 16
