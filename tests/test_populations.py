"""Compensation populations and neuromodulation (condspace.populations).

Check values (Fyon et al. 2024, PNAS Nexus 3:pgae415; method of Drion et al. 2015), copied here:
- STG at V* = −51 mV, drawn Kd 105, CaT 5, CaS 14, KCa 160, leak 0.01, target (−6.2, 4, 5)
  → Na 6591.636717, A 361.0130784, H 0.3209870988;
  then modulated to (g_s, g_u) = (−4, 5): {CaS, H} with 5 calcium iterations → CaS 32.306779,
  H 0.340183; {CaS, A} with 5 → CaS 26.229284, A 267.555998; {A, H} → A 76.531409, H 0.279825.
- DA at V* = −55.5 mV, drawn Kd 8, CaL 0.045, NMDA 0.012, leak 0.01285, target (−12.95, 0.5, 5)
  → Na 35.46934803, CaN 0.0406963482, ERG 0.1501586994.
Structural facts: {Na, Kd} cannot move (g_s, g_u) at −51 mV; DA pairs with NMDA are singular;
{A, CaS} towards (−5, 7) from the (4, 5) spiking population drives ḡ_A negative.
"""

import itertools

import numpy as np
import pytest

from condspace import cells
from condspace.dics import dics
from condspace.populations import (
    compensate,
    full_target,
    gamma_matched,
    modulate,
    modulation_pair,
    spiking_population,
)

STG, DA = cells.get("stg"), cells.get("da")
NAN = np.nan
STG_DRAWN = np.array([NAN, 105, 5, 14, 160, NAN, NAN, 0.01])
DA_DRAWN = np.array([NAN, 8, 0.045, NAN, NAN, 0.012, 0.01285])


def values(cell, g, names):
    return np.array([g[..., cell.index(n)] for n in names]).T


@pytest.fixture(scope="module")
def stg_neuron():
    res = compensate(STG, STG_DRAWN, (-6.2, 4.0, 5.0), -51.0, ("Na", "A", "H"))
    return res.g


def test_stg_deterministic_compensation(stg_neuron):
    np.testing.assert_allclose(values(STG, stg_neuron, ("Na", "A", "H"))[0],
                               [6591.636717, 361.0130784, 0.3209870988], rtol=1e-6)
    np.testing.assert_allclose(dics(STG, stg_neuron, -51.0)[0], [-6.2, 4.0, 5.0], rtol=1e-12)


def test_da_deterministic_compensation():
    res = compensate(DA, DA_DRAWN, (-12.95, 0.5, 5.0), -55.5, ("Na", "CaN", "ERG"))
    assert res.reachable.all() and res.iterations == 0  # no calcium pool: one solve
    np.testing.assert_allclose(values(DA, res.g, ("Na", "CaN", "ERG"))[0],
                               [35.46934803, 0.0406963482, 0.1501586994], rtol=1e-6)
    assert res.residual[0] < 1e-12


@pytest.mark.parametrize(("pair", "expected"), [
    (("CaS", "H"), (32.306779, 0.340183)),
    (("CaS", "A"), (26.229284, 267.555998)),
    (("A", "H"), (76.531409, 0.279825)),
], ids=["CaS-H", "CaS-A", "A-H"])
def test_stg_modulation_check_values(stg_neuron, pair, expected):
    res = modulate(STG, stg_neuron, (-4.0, 5.0), channels=pair, iterations=5)
    assert res.reachable.all() and res.solve_for == pair and res.rows == ("slow", "ultraslow")
    np.testing.assert_allclose(values(STG, res.g, pair)[0], expected, rtol=1e-6)
    # the other conductances are untouched
    rest = [j for j in range(8) if STG.channel_names[j] not in pair]
    np.testing.assert_array_equal(res.g[:, rest], stg_neuron[:, rest])


def test_calcium_iteration_converges(stg_neuron):
    residuals = [modulate(STG, stg_neuron, (-4.0, 5.0), channels=("CaS", "A"), iterations=k).residual[0]
                 for k in (0, 2, 5, 25)]
    assert all(b < a for a, b in itertools.pairwise(residuals))
    assert residuals[2] < 1e-4 and residuals[3] < 1e-10  # Fyon et al. 2024: 5 iterations ≤ 1e-4
    res = modulate(STG, stg_neuron, (-4.0, 5.0), channels=("CaS", "A"), iterations=25)
    np.testing.assert_allclose(dics(STG, res.g, -51.0)[0, 1:], [-4.0, 5.0], rtol=0, atol=1e-10)
    # the starting guess does not matter once converged
    own = modulate(STG, stg_neuron, (-4.0, 5.0), channels=("CaS", "A"), iterations=25, guess="baseline")
    np.testing.assert_allclose(own.g, res.g, rtol=1e-10)


def test_singular_pairs_are_reported_not_raised(stg_neuron):
    res = modulate(STG, np.repeat(stg_neuron, 3, axis=0), (-4.0, 5.0), channels=("Na", "Kd"))
    assert not res.reachable.any() and list(res.reason) == ["singular"] * 3
    assert np.isnan(values(STG, res.g, ("Na", "Kd"))).all()
    da = compensate(DA, DA_DRAWN, (-12.95, 0.5, 5.0), -55.5, ("Na", "CaN", "ERG")).g
    for other in ("Na", "Kd", "CaL", "CaN", "ERG"):
        res = modulate(DA, da, (-2.0, 6.0), channels=(other, "NMDA"))
        assert res.reason[0] == "singular", other
    # any (s, u) solve with NMDA is singular (purely fast); with three rows its g_f column is enough
    assert compensate(DA, da, (0.5, 5.0), -55.5, ("Kd", "NMDA")).reason[0] == "singular"
    assert compensate(DA, da, (-12.95, 0.5, 5.0), -55.5, ("Na", "ERG", "NMDA")).reachable[0]


def test_negative_solutions_are_flagged_and_kept():
    pop = spiking_population(STG, 300, seed=2)
    res = modulate(STG, pop.g, (-5.0, 7.0), channels=("A", "CaS"))
    assert res.g.shape == pop.g.shape  # nobody dropped
    assert not res.reachable.any() and set(res.reason) == {"negative"}
    assert (res.g[:, STG.index("A")] < 0).all()
    assert res.counts() == {"reachable": 0, "singular": 0, "non-finite": 0, "negative": 300}


@pytest.mark.parametrize("cell", [STG, DA], ids=["stg", "da"])
def test_spiking_population_hits_its_target(cell):
    pop = spiking_population(cell, 2000, seed=5)
    target = np.array(cell.population.target)
    assert pop.g.shape == (2000, cell.n_channels) and sum(pop.counts().values()) == 2000
    assert pop.reachable.mean() > 0.9
    got = dics(cell, pop.g[pop.reachable], cell.population.V_ref)
    np.testing.assert_allclose(got, np.broadcast_to(target, got.shape), rtol=1e-9, atol=1e-9)
    # reproducible from the seed, different for another seed
    np.testing.assert_array_equal(spiking_population(cell, 2000, seed=5).g, pop.g)
    assert not np.array_equal(spiking_population(cell, 2000, seed=6).g, pop.g)
    for name, value in cell.fixed.items():
        assert (pop.g[:, cell.index(name)] == value).all()


@pytest.mark.parametrize("cell", [STG, DA], ids=["stg", "da"])
def test_spiking_population_draws(cell):
    n = 40000
    pop = spiking_population(cell, n, seed=1)
    a, b = cell.population.leak_uniform
    g_leak = pop.g[:, -1]
    # Gamma with the mean and variance of U[a, b] (4-sigma sampling bands)
    mean, var = (a + b) / 2, (b - a) ** 2 / 12
    k, theta = gamma_matched(a, b)
    np.testing.assert_allclose([k * theta, k * theta**2], [mean, var], rtol=1e-12)
    assert abs(g_leak.mean() - mean) < 4 * np.sqrt(var / n)
    assert abs(g_leak.var() / var - 1) < 4 * np.sqrt((2 + 6 / k) / n)  # sd of s²/σ² for a Gamma(k)
    # each drawn conductance is U[lo, hi] × g_leak / mean(g_leak)
    for name, (lo, hi) in cell.population.drawn.items():
        u = pop.g[:, cell.index(name)] * mean / g_leak
        assert u.min() >= lo and u.max() <= hi
        assert abs(u.mean() - (lo + hi) / 2) < 4 * (hi - lo) / np.sqrt(12 * n)


def test_general_target_uses_the_gf_rule():
    np.testing.assert_allclose(full_target(STG, (-4.0, 5.0)), [1.8, -4.0, 5.0])  # g_f = −g_s − 2.2
    np.testing.assert_allclose(full_target(DA, (1.0, 5.0)), [-14.9, 1.0, 5.0])  # g_f = −3.9 g_s − 11
    pop = spiking_population(STG, 200, seed=0, target=(-4.0, 5.0))
    ok = pop.reachable
    np.testing.assert_allclose(dics(STG, pop.g[ok], -51.0), np.broadcast_to([1.8, -4.0, 5.0], (ok.sum(), 3)),
                               atol=1e-9)


def test_targets_full_or_row_only_and_per_neuron(stg_neuron):
    G = np.repeat(stg_neuron, 4, axis=0)
    full = modulate(STG, G, (-4.0, 5.0), channels=("A", "H"))
    rows_only = compensate(STG, G, (-4.0, 5.0), -51.0, ("A", "H"))
    with_gf = compensate(STG, G, (123.0, -4.0, 5.0), -51.0, ("A", "H"))  # g_f ignored: rows s, u
    np.testing.assert_allclose(rows_only.g, full.g, rtol=1e-12)
    np.testing.assert_allclose(with_gf.g, full.g, rtol=1e-12)
    per = compensate(STG, G, np.array([[4.0, 5.0], [-4.0, 5.0], [0.0, 3.0], [-8.0, 4.0]]), -51.0, ("A", "H"))
    np.testing.assert_allclose(dics(STG, per.g[per.reachable], -51.0)[:, 1:],
                               np.array([[4.0, 5.0], [-4.0, 5.0], [0.0, 3.0], [-8.0, 4.0]])[per.reachable],
                               atol=1e-9)
    one = compensate(STG, G, (2.5,), -51.0, ("H",), rows=("u",))
    np.testing.assert_allclose(dics(STG, one.g, -51.0)[:, 2], 2.5, atol=1e-10)
    # one reference voltage per neuron
    V = np.array([-53.0, -52.0, -51.0, -50.0])
    per_v = compensate(STG, np.repeat(STG_DRAWN[None], 4, axis=0), (-6.2, 4.0, 5.0), V, ("Na", "A", "H"))
    ok = per_v.reachable
    assert ok.sum() >= 3 and per_v.V.tolist() == V.tolist()
    np.testing.assert_allclose(dics(STG, per_v.g[ok], V[ok]), np.broadcast_to([-6.2, 4.0, 5.0], (ok.sum(), 3)),
                               atol=1e-9)
    np.testing.assert_allclose(per_v.g[2], compensate(STG, STG_DRAWN, (-6.2, 4.0, 5.0), -51.0,
                                                      ("Na", "A", "H")).g[0], rtol=1e-12)


def test_default_modulation_pairs_follow_the_declared_rules(stg_neuron):
    assert modulation_pair(STG, 3.0, -1.0) == ("CaS", "A")  # g_u* < 0
    assert modulation_pair(STG, 3.0, 5.0) == ("A", "H")  # g_s* ≥ 0
    assert modulation_pair(STG, -4.0, 5.0) == ("CaS", "H")  # else
    assert modulation_pair(DA, -1.0, 5.0) == ("ERG", "CaL")
    assert modulation_pair(DA, 1.0, 5.0) == ("ERG", "Kd")
    G = np.repeat(stg_neuron, 2, axis=0)
    res = modulate(STG, G, np.array([[-4.0, 5.0], [6.0, 5.0]]), iterations=5)
    assert list(res.meta["pairs"]) == [("CaS", "H"), ("A", "H")]
    np.testing.assert_allclose(values(STG, res.g[:1], ("CaS", "H"))[0], (32.306779, 0.340183), rtol=1e-6)
    np.testing.assert_allclose(dics(STG, res.g[1:], -51.0)[0, 1:], [6.0, 5.0], atol=1e-9)


def test_bad_inputs_raise_clear_errors(stg_neuron):
    with pytest.raises(KeyError, match="solve_for: cell 'stg' has no conductance 'Nav'"):
        compensate(STG, STG_DRAWN, (-6.2, 4, 5), -51.0, ("Nav", "A", "H"))
    with pytest.raises(ValueError, match="the leak is always drawn"):
        compensate(STG, STG_DRAWN, (-6.2, 4, 5), -51.0, ("Na", "A", "leak"))
    with pytest.raises(ValueError, match=r"g_drawn: expected shape \(N, 8\)"):
        compensate(STG, STG_DRAWN[:7], (-6.2, 4, 5), -51.0, ("Na", "A", "H"))
    with pytest.raises(ValueError, match="g_drawn: g_Kd of neuron 0 is -105.0 < 0"):
        compensate(STG, STG_DRAWN * np.where(np.arange(8) == 1, -1, 1), (-6.2, 4, 5), -51.0, ("Na", "A", "H"))
    with pytest.raises(ValueError, match="drawn conductance g_CaT of neuron 0 is nan"):
        compensate(STG, np.where(np.arange(8) == 2, NAN, STG_DRAWN), (-6.2, 4, 5), -51.0, ("Na", "A", "H"))
    with pytest.raises(ValueError, match="targets: give"):
        compensate(STG, STG_DRAWN, (-6.2, 4, 5, 1), -51.0, ("Na", "A", "H"))
    with pytest.raises(ValueError, match="with one unknown channel, say which DIC row"):
        compensate(STG, STG_DRAWN, (5.0,), -51.0, ("H",))
    with pytest.raises(ValueError, match="exactly two channels"):
        modulate(STG, stg_neuron, (-4.0, 5.0), channels=("Na", "A", "H"))
    with pytest.raises(ValueError, match=r"target: expected \(2,\) or \(N, 2\)"):
        modulate(STG, stg_neuron, (-6.2, -4.0, 5.0))
    with pytest.raises(ValueError, match="g: g_A of neuron 0 is -1.0 < 0"):
        modulate(STG, np.where(np.arange(8) == 5, -1.0, stg_neuron), (-4.0, 5.0))
    with pytest.raises(ValueError, match=r"V: expected a scalar or \(N,\)"):
        compensate(STG, STG_DRAWN, (-6.2, 4, 5), np.zeros(3), ("Na", "A", "H"))
    with pytest.raises(ValueError, match="leak range"):
        gamma_matched(0.02, 0.01)
