"""Tests for condspace.plotting: units on every axis, fixed colours, clear errors (Agg backend)."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import same_color

from condspace import plotting
from condspace.plotting import CLASS_COLORS, DIC_COLORS


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def rng():
    return np.random.default_rng(1)


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_runs_on_agg():
    assert matplotlib.get_backend().lower() == "agg"


def test_colours_are_fixed_and_distinct():
    assert set(DIC_COLORS) == {"fast", "slow", "ultraslow"}
    assert set(CLASS_COLORS) == {"silent", "spiking", "bursting", "invalid"}
    colours = [*DIC_COLORS.values(), *CLASS_COLORS.values(), plotting.HIGHLIGHT_COLOR]
    assert len({matplotlib.colors.to_hex(c) for c in colours}) == len(colours)


def test_use_style_applies_the_style_file():
    with plt.rc_context():
        plotting.use_style()
        assert plt.rcParams["axes.spines.top"] is False
        assert plt.rcParams["font.size"] == 10
    assert plotting.STYLE_PATH.is_file()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("g_Na", "g_Na (mS/cm²)"),
        ("g_s", "g_s (× g_leak)"),  # a DIC, not a maximal conductance
        ("spiking_freq_hz", "spiking_freq_hz (Hz)"),
        ("interburst_frequency", "interburst_frequency (Hz)"),
        ("burst_duration", "burst_duration (ms)"),
        ("cv_isi", "cv_isi (–)"),  # not ms although it contains "isi"
        ("isi_mean", "isi_mean (ms)"),
        ("V_th", "V_th (mV)"),
        ("mystery", "mystery"),  # no invented unit
    ],
)
def test_unit_label(name, expected):
    assert plotting.unit_label(name) == expected


def test_unit_label_agrees_with_the_features_module():
    from condspace.features import FEATURES

    for name, (unit, _) in FEATURES.items():
        label = plotting.unit_label(name)
        if unit == "1":
            assert label.startswith(f"{name} (") and label.endswith(")"), label  # dimensionless, still labelled
        else:
            assert label == f"{name} ({unit})"


def test_unit_label_override():
    assert plotting.unit_label("burstiness", {"burstiness": "Hz/s"}) == "burstiness (Hz/s)"


def test_plot_traces_stacked_with_units():
    t = np.arange(0.0, 50.0, 0.1)
    V = -60.0 + 5.0 * np.sin(t[None, :] / 3.0 + np.arange(3)[:, None])
    fig = plotting.plot_traces(t, V, labels=["a", "b", "c"], colors=[CLASS_COLORS["spiking"]] * 3)
    axes = visible_axes(fig)
    assert len(axes) == 3
    assert all(ax.get_ylabel() == "V (mV)" for ax in axes)
    assert axes[-1].get_xlabel() == "t (ms)"
    np.testing.assert_allclose(axes[1].lines[0].get_ydata(), V[1])
    assert same_color(axes[0].lines[0].get_color(), CLASS_COLORS["spiking"])
    assert [ax.texts[0].get_text() for ax in axes] == ["a", "b", "c"]


def test_plot_traces_single_trace():
    t = np.linspace(0, 10, 11)
    fig = plotting.plot_traces(t, -60.0 + t)
    assert len(visible_axes(fig)) == 1


def test_plot_traces_bad_shapes():
    t = np.linspace(0, 10, 11)
    with pytest.raises(ValueError, match="V: expected shape"):
        plotting.plot_traces(t, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="labels: expected 2"):
        plotting.plot_traces(t, np.zeros((2, 11)), labels=["only one"])


def test_plot_class_fractions(rng):
    labels = np.array(["spiking"] * 6 + ["bursting"] * 3 + ["invalid"])
    fig = plotting.plot_class_fractions(rng.permutation(labels))
    ax = fig.axes[0]
    names = [tick.get_text() for tick in ax.get_xticklabels()]
    assert names == ["silent", "spiking", "bursting", "invalid"]  # silent shown although empty
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, [0.0, 0.6, 0.3, 0.1])
    assert sum(heights) == pytest.approx(1.0)
    for patch, name in zip(ax.patches, names, strict=True):
        assert same_color(patch.get_facecolor(), CLASS_COLORS[name])
    assert ax.get_ylabel() == "fraction of neurons (N = 10)"


def test_plot_class_fractions_without_invalid_and_unknown_label():
    fig = plotting.plot_class_fractions(["silent", "irregular", "spiking"])
    names = [tick.get_text() for tick in fig.axes[0].get_xticklabels()]
    assert names == ["silent", "spiking", "bursting", "irregular"]


def test_plot_class_fractions_empty():
    with pytest.raises(ValueError, match="labels"):
        plotting.plot_class_fractions([])


def test_plot_feature_distributions(rng):
    n = 60
    df = pd.DataFrame({
        "label": rng.choice(["spiking", "bursting", "silent"], size=n),
        "spiking_freq_hz": rng.normal(12.0, 2.0, n),
        "burst_duration_ms": rng.normal(200.0, 20.0, n),
    })
    df.loc[df["label"] == "silent", "spiking_freq_hz"] = np.nan  # undefined features are left out
    fig = plotting.plot_feature_distributions(df, ["spiking_freq_hz", "burst_duration_ms"])
    axes = visible_axes(fig)
    assert [ax.get_xlabel() for ax in axes] == ["spiking_freq_hz (Hz)", "burst_duration_ms (ms)"]
    assert all(ax.get_ylabel() == "neurons" for ax in axes)
    legend = {t.get_text() for t in axes[0].get_legend().get_texts()}
    n_spiking = int((df["label"] == "spiking").sum())
    assert f"spiking (n={n_spiking})" in legend
    assert "silent (n=0)" in legend
    # one filled histogram per class, in reading order and in the class colour
    ax = axes[0]
    assert len(ax.patches) == 3
    for patch, name in zip(ax.patches, ["silent", "spiking", "bursting"], strict=True):
        assert same_color(patch.get_facecolor()[:3], CLASS_COLORS[name])


def test_plot_feature_distributions_of_a_features_table():
    """The features module's table plugs in directly: class column "label", units from the names."""
    from condspace.features import extract

    tonic = np.arange(10.0, 1000.0, 100.0)  # 10 Hz, CV 0
    bursts = np.concatenate([b + np.arange(4) * 10.0 for b in np.arange(0.0, 1000.0, 200.0)])
    table = extract([tonic, bursts, np.array([5.0])], duration=1000.0)
    fig = plotting.plot_feature_distributions(table, ["spiking_freq_hz", "spikes_per_burst"])
    ax = visible_axes(fig)[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["silent (n=0)", "spiking (n=1)", "bursting (n=0)"]
    assert ax.get_xlabel() == "spiking_freq_hz (Hz)"


def test_plot_feature_distributions_errors():
    df = pd.DataFrame({"rate_hz": [1.0, 2.0]})
    with pytest.raises(KeyError, match="available"):
        plotting.plot_feature_distributions(df, ["nope"])
    with pytest.raises(ValueError, match="columns"):
        plotting.plot_feature_distributions(df, [])
    with pytest.raises(ValueError, match="DataFrame"):
        plotting.plot_feature_distributions({"rate_hz": [1.0]}, ["rate_hz"])


def test_plot_feature_distributions_without_class_column():
    df = pd.DataFrame({"rate_hz": [1.0, 2.0, 3.0]})
    fig = plotting.plot_feature_distributions(df, ["rate_hz"], by="label")
    assert visible_axes(fig)[0].get_legend().get_texts()[0].get_text() == "all (n=3)"


def test_plot_conductance_pairs_scatter(rng):
    g = np.exp(rng.normal(size=(40, 3)))
    fig = plotting.plot_conductance_pairs(g, ["Na", "g_Kd", "H"], highlight=[0, 5], log=True)
    axes = visible_axes(fig)
    assert len(axes) == 6  # lower triangle plus diagonal of a 3 x 3 grid
    xlabels = {ax.get_xlabel() for ax in axes} - {""}
    assert xlabels == {"g_Na (mS/cm²)", "g_Kd (mS/cm²)", "g_H (mS/cm²)"}
    bottom_left = fig.axes[2 * 3 + 0]
    assert bottom_left.get_xscale() == "log" and bottom_left.get_yscale() == "log"
    assert bottom_left.get_ylabel() == "g_H (mS/cm²)"
    highlighted = bottom_left.collections[1].get_offsets()
    np.testing.assert_allclose(highlighted, g[[0, 5]][:, [0, 2]])
    assert same_color(bottom_left.collections[1].get_facecolor()[0], plotting.HIGHLIGHT_COLOR)


def test_plot_conductance_pairs_parallel_is_fold_change(rng):
    g = rng.uniform(1.0, 10.0, size=(30, 4))
    mask = np.zeros(30, dtype=bool)
    mask[3] = True
    fig = plotting.plot_conductance_pairs(g, ["Na", "Kd", "A", "H"], highlight=mask, kind="parallel")
    ax = fig.axes[0]
    assert "fold" in ax.get_ylabel()
    highlighted = [line for line in ax.lines if same_color(line.get_color(), plotting.HIGHLIGHT_COLOR)]
    np.testing.assert_allclose(highlighted[0].get_ydata(), g[3] / np.median(g, axis=0))


def test_plot_conductance_pairs_dataframe_columns(rng):
    df = pd.DataFrame(rng.uniform(1, 2, size=(10, 2)), columns=["g_Na", "g_Kd"])
    fig = plotting.plot_conductance_pairs(df, ["g_Kd", "g_Na"])
    np.testing.assert_allclose(fig.axes[2].collections[0].get_offsets(), df[["g_Kd", "g_Na"]].to_numpy())
    with pytest.raises(KeyError, match="g_H"):
        plotting.plot_conductance_pairs(df, ["g_Na", "g_H"])


def test_plot_conductance_pairs_errors(rng):
    g = rng.uniform(size=(5, 2))
    with pytest.raises(ValueError, match="g: expected shape"):
        plotting.plot_conductance_pairs(g, ["Na", "Kd", "H"])
    with pytest.raises(ValueError, match="kind"):
        plotting.plot_conductance_pairs(g, ["Na", "Kd"], kind="pie")
    with pytest.raises(ValueError, match="log=True"):
        plotting.plot_conductance_pairs(np.array([[0.0, 1.0], [1.0, 2.0]]), ["Na", "Kd"], log=True)
    with pytest.raises(ValueError, match="highlight"):
        plotting.plot_conductance_pairs(g, ["Na", "Kd"], highlight=[7])


def test_plot_dic_curves_colours_and_threshold():
    V = np.linspace(-80.0, -40.0, 81)
    gf, gs, gu = -0.2 * (V + 50.0), 0.1 * (V + 60.0), np.full_like(V, 2.0)
    fig = plotting.plot_dic_curves(V, gf, gs, gu, vth=-50.55)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "V (mV)"
    assert ax.get_ylabel() == "DIC (× g_leak)"
    by_label = {line.get_label(): line for line in ax.lines}
    for scale, symbol, y in (("fast", "g_f", gf), ("slow", "g_s", gs), ("ultraslow", "g_u", gu)):
        line = by_label[f"{symbol} ({scale})"]
        assert same_color(line.get_color(), DIC_COLORS[scale])
        np.testing.assert_allclose(line.get_ydata(), y)
    vline = by_label["V_th = -50.55 mV"]
    np.testing.assert_allclose(vline.get_xdata(), [-50.55, -50.55])


def test_plot_dic_curves_population_band_and_missing_threshold(rng):
    V = np.linspace(-80.0, -40.0, 41)
    curves = [rng.normal(size=(25, V.size)) for _ in range(3)]
    fig = plotting.plot_dic_curves(V, *curves, vth=float("nan"), normalised=False)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "DIC (mS/cm²)"
    median_fast = next(line for line in ax.lines if line.get_label().startswith("g_f"))
    np.testing.assert_allclose(median_fast.get_ydata(), np.median(curves[0], axis=0))
    assert len(ax.collections) == 3  # one 10-90 % band per timescale
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("no V_th") for t in texts)
    assert not any(t.startswith("V_th =") for t in texts)


def test_plot_dic_curves_shape_mismatch():
    V = np.linspace(-80.0, -40.0, 5)
    with pytest.raises(ValueError, match="gs: expected shape"):
        plotting.plot_dic_curves(V, np.zeros(5), np.zeros(4), np.zeros(5))


def test_plotting_depends_only_on_the_start_of_the_data_flow():
    """Plots sit at the end of the data flow: no imports of the modules to their left but cells.

    Every module of the ``plotting`` package is read (the package and each of its submodules).
    """
    import ast
    import importlib
    import pkgutil

    modules = [plotting] + [importlib.import_module(f"{plotting.__name__}.{info.name}")
                            for info in pkgutil.iter_modules(plotting.__path__)]
    assert len(modules) > 5  # style, cell, activity, conductances, DICs, modulation
    imported = set()
    for module in modules:
        for node in ast.walk(ast.parse(module.__loader__.get_source(module.__name__))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
                imported.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
    forbidden = {"simulate", "features", "inference", "dics", "populations", "neuromodulation", "_engine"}
    hits = {m for m in imported if m.startswith("condspace") and set(m.split(".")) & forbidden}
    assert not hits, f"condspace.plotting imports {hits}"


# ----- the cell declaration ---------------------------------------------------------------------
def test_channel_table_reads_the_declaration():
    table = plotting.channel_table("stg")
    assert list(table.index) == ["g_Na", "g_Kd", "g_CaT", "g_CaS", "g_KCa", "g_A", "g_H", "g_leak"]
    # Liu et al. 1998 (SCIENCE.md §1): gating products and reversal potentials
    assert table.loc["g_Na", "gating"] == "m³·h" and table.loc["g_Kd", "gating"] == "m⁴"
    assert table.loc["g_H", "gating"] == "m"
    assert table["E (mV)"].to_dict() == {"g_Na": 50.0, "g_Kd": -80.0, "g_CaT": 80.0, "g_CaS": 80.0, "g_KCa": -80.0,
                                         "g_A": -80.0, "g_H": -20.0, "g_leak": -50.0}
    assert table.loc["g_Na", "range (mS/cm²)"] == "0 – 8000"
    assert "carries" in table.loc["g_CaT", "calcium"] and table.loc["g_Kd", "calcium"] == ""


def test_channel_table_da_scheme_and_fixed_nmda():
    table = plotting.channel_table("da")
    # SCIENCE.md §2 Decision (fixed for populations), inferred by chapter 2's prior (cells/qian14_da.py)
    assert table.loc["g_NMDA", "range (mS/cm²)"] == "fixed 0.012 (inferred over 0.004 – 0.02)"
    assert "3-state scheme" in table.loc["g_ERG", "gates"]
    assert "instantaneous" in table.loc["g_NMDA", "gates"]


def _line(ax, label):
    return next(line for line in ax.lines if line.get_label() == label)


def test_plot_gating_time_constants_match_liu98_check_values():
    fig = plotting.plot_gating("stg")
    ax_inf, ax_tau = fig.axes[:2]
    assert ax_inf.get_xlabel() == "V (mV)" and ax_tau.get_xlabel() == "V (mV)"
    assert ax_tau.get_ylabel() == "time constant τ (ms)" and ax_tau.get_yscale() == "log"
    assert "(–)" in ax_inf.get_ylabel()
    # SCIENCE.md §1, τ at V = −51 mV (ms)
    expected = {"Na m": 0.1350, "Na h": 1.2785, "Kd m": 5.698, "CaT m": 6.849, "CaT h": 54.81, "CaS m": 23.10,
                "CaS h": 135.9, "KCa m ([Ca] = 0.5 µM)": 56.87, "A m": 9.176, "A h": 27.28, "H m": 672.8}
    for label, tau in expected.items():
        line = _line(ax_tau, label)
        assert np.interp(-51.0, line.get_xdata(), line.get_ydata()) == pytest.approx(tau, rel=2e-3), label
    assert len(ax_inf.lines) == 11


def test_plot_gating_da_instantaneous_gate_has_no_tau_and_scheme_tau_is_positive():
    fig = plotting.plot_gating("da", V=np.linspace(-90, 0, 91))
    ax_inf, ax_tau = fig.axes[:2]
    labels_inf = {line.get_label() for line in ax_inf.lines}
    labels_tau = {line.get_label() for line in ax_tau.lines}
    assert "NMDA B" in labels_inf and "NMDA B" not in labels_tau
    erg = _line(ax_inf, "ERG o").get_ydata()
    assert np.all((erg >= 0) & (erg <= 1))
    assert np.all(_line(ax_tau, "ERG o").get_ydata() > 0)
    # SCIENCE.md §2, τ at V = −55.5 mV (ms)
    for label, tau in {"Kd n": 17.34, "CaL m": 29.18, "CaN m": 18.02}.items():
        line = _line(ax_tau, label)
        assert np.interp(-55.5, line.get_xdata(), line.get_ydata()) == pytest.approx(tau, rel=2e-3), label


def test_scheme_relaxation_time_of_a_two_state_scheme_is_one_over_the_rate_sum():
    from condspace.channels import KineticScheme, Transition

    scheme = KineticScheme("o", ("c", "o"), (Transition("c", "o", lambda xp, V: 0.2 + 0 * V),
                                             Transition("o", "c", lambda xp, V: 0.05 + 0 * V)), "o", "slow")
    np.testing.assert_allclose(plotting.cell._scheme_tau(scheme, np.array([-60.0, 0.0])), 1.0 / 0.25)


def test_plot_degenerate_pairs():
    t = np.arange(0.0, 100.0, 0.5)
    V = -60.0 + np.vstack([np.sin(t / 5.0 + k) for k in range(4)])
    g = np.array([[100.0, 1.0], [400.0, 1.5], [50.0, 0.2], [60.0, 0.9]])
    fig = plotting.plot_degenerate_pairs(t, V, g, ["Na", "H"], t_window=(20.0, 60.0))
    axes = visible_axes(fig)
    assert len(axes) == 4  # 2 pairs x (traces, conductances)
    ax_v, ax_g = axes[0], axes[1]
    assert ax_v.get_ylabel() == "V (mV)" and axes[2].get_xlabel() == "t (ms)"
    assert ax_g.get_ylabel() == "g (mS/cm²)" and ax_g.get_yscale() == "log"
    assert [tick.get_text() for tick in ax_g.get_xticklabels()] == ["g_Na", "g_H"]
    x = ax_v.lines[0].get_xdata()
    assert x.min() >= 20.0 and x.max() <= 60.0
    np.testing.assert_allclose(axes[3].lines[1].get_ydata(), g[3])  # neuron b of pair 2

    boxed = plotting.plot_degenerate_pairs(t, V, g, ["g_Na", "g_H"], box={"g_Na": (0, 200.0), "g_H": (0, 2.0)})
    ax_g = visible_axes(boxed)[1]
    assert "range maximum" in ax_g.get_ylabel()
    np.testing.assert_allclose(ax_g.lines[0].get_ydata(), [0.5, 0.5])


def test_plot_degenerate_pairs_errors():
    t = np.arange(10.0)
    with pytest.raises(ValueError, match="V: expected shape"):
        plotting.plot_degenerate_pairs(t, np.zeros((3, 10)), np.ones((3, 2)), ["Na", "H"])
    with pytest.raises(ValueError, match="g: expected shape"):
        plotting.plot_degenerate_pairs(t, np.zeros((2, 10)), np.ones((2, 3)), ["Na", "H"])
    with pytest.raises(ValueError, match="t_window"):
        plotting.plot_degenerate_pairs(t, np.zeros((2, 10)), np.ones((2, 2)), ["Na", "H"], t_window=(50, 60))


def test_dic_plane_keeps_a_readable_scale_for_a_population_on_one_point():
    """A compensated population shares its DICs to rounding: the axes must not zoom onto 1e-11."""
    rng = np.random.default_rng(0)
    gs, gu = 4.0 + 1e-12 * rng.standard_normal(50), 5.0 + 1e-12 * rng.standard_normal(50)
    fig = plotting.plot_dic_plane(gs, gu)
    ax = fig.axes[0]
    fig.canvas.draw()
    assert np.ptp(ax.get_ylim()) >= 2.0 and np.ptp(ax.get_xlim()) >= 2.0
    assert ax.yaxis.get_offset_text().get_text() == "" and ax.xaxis.get_offset_text().get_text() == ""
    ax.plot([4.0, -4.0], [5.0, 5.0])  # a path drawn afterwards still rescales the view
    assert ax.get_xlim()[0] < -4.0
    plt.close(fig)
