"""The science check (tools/science_check.py, ``make check``) and the scores it rests on.

The standard posterior takes ≈ 20 min to train, so these tests score a deliberately degraded one
(a couple of hundred simulations, two epochs) and stand-in scores; the DIC and reachability
groups run for real (seconds).
"""

from __future__ import annotations

import pytest

from condspace import posterior_scores
from condspace.posterior_scores import COVERAGE_TOLERANCE, PREDICTIVE_MIN, PosteriorScores


@pytest.fixture(scope="module")
def science_check(load_script):
    return load_script("tools/science_check.py")


def _scores(predictive, coverage):
    return PosteriorScores(predictive, coverage, n_check=500, n_test=1000,
                           classes=dict.fromkeys(predictive, "spiking"))


def test_verdicts_apply_the_thresholds_at_their_edges():
    eps = 1e-9
    good = _scores({"a": PREDICTIVE_MIN, "b": 1.0},
                   {0.5: 0.5 - COVERAGE_TOLERANCE + eps, 0.9: 0.9 + COVERAGE_TOLERANCE})
    assert good.passed and all(r["passed"] for r in good.verdicts())
    low = _scores({"a": PREDICTIVE_MIN - eps, "b": 1.0}, {0.5: 0.5, 0.9: 0.9})
    assert not low.passed and [r["passed"] for r in low.verdicts()] == [False, True, True, True]
    overconfident = _scores({"a": 1.0}, {0.5: 0.5 - COVERAGE_TOLERANCE - 0.01, 0.9: 0.9})
    assert [r["passed"] for r in overconfident.verdicts()] == [True, False, True]


def test_score_posterior_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_check"):
        posterior_scores.score_posterior(None, {}, 1000.0, None, n_check=0)


def _fake_posterior_rows(science_check, monkeypatch, predictive):
    def fake_score(post, trains, duration, test, **kwargs):
        return _scores(predictive, {0.5: 0.5, 0.9: 0.9})

    monkeypatch.setattr(science_check, "standard_posterior", lambda budget, max_epochs: (_Stub(), None, "stand-in"))
    monkeypatch.setattr(science_check.inference, "held_out", lambda *a, **k: None)
    monkeypatch.setattr(science_check, "score_posterior", fake_score)


class _Stub:
    prior = None


def test_exit_status_follows_the_table(science_check, monkeypatch, capsys):
    _fake_posterior_rows(science_check, monkeypatch, {"stg_tonic": 0.95, "stg_bursting": 0.9})
    assert science_check.main(["--only", "posterior", "--refine-rounds", "0"]) == 0
    out = capsys.readouterr().out
    assert "MISS" not in out and "4 of 4 checks pass" in out
    _fake_posterior_rows(science_check, monkeypatch, {"stg_tonic": 0.95, "stg_irregular": 0.02})
    assert science_check.main(["--only", "posterior", "--refine-rounds", "0"]) == 1
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if "stg_irregular" in row)
    assert line.rstrip().endswith("MISS") and "1 MISS" in out


def test_a_degraded_posterior_fails_the_check(science_check, tiny_posterior_cache, monkeypatch, capsys):
    """A real posterior trained on 200 simulations for two epochs reproduces almost nothing."""
    monkeypatch.setenv("CONDSPACE_CACHE", str(tiny_posterior_cache))
    status = science_check.main(["--only", "posterior", "--budget", "200", "--max-epochs", "2",
                                 "--n-test", "20", "--n-check", "5", "--refine-rounds", "0"])
    out = capsys.readouterr().out
    assert status == 1, out
    predictive = [row for row in out.splitlines() if "predictive check" in row]
    assert len(predictive) == 4 and any(row.rstrip().endswith("MISS") for row in predictive)
    assert "NOT the standard budget" in out and "refined" not in out


def test_a_failing_recording_is_refined_and_judged_on_fresh_samples(science_check, tiny_posterior_cache,
                                                                    monkeypatch, capsys):
    """Refinement too small to repair the degraded posterior: the refined rows carry the MISS."""
    monkeypatch.setenv("CONDSPACE_CACHE", str(tiny_posterior_cache))
    status = science_check.main(["--only", "posterior", "--budget", "200", "--max-epochs", "2", "--n-test", "20",
                                 "--n-check", "5", "--refine-rounds", "1", "--refine-budget", "20",
                                 "--refine-check", "5"])
    out = capsys.readouterr().out
    assert status == 1, out
    lines = out.splitlines()
    amortised = [row for row in lines if "predictive check" in row and row.rstrip().endswith("info")]
    refined = [row for row in lines if "refined: amortised" in row]
    # Every recording below 0.8 (a silent posterior can leave one with no samples at all: NaN,
    # not refined) shows its amortised fraction as information and a refined verdict after it.
    assert amortised and len(refined) == len(amortised)
    assert all("1 TSNPE round(s), 20 simulations" in row and "fresh samples" in row for row in refined)
    assert any(row.rstrip().endswith("MISS") for row in refined)
    checks = sum(row.rstrip().endswith(("pass", "MISS")) for row in lines)
    assert f"of {checks} checks pass" in out  # information rows are not counted as checks


def test_dic_and_reachability_groups_pass_on_the_library(science_check, capsys):
    assert science_check.main(["--only", "dics,reachability"]) == 0
    assert "MISS" not in capsys.readouterr().out


def test_unknown_group_is_named(science_check, capsys):
    with pytest.raises(SystemExit):
        science_check.main(["--only", "posterior,dic"])
    assert "unknown group(s) ['dic']" in capsys.readouterr().err
