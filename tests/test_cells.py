"""The cell registry and declarations (Liu et al. 1998; Qian et al. 2014).

Everything about a cell type is in its declaration: the behaviours it must reproduce are checked
here for every registered cell, and a toy cell declared inline (never registered) goes through the
whole pipeline (simulate, DICs, a small posterior, a reachability map) with its own protocol,
budget, prior widening and map ranges.
"""

import dataclasses
import sys

import numpy as np
import pytest

from condspace import cells, dics, features, inference, reference, simulate
from condspace import neuromodulation as nm
from condspace.cells import _template
from condspace.channels import (
    ACTIVITIES,
    Behaviour,
    CellType,
    Channel,
    Gate,
    linear_over_expm1,
    safe_exp,
    sigmoid,
    tau_sigmoid,
)


def test_registry_names_and_aliases():
    # other files may add cell types (the registry finds them): only the two originals are pinned
    assert {"da", "stg"} <= set(cells.available()) and cells.available() == tuple(sorted(cells.available()))
    assert cells.get("liu98_stg") is cells.get("STG") is cells.STG
    assert cells.get(cells.DA) is cells.DA
    with pytest.raises(ValueError, match=f"unknown cell type 'hh'.*available: {', '.join(cells.available())}"):
        cells.get("hh")


def test_channel_order_and_names():
    stg, da = cells.get("stg"), cells.get("da")
    assert stg.channel_names == ("Na", "Kd", "CaT", "CaS", "KCa", "A", "H", "leak")
    assert da.channel_names == ("Na", "Kd", "CaL", "CaN", "ERG", "NMDA", "leak")
    assert stg.conductance_names[-1] == "g_leak" and stg.index("g_CaS") == 3 and da.index("ERG") == 4
    # g_NMDA is fixed (populations, maps) but inferred all the same (inferred_fixed)
    assert da.inferred_names == ("g_Na", "g_Kd", "g_CaL", "g_CaN", "g_ERG", "g_NMDA", "g_leak")
    for cell in (stg, da):
        assert set(cell.box) | set(cell.inferred_fixed) == set(cell.inferred_names)
        for ex in cell.examples.values():
            assert tuple(ex) == cell.conductance_names
    with pytest.raises(KeyError, match="no conductance 'g_X'"):
        stg.index("g_X")


def test_boxes_from_the_literature():
    stg = cells.get("stg")
    assert stg.box["g_Na"] == (0, 8000) and stg.box["g_H"] == (0, 0.7) and stg.box["g_leak"] == (0, 0.02)
    assert cells.get("da").fixed == {"g_NMDA": 0.012}


def test_registry_finds_every_cell_file_with_its_stem_as_alias():
    import pkgutil

    stems = [m.name for m in pkgutil.iter_modules(cells.__path__) if not m.name.startswith("_")]
    assert {"liu98_stg", "qian14_da"} <= set(stems)
    for stem in stems:
        module = sys.modules[f"condspace.cells.{stem}"]
        assert cells.get(stem) is module.CELL is cells.get(module.CELL.name)
    assert set(cells.available()) == {sys.modules[f"condspace.cells.{s}"].CELL.name for s in stems}


def _drop_cell_file(folder, stem, name):
    (folder / f"{stem}.py").write_text(
        "import dataclasses\n"
        "from condspace.cells._template import CELL as _TEMPLATE\n"
        f"CELL = dataclasses.replace(_TEMPLATE, name={name!r})\n")


def test_a_new_file_in_the_package_is_registered_without_touching_another(tmp_path, monkeypatch):
    _drop_cell_file(tmp_path, "zz99_copy", "zz99copy")
    (tmp_path / "_private.py").write_text("raise RuntimeError('modules starting with _ are not imported')\n")
    monkeypatch.setattr(cells, "__path__", [*cells.__path__, str(tmp_path)])
    try:
        cells._discover()  # what importing the package does; idempotent for the files already found
        assert cells.get("zz99copy") is cells.get("zz99_copy") is sys.modules["condspace.cells.zz99_copy"].CELL
        assert "zz99copy" in cells.available() and cells.get("stg") is cells.STG
    finally:
        cells._REGISTRY.pop("zz99copy", None)
        cells._ALIASES.pop("zz99_copy", None)
        cells._MODULES.pop("zz99copy", None)
        sys.modules.pop("condspace.cells.zz99_copy", None)


def test_two_files_declaring_one_name_are_an_error(tmp_path, monkeypatch):
    _drop_cell_file(tmp_path, "zz98_clash", "stg")
    monkeypatch.setattr(cells, "__path__", [*cells.__path__, str(tmp_path)])
    try:
        with pytest.raises(ValueError, match="'stg' is declared twice: in condspace.cells.liu98_stg and "
                                             "condspace.cells.zz98_clash"):
            cells._discover()
        assert cells.get("stg") is cells.STG
    finally:
        sys.modules.pop("condspace.cells.zz98_clash", None)


def test_register_a_new_cell_type():
    from condspace.cells import _template

    cell = cells.register(_template.CELL, "template")
    try:
        assert cells.get("template") is cell
        assert cell.channel_names[-1] == "leak"
    finally:
        cells._REGISTRY.pop(cell.name)
        cells._ALIASES.pop("template")
    with pytest.raises(TypeError):
        cells.register("not a cell")


def test_safe_exp_clips_and_keeps_the_imaginary_part():
    assert np.isfinite(safe_exp(np, np.array([1e4]))).all()
    z = safe_exp(np, np.array([1.0 + 1e-20j]))
    assert z.imag[0] == pytest.approx(np.e * 1e-20)
    assert sigmoid(np, np.array([-1e5]), 0.0, 1.0)[0] == 1.0
    # Large imaginary parts take the general complex exp, tiny ones the exact shortcut.
    big = np.array([1.0 + 0.5j, -3.0 + 2.0j])
    np.testing.assert_allclose(safe_exp(np, big), np.exp(big), rtol=1e-15)
    tiny = np.array([0.3 + 1e-20j])
    assert safe_exp(np, tiny)[0] == np.exp(tiny)[0]


def test_linear_over_expm1_is_continuous_and_exact_away_from_the_window():
    V = np.linspace(-39.0, -38.4, 20001)
    f = linear_over_expm1(np, V, -15.6504, -0.4043, -19.565, -0.5052)
    assert np.all(np.isfinite(f))
    assert np.max(np.abs(np.diff(f))) < 1e-2  # no jump at the window edges
    far = np.array([-55.5])
    direct = (-15.6504 - 0.4043 * far) / (np.exp(-19.565 - 0.5052 * far) - 1.0)
    assert linear_over_expm1(np, far, -15.6504, -0.4043, -19.565, -0.5052)[0] == pytest.approx(direct[0], rel=1e-14)


# ----- fields of the declaration -----------------------------------------------------------------
def test_declared_inference_map_and_protocol_fields():
    stg, da = cells.get("stg"), cells.get("da")
    assert stg.inference_budget == 30_000 and da.inference_budget == 20_000
    assert stg.dic_map_ranges == ((-20.0, 20.0), (0.0, 20.0)) and da.dic_map_ranges == ((-15.0, 15.0), (0.0, 20.0))
    assert nm.map_ranges("da") == da.dic_map_ranges
    assert stg.protocol == {"t_max": 6000.0, "transient": 3000.0, "dt": 0.05}
    assert da.protocol["dt"] == 0.025 and inference.Protocol.for_cell(da).dt == 0.025
    assert stg.prior_box()["g_CaT"] == (0.0, 15.0) and stg.prior_box()["g_leak"] == (0.005, 0.02)
    assert da.prior_box()["g_CaL"] == (0.0, 0.25) and da.prior_box()["g_NMDA"] == (0.004, 0.02)
    assert list(da.prior_box()) == list(da.inferred_names)
    # every published example lies inside the prior (the reason for the widening)
    for cell in (stg, da):
        box = cell.prior_box()
        for label, ex in cell.examples.items():
            assert all(box[n][0] < ex[n] < box[n][1] for n in box), label
    assert stg.modulation_target("spiking") == (4.0, 5.0) and stg.modulation_target("bursting") == (-4.0, 5.0)
    assert da.modulation_target("bursting") == (-2.0, 5.0)
    assert list(stg.recordings) == ["stg_tonic", "stg_bursting", "stg_bursting_dic", "stg_irregular"]


def test_inferred_fixed_is_checked_against_fixed():
    da = cells.get("da")
    with pytest.raises(ValueError, match="inferred_fixed names 'g_Kd', which is not in fixed"):
        dataclasses.replace(da, inferred_fixed={"g_Kd": (0.0, 1.0)})
    with pytest.raises(ValueError, match=r"around the fixed value 0\.012"):
        dataclasses.replace(da, inferred_fixed={"g_NMDA": (0.0, 0.01)})
    # without it the DA prior is the literature box alone (the SCIENCE.md §2 default)
    assert "g_NMDA" not in dataclasses.replace(da, inferred_fixed={}).inferred_names


def test_omitted_fields_get_documented_defaults():
    hh = _template.CELL
    examples = {"a b": hh.example("standard"), "c": hh.example("standard")}
    bare = CellType(name="bare", title="t", channels=hh.channels, leak_reversal=-54.4, capacitance=1.0, V0=-65.0,
                    calcium=None, box=hh.box, fixed={}, examples=examples, dic_reference=hh.dic_reference,
                    protocol={"t_max": 500, "transient": 100})
    assert bare.protocol == {"t_max": 500.0, "transient": 100.0, "dt": 0.05}
    assert bare.inference_budget == 20_000 and bare.prior_widening == {} and bare.behaviours == ()
    assert bare.inferred_fixed == {}
    assert bare.recordings == {"bare_a_b": ("a b", 0.1, 1), "bare_c": ("c", 0.1, 2)}
    assert bare.noise_prior == 2.5  # DEFAULT_NOISE_PRIOR: quiet recordings, the published noisy level
    loud = CellType(name="loud", title="t", channels=hh.channels, leak_reversal=-54.4, capacitance=1.0, V0=-65.0,
                    calcium=None, box=hh.box, fixed={}, examples=examples, dic_reference=hh.dic_reference,
                    protocol={"t_max": 500, "transient": 100}, recordings={"r": ("c", 4.0, 1)})
    assert loud.noise_prior == 5.0  # 1.25 × the loudest recording
    assert cells.get("stg").noise_prior == 10.0 > cells.get("stg").recordings["stg_irregular"][1]
    assert bare.modulation_targets == {} and bare.dic_map_ranges is None
    with pytest.raises(KeyError, match="no modulation target 'bursting'"):
        bare.modulation_target("bursting")
    # with a population recipe the targets derive from its DIC target: bursting mirrors g_s
    derived = dataclasses.replace(cells.get("da"), modulation_targets=None)
    assert derived.modulation_targets == {"spiking": (0.5, 5.0), "bursting": (-0.5, 5.0)}


@pytest.mark.parametrize(("change", "message"), [
    ({"protocol": {"t_max": 100.0}}, "missing \\['transient'\\]"),
    ({"protocol": {"t_max": 100.0, "transient": 10.0, "tmax": 5.0}}, "unknown \\['tmax'\\]"),
    ({"protocol": {"t_max": 100.0, "transient": 100.0}}, "transient < t_max"),
    ({"inference_budget": 0}, "inference_budget must be a positive integer"),
    ({"inference_budget": 1.5}, "inference_budget must be a positive integer"),
    ({"prior_widening": {"g_X": (0, 1)}}, "prior_widening names 'g_X'"),
    ({"prior_widening": {"g_K": (5, 1)}}, "needs low < high"),
    ({"dic_map_ranges": ((1.0, -1.0), (0.0, 5.0))}, "g_s range .* needs low < high"),
    ({"recordings": {"r": ("nope", 0.1, 1)}}, "unknown example 'nope'"),
    ({"noise_prior": -1.0}, "noise_prior must be a finite number ≥ 0"),
    ({"noise_prior": float("nan")}, "noise_prior must be a finite number ≥ 0"),
    ({"noise_prior": "5"}, "noise_prior must be a finite number ≥ 0"),
    ({"missed_prior": 1.0}, "missed_prior must be a number in \\[0, 1\\)"),
    ({"missed_prior": -0.1}, "missed_prior must be a number in \\[0, 1\\)"),
    ({"missed_prior": float("nan")}, "missed_prior must be a number in \\[0, 1\\)"),
    ({"behaviours": (Behaviour("x", "nope", 0.0, "silent", "s"),)}, "unknown example 'nope'"),
    ({"behaviours": ("silent",)}, "must be Behaviour objects"),
])
def test_bad_declarations_are_rejected_with_the_field_named(change, message):
    with pytest.raises((ValueError, TypeError), match=message):
        dataclasses.replace(_template.CELL, **change)


def test_behaviour_activities_are_the_feature_classes():
    assert set(ACTIVITIES) <= set(features.LABELS) and "invalid" not in ACTIVITIES
    with pytest.raises(ValueError, match="activity must be one of"):
        Behaviour("x", "standard", 0.0, "tonic", "s")
    with pytest.raises(ValueError, match="current must be a finite number"):
        Behaviour("x", "standard", float("nan"), "silent", "s")


# ----- published behaviours of every declared cell ---------------------------------------------
# Behaviours without current reuse the session's one simulation of each cell's published examples
# (conftest.published_run, shared with test_simulate: DA ≈ 1 min of 12 s protocols at dt 0.025 ms);
# those with a current are simulated together, once per cell.
def _declared() -> dict[str, CellType]:
    return {**{name: cells.get(name) for name in cells.available()}, "_template": _template.CELL}


_DRIVEN: dict[str, dict[int, str]] = {}


def _behaviour_label(key: str, index: int, published_run) -> str:
    cell = _declared()[key]
    behaviour = cell.behaviours[index]
    if behaviour.current == 0.0:
        res = published_run(cell)
        labels = dict(zip(cell.examples, features.from_simulation(res)["label"], strict=True))
        return labels[behaviour.example]
    if key not in _DRIVEN:
        driven = [i for i, b in enumerate(cell.behaviours) if b.current != 0.0]
        g = np.array([[cell.examples[cell.behaviours[i].example][n] for n in cell.conductance_names] for i in driven])
        res = simulate(cell, g, current=np.array([cell.behaviours[i].current for i in driven]), backend="numpy")
        assert res.metadata["dt"] == cell.protocol["dt"]
        assert res.duration == cell.protocol["t_max"] - cell.protocol["transient"]
        _DRIVEN[key] = dict(zip(driven, features.from_simulation(res)["label"], strict=True))
    return _DRIVEN[key][index]


BEHAVIOURS = [(key, i) for key, cell in _declared().items() for i in range(len(cell.behaviours))]


@pytest.mark.parametrize(("key", "index"), BEHAVIOURS,
                         ids=[f"{k}-{_declared()[k].behaviours[i].example}-{i}" for k, i in BEHAVIOURS])
def test_published_behaviour_is_reproduced(key, index, published_run):
    behaviour = _declared()[key].behaviours[index]
    got = _behaviour_label(key, index, published_run)
    assert got == behaviour.activity, (f"{key}: {behaviour.description} ({behaviour.source}): example "
                                       f"{behaviour.example!r} at {behaviour.current} µA/cm² is {got}")


def test_every_registered_cell_declares_behaviours():
    for name in cells.available():
        assert cells.get(name).behaviours, f"{name} declares no published behaviour to reproduce"


# ----- a toy cell declared inline, never registered ----------------------------------------------
def _constant(tau):
    return lambda xp, V: tau_sigmoid(xp, V, tau, 0.0, 0.0, 1.0)  # τ (ms) independent of V, V-shaped


TOY_CHANNELS = _template.CHANNELS + (
    # a slow regenerative inward current (τ 10 ms: between τ_n and the 100 ms ultraslow reference)
    Channel("CaS", (Gate("m", 1, lambda xp, V: sigmoid(xp, V, 55.0, -5.0), _constant(10.0)),), 120.0),
    # an ultraslow outward current (τ 400 ms)
    Channel("KS", (Gate("m", 1, lambda xp, V: sigmoid(xp, V, 50.0, -8.0), _constant(400.0)),), -77.0),
)
TOY = CellType(
    name="toy", title="Hodgkin-Huxley axon with a slow inward and an ultraslow outward current (test)",
    channels=TOY_CHANNELS, leak_reversal=-54.4, capacitance=1.0, V0=-65.0, calcium=None,
    box={"g_Na": (60.0, 180.0), "g_K": (18.0, 54.0), "g_CaS": (0.0, 0.8), "g_KS": (0.0, 2.0), "g_leak": (0.1, 0.5)},
    fixed={}, examples={"a": {"g_Na": 120.0, "g_K": 36.0, "g_CaS": 0.4, "g_KS": 1.0, "g_leak": 0.3}},
    dic_reference={"fast": ("Na", "m"), "slow": ("K", "n"), "ultraslow": 100.0},
    protocol={"t_max": 250.0, "transient": 50.0, "dt": 0.04},
    prior_widening={"g_CaS": (0.0, 1.0)}, inference_budget=240, dic_map_ranges=((-3.0, 1.0), (-1.0, 1.0)),
    behaviours=(Behaviour("tonic spiking without current", "a", 0.0, "spiking", "this test"),),
)


def _toy_population(n: int, seed: int = 0) -> np.ndarray:
    g = np.array([TOY.example("a")[k] for k in TOY.conductance_names])
    return g * np.exp(np.random.default_rng(seed).normal(0.0, 0.1, (n, g.size)))


def test_toy_cell_simulates_with_its_own_protocol_and_matches_solve_ivp():
    assert "toy" not in cells.available()
    g = TOY.example("a")
    res = simulate(TOY, [g], backend="numpy")
    assert (res.metadata["t_max"], res.metadata["transient"], res.metadata["dt"]) == (250.0, 50.0, 0.04)
    assert features.from_simulation(res)["label"].iloc[0] == TOY.behaviours[0].activity
    ref = reference.simulate_scipy(TOY, [g[n] for n in TOY.conductance_names])  # the protocol's t_max, transient
    assert ref.size > 10 and abs(ref.size - res.spike_times[0].size) <= 1
    assert ref.min() >= 50.0 and np.abs(ref[:5] - res.spike_times[0][:5]).max() < 0.5  # ms


def test_toy_cell_dics_at_threshold_are_not_trivial():
    table = dics.dics_at_threshold(TOY, _toy_population(20))
    assert table["V_th"].notna().sum() >= 10  # NaN where g_in never turns non-positive (no threshold)
    table = table.dropna()
    total = table[["g_f", "g_s", "g_u"]].sum(axis=1)
    np.testing.assert_allclose(total, 0.0, atol=1e-6)  # g_in(V_th) = 0
    assert (table["g_s"] < -0.3).all() and (table["g_u"].abs() > 0.05).all()
    # weights from the declared references: KS (τ 400 ms > 100 ms) is purely ultraslow feedback,
    # CaS (τ 10 ms, between τ_n and 100 ms) is split between the slow and the ultraslow rows
    S = np.asarray(dics.sensitivity(TOY, -60.0, np.array([TOY.example("a")[n] for n in TOY.conductance_names])))
    ks, cas = TOY.index("KS"), TOY.index("CaS")
    assert S[1, ks] == 0.0 and S[2, ks] > 0
    assert S[1, cas] < 0 and S[2, cas] < 0 and abs(S[1, cas]) > abs(S[2, cas])


def test_toy_cell_small_posterior_uses_its_budget_prior_and_protocol():
    settings = inference.EstimatorSettings(hidden_features=16, num_transforms=1, max_epochs=3, batch_size=64,
                                           ensemble=1, class_restriction=False)
    post, ts = inference.trained_posterior(TOY, settings=settings, use_cache=False, progress=False)
    assert ts.theta.shape[0] == TOY.inference_budget  # the budget of the declaration
    assert (post.protocol.t_max, post.protocol.transient, post.protocol.dt) == (250.0, 50.0, 0.04)
    prior = post.prior
    assert prior.conductance_names == TOY.inferred_names and prior.names[-1] == "noise_std"
    assert prior.high[-1] == TOY.noise_prior  # derived from the declaration's recordings
    assert prior.high[prior.names.index("g_CaS")] == 1.0  # widened by the declaration
    assert ts.valid.sum() > 50, f"only {ts.valid.sum()} of {TOY.inference_budget} toy draws fire"
    res = simulate(TOY, [TOY.example("a")], backend="numpy")
    x, _ = inference.observe(res.spike_times[0], res.duration)
    theta = post.sample(30, x, seed=0)
    assert theta.shape == (30, len(prior.names))
    assert np.all((theta >= prior.low) & (theta <= prior.high))


def test_toy_cell_reachability_map_uses_its_ranges(monkeypatch):
    G = _toy_population(40)
    m = nm.reachability_map(TOY, G, pairs=[("CaS", "KS"), ("Na", "K")], V=-60.0, step=0.5)
    assert (m.gs[0], m.gs[-1], m.gu[0], m.gu[-1]) == (-3.0, 1.0, -1.0, 1.0)
    assert m.fraction.shape == (2, m.gu.size, m.gs.size)
    assert m.fraction[0].max() > 0.5  # the slow inward and ultraslow outward pair moves (g_s, g_u)
    # without declared ranges they are derived from the prior box, rounded outward to multiples of 5
    (s0, s1), (u0, u1) = nm.map_ranges(dataclasses.replace(TOY, dic_map_ranges=None))
    assert s0 == -s1 and s1 % 5 == 0 and u0 <= 0 <= u1 and u0 < u1 and u0 % 5 == 0 and u1 % 5 == 0
    # validation by simulation runs with the toy's dt (not a hard-coded 0.05 ms)
    seen = {}

    def spy(cell, g, **kw):
        seen.update(kw)
        return simulate(cell, g, **kw)

    monkeypatch.setattr(nm.validation, "simulate", spy)  # where validate looks it up
    d = np.asarray(dics.dics(TOY, G, -60.0))
    start = (float(np.median(d[:, 1])), float(np.median(d[:, 2])))
    moved = nm.modulate_along(TOY, G[:8], nm.path(start, (start[0] - 0.5, start[1]), 3), ("CaS", "KS"), V=-60.0)
    nm.validate(TOY, moved, backend="numpy")
    assert (seen["dt"], seen["t_max"], seen["transient"]) == (0.04, 250.0, 50.0)
