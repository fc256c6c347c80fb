"""Neuromodulation paths, reachability and cost (condspace.neuromodulation).

Check values (Fyon et al. 2024, PNAS Nexus 3:pgae415; method of Drion et al. 2015), copied here:
- STG at V* = −51 mV, drawn Kd 105, CaT 5, CaS 14, KCa 160, leak 0.01, target (−6.2, 4, 5)
  → Na 6591.636717, A 361.0130784, H 0.3209870988; modulated to (g_s, g_u) = (−4, 5):
  {CaS, H} with 5 calcium iterations → CaS 32.306779, H 0.340183; {CaS, A} with 5 → CaS 26.229284,
  A 267.555998; {A, H} → A 76.531409, H 0.279825.
- DA at V* = −55.5 mV, drawn Kd 8, CaL 0.045, NMDA 0.012, leak 0.01285, target (−12.95, 0.5, 5)
  → Na 35.46934803, CaN 0.0406963482, ERG 0.1501586994.
- Structural facts: {Na, Kd} cannot move (g_s, g_u) at −51 mV (no ultraslow component: singular);
  every DA pair with NMDA is singular (NMDA is purely fast).
- Example costs at (g_s, g_u) = (−5, 7) from the (4, 5) spiking population (Fyon et al. 2024, a
  population of their own, reported to 2–3 digits): {H, CaS} → CaS ×2.67, H ×1.37;
  {H, CaT} → CaT ×10.2, H ×1.36; {A, CaS} drives ḡ_A negative.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from condspace import cells, dics, features, populations
from condspace import neuromodulation as nm

STG, DA = cells.get("stg"), cells.get("da")
# The deterministic STG neuron of the check values (drawn Kd, CaT, CaS, KCa, leak; solved Na, A, H).
STG_NEURON = np.array([6591.636717, 105.0, 5.0, 14.0, 160.0, 361.0130784, 0.3209870988, 0.01])
DA_DRAWN = np.array([1.0, 8.0, 0.045, 1.0, 1.0, 0.012, 0.01285])  # Na, CaN, ERG are solved for


def _col(cell, g, names):
    return np.stack([g[..., cell.index(n)] for n in names], axis=-1)


@pytest.fixture(scope="module")
def stg_pop():
    """A small STG spiking population at (−6.2, 4, 5) (condspace.populations), reachable neurons only."""
    res = populations.spiking_population(STG, 120, seed=7)
    return res.g[res.reachable]


@pytest.fixture(scope="module")
def da_pop():
    res = populations.spiking_population(DA, 60, seed=7)
    return res.g[res.reachable]


# ----- check values -------------------------------------------------------------------------------
def test_check_neuron_sits_on_its_target():
    np.testing.assert_allclose(dics.dics(STG, STG_NEURON, -51.0)[0], [-6.2, 4.0, 5.0], atol=1e-6)


@pytest.mark.parametrize(("pair", "expected"), [
    (("CaS", "H"), (32.306779, 0.340183)),
    (("CaS", "A"), (26.229284, 267.555998)),
    (("A", "H"), (76.531409, 0.279825)),
])
def test_published_modulation_check_values(pair, expected):
    # The plain calcium iteration of the paper: the recipe's guess, then 5 feedback passes.
    tr = nm.modulate_along(STG, STG_NEURON, [[-4.0, 5.0]], pair, iterations=5, accelerate=False)
    np.testing.assert_allclose(_col(STG, tr.g[0, 0], pair), expected, rtol=1e-6)
    assert tr.status[0, 0] == 0
    assert set(np.nonzero(tr.g[0, 0] != STG_NEURON)[0]) <= {STG.index(c) for c in pair}  # nothing else moves


def test_converged_modulation_is_the_plain_iterations_fixed_point():
    pair = ("CaS", "A")
    fast = nm.modulate_along(STG, STG_NEURON, [[-4.0, 5.0]], pair)  # accelerated, to the default tol
    slow = nm.modulate_along(STG, STG_NEURON, [[-4.0, 5.0]], pair, iterations=200, accelerate=False, tol=1e-13)
    np.testing.assert_allclose(fast.g, slow.g, rtol=1e-9)
    assert fast.passes[0] < slow.passes[0]
    # the DICs recomputed from scratch by condspace.dics hit the target
    np.testing.assert_allclose(dics.dics(STG, fast.g[0], -51.0)[0, 1:], [-4.0, 5.0], atol=1e-9)
    np.testing.assert_allclose(fast.achieved[0, 0], dics.dics(STG, fast.g[0], -51.0)[0], atol=1e-9)


def test_same_result_as_populations_modulate(stg_pop):
    """Per target, modulate_along reproduces condspace.populations.modulate (same guess, same passes).

    Both solve with condspace.subsets.solve (tests/test_subsets.py); they differ in how they build
    the system (normalised S here, un-normalised columns there), hence the rounding-level rtol.

    Where a calcium carrier comes out negative the two differ on purpose (this module evaluates
    the KCa column of a negative iterate at ḡ = 0, populations at the negative value): both call
    those neurons unreachable.
    """
    for pair in (("CaS", "H"), ("CaT", "A"), ("A", "H")):
        ours = nm.modulate_along(STG, stg_pop, [[-4.0, 5.0]], pair, iterations=5, accelerate=False)
        theirs = populations.modulate(STG, stg_pop, (-4.0, 5.0), channels=pair, iterations=5)
        np.testing.assert_array_equal(ours.status[0] == 3, theirs.reason == "negative")
        ok = theirs.reachable
        assert ok.sum() > 10
        np.testing.assert_allclose(ours.g[0][ok], theirs.g[ok], rtol=1e-10)


def test_triplets_compensate_like_the_recipe():
    """Three channels target all three DICs: the compensation check values of both cells."""
    start = STG_NEURON.copy()
    start[[0, 5, 6]] = 1.0  # Na, A, H are re-solved from anything
    tr = nm.modulate_along(STG, start, [[-6.2, 4.0, 5.0]], ("Na", "A", "H"))
    np.testing.assert_allclose(_col(STG, tr.g[0, 0], ("Na", "A", "H")), [6591.636717, 361.0130784, 0.3209870988],
                               rtol=1e-6)
    tr = nm.modulate_along(DA, DA_DRAWN, [[0.5, 5.0]], ("Na", "CaN", "ERG"))  # g_f = −3.9 g_s − 11 = −12.95
    np.testing.assert_allclose(tr.targets[0], [-12.95, 0.5, 5.0])
    np.testing.assert_allclose(_col(DA, tr.g[0, 0], ("Na", "CaN", "ERG")), [35.46934803, 0.0406963482, 0.1501586994],
                               rtol=1e-6)


# ----- singular subsets --------------------------------------------------------------------------
def test_na_kd_is_singular_for_the_stg(stg_pop):
    tr = nm.modulate_along(STG, stg_pop, nm.path((4, 5), (-4, 5), 5), ("Na", "Kd"))
    assert (tr.status == 1).all() and tr.reachable_fraction == 0.0
    assert np.isnan(tr.g[:, :, [0, 1]]).all()
    r = nm.reachability(STG, stg_pop, [[4.0, 5.0], [-4.0, 5.0]], ("Na", "Kd"))
    assert r.reason == "singular" and (r.fraction == 0).all()
    m = nm.reachability_map(STG, stg_pop[:10], pairs=[("Na", "Kd"), ("A", "H")], gs=[-4, 4], gu=[5])
    assert m.reason == ["singular", "ok"] and (m.fraction[0] == 0).all()


def test_nmda_pairs_are_singular_for_the_da(da_pop):
    table, _ = nm.path_summary(DA, da_pop, nm.path((0.5, 5), (-2, 5), 3))
    nmda = table["pair"].str.contains("NMDA")
    assert nmda.sum() == 5 and len(table) == 15
    assert (table.loc[nmda, "reason"] == "singular").all() and (table.loc[nmda, "reachable_fraction"] == 0).all()
    assert (table.loc[~nmda, "reason"] == "ok").all()


# ----- invariants ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["stg", "da"])
def test_start_point_is_reached_by_every_pair_at_no_cost(cell, stg_pop, da_pop):
    """At the population's own (g_s, g_u), every non-singular pair re-solves to the baseline."""
    g = stg_pop if cell == "stg" else da_pop
    start = cells.get(cell).population.target[1:]
    table, trajectories = nm.path_summary(cell, g, [start])
    for label, tr in trajectories.items():
        if (tr.status == 1).all():
            continue
        assert tr.reachable_fraction == 1.0, label
        # the calcium iteration stops when the DICs are within 1e-10 of the target; ill-conditioned
        # pairs (e.g. {Kd, CaT}, condition number ~1e4) turn that into ~1e-8 on the conductances
        np.testing.assert_allclose(tr.fold_change()[0], 1.0, rtol=1e-6, err_msg=label)
        assert (table.set_index("pair").filter(like="median_cost").loc[label].dropna() - 1.0).abs().max() < 1e-6
    assert (table["reason"] == "singular").sum() == (1 if cell == "stg" else 5)


def test_uncoupled_solutions_are_affine_in_the_target(stg_pop):
    """Without calcium coupling S does not depend on ḡ: the re-solved ḡ is affine in (g_s, g_u)."""
    t1, t2, a = np.array([3.0, 4.0]), np.array([-6.0, 9.0]), 0.3
    for pair, affine in ((("A", "H"), True), (("KCa", "A"), True), (("CaS", "H"), False)):
        r = nm.reachability(STG, stg_pop, [t1, t2, a * t1 + (1 - a) * t2], pair)
        mix = a * r.modulated[0] + (1 - a) * r.modulated[1]
        err = np.abs(r.modulated[2] - mix).max() / np.abs(r.modulated[2]).max()
        assert (err < 1e-12) if affine else (err > 1e-6), (pair, err)


def test_maps_agree_with_single_targets_and_paths(stg_pop):
    g = stg_pop[:40]
    gs, gu = np.array([-8.0, -4.0, 0.0, 4.0]), np.array([2.0, 5.0, 9.0])
    pairs = [("CaS", "H"), ("A", "H"), ("CaT", "CaS")]
    m = nm.reachability_map(STG, g, pairs=pairs, gs=gs, gu=gu)
    for p, pair in enumerate(pairs):
        for i, u in enumerate(gu):
            for j, s in enumerate(gs):
                r = nm.reachability(STG, g, [[s, u]], pair)
                assert m.fraction[p, i, j] == r.fraction[0], (pair, s, u)
    tr = nm.modulate_along(STG, g, [[-4.0, 5.0]], ("CaS", "H"))
    assert m.fraction[0, 1, 1] == tr.reachable[0].mean()
    np.testing.assert_allclose(m.median_cost[0, 1, 1], tr.cost(0).loc[["CaS", "H"], "median"], rtol=1e-8)


def test_path_shapes_and_vertices():
    p = nm.path((4, 5), (-4, 5), 9)
    np.testing.assert_allclose(p[:, 0], np.linspace(4, -4, 9))
    np.testing.assert_allclose(p[:, 1], 5.0)
    q = nm.path((4, 5), (-4, 5), 10, via=[(0, 10)])
    assert q.shape == (10, 2)
    assert any(np.allclose(row, (0, 10)) for row in q)  # the corner is kept
    np.testing.assert_allclose(q[[0, -1]], [(4, 5), (-4, 5)])
    np.testing.assert_allclose(nm.path([(4, 5), (0, 10), (-4, 5)], n_points=10), q)  # the same polyline as vertices


def test_triplet_paths_follow_the_gf_rule(stg_pop):
    tr = nm.modulate_along(STG, stg_pop[:20], nm.path((4, 5), (2, 6), 3), ("Na", "A", "H"))
    np.testing.assert_allclose(tr.targets[:, 0], -tr.targets[:, 1] - 2.2)  # STG: g_f = −g_s − 2.2
    ok = tr.reachable
    np.testing.assert_allclose(tr.achieved[ok], np.broadcast_to(tr.targets[:, None, :], tr.achieved.shape)[ok],
                               atol=1e-8)


def test_modulation_is_neither_additive_nor_multiplicative(stg_pop):
    """Each neuron follows its own trajectory (SCIENCE.md §4): neither Δḡ nor the fold change is shared."""
    tr = nm.modulate_along(STG, stg_pop, nm.path((4, 5), (-4, 5), 5), ("CaS", "H"))
    assert tr.reachable_fraction == 1.0
    before, after = tr.baseline[:, tr.indices], tr.g[-1][:, tr.indices]
    delta, fold = after - before, after / before
    assert (delta.std(axis=0) / np.abs(delta.mean(axis=0)) > 0.05).all()
    assert (fold.std(axis=0) / fold.mean(axis=0) > 0.01).all()


# ----- cost --------------------------------------------------------------------------------------
def test_cost_summary():
    base = np.array([[1.0, 2.0], [2.0, 2.0], [4.0, 0.0], [1.0, 1.0]])
    new = np.array([[2.0, 1.0], [6.0, 1.0], [4.0, 1.0], [-1.0, 1.0]])
    table = nm.cost(base, new, ("A", "B"))
    # A: folds 2, 3, 1 (−1 is negative: excluded); B: 0.5, 0.5, 1 (baseline 0: no fold change)
    assert table.loc["A", "median"] == 2.0 and table.loc["A", "n"] == 3
    assert table.loc["B", "median"] == 0.5 and table.loc["B", "n"] == 3
    np.testing.assert_allclose(table.loc["A", ["q25", "q75"]], np.percentile([1, 2, 3], [25, 75]))
    masked = nm.cost(base, new, ("A", "B"), reachable=[True, False, False, False])
    assert masked.loc["A", "median"] == 2.0 and masked.loc["A", "n"] == 1


def test_cost_table_orders_pairs_by_cost(stg_pop):
    _, trajectories = nm.path_summary(STG, stg_pop, nm.path((4, 5), (-4, 5), 3))
    table = nm.cost_table(trajectories)
    assert set(table.columns) >= {"pair", "channel", "median", "q25", "q75", "reachable_fraction"}
    size = table.assign(s=np.abs(np.log(table["median"]))).groupby("pair", sort=False)["s"].max()
    assert (np.diff(size.to_numpy()) >= 0).all()
    assert "Na+Kd" not in set(table["pair"])


def test_literature_costs_at_minus5_7():
    """Cross-check with the costs reported by Fyon et al. 2024 for their own population.

    Their numbers are medians of another random population, given to 2-3 digits: ours must agree
    within 5 % (the median of 1,000 neurons varies by about 1 % between seeds).
    """
    pop = populations.spiking_population(STG, 1000, seed=0)
    g = pop.g[pop.reachable]
    for pair, expected in ((("H", "CaS"), {"CaS": 2.67, "H": 1.37}), (("H", "CaT"), {"CaT": 10.2, "H": 1.36})):
        r = nm.reachability(STG, g, [[-5.0, 7.0]], pair)
        assert r.fraction[0] > 0.99
        table = nm.cost(r.baseline, r.modulated[0], r.channels, r.reachable[0])
        for channel, value in expected.items():
            assert table.loc[channel, "median"] == pytest.approx(value, rel=0.05), (pair, channel)
    r = nm.reachability(STG, g, [[-5.0, 7.0]], ("A", "CaS"))
    assert r.fraction[0] == 0.0 and (r.modulated[0, :, 0] < 0).all()  # ḡ_A < 0 for every neuron
    assert (r.status == 3).all()


# ----- the calcium columns ---------------------------------------------------------------------------
def test_dependent_columns_match_the_dic_engine():
    """The per-point KCa column equals condspace.dics.sensitivity for the same conductances."""
    rng = np.random.default_rng(3)
    G = np.tile(STG_NEURON, (6, 1))
    G[:, 2], G[:, 3] = rng.uniform(0, 15, 6), rng.uniform(0, 60, 6)
    cols = nm.system._dependent_columns(STG, -51.0, {2: G[:, 2], 3: G[:, 3]})
    S = dics.sensitivity(STG, -51.0, G, normalize=False)
    np.testing.assert_allclose(np.stack(cols[4], axis=-1), S[:, :, 4], rtol=1e-12)


# ----- validation by simulation ----------------------------------------------------------------
def test_validation_by_simulation(stg_pop):
    g = stg_pop[:16]
    trajectories = {"CaS+H": nm.modulate_along(STG, g, nm.path((4, 5), (-4, 5), 3), ("CaS", "H")),
                    "Na+Kd": nm.modulate_along(STG, g, nm.path((4, 5), (-4, 5), 3), ("Na", "Kd"))}
    table, extra = nm.validate(STG, trajectories, points=[0, -1], backend="numpy", t_max=5000.0, transient=2000.0,
                               record=1)
    table = table.set_index(["channels", "point"])
    before = table.loc[("before", -1)]
    assert before["target_label"] == "bursting" and before["n_reachable"] == 16
    assert before["fraction_spiking"] >= 0.9  # the spiking population is tonic before modulation
    # at the start of the path the population is unchanged: same classes as before
    np.testing.assert_array_equal(extra["labels"][("CaS+H", 0)], extra["labels"][("before", -1)])
    end = table.loc[("CaS+H", 2)]
    assert end["n_validated"] + end["n_failed"] == end["n_reachable"] == 16
    assert end["validated_fraction"] >= 0.9  # bursting at (−4, 5)
    assert table.loc[("Na+Kd", 2), "n_reachable"] == 0 and table.loc[("Na+Kd", 2), "validated_fraction"] == 0
    assert ("CaS+H", 2) in extra["traces"]
    labels = extra["labels"][("CaS+H", 2)]
    assert set(labels) <= set(features.LABELS)


# ----- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"channels": ("CaS", "Foo")}, KeyError, "no channel 'Foo'"),
    ({"channels": ("CaS", "leak")}, ValueError, "leak cannot be modulated"),
    ({"channels": ("CaS",)}, ValueError, "give 2 channels"),
    ({"channels": ("CaS", "H", "A", "Na")}, ValueError, "give 2 channels"),
    ({"channels": ("CaS", "CaS")}, ValueError, "twice"),
    ({"g": np.ones((3, 5))}, ValueError, "expected shape"),
    ({"g": -STG_NEURON}, ValueError, "non-negative"),
    ({"eps": 0.0}, ValueError, "eps"),
    ({"eps": -1.0}, ValueError, "eps"),
    ({"iterations": -1}, ValueError, "iterations"),
    ({"path": np.ones((3, 4))}, ValueError, "targets"),
    ({"path": [[np.nan, 1.0]]}, ValueError, "finite"),
    ({"V": [1.0, 2.0]}, ValueError, "V"),
])
def test_bad_input_is_named(kwargs, error, match):
    args = {"g": STG_NEURON, "path": [[-4.0, 5.0]], "channels": ("CaS", "H")} | kwargs
    with pytest.raises(error, match=match):
        nm.modulate_along(STG, **args)


def test_bad_paths_and_costs():
    with pytest.raises(ValueError, match="n_points"):
        nm.path((4, 5), (-4, 5), 2, via=[(0, 8)])
    with pytest.raises(ValueError, match="g_s, g_u"):
        nm.path((4, 5, 1), (-4, 5))
    with pytest.raises(ValueError, match="at least two"):
        nm.path([(4, 5)])
    with pytest.raises(ValueError, match="eps"):
        nm.reachability(STG, STG_NEURON, [[-4, 5]], ("CaS", "H"), eps=0)
    with pytest.raises(ValueError, match="reachable"):
        nm.cost(np.ones((3, 2)), np.ones((3, 2)), ("A", "H"), reachable=[True])
    with pytest.raises(ValueError, match="modulated"):
        nm.cost(np.ones((3, 2)), np.ones((3, 3)), ("A", "H"))


def test_all_pairs_are_listed():
    assert len(nm.channel_pairs(STG)) == 21 and len(nm.channel_pairs(DA)) == 15
    assert nm.channel_pairs(STG)[0] == ("Na", "Kd")
    assert set(itertools.chain(*nm.channel_pairs(STG))) == set(STG.channel_names[:-1])


def test_summary_columns(stg_pop):
    table, _ = nm.path_summary(STG, stg_pop[:10], nm.path((4, 5), (-4, 5), 3), pairs=[("CaS", "H"), ("Na", "Kd")])
    assert list(table["pair"]) == ["CaS+H", "Na+Kd"]
    for c in ("reachable_fraction", "reason", "median_cost_CaS", "median_cost_H", "median_cost_Na"):
        assert c in table.columns
    assert np.isnan(table.loc[0, "median_cost_Na"]) and table.loc[0, "median_cost_CaS"] > 1
    assert isinstance(table, pd.DataFrame)


# ----- the reachability command (condspace.cli_reachability) ----------------------------------------
def test_reachability_command(stg_pop, tmp_path, capsys):
    from condspace.__main__ import main

    table = pd.DataFrame(stg_pop[:12], columns=STG.conductance_names)
    table.to_csv(tmp_path / "G.csv", index=False)
    out = tmp_path / "out"
    rc = main(["reachability", "--cell", "stg", "--conductances", str(tmp_path / "G.csv"), "--from", "4,5",
               "--to", "-4,5", "--out", str(out), "--n-points", "5", "--grid-step", "5"])
    assert rc == 0, capsys.readouterr().err
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 21 and summary["pair"].iloc[0] == "Na+Kd"
    summary = summary.set_index("pair")
    assert summary.loc["Na+Kd", "reason"] == "singular" and summary.loc["Na+Kd", "reachable_fraction"] == 0
    expected, _ = nm.path_summary(STG, stg_pop[:12], nm.path((4, 5), (-4, 5), 5), pairs=[("CaS", "H")])
    assert summary.loc["CaS+H", "reachable_fraction"] == expected.loc[0, "reachable_fraction"] == 1.0
    assert summary.loc["CaS+H", "median_cost_CaS"] == pytest.approx(expected.loc[0, "median_cost_CaS"], rel=1e-5)
    assert np.isnan(summary.loc["CaS+H", "median_cost_A"])
    assert "validated_fraction" not in summary.columns
    assert (out / "reachability_maps.png").stat().st_size > 10_000


def test_reachability_command_bad_input(tmp_path, capsys):
    from condspace.__main__ import main

    pd.DataFrame([STG_NEURON], columns=STG.conductance_names).to_csv(tmp_path / "G.csv", index=False)
    args = ["reachability", "--conductances", str(tmp_path / "G.csv"), "--out", str(tmp_path / "o")]
    assert main(args + ["--from", "4", "--to", "-4,5"]) == 2
    assert "expected g_s,g_u" in capsys.readouterr().err
    assert main(args + ["--from", "4,5", "--to", "-4,5", "--eps", "0"]) == 2
    assert "must be > 0" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["reachability", "--conductances", str(tmp_path / "G.csv"), "--out", str(tmp_path / "file"),
                 "--from", "4,5", "--to", "-4,5"]) == 2
    assert "not a folder" in capsys.readouterr().err
