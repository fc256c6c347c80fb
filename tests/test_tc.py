"""The thalamocortical relay neuron 'tc' (Destexhe, Bal, McCormick & Sejnowski 1996): what the papers report.

The generic behaviour test (tests/test_cells.py) checks the activity class of each declared
behaviour. Here the same behaviours are checked in the terms the papers use (McCormick &
Huguenard 1992; Destexhe et al. 1996): a stable rest, tonic firing whose rate grows with the
depolarising current, delta-band bursts under steady hyperpolarisation, and a rebound burst
(a low-threshold Ca²⁺ spike crowned by Na⁺ spikes) at the end of a hyperpolarising step, which
disappears without I_T. The figure numbers of these behaviours in the papers could not be checked
where this was written (see the declaration). Then the declaration's population recipe and
modulation targets are checked against what its comments claim.
"""

import dataclasses

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from condspace import cells, features, populations, reference, simulate

TC = cells.get("tc")


def _g(label="published", **change):
    g = {**TC.example(label), **change}
    return np.array([g[n] for n in TC.conductance_names])


def _step_response(g, current, t_on=1000.0, t_off=2000.0, t_end=2400.0):
    """solve_ivp run of one neuron with I_app = ``current`` (µA/cm²) on [t_on, t_off), 0 elsewhere.

    Returns (solution, spike times in ms): spikes are upward crossings of +10 mV.
    """
    at_rest = reference.rhs(TC, g, 0.0)

    def f(t, y):
        dy = at_rest(t, y)
        if t_on <= t < t_off:
            dy[0] += current / TC.capacitance
        return dy

    def up(t, y):
        return y[0] - 10.0

    up.direction = 1.0
    # max_step 1 ms: the step edges are discontinuities the adaptive step must not jump over
    sol = solve_ivp(f, (0.0, t_end), reference.initial_vector(TC), method="LSODA", rtol=1e-7, atol=1e-9,
                    events=(up,), max_step=1.0)
    assert sol.status == 0, sol.message
    return sol, sol.t_events[0]


def _at_steady_state(V):
    """State vector with every gate at its steady state at V (mV); the tc cell has no scheme or pool."""
    return reference.initial_vector(dataclasses.replace(TC, V0=float(V)))


def test_rest_is_a_stable_steady_state_near_minus_69_mV():
    g = _g()
    f = reference.rhs(TC, g, 0.0)
    V_rest = brentq(lambda V: f(0.0, _at_steady_state(V))[0], -75.0, -60.0, xtol=1e-10)
    assert -69.0 < V_rest < -68.4  # mV: −68.7 in the declaration's comment
    # the only steady state below −55 mV (another, unstable, lies near the spike threshold)
    V = np.linspace(-100.0, -55.0, 451)
    i_ss = np.array([f(0.0, _at_steady_state(v))[0] for v in V])
    assert np.count_nonzero(np.diff(np.sign(i_ss))) == 1
    # stable: every eigenvalue of the Jacobian (central differences) has a negative real part
    y = _at_steady_state(V_rest)
    J = np.empty((y.size, y.size))
    for k in range(y.size):
        h = 1e-6 * max(1.0, abs(y[k]))
        dy = np.zeros_like(y)
        dy[k] = h
        J[:, k] = (f(0.0, y + dy) - f(0.0, y - dy)) / (2 * h)
    live = [k for k in range(y.size) if np.any(J[k] != 0.0)]  # drop the K-leak's constant gate (x ≡ 1)
    eig = np.linalg.eigvals(J[np.ix_(live, live)])
    assert eig.real.max() < 0.0, eig
    # and the integrated cell settles there without firing
    sol, spikes = _step_response(g, 0.0, t_end=1000.0)
    assert spikes.size == 0 and abs(sol.y[0, -1] - V_rest) < 1.0


def test_tonic_firing_rate_grows_with_depolarising_current():
    currents = np.array([0.5, 1.0, 2.0])
    res = simulate(TC, np.repeat(_g()[None, :], currents.size, 0), current=currents, backend="numpy")
    table = features.from_simulation(res)
    assert (table["label"] == "spiking").all(), table["label"].tolist()
    assert (table["cv_isi"] < 0.05).all()  # single spikes at a regular rate: tonic mode
    rates = table["spiking_freq_hz"].to_numpy()
    assert np.all(np.diff(rates) > 0), rates
    # 35.27 Hz at 1 µA/cm² with solve_ivp (LSODA, rtol 1e-9, 8 s) where the declaration's dt was chosen
    assert rates[1] == pytest.approx(35.27, rel=0.01)


def test_delta_bursts_under_steady_hyperpolarisation():
    res = simulate(TC, [_g()], current=-0.25, backend="numpy")
    row = features.from_simulation(res).iloc[0]
    assert row["label"] == "bursting"
    assert row["spikes_per_burst"] >= 2  # Na⁺ spikes crowning each low-threshold Ca²⁺ spike
    assert 0.5 <= row["interburst_freq_hz"] <= 4.0  # the delta band (3.32 Hz measured)


def test_rebound_burst_after_a_hyperpolarising_step_needs_i_t():
    _, spikes = _step_response(_g(), -0.5)  # 1 s at −0.5 µA/cm² (about −81 mV), then released
    during = spikes[(spikes >= 1000.0) & (spikes < 2000.0)]
    after = spikes[spikes >= 2000.0]
    assert during.size == 0
    first = after[after < 2060.0]
    assert first.size >= 3, after  # a burst within 60 ms of the release ...
    assert np.diff(first).max() < 15.0  # ... at intraburst intervals (6 spikes in 25 ms measured)
    _, spikes_no_t = _step_response(_g(g_T=0.0), -0.5)
    assert spikes_no_t.size == 0  # without I_T no rebound


def test_k_leak_switches_the_cell_between_tonic_and_burst_mode_at_rest():
    # The two declared states the demonstration recordings use: I_KL blocked fires tonically,
    # I_KL raised 23 % bursts, with and without the recordings' noise.
    g = np.stack([_g("K-leak blocked"), _g("K-leak raised")])
    for noise in (0.0, 0.1):
        labels = features.from_simulation(simulate(TC, g, noise_std=noise, seed=2, backend="numpy"))["label"]
        assert labels.tolist() == ["spiking", "bursting"], (noise, labels.tolist())


def test_population_recipe_fires_tonically_and_its_modulation_bursts():
    pop = populations.spiking_population(TC, 40, seed=0)
    assert pop.n_reachable == 40
    np.testing.assert_allclose(pop.residual, 0.0, atol=1e-9)
    labels = features.from_simulation(simulate(TC, pop.g, backend="numpy"))["label"]
    assert (labels == "spiking").mean() >= 0.75, labels.value_counts().to_dict()
    moved = populations.modulate(TC, pop.g, TC.modulation_target("bursting"))
    assert moved.meta["pairs"][0] == ("T", "H") and moved.n_reachable == 40
    labels = features.from_simulation(simulate(TC, moved.g, backend="numpy"))["label"]
    assert (labels == "bursting").mean() >= 0.9, labels.value_counts().to_dict()
