"""condspace.identification: model comparison by a classifier, evidence across neurons, caches, the CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from condspace import identification as ident
from condspace import recordings
from condspace.__main__ import main


# ----- hypotheses from the declaration --------------------------------------------------------------
def test_hypotheses_are_every_single_modulable_channel_and_every_pair():
    stg = ident.hypotheses("stg")
    assert len(stg) == 7 + 21 and ("leak",) not in stg and all("leak" not in h for h in stg)
    da = ident.hypotheses("da")
    assert ident.modulable_channels("da") == ("Na", "Kd", "CaL", "CaN", "ERG")  # NMDA is fixed, leak never
    assert len(da) == 5 + 10
    assert ident.membership("stg").sum(axis=1).tolist() == [1] * 7 + [2] * 21


def test_random_modulation_factors_follow_the_declared_law():
    h, lf = ident.draw_modulations("stg", 4000, seed=3)
    member = ident.membership("stg")[h]
    assert np.all((lf != 0) == member), "exactly the channels of the hypothesis are scaled"
    mag = np.abs(lf[member])
    assert mag.min() >= np.log(1.25) and mag.max() <= np.log(4.0)
    assert 0.45 < np.mean(lf[member] > 0) < 0.55  # up or down with probability 1/2
    assert np.bincount(h, minlength=28).min() > 80  # uniform over the 28 hypotheses


# ----- the classifier on a problem whose posterior over models is known exactly -------------------
def test_classifier_recovers_the_exact_posterior_over_models():
    """Three models x ~ N(μ_k, 1), μ = (−1.5, 0, 1.5), prior (0.5, 0.3, 0.2): p(k | x) in closed form."""
    rng = np.random.default_rng(0)
    mu, prior = np.array([-1.5, 0.0, 1.5]), np.array([0.5, 0.3, 0.2])
    k = rng.choice(3, size=30_000, p=prior)
    x = rng.normal(mu[k], 1.0)[:, None]
    clf = ident.train_classifier(x, k, 3, settings=ident.ClassifierSettings(hidden=32, layers=2, max_epochs=60,
                                                                             patience=8, batch=512, ensemble=2),
                                 seed=1)
    grid = np.linspace(-3.0, 3.0, 61)[:, None]
    log_true = np.log(prior) - 0.5 * (grid - mu) ** 2
    true = np.exp(log_true - np.logaddexp.reduce(log_true, axis=1, keepdims=True))
    est = np.exp(clf.log_posterior(grid))
    assert np.abs(est - true).max() < 0.05, np.abs(est - true).max()
    assert np.allclose(np.exp(clf.log_prior), prior, atol=0.01)  # the training prior, kept for combining
    # the ensemble's probabilities are the mean of its members' tempered probabilities
    members = [ident.Classifier([net], clf.mean, clf.std, 3, 0, clf.log_prior, clf.settings,
                                temperature=clf.temperature) for net in clf.nets]
    assert len(members) == 2
    mean_of_members = np.mean([np.exp(m.log_posterior(grid)) for m in members], axis=0)
    assert np.allclose(est, mean_of_members, atol=1e-12)
    assert not np.allclose(np.exp(members[0].log_posterior(grid)), est, atol=1e-4)  # the members differ


def test_classifier_settings_are_checked():
    with pytest.raises(ValueError, match="ensemble must be at least 1"):
        ident.ClassifierSettings(ensemble=0)
    with pytest.raises(ValueError, match="val_fraction"):
        ident.ClassifierSettings(val_fraction=1.0)


def test_classifier_rejects_bad_input():
    with pytest.raises(ValueError, match="non-finite"):
        ident.train_classifier(np.array([[np.nan], [1.0]]), [0, 1], 2)
    with pytest.raises(ValueError, match="labels must lie"):
        ident.train_classifier(np.zeros((2, 1)), [0, 5], 2)


# ----- evidence from several neurons ----------------------------------------------------------------
def test_evidence_combination_equals_brute_force():
    """Per-neuron posteriors under a non-uniform prior, combined, equal p(h) Π p(x_i | h) normalised."""
    rng = np.random.default_rng(1)
    H, n = 6, 7
    log_prior = np.log(rng.dirichlet(np.ones(H)))
    log_lik = rng.normal(0.0, 2.0, (n, H))  # log p(x_i | h) of n neurons
    per_neuron = log_prior + log_lik
    per_neuron -= np.logaddexp.reduce(per_neuron, axis=1, keepdims=True)
    brute = log_prior + log_lik.sum(axis=0)
    brute -= np.logaddexp.reduce(brute)
    assert np.allclose(ident.combine(per_neuron, log_prior), brute, atol=1e-12)
    assert np.allclose(ident.combine(per_neuron[:1], log_prior), per_neuron[0])  # one neuron: unchanged


def test_marginals_scores_and_groups():
    member = ident.membership("stg")
    post = np.zeros(28)
    post[ident.labels("stg").index("CaS+H")] = 0.6
    post[ident.labels("stg").index("CaS")] = 0.4
    marg = dict(zip(ident.modulable_channels("stg"), ident.marginals(post, member), strict=True))
    assert marg["CaS"] == pytest.approx(1.0) and marg["H"] == pytest.approx(0.6) and marg["Na"] == 0
    lp = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]))
    assert ident.top_k(lp, [1, 2], 1) == 0.5 and ident.top_k(lp, [1, 2], 2) == 1.0
    assert ident.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    ece, table = ident.expected_calibration_error(np.log([[0.95, 0.05], [0.95, 0.05]]), [0, 1])
    assert ece == pytest.approx(0.45) and table[9, 2] == 2
    conf = np.array([[0.5, 0.5, 0.0], [0.4, 0.6, 0.0], [0.0, 0.05, 0.95]])
    groups = ident.identifiability_groups(conf, 0.1)
    assert groups.tolist() == [0, 0, 1]
    assert ident.group_top1(np.log([[0.2, 0.7, 0.1]]), [0], groups) == 1.0
    idx = ident.draw_experiments(np.repeat(np.arange(3), 5), 4, 50, seed=0)
    assert idx.shape == (50, 4) and all(len(set(r)) == 4 and len(set(r // 5)) == 1 for r in idx)


def test_direction_accuracy_scores_only_modulated_channels():
    """Sign of the head's log-odds against the sign of each modulated channel's factor; unusable
    neurons and unmodulated channels are not scored."""
    from condspace.identification import evaluation  # noqa: PLC0415

    channels = ident.modulable_channels("stg")
    lf = np.zeros((4, len(channels)))
    lf[0, 0], lf[1, 0], lf[2, 1], lf[3, 0] = 0.5, -0.7, 1.0, 0.9  # neuron 3 is unusable
    logit = np.full((4, len(channels)), 3.0)  # "up" everywhere

    class Head:  # stands in for a trained Identifier: only what the score reads
        def __init__(self):
            self.channels = channels

        def direction_logit(self, xb, xa):
            return logit[: len(xb)]

    x = np.ones((4, 11))
    pool = ident.ExperimentSet("stg", "random", np.zeros(4, int), np.ones((4, 8)), lf, x, x,
                               np.array(["tonic"] * 4), np.array(["tonic"] * 4),
                               np.array([True, True, True, False]), "k")
    acc = evaluation.direction_accuracy(Head(), pool)
    assert acc[channels[0]] == pytest.approx(0.5)  # one up (right), one down (wrong)
    assert acc[channels[1]] == 1.0 and np.isnan(acc[channels[2]])
    assert acc["all"] == pytest.approx(2 / 3)


# ----- the experiment cache -------------------------------------------------------------------------
def test_experiment_cache_is_reused_and_invalidated(tmp_path):
    es = ident.random_experiments("stg", 6, seed=5, cache_dir=tmp_path)
    assert not es.info["cached"] and len(es) >= 4
    again = ident.random_experiments("stg", 6, seed=5, cache_dir=tmp_path)
    assert again.info["cached"]
    for name, a in es.arrays().items():
        assert np.array_equal(a, again.arrays()[name], equal_nan=a.dtype.kind == "f"), name
    # a corrupted file is reported and rebuilt, identically
    path = next(tmp_path.glob("ident_random_stg_*.npz"))
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.warns(RuntimeWarning, match="rebuilding"):
        rebuilt = ident.random_experiments("stg", 6, seed=5, cache_dir=tmp_path)
    assert not rebuilt.info["cached"] and np.array_equal(rebuilt.x_after, es.x_after, equal_nan=True)
    # anything that changes the experiments changes the key: a new file
    other = ident.random_experiments("stg", 6, seed=5, factor_range=(1.5, 3.0), cache_dir=tmp_path)
    assert not other.info["cached"] and len(list(tmp_path.glob("ident_random_stg_*.npz"))) == 2
    # the "before" side is the inference training set (shared cache), the "after" side differs
    assert len(list(tmp_path.glob("train_stg_*.npz"))) == 1
    assert np.array_equal(other.x_before, es.x_before, equal_nan=True)


def test_classifier_cache_is_reused_and_invalidated(tmp_path):
    small = ident.ClassifierSettings(hidden=16, layers=1, max_epochs=3, patience=2, ensemble=2)
    model, _ = ident.identifier("stg", 6, seed=5, settings=small, cache_dir=tmp_path)
    assert model.classifier.info["cached"] is False
    loaded, _ = ident.identifier("stg", 6, seed=5, settings=small, cache_dir=tmp_path)
    assert loaded.classifier.info["cached"] is True
    z = model.z_train
    assert np.allclose(model.classifier.log_posterior(z), loaded.classifier.log_posterior(z), atol=1e-6)
    retrained, _ = ident.identifier("stg", 6, seed=5, settings=ident.ClassifierSettings(hidden=8, layers=1,
                                                                                        max_epochs=3),
                                    cache_dir=tmp_path)
    assert retrained.classifier.info["cached"] is False
    assert len(list(tmp_path.glob("ident_classifier_stg_*.npz"))) == 2


# ----- the command line -------------------------------------------------------------------------------
def _train(period, n=30, start=3010.0):
    return np.round(start + period * np.arange(n), 3)


def _bursts(period, spikes=5, isi=8.0, start=3020.0, count=15):
    return np.round(np.concatenate([start + k * period + isi * np.arange(spikes) for k in range(count)]), 3)


@pytest.fixture
def pair_files(tmp_path):
    before = {"n1": _train(70.0, 40), "n2": _bursts(180.0), "n3": np.array([]), "n4": _train(90.0, 30)}
    after = {"n1": _bursts(150.0), "n2": np.array([]), "n3": np.array([]), "n4": _train(60.0, 45)}
    b, a = tmp_path / "before.csv", tmp_path / "after.csv"
    recordings.save_csv(b, list(before.values()), ids=list(before))
    recordings.save_csv(a, list(after.values()), ids=list(after))
    return b, a


FAST = ["--budget", "40", "--max-epochs", "3"]


def test_identify_command_end_to_end(tmp_path, pair_files, capsys):
    b, a = pair_files
    out = tmp_path / "res"
    rc = main(["identify", "--cell", "stg", "--before", str(b), "--after", str(a), "--out", str(out),
               "--cache", str(tmp_path / "cache"), *FAST])
    err = capsys.readouterr().err
    assert rc == 0, err
    ranking = pd.read_csv(out / "ranking.csv")
    assert list(ranking.columns) == ["subset", "probability", "rank"] and len(ranking) == 28
    assert ranking["probability"].sum() == pytest.approx(1.0, abs=1e-5)
    assert ranking["probability"].is_monotonic_decreasing and ranking["rank"].tolist() == list(range(1, 29))
    channels = pd.read_csv(out / "channels.csv")
    assert set(channels["channel"]) == set(ident.modulable_channels("stg"))
    assert set(channels["direction"]) <= {"up", "down"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_neurons"] == 3 and summary["used"] == ["n1", "n2", "n4"]  # n2 fell silent: data
    assert summary["skipped"] == {"n3": "silent in both recordings"}
    assert [t["subset"] for t in summary["top"]] == ranking["subset"].tolist()
    assert "n3: skipped" in err and "method" in summary and "warnings" in summary


@pytest.mark.parametrize("case, match", [
    ("one_side", "IDs present on one side only"),
    ("unsorted", "strictly increasing"),
    ("malformed", "bracketed list"),
    ("durations", "different recording durations"),
    ("span", "longer than the recording duration"),
    ("cell", "unknown cell type"),
])
def test_identify_command_names_bad_input(tmp_path, pair_files, capsys, case, match):
    b, a = pair_files
    extra = []
    if case == "one_side":
        a.write_text(a.read_text() + 'n9,"[3100.0, 3200.0, 3300.0]"\n')
    elif case == "unsorted":
        a.write_text(a.read_text() + 'n9,"[3300.0, 3200.0, 3400.0]"\n')
    elif case == "malformed":
        b.write_text(b.read_text() + "n9,3100.0 3200.0\n")
    elif case == "durations":
        extra = ["--before-duration", "3000", "--after-duration", "2000"]
    elif case == "span":
        extra = ["--duration", "500"]
    cell = "nosuchcell" if case == "cell" else "stg"
    rc = main(["identify", "--cell", cell, "--before", str(b), "--after", str(a), "--out", str(tmp_path / "o"),
               "--cache", str(tmp_path / "cache"), *FAST, *extra])
    err = capsys.readouterr().err
    assert rc == 2 and match in err, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "cache").exists()  # refused before any work


def test_identify_skips_nothing_when_silence_is_after_only():
    """Unit level: silence after the drug is encoded, not dropped."""
    z = ident.pair_features(np.ones((2, 11)), np.vstack([np.full(11, np.nan), 2 * np.ones(11)]))
    assert np.isfinite(z).all() and z[0, 22] == 1.0 and z[1, 22] == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert z.shape == (2, 34)
