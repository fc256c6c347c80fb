"""Misspecified test recordings (tools/make_misspecified_recordings.py), the robustness benchmark
(benchmarks/robustness.py) and chapter 2's section that reads its CSV.

The perturbations are checked against their definitions (jitter bounded by its half-width, the
exact number of spikes deleted, the noise's std and zero phase), the reference integrator's
time-dependent current against the constant one and the engine, and the shipped files against
the readers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from condspace import cells, features, inference, recordings, reference, simulate

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "data" / "recordings" / "misspecified"
STG = cells.get("stg")


@pytest.fixture(scope="module")
def tool(load_script):
    return load_script("tools/make_misspecified_recordings.py")


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("benchmarks/robustness.py")


def _grid_train(n: int, seed: int = 0) -> np.ndarray:
    """A sorted train on the 1 µs grid with ISIs of 5–100 ms (absolute times, like a recording)."""
    isi = np.random.default_rng(seed).uniform(5.0, 100.0, n)
    return np.round(3000.0 + np.cumsum(isi), 3)


# ----- the perturbations --------------------------------------------------------------------------
@pytest.mark.parametrize("half", [0.5, 2.0])
def test_jitter_stays_within_its_half_width(tool, half):
    spikes = _grid_train(2000)
    moved = tool.jitter(spikes, half, seed=3)
    assert moved.size == spikes.size and np.all(np.diff(moved) > 0)  # ISIs ≥ 5 ms ≫ 2·half: order kept
    offsets = moved - spikes
    assert np.abs(offsets).max() <= half + 1e-9
    # uniform on [−half, half]: std half/√3, and both edges reached
    assert offsets.std() == pytest.approx(half / np.sqrt(3), rel=0.05)
    assert offsets.min() < -0.95 * half and offsets.max() > 0.95 * half
    np.testing.assert_array_equal(moved, np.round(moved, 3))


@pytest.mark.parametrize("n, fraction, expected", [(200, 0.02, 4), (150, 0.10, 15), (22, 0.02, 0), (75, 0.02, 2)])
def test_missed_spikes_deletes_exactly_the_fraction(tool, n, fraction, expected):
    spikes = _grid_train(n, seed=n)
    kept = tool.drop(spikes, fraction, seed=1)
    assert spikes.size - kept.size == expected == round(fraction * n)
    assert np.isin(kept, spikes).all() and np.all(np.diff(kept) > 0)


def test_drop_refuses_a_fraction_outside_0_1(tool):
    with pytest.raises(ValueError, match="fraction"):
        tool.drop(_grid_train(10), 1.0, seed=0)


def test_filtfilt_noise_has_the_std_recorded_as_noise_std(tool):
    sigma = 5.0
    noise = tool.filtfilt_noise(400_000, sigma, seed=7)
    assert noise.std() == pytest.approx(tool.filtered_std(sigma), rel=0.01)
    # The gain, independently: std² / σ² = mean of |H|⁴ over [0, Nyquist] (filtfilt applies |H|² twice).
    sos = signal.butter(4, 1000.0, fs=10_000.0, output="sos")
    _, h = signal.sosfreqz(sos, worN=200_000)
    assert tool.filtfilt_gain() == pytest.approx(np.sqrt(np.mean(np.abs(h) ** 4)), rel=1e-3)
    assert 0.35 < tool.filtfilt_gain() < 0.45  # below the causal filter's √(2·f_c/f_s) ≈ 0.45 (SCIENCE.md §5)


def test_filtfilt_noise_is_zero_phase_and_low_pass(tool):
    white = np.random.default_rng(11).standard_normal(200_000)
    sos = signal.butter(4, 1000.0, fs=10_000.0, output="sos")
    out = tool.filtfilt_noise(200_000, 1.0, seed=11)
    np.testing.assert_allclose(out, signal.sosfiltfilt(sos, white))  # the same white noise, filtered both ways
    lags = np.arange(-20, 21)
    xcorr = [np.dot(white[50:-50], np.roll(out, -lag)[50:-50]) for lag in lags]
    assert lags[int(np.argmax(xcorr))] == 0  # no delay (a causal filter lags by a few samples)
    spec = np.abs(np.fft.rfft(out)) ** 2
    freq = np.fft.rfftfreq(out.size, d=1e-4)
    assert spec[freq > 2000].sum() / spec.sum() < 1e-3


# ----- the reference integrator with a time-dependent current --------------------------------------
def test_scalar_rates_equal_numpy_rates_for_every_cell():
    """The reference's fast path (rates on Python floats) computes what NumPy computes."""
    for name in cells.available():
        cell = cells.get(name)
        for label, g in cell.examples.items():
            vec = [g[k] for k in cell.conductance_names]
            y = reference.initial_vector(cell)
            for V in (-85.0, -52.0, -20.0, 0.0, 35.0):
                y[0] = V
                np.testing.assert_allclose(reference.rhs(cell, vec)(0.0, y), reference.rhs(cell, vec, xp=np)(0.0, y),
                                           rtol=1e-12, atol=1e-15, err_msg=f"{name} {label} at {V} mV")


def test_sampled_current_interpolates_linearly():
    current = reference.sampled_current([0.0, 1.0, -1.0], dt=0.5, t0=10.0)
    assert [current(t) for t in (9.0, 10.0, 10.25, 10.5, 10.75, 11.0, 12.0)] == [0.0, 0.0, 0.5, 1.0, 0.0, -1.0, -1.0]
    with pytest.raises(ValueError, match="values"):
        reference.sampled_current([1.0, np.nan], dt=0.1)
    with pytest.raises(ValueError, match="dt"):
        reference.sampled_current([1.0, 2.0], dt=0.0)


def test_reference_with_a_sampled_current_at_zero_noise_matches_the_engine():
    """σ = 0: a time-dependent current of zeros changes nothing, and spike counts agree with the engine."""
    g = [STG.example("tonic spiking")[k] for k in STG.conductance_names]
    kw = dict(t_max=600.0, transient=100.0, rtol=1e-8, atol=1e-10)
    plain = reference.simulate_scipy(STG, g, **kw)
    timed = reference.simulate_scipy(STG, g, current=reference.sampled_current(np.zeros(6001), dt=0.1), **kw)
    engine = simulate(STG, [g], t_max=600.0, transient=100.0, backend="numpy").spike_times[0]
    assert plain.size == timed.size == engine.size >= 5
    np.testing.assert_array_equal(timed, plain)
    # a constant current given as a function of time is that constant, and it acts
    step = reference.simulate_scipy(STG, g, current=reference.sampled_current(np.full(6001, 2.0), dt=0.1), **kw)
    np.testing.assert_array_equal(step, reference.simulate_scipy(STG, g, current=2.0, **kw))
    assert step.size > plain.size


def test_reference_continues_from_a_state():
    g = [STG.example("tonic spiking")[k] for k in STG.conductance_names]
    whole = reference.simulate_scipy(STG, g, t_max=600.0, transient=300.0)
    state = reference.state_at(STG, g, 250.0)
    continued = reference.simulate_scipy(STG, g, t_max=600.0, transient=300.0, t_start=250.0, initial=state)
    assert continued.size == whole.size > 3
    np.testing.assert_allclose(continued, whole, atol=1e-3)


# ----- the shipped files --------------------------------------------------------------------------
def test_write_round_trips_through_the_readers(tool, bench, tmp_path):
    trains = {"tonic_1_integrator": _grid_train(30), "tonic_1_jitter_0.5": _grid_train(29, seed=1)}
    short = {"tonic_1_duration_1": _grid_train(5, seed=2)}
    truth = pd.DataFrame({"ID": [*trains, *short], "set": "tonic_1", "class": "spiking", "kind": "x",
                          "strength": [0.0, 0.5, 1.0], "duration_ms": [3000.0, 3000.0, 1000.0]}).set_index("ID")
    tool.write(tmp_path, trains, short, truth)
    for name, expected in ((tool.FILES["recordings"], trains), (tool.FILES["recordings_1s"], short)):
        loaded = recordings.load_csv(tmp_path / name)
        assert list(loaded) == list(expected)
        for k in expected:
            np.testing.assert_array_equal(loaded[k], expected[k])
    back, back_truth = bench.load_recordings(tmp_path)
    assert list(back) == list(truth.index) and back_truth["strength"].tolist() == [0.0, 0.5, 1.0]


@pytest.mark.skipif(not (SHIPPED / "stg_misspecified_truth.csv").exists(), reason="misspecified set not generated")
def test_shipped_set_reads_back_and_matches_its_truth(bench):
    trains, truth = bench.load_recordings(SHIPPED)
    assert len(truth) >= 8 * 5 and truth["set"].nunique() >= 8
    assert set(truth["class"]) == {"spiking", "bursting"}
    assert {"baseline", "integrator", "noise", "jitter", "missed", "duration"} <= set(truth["kind"])
    for ident, row in truth.iterrows():
        feats = features.extract([trains[ident]], row["duration_ms"]).iloc[0]
        assert feats["label"] == row["label"] and feats["n_spikes"] == row["n_spikes"], ident
        t0 = row["transient"]
        assert np.all((trains[ident] >= t0) & (trains[ident] < t0 + row["duration_ms"])), ident
    clean = truth[truth["kind"] == "integrator"]
    assert (clean["label"] == clean["class"]).all()  # every set fires in its class with the reference too
    # noiseless, the two integrators agree on spike counts (exponential Euler at dt 0.05 ms is first order)
    base = truth[truth["kind"] == "baseline"].set_index("set")["n_spikes"]
    ref = clean.set_index("set")["n_spikes"]
    assert (np.abs(ref - base.loc[ref.index]) <= np.maximum(1, 0.02 * ref)).all()
    jit = truth[truth["kind"] == "jitter"]
    for ident, row in jit.iterrows():
        base = trains[f"{row['set']}_integrator"]
        assert np.abs(trains[ident] - base).max() <= row["jitter_ms"] + 1e-9
    missed = truth[truth["kind"] == "missed"]
    for ident, row in missed.iterrows():
        n = trains[f"{row['set']}_integrator"].size
        assert n - trains[ident].size == row["spikes_dropped"] == round(row["missed_fraction"] * n)


# ----- the benchmark's table and chapter 2's section -----------------------------------------------
def _table() -> pd.DataFrame:
    rows = []
    for s, cls in (("tonic_1", "spiking"), ("bursting_1", "bursting")):
        for kind, strength, extra in (("baseline", 0.0, {"integrator": "engine"}), ("integrator", 0.0, {}),
                                      ("noise", 2.5, {"noise_std": 1.06}), ("noise", 5.0, {"noise_std": 2.12}),
                                      ("jitter", 0.5, {"jitter_ms": 0.5}), ("missed", 0.02, {"missed_fraction": 0.02}),
                                      ("duration", 1.0, {}), ("duration", 3.0, {})):
            pred = 0.9 - 0.1 * strength if cls == "bursting" else 0.8 - 0.1 * strength
            rank = 0.4 if kind == "baseline" else 0.95
            rows.append({"ID": f"{s}_{kind}_{strength:g}", "set": s, "class": cls, "kind": kind, "strength": strength,
                         "unit": "", "integrator": "reference", "noise_sigma": 0.0, "noise_std": 0.0, "jitter_ms": 0.0,
                         "missed_fraction": 0.0, "duration_ms": 3000.0, "predictive": pred, "hpd_rank": rank,
                         "in_hpd_50": rank < 0.5, "in_hpd_90": rank < 0.9, "predictive_refined": np.nan,
                         "hpd_rank_refined": np.nan, "refined": np.nan, **extra})
    silent = {**rows[0], "ID": "tonic_1_missed_0.5", "kind": "missed", "strength": 0.5, "missed_fraction": 0.5,
              "predictive": np.nan, "hpd_rank": np.nan, "in_hpd_50": np.nan, "in_hpd_90": np.nan}
    return pd.DataFrame([*rows, silent])  # a recording too short to score: NaN, left out of every share


def test_benchmark_summary_averages_per_perturbation(bench):
    summary = bench.summary(_table())
    assert summary.loc[("noise", 5.0), "predictive"] == pytest.approx((0.3 + 0.4) / 2)
    assert summary.loc[("baseline", 0.0), "coverage_90"] == 1.0
    assert summary.loc[("noise", 2.5), "coverage_90"] == 0.0
    assert summary.loc[("noise", 5.0), "predictive_tonic"] == pytest.approx(0.3)
    assert np.isnan(summary.loc[("missed", 0.5), "coverage_90"]) and summary.loc[("missed", 0.5), "recordings"] == 1


def _section_code() -> str:
    """The code cells of chapter 2's section "How robust is the posterior?" (self-contained)."""
    source = (ROOT / "chapters" / "02_inference.py").read_text(encoding="utf-8")
    section = source[source.index("# ## How robust is the posterior?"):]
    cells_ = section.split("\n# %%")
    return "\n".join(c.split("\n", 1)[1] for c in cells_[1:] if not c.startswith(" [markdown]"))


def _run_section(tmp_path, monkeypatch, cell: str = "stg") -> dict:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import myst_nb  # noqa: PLC0415

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.__setitem__(name, value))
    monkeypatch.chdir(tmp_path)
    exec(compile(_section_code(), "02_inference.py[robustness]", "exec"), {"CELL_TYPE": cell})  # noqa: S102
    return glued


@pytest.mark.filterwarnings("error")  # a warning printed in the chapter fails its browser check
def test_chapter_section_says_when_the_csv_is_missing(tmp_path, monkeypatch):
    glued = _run_section(tmp_path, monkeypatch)
    text = glued["robust_source"].data
    assert "No robustness file" in text and "python benchmarks/robustness.py" in text
    assert glued["robust_sentence"] == "There is nothing to show."
    other = _run_section(tmp_path, monkeypatch, cell="da")["robust_source"].data
    assert "da_robustness.csv" in other and "STG neuron only" in other


@pytest.mark.filterwarnings("error")  # a warning printed in the chapter fails its browser check
def test_chapter_section_reads_the_csv(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out = tmp_path / "data" / "robustness" / "stg_robustness.csv"
    out.parent.mkdir(parents=True)
    out.write_text("# date: 2026-12-01 19:00 UTC\n# command: python benchmarks/robustness.py --fast\n"
                   "# budget: 1500 training simulations (FAST); max_epochs: 40\n# refinement: not run (pass --refine)\n"
                   + _table().to_csv(index=False), encoding="utf-8")
    plt.close("all")
    glued = _run_section(tmp_path, monkeypatch)
    assert "2026-12-01 19:00 UTC" in glued["robust_source"].data and "FAST" in glued["robust_source"].data
    sentence = glued["robust_sentence"]
    # baseline mean (0.8 + 0.9)/2, reference (0.8 + 0.9)/2; strongest noise: std 2.12, tonic 0.3
    assert "0.85 on recordings of the training simulator" in sentence
    assert "std 2.1 µA/cm²" in sentence and "0.30 for the tonic sets" in sentence
    assert "100% of the training simulator's recordings and 0% of the perturbed ones" in sentence
    assert "The hardest perturbation is noise of σ = 5 µA/cm² before filtering (0.35)" in sentence  # (0.3 + 0.4) / 2
    assert "no refined fractions" in sentence
    assert glued["robust_n_sets"] == "2"
    assert len(plt.gcf().axes) == 10
    plt.close("all")


def test_a_recording_the_posterior_cannot_sample_is_a_row_with_a_note(bench):
    """One unsampleable recording (no mass in the box on its class) must not end a run of 88."""
    class NoMass:
        prior = inference.make_prior("stg")

        def sample(self, n, x, seed=0):
            raise RuntimeError("sample: fewer than 10 samples accepted after 200 rounds; retrain")

    truth = pd.Series({**dict.fromkeys(bench.COLUMNS[1:12], 0.0), "duration_ms": 3000.0}, name="burst_x")
    for name in NoMass.prior.names:
        truth[name] = 1.0
    spikes = np.arange(0.0, 3000.0, 50.0)
    row = bench.score_one(NoMass(), spikes, truth, n_check=5, n_samples=10, seed=0, backend="numpy")
    assert row["ID"] == "burst_x" and row["observed_label"] == "spiking" and row["n_spikes"] == 60, row
    assert "predictive" not in row and row["note"].startswith("sample: fewer than 10 samples")


def test_refine_ids_are_checked(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse(["--refine-ids", "tonic_1_noise_5"])
    assert "--refine-ids needs --refine" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse(["--refine", "--refine-ids", "tonic_1_noise_5", "tonic_9_nothing"])
    assert "not in" in (err := capsys.readouterr().err) and "tonic_9_nothing" in err and "noise_5," not in err
    assert bench.parse(["--refine", "--refine-ids", "tonic_1_noise_5"]).refine_ids == ["tonic_1_noise_5"]


def test_update_replaces_only_the_rescored_rows(bench, tmp_path):
    out = tmp_path / "r.csv"
    table = _table().reindex(columns=list(bench.COLUMNS))
    first = ["--refine", "--refine-ids", "tonic_1_noise_5", "--out", str(out)]
    args = bench.parse(first)
    out.write_text(bench.header(args, first, "first") + table.to_csv(index=False), encoding="utf-8")
    again = ["--refine", "--refine-ids", "tonic_1_jitter_0.5", "--update", "--out", str(out)]
    args = bench.parse(again)
    row = table[table["ID"] == "tonic_1_jitter_0.5"].assign(predictive_refined=0.85, refined=True,
                                                               refine_simulations=2000)
    head, merged = bench.updated(args, again, row)
    # Same rows in the same order; only the rescored one changed.
    assert list(merged["ID"]) == list(table["ID"])
    changed = merged["ID"] == "tonic_1_jitter_0.5"
    assert merged.loc[changed, "predictive_refined"].item() == 0.85
    written = pd.read_csv(out, comment="#")  # the other rows as the file holds them
    pd.testing.assert_frame_equal(merged[~changed].reset_index(drop=True), written[~changed].reset_index(drop=True),
                                  check_dtype=False)
    about = dict(line[2:].split(": ", 1) for line in head.splitlines())
    assert about["command"] == f"python benchmarks/robustness.py {' '.join(first)}"
    assert about["update"].startswith("rows tonic_1_jitter_0.5 rescored on ") and "--update" in about["update"]
    assert about["refinement"].endswith("among tonic_1_jitter_0.5 (the others were not considered)")
    # A file of another budget cannot be patched: its rows would not be this run's.
    other = bench.parse([*again, "--budget", "123"])
    with pytest.raises(ValueError, match="rerun the whole file"):
        bench.updated(other, again, row)
    # Nor one whose posterior trained at another learning rate (or before the header recorded it).
    assert about["learning_rate"] == f"{inference.standard_settings().learning_rate:g}"
    for old_line, rate in (("", bench.LEGACY_LEARNING_RATE), ("# learning_rate: 0.5\n", "0.5")):
        text = "".join(line + "\n" for line in out.read_text(encoding="utf-8").splitlines()
                       if not line.startswith("# learning_rate"))
        out.write_text(old_line + text, encoding="utf-8")
        with pytest.raises(ValueError, match=f"made at learning rate {rate}, this run trains at"):
            bench.updated(args, again, row)
    with pytest.raises(SystemExit):
        bench.parse(["--update", "--out", str(out)])


@pytest.mark.filterwarnings("error")  # a warning printed in the chapter fails its browser check
def test_chapter_section_draws_each_refined_recording_as_an_arrow(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.text import Annotation  # noqa: PLC0415

    table = _table()
    table["refined"] = table["refined"].astype(object)
    considered = table["ID"].isin(["tonic_1_noise_5", "bursting_1_jitter_0.5"])
    table.loc[considered, "refined"] = [True, False]  # the burster passed amortised: considered, not refined
    table.loc[table["ID"] == "tonic_1_noise_5", "predictive_refined"] = 0.85
    passed = table["ID"] == "bursting_1_jitter_0.5"
    table.loc[passed, "predictive_refined"] = table.loc[passed, "predictive"]
    out = tmp_path / "data" / "robustness" / "stg_robustness.csv"
    out.parent.mkdir(parents=True)
    out.write_text("# date: 2026-12-01 19:00 UTC\n# command: python benchmarks/robustness.py --refine\n"
                   "# budget: 30000 training simulations (standard)\n# refinement: refined among two\n"
                   "# update: rows tonic_1_noise_5 rescored on D by python benchmarks/robustness.py --update\n"
                   + table.to_csv(index=False), encoding="utf-8")
    plt.close("all")
    glued = _run_section(tmp_path, monkeypatch)
    # the update's command is code in the page (outside backticks Markdown turns -- into a dash)
    assert "rescored on D by `python benchmarks/robustness.py --update`." in glued["robust_source"].data
    # the worst fraction after refinement over the considered rows (both 0.85), one of them refined
    assert ("after refinement the worst recording reaches 0.85 (1 refined, all of the 2 considered at or above 0.8)"
            in glued["robust_sentence"])
    arrows = [a for ax in plt.gcf().axes for a in ax.get_children() if isinstance(a, Annotation)]
    assert len(arrows) == 1
    assert arrows[0].xy[1] == pytest.approx(0.85) and arrows[0].xyann[1] == pytest.approx(0.8 - 0.1 * 5.0)
    plt.close("all")
