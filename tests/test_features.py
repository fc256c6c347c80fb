"""Tests of condspace.features on synthetic spike trains with known answers (SCIENCE.md §5)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from condspace import features

BURST_FEATURES = ["n_bursts", "spikes_per_burst", "burst_duration_ms", "intraburst_freq_hz", "burst_period_ms",
                  "interburst_freq_hz", "duty_cycle", "burstiness"]


def bursting_train(n_bursts: int, spikes: int, isi: float, period: float, start: float = 0.0) -> np.ndarray:
    """Perfectly periodic bursts: ``spikes`` spikes ``isi`` ms apart, one burst every ``period`` ms."""
    return np.concatenate([start + k * period + np.arange(spikes) * isi for k in range(n_bursts)])


def reference_features(t: np.ndarray, duration: float) -> dict[str, float]:
    """Plain-loop transcription of SCIENCE.md §5 for one train (the vectorised code is checked against it)."""
    out = {name: np.nan for name in features.FEATURES}
    out["n_spikes"] = len(t)
    out["rate_hz"] = 1000.0 * len(t) / duration
    if len(t) < 3:
        return {"label": "silent", **out}
    isi = np.diff(t)
    out["cv_isi"] = np.std(isi) / np.mean(isi)
    if out["cv_isi"] <= 0.15:
        out["spiking_freq_hz"] = np.mean(1000.0 / isi)
        return {"label": "spiking", **out}
    thr = (isi.max() + isi.min()) / 2
    bursts, current = [], [t[0]]
    for k, d in enumerate(isi):
        if d > thr:
            bursts.append(current)
            current = []
        current.append(t[k + 1])
    bursts.append(current)
    bursts = [b for b in bursts if len(b) >= 2][1:-1]
    out["n_bursts"] = len(bursts)
    if bursts:
        out["spikes_per_burst"] = np.mean([len(b) for b in bursts])
        out["burst_duration_ms"] = np.mean([b[-1] - b[0] for b in bursts])
        out["intraburst_freq_hz"] = np.mean([1000.0 * (len(b) - 1) / (b[-1] - b[0]) for b in bursts])
    if len(bursts) >= 2:
        period = np.mean(np.diff([b[0] for b in bursts]))
        out["burst_period_ms"] = period
        out["interburst_freq_hz"] = 1000.0 / period
        out["duty_cycle"] = out["burst_duration_ms"] / period
        out["burstiness"] = out["spikes_per_burst"] * out["intraburst_freq_hz"] / (period / 1000.0)
    return {"label": "bursting", **out}


# ----- known answers ---------------------------------------------------------------------------
def test_regular_10hz_train_is_tonic_spiking_at_10hz():
    df = features.extract([np.arange(3000.0, 6000.0, 100.0)], duration=3000.0)
    row = df.iloc[0]
    assert row["label"] == "spiking"
    assert row["n_spikes"] == 30
    assert row["rate_hz"] == pytest.approx(10.0, rel=1e-12)
    assert row["spiking_freq_hz"] == pytest.approx(10.0, rel=1e-12)
    assert row["cv_isi"] == pytest.approx(0.0, abs=1e-12)
    assert row[BURST_FEATURES].isna().all()


def test_periodic_bursts_give_their_construction_parameters():
    # 8 bursts of 5 spikes, 10 ms apart (duration 40 ms, 100 Hz), one every 500 ms.
    df = features.extract([bursting_train(8, 5, 10.0, 500.0, start=3000.0)], duration=4000.0)
    row = df.iloc[0]
    assert row["label"] == "bursting"
    assert np.isnan(row["spiking_freq_hz"])
    assert row["n_bursts"] == 6  # first and last dropped
    assert row["spikes_per_burst"] == 5
    assert row["burst_duration_ms"] == pytest.approx(40.0, rel=1e-12)
    assert row["intraburst_freq_hz"] == pytest.approx(100.0, rel=1e-12)
    assert row["burst_period_ms"] == pytest.approx(500.0, rel=1e-12)
    assert row["interburst_freq_hz"] == pytest.approx(2.0, rel=1e-12)
    assert row["duty_cycle"] == pytest.approx(40.0 / 500.0, rel=1e-12)
    # Fyon burstiness: 5 spikes × 100 Hz / 0.5 s.
    assert row["burstiness"] == pytest.approx(1000.0, rel=1e-12)
    assert row["rate_hz"] == pytest.approx(40 / 4.0, rel=1e-12)


def test_truncated_edge_bursts_do_not_bias_the_features():
    # The window cuts the first burst (2 of its 5 spikes seen) and the last one (3 spikes seen).
    full = bursting_train(7, 5, 10.0, 500.0)
    t = full[3:-2]
    row = features.extract([t], duration=3500.0).iloc[0]
    assert row["n_bursts"] == 5
    assert row["spikes_per_burst"] == 5
    assert row["burst_period_ms"] == pytest.approx(500.0, rel=1e-12)


def test_single_spike_bursts_are_discarded_before_the_edges_are_dropped():
    # An isolated spike first, then 6 bursts of 4 spikes (period 600 ms), each followed by an
    # isolated spike 300 ms after its start. Single-spike "bursts" are removed first, then the
    # first and last of the 6 real bursts: 4 remain and their period stays 600 ms.
    bursts = bursting_train(6, 4, 10.0, 600.0, start=200.0)
    singles = 200.0 + np.arange(6) * 600.0 + 300.0
    t = np.sort(np.concatenate([[0.0], bursts, singles]))
    row = features.extract([t], duration=4000.0).iloc[0]
    assert row["label"] == "bursting"
    assert row["n_bursts"] == 4
    assert row["spikes_per_burst"] == 4
    assert row["burst_period_ms"] == pytest.approx(600.0, rel=1e-12)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_fewer_than_three_spikes_is_silent(n):
    row = features.extract([np.arange(n) * 50.0 + 10.0], duration=2000.0).iloc[0]
    assert row["label"] == "silent"
    assert row["n_spikes"] == n
    assert row["rate_hz"] == pytest.approx(n / 2.0)
    others = [c for c in features.FEATURES if c not in ("n_spikes", "rate_hz")]
    assert row[others].isna().all()


def test_cv_threshold_is_inclusive():
    # ISIs 85, 115 ms: mean 100, population std 15 → CV exactly 0.15 → tonic spiking.
    at = features.extract([np.array([0.0, 85.0, 200.0])], 1000.0).iloc[0]
    assert at["cv_isi"] == 0.15
    assert at["label"] == "spiking"
    above = features.extract([np.array([0.0, 84.0, 200.0])], 1000.0).iloc[0]  # CV 0.16
    assert above["cv_isi"] == pytest.approx(0.16, rel=1e-12)
    assert above["label"] == "bursting"


def test_jittered_trains_keep_their_class_and_structure():
    rng = np.random.default_rng(1)
    tonic = np.arange(0.0, 3000.0, 100.0) + rng.normal(0.0, 2.0, 30)
    bursts = bursting_train(10, 6, 8.0, 300.0) + rng.normal(0.0, 0.5, 60)
    df = features.extract([tonic, bursts], duration=3100.0)
    assert df["label"].tolist() == ["spiking", "bursting"]
    isi = np.diff(tonic)
    assert df.loc[0, "cv_isi"] == pytest.approx(np.std(isi) / np.mean(isi), rel=1e-12)
    assert df.loc[0, "spiking_freq_hz"] == pytest.approx(10.0, rel=0.01)
    assert df.loc[1, "spikes_per_burst"] == 6
    assert df.loc[1, "n_bursts"] == 8
    assert df.loc[1, "burst_period_ms"] == pytest.approx(300.0, abs=1.0)
    assert df.loc[1, "burst_duration_ms"] == pytest.approx(40.0, abs=1.5)


def test_too_few_bursts_give_nan_as_documented():
    # 3 bursts → 1 analysed burst: per-burst features defined, period-based ones NaN.
    one = features.extract([bursting_train(3, 4, 10.0, 400.0)], 2000.0).iloc[0]
    assert one["label"] == "bursting"
    assert one["n_bursts"] == 1
    assert one["spikes_per_burst"] == 4
    assert one["intraburst_freq_hz"] == pytest.approx(100.0)
    assert one[["burst_period_ms", "interburst_freq_hz", "duty_cycle", "burstiness"]].isna().all()
    # 2 bursts → none analysed: every burst feature but the count is NaN.
    none = features.extract([bursting_train(2, 4, 10.0, 400.0)], 2000.0).iloc[0]
    assert none["label"] == "bursting"
    assert none["n_bursts"] == 0
    assert none[BURST_FEATURES[1:]].isna().all()


def test_invalid_rows_are_labelled_and_all_nan():
    trains = [np.arange(0.0, 1000.0, 100.0), np.array([np.nan, 5.0, 1.0])]  # contents of invalid rows ignored
    df = features.extract(trains, 1000.0, ok=np.array([True, False]))
    assert df["label"].tolist() == ["spiking", "invalid"]
    assert df.loc[1, list(features.FEATURES)].isna().all()
    assert features.classify(trains, ok=np.array([True, False])).tolist() == ["spiking", "invalid"]


# ----- structure, invariants and cross-checks -----------------------------------------------------
def test_columns_are_documented_and_numeric():
    df = features.extract([np.arange(5.0) * 100], 1000.0)
    assert tuple(df.columns) == features.COLUMNS
    assert set(features.FEATURES) == set(df.columns) - {"label"}
    assert all(df[c].dtype == np.float64 for c in features.FEATURES)
    assert all(len(features.FEATURES[c]) == 2 and features.FEATURES[c][1] for c in features.FEATURES)


def test_mapping_input_keeps_ids_as_index():
    df = features.extract({"cell_a": np.arange(0.0, 1000.0, 100.0), "cell_b": []}, 1000.0)
    assert df.index.tolist() == ["cell_a", "cell_b"]
    assert df["label"].tolist() == ["spiking", "silent"]
    assert features.classify({"x": [1.0, 2.0, 3.0]}).index.tolist() == ["x"]


def test_empty_population():
    df = features.extract([], 1000.0)
    assert len(df) == 0 and tuple(df.columns) == features.COLUMNS


def random_trains(n: int, seed: int) -> list[np.ndarray]:
    """A mix of silent, tonic, jittered bursting and irregular trains with varied parameters."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        kind = rng.integers(4)
        if kind == 0:
            t = rng.uniform(0, 3000, rng.integers(0, 3))
        elif kind == 1:
            t = np.arange(rng.uniform(0, 50), 3000, rng.uniform(20, 300)) + rng.normal(0, 1.0)
        elif kind == 2:
            t = bursting_train(int(rng.integers(1, 12)), int(rng.integers(1, 9)), rng.uniform(5, 20),
                               rng.uniform(250, 600), start=rng.uniform(0, 200))
            t = t + rng.normal(0, 0.3, t.size)
        else:
            t = rng.uniform(0, 3000, rng.integers(3, 80))
        out.append(np.unique(np.clip(t, 0, 2999.0)))
    return out


def test_vectorised_extraction_matches_a_plain_loop_over_neurons():
    trains = random_trains(300, seed=7)
    df = features.extract(trains, 3000.0)
    assert set(df["label"]) == {"silent", "spiking", "bursting"}
    for i, t in enumerate(trains):
        ref = reference_features(t, 3000.0)
        assert df.loc[i, "label"] == ref.pop("label"), i
        got = df.loc[i, list(features.FEATURES)].to_numpy(dtype=float)
        want = np.array([ref[k] for k in features.FEATURES], dtype=float)
        # atol only matters for CV_ISI of exactly periodic trains (0 up to round-off).
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"neuron {i}")


def test_features_do_not_depend_on_the_population_around_a_neuron():
    trains = random_trains(60, seed=3)
    whole = features.extract(trains, 3000.0)
    order = np.random.default_rng(0).permutation(len(trains))
    shuffled = features.extract([trains[i] for i in order], 3000.0)
    shuffled.index = order
    pd.testing.assert_frame_equal(whole, shuffled.sort_index())
    assert (features.classify(trains) == whole["label"]).all()


def test_ten_thousand_neurons_take_well_under_a_few_seconds():
    rng = np.random.default_rng(0)
    trains = [np.cumsum(rng.uniform(1.0, 60.0, 100)) for _ in range(10_000)]  # 1e6 spikes
    t0 = time.perf_counter()
    df = features.extract(trains, 6000.0)
    assert time.perf_counter() - t0 < 3.0
    assert len(df) == 10_000


def test_from_simulation_uses_duration_and_ok():
    class Result:  # duck-typed SimulationResult
        spike_times = [np.arange(3000.0, 6000.0, 50.0), np.empty(0)]
        ok = np.array([True, False])
        duration = 3000.0

    df = features.from_simulation(Result())
    assert df["label"].tolist() == ["spiking", "invalid"]
    assert df.loc[0, "rate_hz"] == pytest.approx(20.0)


# ----- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("trains", "kwargs", "match"),
    [
        ([np.array([1.0, 3.0, 2.0])], {}, "strictly increasing"),
        ([np.array([1.0, 2.0, 2.0])], {}, "strictly increasing"),
        ([np.array([1.0, np.inf])], {}, "NaN or infinite"),
        ([np.ones((2, 2))], {}, "1-D"),
        ([np.arange(3.0)], {"duration": 0.0}, "positive"),
        ([np.arange(3.0)], {"duration": np.nan}, "positive"),
        ([np.array([0.0, 500.0, 1500.0])], {"duration": 1000.0}, "shorter than the spikes"),
        ([np.arange(3.0)], {"ok": np.array([True, True])}, "ok: expected"),
        ([np.arange(3.0)], {"ok": np.array([1])}, "ok: expected"),
        ("abc", {}, "spike_times: expected"),
    ],
)
def test_bad_input_is_a_clear_value_error(trains, kwargs, match):
    kwargs = {"duration": 2000.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        features.extract(trains, **kwargs)
