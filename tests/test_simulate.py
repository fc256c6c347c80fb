"""The batched integrator: invariants, published activity, SciPy cross-checks, noise, bad input.

Published example sets and their activity: Fyon et al. (2024) PNAS Nexus 3:pgae415 and
Brandoit et al. (2025) arXiv:2509.12783 (STG: Liu et al. 1998; DA: Qian et al. 2014).
"""

from pathlib import Path

import numpy as np
import pytest

from condspace import cells, features, simulate
from condspace.kinetics import gate_slots, gate_steady_state, initial_state
from condspace.reference import simulate_scipy
from condspace.simulate import _Noise

REFERENCE = Path(__file__).parent / "reference" / "scipy_spikes.npz"
STG, DA = cells.get("stg"), cells.get("da")

# label → (class, spikes per burst or tonic rate in Hz), SCIENCE.md §1 table.
STG_PUBLISHED = {
    "DIC spiking": ("spiking", 13.0),
    "DIC bursting a": ("bursting", 4),
    "DIC bursting b": ("bursting", 4),
    "tonic spiking": ("spiking", 15.0),
    "bursting": ("bursting", 8),
}


def _matrix(cell):
    return np.array([[g[k] for k in cell.conductance_names] for g in cell.examples.values()])


@pytest.fixture(scope="module")
def published(published_run):
    """Spike trains of every published set over the cell's literature protocol (NumPy, table)."""
    out = {}
    for cell in (STG, DA):
        res = published_run(cell)  # shared with tests/test_cells.py (conftest.py)
        assert res.ok.all()
        out[cell.name] = dict(zip(cell.examples, res.spike_times, strict=True)), res.duration
    return out


# ----- invariants --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["stg", "da"])
def test_gates_start_at_steady_state(name):
    cell = cells.get(name)
    init = initial_state(cell)
    plain = [s for s in gate_slots(cell) if s.kind != "scheme"]
    for slot, value in zip(plain, init["gates"], strict=True):
        expected = gate_steady_state(np, slot, np.float64(cell.V0), init["ca"])
        assert value == pytest.approx(float(expected), rel=1e-15)
    assert init["V"] == cell.V0


@pytest.mark.parametrize("name", ["stg", "da"])
def test_passive_cell_relaxes_to_leak_reversal(name):
    cell = cells.get(name)
    g = {k: 0.0 for k in cell.conductance_names}
    g["g_leak"] = 0.01  # τ_m = C / g_leak = 100 ms
    res = simulate(cell, g, t_max=2000.0, dt=0.1, transient=0.0, backend="numpy", record=[0])
    V = res.traces["V"][0]
    assert V[0] == cell.V0
    assert abs(V[-1] - cell.leak_reversal) < 1e-6  # 20 membrane time constants
    # Exponential relaxation with τ = 100 ms: exact for a linear cell under exponential Euler.
    t = res.traces["t"]
    expected = cell.leak_reversal + (cell.V0 - cell.leak_reversal) * np.exp(-t / 100.0)
    np.testing.assert_allclose(V, expected, atol=1e-9)
    assert res.n_spikes[0] == 0


@pytest.mark.parametrize("name", ["stg", "da"])
def test_rate_table_interpolation_error_is_negligible(name):
    """Every tabulated column (x∞, exp(−dt/τ), scheme rates) against the exact declaration."""
    from condspace._engine import Engine

    cell = cells.get(name)
    table = Engine(cell, 0.05, np, np.float64, "table")
    exact = Engine(cell, 0.05, np, np.float64, "exact")
    V = np.random.default_rng(0).uniform(-120.0, 60.0, 20000)
    a, b = table.rates(V.copy()), exact.rates(V.copy())
    err = np.abs(a - b) / np.maximum(np.abs(b).max(axis=1, keepdims=True), 1e-300)
    # Linear interpolation on a 0.02 mV grid of smooth functions: error ~ h²·f''/8.
    away = (V < -39.5) | (V > -38.0)  # the DA τ_mNa pole shoulder, see below
    assert np.max(err[:, away]) < 2e-6
    # Near the DA τ_mNa bridge (qian14_da._tau_m_na) the rate is steep and has slope kinks at
    # -38.925 and -38.529 mV, where the error is bounded by |Δslope|·h/4 instead.
    assert np.max(err) < 2e-4


def test_table_and_exact_rates_give_the_same_spike_trains():
    g = _matrix(STG)
    a = simulate(STG, g, t_max=1500.0, transient=500.0, backend="numpy", method="table")
    b = simulate(STG, g, t_max=1500.0, transient=500.0, backend="numpy", method="exact")
    assert list(a.n_spikes) == list(b.n_spikes)
    fa, fb = features.from_simulation(a), features.from_simulation(b)
    assert fa["label"].tolist() == fb["label"].tolist()
    # The table is a 1e-7 perturbation of the rate functions (test above); spike times of some
    # bursters drift by a few ms over a second (period sensitivity), so compare features.
    for col in ("spiking_freq_hz", "spikes_per_burst", "burst_period_ms", "duty_cycle"):
        np.testing.assert_allclose(fa[col], fb[col], rtol=0.02, equal_nan=True)


def test_chunking_does_not_change_results():
    rng = np.random.default_rng(3)
    g = np.repeat(_matrix(STG), 4, axis=0) * rng.uniform(0.9, 1.1, (20, 8))
    kw = dict(t_max=600.0, transient=100.0, backend="numpy", noise_std=0.5, seed=7)
    a = simulate(STG, g, chunk_size=20, **kw)
    b = simulate(STG, g, chunk_size=3, **kw)
    for sa, sb in zip(a.spike_times, b.spike_times, strict=True):
        # Same noise per neuron and purely elementwise arithmetic: bit-identical.
        np.testing.assert_array_equal(sa, sb)


def test_worker_processes_give_identical_results():
    """NumPy engine, chunks integrated in forked workers: same spikes, flags and traces as one process
    (noise included). The compiled engine's threads: tests/test_numba.py."""
    rng = np.random.default_rng(4)
    g = np.repeat(_matrix(STG), 4, axis=0) * rng.uniform(0.9, 1.1, (20, 8))
    current = np.zeros(20)
    current[13] = 1e6  # one neuron blows up: flagged in whichever worker integrates it
    kw = dict(t_max=500.0, transient=100.0, backend="numpy", engine="numpy", noise_std=0.5, seed=11, current=current,
              record={"neurons": [2, 9, 17], "interval": 1.0}, chunk_size=6)
    one = simulate(STG, g, workers=1, **kw)
    two = simulate(STG, g, workers=2, **kw)
    assert two.metadata["workers"] == 2 and one.metadata["workers"] == 1
    np.testing.assert_array_equal(one.ok, two.ok)
    assert not one.ok[13] and one.ok.sum() == 19
    for sa, sb in zip(one.spike_times, two.spike_times, strict=True):
        np.testing.assert_array_equal(sa, sb)
    np.testing.assert_array_equal(one.traces["V"], two.traces["V"])
    assert sum(len(s) for s in one.spike_times) > 50


def test_workers_argument_and_environment_are_checked(monkeypatch):
    g = _matrix(STG)[:1]
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        simulate(STG, g, t_max=10.0, transient=0.0, backend="numpy", workers=0)
    monkeypatch.setenv("CONDSPACE_WORKERS", "two")
    with pytest.raises(ValueError, match="CONDSPACE_WORKERS must be a positive integer"):
        simulate(STG, g, t_max=10.0, transient=0.0, backend="numpy")
    monkeypatch.setenv("CONDSPACE_WORKERS", "1")
    assert simulate(STG, g, t_max=10.0, transient=0.0, backend="numpy").metadata["workers"] == 1


# ----- published activity --------------------------------------------------------------------------
@pytest.mark.parametrize("label", list(STG_PUBLISHED))
def test_published_stg_sets_have_their_stated_activity(published, label):
    trains, duration = published["stg"]
    df = features.extract([trains[label]], duration)
    kind, value = STG_PUBLISHED[label]
    assert df["label"][0] == kind
    if kind == "spiking":
        assert df["spiking_freq_hz"][0] == pytest.approx(value, rel=0.10)
    else:
        assert abs(df["spikes_per_burst"][0] - value) <= 1


def test_published_sets_match_scipy_reference(published):
    """Exponential Euler (dt 0.05 ms) against solve_ivp LSODA rtol 1e-8 (tests/reference/README.md)."""
    ref = np.load(REFERENCE)
    rel_errors = []
    for cell in (STG, DA):
        trains, duration = published[cell.name]
        for label, spikes in trains.items():
            expected = ref[f"{cell.name}/{label}"]
            ours, theirs = features.extract([spikes, expected], duration)["label"]
            assert ours == theirs, f"{cell.name} {label}: class {ours} vs SciPy {theirs}"
            err = abs(len(spikes) - len(expected)) / len(expected)
            assert err <= 0.05, f"{cell.name} {label}: {len(spikes)} vs {len(expected)} spikes"
            rel_errors.append(err)
    assert np.median(rel_errors) <= 0.02


def test_frozen_reference_matches_a_live_scipy_run():
    """Guards the frozen file: regenerate it (tools/make_reference.py) if this fails."""
    g = [STG.example("tonic spiking")[k] for k in STG.conductance_names]
    live = simulate_scipy(STG, g, t_max=1500.0, transient=0.0, method="LSODA", rtol=1e-8, atol=1e-10)
    ours = simulate(STG, [g], t_max=1500.0, transient=0.0, backend="numpy").spike_times[0]
    assert len(live) == len(ours)
    # First-order scheme at dt 0.05 ms: the tonic rate is within 1 % of the converged one.
    assert np.diff(ours).mean() == pytest.approx(np.diff(live).mean(), rel=0.01)
    frozen = np.load(REFERENCE)["stg/tonic spiking"]
    live_late = simulate_scipy(STG, g, t_max=3600.0, transient=3000.0, method="LSODA", rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(frozen[: len(live_late)], live_late, rtol=1e-6)


# ----- noise -----------------------------------------------------------------------------------------
def test_noise_std_is_the_std_after_filtering():
    noise = _Noise(std=2.0, dt=0.05, seed=1, start=0, n=64)
    block = noise.block(40000)[2000:]  # drop the filter's start-up
    assert block.std() == pytest.approx(2.0, rel=0.02)
    # Low-pass at 1 kHz: almost no power above 3 kHz.
    spec = np.abs(np.fft.rfft(block, axis=0)) ** 2
    freq = np.fft.rfftfreq(block.shape[0], d=0.05e-3)
    assert spec[freq > 3000].sum() / spec.sum() < 1e-3


def test_noise_is_reproducible_from_seed():
    g = _matrix(STG)[:2]
    kw = dict(t_max=800.0, transient=0.0, backend="numpy", noise_std=1.0)
    a = simulate(STG, g, seed=5, **kw)
    b = simulate(STG, g, seed=5, **kw)
    c = simulate(STG, g, seed=6, **kw)
    for sa, sb in zip(a.spike_times, b.spike_times, strict=True):
        np.testing.assert_array_equal(sa, sb)
    assert any(len(sa) != len(sc) or not np.allclose(sa, sc) for sa, sc in zip(a.spike_times, c.spike_times,
                                                                                 strict=True))


def test_per_neuron_noise_equals_scalar_runs_and_zero_is_noiseless():
    """Neuron i with σ_i gets the current a scalar-σ_i run gives it (same seed and position), chunked or
    not; σ_i = 0 is the noiseless neuron bit for bit."""
    g = np.repeat(_matrix(STG)[:2], 3, axis=0)  # 6 neurons
    sigma = np.array([0.0, 0.5, 3.0, 8.0, 0.0, 1.0])
    kw = dict(t_max=700.0, transient=100.0, backend="numpy", engine="numpy", seed=9)
    mixed = simulate(STG, g, noise_std=sigma, **kw)
    chunked = simulate(STG, g, noise_std=sigma, chunk_size=4, **kw)
    assert mixed.metadata["noise_std"] == sigma.tolist()
    clean = simulate(STG, g, **kw)
    for i, s in enumerate(sigma):
        scalar = simulate(STG, g, noise_std=float(s), **kw)
        np.testing.assert_array_equal(mixed.spike_times[i], scalar.spike_times[i])
        np.testing.assert_array_equal(chunked.spike_times[i], scalar.spike_times[i])
        if s == 0:
            np.testing.assert_array_equal(mixed.spike_times[i], clean.spike_times[i])
    # and the noise matters where it is strong: neuron 3 (σ = 8) differs from its noiseless twin
    assert not np.array_equal(mixed.spike_times[3], clean.spike_times[3])


@pytest.mark.parametrize("noise_std, match", [
    ([0.5, 0.5], r"noise_std: a per-neuron noise needs shape \(1,\)"),
    (np.ones((1, 1)), r"needs shape \(1,\)"),
    ([-0.5], r"noise_std\[0\] = -0.5 is not a finite value ≥ 0"),
    ([np.nan], r"noise_std\[0\] = nan"),
    ([np.inf], r"noise_std\[0\] = inf"),
    (np.array([True]), "noise_std: got booleans"),
    (["a"], "noise_std: expected numbers, got text"),
    ("1.0", "noise_std: expected a number"),
])
def test_bad_per_neuron_noise_is_refused(noise_std, match):
    with pytest.raises(ValueError, match=match):
        simulate(STG, GOOD, t_max=100.0, transient=0.0, backend="numpy", noise_std=noise_std)


# ----- outputs -----------------------------------------------------------------------------------------
def test_blow_up_is_flagged_per_neuron():
    g = np.repeat(_matrix(STG)[:1], 3, axis=0)
    res = simulate(STG, g, t_max=300.0, transient=0.0, backend="numpy", current=[0.0, 1e6, 0.0])
    assert res.ok.tolist() == [True, False, True]
    assert len(res.spike_times[1]) == 0
    np.testing.assert_array_equal(res.spike_times[0], res.spike_times[2])


def test_spikes_are_after_transient_and_traces_recorded():
    g = _matrix(STG)[3:4]
    res = simulate(STG, g, t_max=1000.0, transient=600.0, backend="numpy", record={"neurons": [0], "interval": 0.5})
    assert res.spike_times[0].min() >= 600.0
    assert res.traces["V"].shape == (1, 2001)
    assert res.traces["t"][-1] == pytest.approx(1000.0)
    assert res.traces["V"].max() > 10.0
    assert res.metadata["duration"] == 400.0 and res.metadata["backend"] == "numpy"


def test_mapping_input_and_fixed_conductances():
    g = DA.example("tonic spiking")
    g.pop("g_NMDA")  # fixed conductances may be omitted: g_NMDA = 0.012 (SCIENCE.md §2 Decision)
    res = simulate(DA, {k.removeprefix("g_"): v for k, v in g.items()}, t_max=50.0, transient=0.0,
                   backend="numpy")
    assert res.ok.all()


# ----- bad input -------------------------------------------------------------------------------------
GOOD = [list(STG.example("tonic spiking").values())]


@pytest.mark.parametrize("kwargs, match", [
    (dict(cell="nope"), "unknown cell type"),
    (dict(g=np.ones((2, 7))), r"expected shape \(N, 8\)"),
    (dict(g=[[1.0] * 7 + [-0.01]]), "g_leak of neuron 0 is -0.01 < 0"),
    (dict(g=[[np.nan] + [1.0] * 7]), "g_Na of neuron 0 is nan"),
    (dict(g=[[np.inf] + [1.0] * 7]), "must be finite"),
    (dict(g={"g_Na": 1.0, "g_Foo": 2.0}), "unknown conductance 'g_Foo'"),
    (dict(g={"g_Na": 1.0}), "missing conductances"),
    (dict(dt=0.0), "dt must be > 0"),
    (dict(dt=5.0), "too large"),
    (dict(transient=1000.0, t_max=1000.0), "transient must satisfy"),
    (dict(noise_std=-1.0), "noise_std"),
    (dict(current=[1.0, 2.0]), "current: expected a scalar or an array of shape"),
    (dict(record=[5]), "record: neuron indices"),
    (dict(method="rk4"), "method must be"),
    (dict(backend="tpu"), "backend='tpu' is not known"),
])
def test_bad_input_raises_clear_errors(kwargs, match):
    args = dict(cell="stg", g=GOOD, t_max=100.0, transient=0.0, backend="numpy")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        simulate(args.pop("cell"), args.pop("g"), **args)


def test_cupy_without_gpu_is_a_clear_error(monkeypatch):
    from condspace import backend

    monkeypatch.setattr(backend, "gpu_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        simulate("stg", GOOD, t_max=10.0, transient=0.0, backend="cupy")
