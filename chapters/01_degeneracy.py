# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Many neurons, one rhythm
#
# A conductance-based neuron is a handful of ion channels, each with a maximal conductance ḡ.
# This chapter asks how tightly a firing pattern pins those conductances down. We simulate a whole
# population of neurons drawn at random from the conductance ranges used in the literature, all
# at once, and find neurons that fire alike although some of their conductances differ several-fold:
# **degeneracy**, the starting point of the whole book.
#
# - **The model and its currents**: the equations and the channels of the chosen cell type.
# - **Published example neurons**: their voltage traces.
# - **A Monte-Carlo population**: class fractions and feature distributions, simulated in one call.
# - **Same rhythm, different channels**: pairs of neurons with near-identical features.
# - **How fast is the simulator**: throughput of the batched integrator.

# %% [markdown]
# **Prerequisites**: none beyond the README (`make book` installs everything).
# **Runtime**: minutes on a two-core CPU with NumPy, longer for the DA neuron (a protocol twice as
# long at half the time step); the wall time of this chapter in the build that rendered it is on the **Build
# status** page. On a GPU (`BACKEND="cupy"`) the population takes seconds.

# %% tags=["parameters"]
CELL_TYPE = "stg"  # "stg" (Liu et al. 1998) or "da" (Qian et al. 2014)
FAST = False  # True: small population and short runs (used by `make test`)
BACKEND = "auto"  # "auto", "numpy" or "cupy"
SEED = 0  # seed of the Monte-Carlo draw
N_POPULATION = 10_000  # neurons in the Monte-Carlo population (full mode)
N_POPULATION_FAST = 400  # neurons in FAST mode

# %%
import numpy as np
import pandas as pd
from myst_nb import glue

import condspace
from condspace import cells, degeneracy, features, plotting, resolve, simulate


def show(name, value):
    """Glue a number or sentence of this run for the prose's glue roles, as a plain Python value."""
    glue(name, value.item() if hasattr(value, "item") else value, display=False)


# %%
backend = resolve(BACKEND)
cell = cells.get(CELL_TYPE)
plotting.use_style()
protocol = dict(cell.protocol)
n_population = N_POPULATION_FAST if FAST else N_POPULATION
print(f"condspace {condspace.__version__} | {backend.describe()} | numpy {np.__version__} | "
      f"cell {cell.name}: {cell.title} | protocol {protocol} ms | N = {n_population}")
show("mode", f"FAST mode: a population of {n_population} neurons and short runs, so every number on this page "
     "comes from a small sample" if FAST else f"full mode: a population of {n_population} neurons")

# %% [markdown]
# This page was built in {glue:text}`mode`.

# %% [markdown]
# ## The model and its currents
#
# Every cell type in this book is a single-compartment conductance-based model
#
# $$C\,\frac{dV}{dt} = -\sum_{j} \bar g_j\, \prod_x x^{p_{j,x}}\,(V - E_j) \;-\; g_\text{leak}(V - E_\text{leak}) + I_\text{app},
# \qquad \frac{dx}{dt} = \frac{x_\infty(V) - x}{\tau_x(V)},$$
#
# with V in mV, t in ms, conductances in mS/cm² and C = 1 µF/cm². The channels of the chosen cell,
# read from its declaration (`condspace.cells`):

# %%
channel_table = plotting.channel_table(cell)
channel_table

# %% [markdown]
# Each gate relaxes towards its steady state x∞(V) with its own time constant τ(V); the spread of
# those time constants, from a fraction of a millisecond to seconds, is what lets a single neuron
# spike, burst, or stay silent.

# %%
fig = plotting.plot_gating(cell)

# %% [markdown]
# Fast sodium activation sits at the left of the τ panel, slow calcium and the ultraslow
# h-current (STG) or ERG (DA) at the right: these timescales return as fast, slow and ultraslow
# feedback in the chapter on dynamic input conductances.

# %% [markdown]
# ## Published example neurons
#
# The published example sets of this cell type, simulated together (one call, one row per neuron),
# with their voltage recorded for the last second of the protocol.

# %%
examples = pd.DataFrame(cell.examples).T[list(cell.conductance_names)]
t_show = 1000.0 if FAST else 2000.0
res_ex = simulate(cell, examples.to_numpy(), backend=backend, record=list(range(len(examples))), **protocol)
table_ex = features.extract(res_ex.spike_times, res_ex.duration, ok=res_ex.ok).set_index(examples.index)
window = res_ex.traces["t"] >= protocol["t_max"] - t_show
fig = plotting.plot_traces(res_ex.traces["t"][window], res_ex.traces["V"][:, window],
                           labels=[f"{k}: {c}" for k, c in zip(examples.index, table_ex["label"], strict=True)],
                           colors=[plotting.class_color(c) for c in table_ex["label"]])

# %%
stated = {b.example: b for b in cell.behaviours if b.current == 0.0}  # what each paper reports, no applied current
table_ex["stated in the literature"] = [stated[k].description if k in stated else "–" for k in table_ex.index]
table_ex["as stated"] = [table_ex.loc[k, "label"] == stated[k].activity if k in stated else None for k in table_ex.index]
n_as_stated = int(sum(v is True for v in table_ex["as stated"]))
show("examples_as_stated", f"{n_as_stated} of {len(stated)}")
table_ex[["label", "stated in the literature", "as stated", "n_spikes", "spiking_freq_hz", "spikes_per_burst",
          "burst_period_ms", "duty_cycle"]].round(2)

# %% [markdown]
# Against the activity class each source reports for its sets (column *as stated*),
# {glue:text}`examples_as_stated` published sets fire in the reported class in this run; the rates
# and burst sizes the sources quote can be read off the table.

# %% [markdown]
# ## A Monte-Carlo population
#
# Now we draw conductances uniformly from the literature box (one column per channel; the leak
# is kept above $g_\text{leak} = 0.005$ mS/cm² so that every neuron has a rest) and simulate the
# whole population in one call. Spike times are detected on the fly, so memory stays small even
# for $10^5$ neurons.

# %%
rng = np.random.default_rng(SEED)
box = {**cell.box, "g_leak": (max(0.005, cell.box["g_leak"][0]), cell.box["g_leak"][1])}
population = pd.DataFrame({k: rng.uniform(*box[k], n_population) if k in box else np.full(n_population, cell.fixed[k])
                           for k in cell.conductance_names})
res = simulate(cell, population, backend=backend, seed=SEED, **protocol)
table = features.extract(res.spike_times, res.duration, ok=res.ok)
print(f"{res.metadata['n_neurons']} neurons × {res.metadata['t_max'] / 1000:.0f} s simulated in "
      f"{res.metadata['wall_s']:.1f} s; {int((~res.ok).sum())} flagged invalid")
share = table["label"].value_counts(normalize=True).reindex(["silent", "spiking", "bursting"], fill_value=0.0)
show("active_share", f"{share['spiking'] + share['bursting']:.0%}")
show("spiking_share", f"{share['spiking']:.0%}")
show("bursting_share", f"{share['bursting']:.0%}")
show("most_active", "most random neurons are active" if share["silent"] < 0.5 else
     "most random neurons are silent")

# %%
fig = plotting.plot_class_fractions(table["label"])

# %% [markdown]
# The box is far from uniform in activity: in this run {glue:text}`most_active`
# ({glue:text}`active_share` active: {glue:text}`spiking_share` tonic spiking,
# {glue:text}`bursting_share` bursting), and the split between tonic spiking and bursting is what a
# prior over conductances alone implies about firing patterns.

# %%
fig = plotting.plot_feature_distributions(
    table, ["rate_hz", "cv_isi", "spikes_per_burst", "burst_period_ms", "duty_cycle", "intraburst_freq_hz"])

# %% [markdown]
# Tonic spikers spread over a range of rates; bursters over a range of periods and spikes per
# burst. A recording fixes one point in this feature space: the question is how many conductance
# vectors land on it.

# %% [markdown]
# ## Same rhythm, different channels
#
# For every neuron we look for its nearest neighbour in (log) feature space and keep the pairs whose
# features agree within a small relative tolerance ({glue:text}`tol_spiking` for the rate of tonic
# spikers, {glue:text}`tol_bursting` for each burst feature) while at least one conductance differs
# {glue:text}`min_fold`-fold or more.

# %%
bursting_cols = ["spikes_per_burst", "burst_period_ms", "duty_cycle", "intraburst_freq_hz"]
tolerance, min_fold = {"spiking": 0.02, "bursting": 0.05}, 3.0  # relative feature tolerance; fold threshold
pairs = pd.concat([
    degeneracy.degenerate_pairs(table, population.to_numpy(), cell.conductance_names, ["spiking_freq_hz"],
                                label="spiking", max_feature_diff=tolerance["spiking"], min_fold=min_fold),
    degeneracy.degenerate_pairs(table, population.to_numpy(), cell.conductance_names, bursting_cols,
                                label="bursting", max_feature_diff=tolerance["bursting"], min_fold=min_fold),
], keys=["spiking", "bursting"], names=["class", None]).reset_index(level=0)
print(f"{len(pairs)} degenerate pairs; median largest fold difference {pairs['fold'].median():.1f}×")
show("tol_spiking", f"{tolerance['spiking']:.0%}")
show("tol_bursting", f"{tolerance['bursting']:.0%}")
show("min_fold", f"{min_fold:g}")
pairs.groupby("class").head(3).round(3)

# %% [markdown]
# We re-simulate the most different pair of each class with its voltage recorded.

# %%
shown = pairs.groupby("class").head(1)
idx = np.concatenate([shown[["i", "j"]].to_numpy().ravel()]).astype(int)
res_pairs = simulate(cell, population.iloc[idx], backend=backend, record=list(range(len(idx))), seed=SEED,
                     **protocol)
fig = plotting.plot_degenerate_pairs(res_pairs.traces["t"], res_pairs.traces["V"], population.iloc[idx].to_numpy(),
                                     cell.conductance_names, t_window=(protocol["t_max"] - t_show, protocol["t_max"]),
                                     box=cell.box)

# %% [markdown]
# Left, each pair's voltage traces overlap in rhythm; right, their conductances (relative to the
# literature box) disagree by several-fold on some channels. Firing pattern does not determine the
# conductances: the inverse problem of chapter 2 has a set of solutions, not one.

# %% [markdown]
# ## How fast is the simulator
#
# Every neuron of the population was integrated together with exponential Euler (time step
# {glue:text}`dt` ms, float64) using rate tables built once from the cell declaration. The
# throughput of this run:

# %%
bio_s = res.metadata["n_neurons"] * res.metadata["t_max"] / 1000.0
show("dt", f"{res.metadata['dt']:g}")
pd.Series({"backend": res.metadata["backend"], "device": res.metadata["device"], "neurons": res.metadata["n_neurons"],
           "biological time per neuron (s)": res.metadata["t_max"] / 1000.0, "wall time (s)": round(res.metadata["wall_s"], 1),
           "neuron-seconds per wall second": round(bio_s / res.metadata["wall_s"], 1)})

# %% [markdown]
# `benchmarks/simulate.py` measures the same against SciPy's `solve_ivp` on one neuron at a time
# and prints the ratio; `benchmarks/simulate_gpu.py` does the same on a GPU.

# %% [markdown]
# ## Summary
#
# In this chapter we simulated a population of conductance-based neurons in one call, classified
# their spike trains into silent, tonic spiking and bursting, and found pairs of neurons with the
# same firing pattern but several-fold different conductances. Chapter 2 turns this around: from a
# recorded spike train, infer the whole set of conductance vectors that could have produced it.
#
# **References.** Liu Z, Golowasch J, Marder E, Abbott LF (1998) J Neurosci 18:2309–2320.
# Qian K et al. (2014) J Neurophysiol 112:2779–2790. Marder E, Goaillard JM (2006) Nat Rev Neurosci
# 7:563–574. Fyon A, Franci A, Sacré P, Drion G (2024) PNAS Nexus 3:pgae415.
