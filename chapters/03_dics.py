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
# # Dynamic input conductances
#
# Chapter 1 found neurons that fire alike with several-fold different conductances. What do they
# share? Drion et al. (2015) answered with three numbers: the **dynamic input conductances** (DICs)
# g_f, g_s and g_u, the fast, slow and ultraslow parts of the neuron's input conductance at its
# threshold voltage. This chapter computes them, reads the firing pattern off their signs, builds
# populations that share one DIC target but not their conductances, maps activity over the
# (g_s, g_u) plane by simulation, and carries chapter 2's inferred conductance sets into that plane.
#
# - **DICs of the published neurons**: g_f, g_s, g_u as functions of V, and the threshold V_th.
# - **Reading the signs**: which feedback the sign of each DIC stands for, checked by simulation.
# - **One target, many conductances**: a degenerate population built at one DIC target.
# - **A map of activity in the (g_s, g_u) plane**: populations on a grid of targets, simulated.
# - **The posterior in DIC space**: chapter 2's posteriors of the recordings mapped to (g_s, g_u),
#   their spread there against their spread in conductance space, and tonic against bursting.

# %% [markdown]
# **Prerequisites**: chapter 1 (the models and the simulator); chapter 2 for the last section.
# **Runtime**: minutes on a two-core CPU with NumPy, longer for the DA neuron (a protocol twice
# as long at half the time step); the wall time of this chapter in the build that rendered it is on the **Build
# status** page. DICs and populations take milliseconds; the time is simulation (three batched
# calls), which on a GPU (`BACKEND="cupy"`) takes seconds. The last section loads chapter 2's
# posterior from `.cache/condspace/` in seconds (run chapter 2 first; with an empty cache it is
# trained here, which in full mode takes as long as chapter 2) and, for cells without shipped
# recordings, simulates chapter 2's synthetic recordings.

# %% tags=["parameters"]
CELL_TYPE = "stg"  # a registered cell type (cells.available()): "stg" (Liu et al. 1998), "da" (Qian et al. 2014), ...
FAST = False  # True: small populations and a tiny map (used by `make test`)
BACKEND = "auto"  # "auto", "numpy" or "cupy"
SEED = 0  # seed of the population draw and of chapter 2's posterior (training set, training, sampling)
N_POPULATION = 500  # neurons in the degenerate population (full mode)
N_POPULATION_FAST = 60  # neurons in the degenerate population (FAST mode)
MODULATION_TARGET = None  # (g_s, g_u) × g_leak the population is modulated to; None: the cell's bursting target
MAP_POINTS = (11, 6)  # grid points along g_s and g_u (full mode)
MAP_POINTS_FAST = (3, 2)  # grid points along g_s and g_u (FAST mode)
N_PER_POINT = 16  # neurons simulated per grid point (full mode)
N_PER_POINT_FAST = 6  # neurons simulated per grid point (FAST mode)
N_TRAIN_FAST = 1500  # chapter 2's FAST training budget, so its cached posterior is reused (full: inference_budget)
MAX_EPOCHS_FAST = 40  # chapter 2's FAST cap on training epochs
N_SAMPLES = 1000  # posterior samples per recording mapped to the DIC plane
N_PRIOR = 20000  # prior draws mapped to the DIC plane (the reference spread)
RECORDINGS = None  # your spike-time CSV (ID,spiking_times; ms), as chapter 2's; None: the cell's demonstration recordings
GROUND_TRUTH = None  # CSV of conductances per recording ID (ID,g_Na,...), or None: no comparison with a truth (the demonstration recordings bring theirs)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from myst_nb import glue
from scipy import stats

import condspace
from condspace import cells, dics, features, inference, plotting, populations, resolve, simulate
from condspace import neuromodulation as nm
from condspace.statistics import iqr, separability, spread_ratio


def show(name, value):
    """Glue a number or sentence of this run for the prose's glue roles, as a plain Python value."""
    glue(name, value.item() if hasattr(value, "item") else value, display=False)


# %%
backend = resolve(BACKEND)
cell = cells.get(CELL_TYPE)
recipe = cell.population
protocol = dict(cell.protocol)
plotting.use_style()
n_population = N_POPULATION_FAST if FAST else N_POPULATION
n_gs, n_gu = MAP_POINTS_FAST if FAST else MAP_POINTS
n_per_point = N_PER_POINT_FAST if FAST else N_PER_POINT
modulation_target = MODULATION_TARGET or cell.modulation_target("bursting")  # declared with the cell
print(f"condspace {condspace.__version__} | {backend.describe()} | numpy {np.__version__} | pandas {pd.__version__} | "
      f"cell {cell.name}: {cell.title} | protocol {protocol} ms | V* = {recipe.V_ref} mV | N = {n_population}")

# %% [markdown]
# ## DICs of the published neurons
#
# At a fixed voltage V every gate of a neuron sits somewhere between its resting and its steady
# state value. Perturb V slightly: each gate follows at its own speed, and the change of its
# current feeds back on V. Drion et al. (2015) sort these feedbacks by speed. For channel j with
# gating product G_j and a gate x,
#
# $$s_{j,x}(V) = \frac{\partial G_j}{\partial x}\,(V - E_j)\,\frac{dx_\infty}{dV},$$
#
# and its contribution is split between the fast, slow and ultraslow rows with weights that
# interpolate (on a log scale) between the time constants of reference gates (STG: Na activation,
# Kd activation and H activation; DA: Na and Kd activation and 100 ms). Summing over channels,
# weighted by their maximal conductances and divided by g_leak, gives the DICs
# (g_f, g_s, g_u) = S(V)·ḡ / g_leak. Their sum g_in = g_f + g_s + g_u is the slope of the
# steady-state I–V curve; the **threshold voltage** V_th is the first voltage (scanning up from
# −80 mV) where g_in turns non-positive. Some neurons have no such voltage: V_th is then NaN.
#
# The published example sets of the cell, their DIC curves and their simulated activity:

# %%
examples = pd.DataFrame(cell.examples).T[list(cell.conductance_names)]
G_examples = examples.to_numpy()
at_vth = dics.dics_at_threshold(cell, G_examples).set_index(examples.index)
res_examples = simulate(cell, G_examples, backend=backend, **protocol)
at_vth["simulated"] = features.from_simulation(res_examples)["label"].to_numpy()
V = np.linspace(recipe.V_ref - 25.0, recipe.V_ref + 10.0, 281)
curves = dics.dics(cell, G_examples, V[:, None]).transpose(1, 0, 2)  # (neuron, voltage, [g_f, g_s, g_u])
lim = 2.0 * np.nanmax(np.abs(at_vth[["g_f", "g_s", "g_u"]].to_numpy()))
fig = plotting.plot_dic_curves_grid(V, curves, at_vth["V_th"], list(examples.index), at_vth["simulated"],
                                    ylim=(-lim, lim))

# %%
at_vth.round(3)

# %% [markdown]
# Below threshold the fast DIC is positive (the neuron returns to rest after a small push); it
# falls steeply through zero around V_th, where fast sodium activation regenerates itself, while the
# slow and ultraslow DICs decide what happens after the upstroke. The table holds the three
# numbers at V_th that the rest of the chapter works with.

# %% [markdown]
# ## Reading the signs
#
# At V_th, g_in = 0 and the signs of its three parts describe the feedback loops of the neuron
# (Drion et al. 2015; Fyon et al. 2024):
#
# - **g_f < 0**: fast positive feedback, the spike upstroke.
# - **g_s > 0**: slow negative feedback, which ends each spike and resets the neuron: **tonic
#   spiking**. **g_s < 0**: slow positive feedback, which holds the neuron on a depolarised
#   plateau while it fires: **bursting**.
# - **g_u > 0**: ultraslow negative feedback, which finally ends the burst; its size sets the
#   interburst period and the duty cycle.
#
# The published sets in the (g_s, g_u) plane, coloured by their *simulated* class:

# %%
signs = at_vth.assign(predicted=np.where(at_vth["g_s"] < 0, "bursting", "spiking"))
agree = int((signs["predicted"] == signs["simulated"]).sum())
print(f"{agree} of {len(signs)} published sets fire as the sign of g_s at V_th predicts")
show("signs_agree", f"{agree} of {len(signs)}")
missed = signs[signs["predicted"] != signs["simulated"]]
show("signs_missed", "every published set fires as the sign predicts." if missed.empty else
     "the exceptions are " + ", ".join(f"{k} (g_s = {r.g_s:.2f} at V_th, simulated {r.simulated})"
                                        for k, r in missed.iterrows()) + ".")
fig = plotting.plot_dic_plane(at_vth["g_s"], at_vth["g_u"], at_vth["simulated"], names=list(examples.index), size=30)

# %% [markdown]
# In this run {glue:text}`signs_agree` published sets fire as the sign of g_s at V_th predicts;
# {glue:text}`signs_missed` A g_s within a fraction of g_leak of zero is a weak prediction: a small
# change of voltage or of one conductance flips its sign.

# %% [markdown]
# ## One target, many conductances
#
# The DICs are linear in the maximal conductances at a fixed voltage, so a DIC target can be
# *imposed*. Following Fyon et al. (2024) we draw some conductances at random (and g_leak from a
# Gamma distribution) and solve, neuron by neuron, a small linear system for the remaining ones so
# that the DICs at the reference voltage V* equal the target. Every neuron of the population hits
# the same target; a draw whose solution would need a negative conductance is *unreachable* and is
# counted, never silently dropped.

# %%
population = populations.spiking_population(cell, n_population, SEED)
G = population.g[population.reachable]
spiking_target = tuple(float(x) for x in population.meta["target"][1:])  # (g_s, g_u)
varying = [n for n in cell.conductance_names if n not in cell.fixed]
spread = pd.DataFrame(G, columns=cell.conductance_names)[varying].quantile([0.05, 0.5, 0.95]).T
spread["fold (95th / 5th percentile)"] = spread[0.95] / spread[0.05]
print(f"target (g_f, g_s, g_u) = {tuple(float(x) for x in population.meta['target'])} × g_leak at V* = "
      f"{recipe.V_ref} mV; drawn {', '.join(recipe.drawn)}, solved for {', '.join(population.solve_for)}; "
      f"{population.counts()}")
spread.round(4)

# %%
fig = plotting.plot_conductance_pairs(G[:, [cell.index(n) for n in varying]], varying, log=True, kind="parallel")

# %% [markdown]
# Each line is a neuron, each conductance divided by its population median: one DIC target admits
# conductances that differ by the fold changes in the table above, in the drawn channels and in
# the solved ones alike.
#
# Does the target fix the firing pattern? We simulate the population, and the same population
# moved to a bursting target (g_s, g_u) by re-solving two channels per neuron (the cell's default
# pair for g_s < 0; all other conductances kept), and compare.

# %%
modulated = populations.modulate(cell, G, modulation_target)
pair = "+".join(modulated.meta["pairs"][0])
G_both = np.concatenate([G, modulated.g[modulated.reachable]])
labels = [f"spiking target {spiking_target}", f"{pair} to {modulation_target}"]
names = np.repeat(labels, [len(G), modulated.n_reachable])
res = simulate(cell, G_both, backend=backend, **protocol)
table = features.from_simulation(res).assign(population=names)
print(f"simulated {len(G_both)} neurons in {res.metadata['wall_s']:.1f} s; {modulated.counts()} after modulation")
shares = pd.crosstab(table["population"], table["label"], normalize="index").reindex(
    index=labels, columns=list(features.LABELS), fill_value=0.0)
show("spiking_pop_spikes", f"{shares.loc[labels[0], 'spiking']:.1%}")
show("modulated_pop_bursts", f"{shares.loc[labels[1], 'bursting']:.1%}" if modulated.n_reachable else
     "none (no neuron could be moved to the bursting target)")
shares.round(3)

# %%
fig = plotting.plot_class_fractions(table.loc[table["population"] == names[0], "label"])

# %% [markdown]
# Of the population built at the spiking target, {glue:text}`spiking_pop_spikes` spike tonically,
# whatever their conductances; of the modulated population, {glue:text}`modulated_pop_bursts`
# burst. How does this square with the reading of the signs at threshold? The DICs of both
# populations, recomputed at each neuron's own V_th:

# %%
d_both = dics.dics_at_threshold(cell, G_both)
predicted = np.where(d_both["g_s"] < 0, "bursting", "spiking")
wrong = predicted != table["label"].to_numpy()
print(f"the sign of g_s at V_th predicts the simulated class of {1 - wrong.mean():.1%} of {len(G_both)} neurons; "
      f"largest |g_s| of a mispredicted neuron: {np.abs(d_both['g_s'][wrong]).max() if wrong.any() else 0:.2f}")
offset = d_both["V_th"].dropna() - recipe.V_ref
show("sign_accuracy", f"{1 - wrong.mean():.1%}")
show("vth_offset", f"{offset.min():+.1f} to {offset.max():+.1f}" if len(offset) else "undefined (no threshold)")
show("gs_at_vth", f"{np.nanmax(np.abs(d_both['g_s'])):.2f}")
fig = plotting.plot_dic_plane(d_both["g_s"], d_both["g_u"], table["label"])

# %% [markdown]
# In this run the sign of g_s at each neuron's own threshold predicts the simulated class of
# {glue:text}`sign_accuracy` of the neurons of both populations. Their thresholds differ from V* by
# {glue:text}`vth_offset` mV (V_th − V*), and |g_s| at V_th reaches at most {glue:text}`gs_at_vth`.
# Where the threshold lies far below V*, all DICs there are small, the sign of g_s at V_th predicts
# little, and the classes can separate along g_u instead; the targets imposed at V* label the two
# populations whatever the sign at V_th says.

# %%
fig = plotting.plot_feature_distributions(
    table, ["rate_hz", "cv_isi", "spiking_freq_hz", "spikes_per_burst", "burst_period_ms", "duty_cycle"])

# %% [markdown]
# Within a class the features still vary (rates, spikes per burst, periods): the DICs at V* fix
# the pattern, not every detail of the rhythm.

# %% [markdown]
# ## A map of activity in the (g_s, g_u) plane
#
# Now a grid of targets over the range the cell declares (for the STG and DA neurons, the range
# used by Fyon et al. (2024)). Building each grid population
# from scratch with the spiking recipe can fail far from the spiking target: away from it the g_f
# rule of the recipe (g_f = a·g_s + b) can ask for DICs that the solved channels only produce with a
# negative conductance. So, as a neuromodulator would, we start every grid point from the same
# spiking neurons and re-solve the cell's default channel pair for the target (g_s, g_u), leaving
# g_f free. Both are mapped below.

# %%
gs_axis, gu_axis = (np.linspace(*bounds, n) for bounds, n in zip(nm.map_ranges(cell), (n_gs, n_gu), strict=True))
targets = [(s, u) for u in gu_axis for s in gs_axis]  # row-major: g_u rows, g_s columns
start = G[:n_per_point]
grid = [populations.modulate(cell, start, t) for t in targets]
direct = [populations.spiking_population(cell, n_per_point, SEED, target=t).n_reachable / n_per_point for t in targets]
shape = (gu_axis.size, gs_axis.size)
reached = {"recipe": np.mean(direct), "modulation": np.mean([m.n_reachable / n_per_point for m in grid])}
show("reach_recipe", f"{reached['recipe']:.0%}")
show("reach_modulation", f"{reached['modulation']:.0%}")
fig = plotting.plot_dic_map(gs_axis, gu_axis, {
    "fraction reachable, spiking recipe": np.reshape(direct, shape),
    "fraction reachable, modulation": np.reshape([m.n_reachable / n_per_point for m in grid], shape)})

# %% [markdown]
# Averaged over the grid, direct compensation with the spiking recipe reaches
# {glue:text}`reach_recipe` of the neurons, re-solving a pair of an existing population
# {glue:text}`reach_modulation`. Every reachable neuron of every grid point is now simulated, in
# one call.

# %%
G_map = np.concatenate([m.g[m.reachable] for m in grid])
point = np.concatenate([np.full(m.n_reachable, k) for k, m in enumerate(grid)])
res_map = simulate(cell, G_map, backend=backend, **protocol)
map_table = features.from_simulation(res_map).assign(point=point)
counts = pd.crosstab(map_table["point"], map_table["label"]).reindex(
    index=range(len(targets)), columns=list(features.LABELS), fill_value=0)
fractions = counts / n_per_point  # over all neurons of the grid point: unreachable ones are in no class
fractions[np.array([m.n_reachable for m in grid]) == 0] = np.nan  # blank where no neuron is reachable
print(f"simulated {len(G_map)} neurons at {len(targets)} grid points in {res_map.metadata['wall_s']:.1f} s")
markers = {"spiking target": spiking_target, "modulation target": modulation_target}
fig = plotting.plot_dic_map(gs_axis, gu_axis, {f"fraction {c}": fractions[c].to_numpy().reshape(shape)
                                               for c in ("spiking", "bursting", "silent")}, markers=markers)
majority = fractions[["spiking", "bursting", "silent"]].dropna(how="all")
winner = majority.idxmax(axis=1)
gs_of_point = np.array([t[0] for t in targets])
show("map_sentence", "; ".join(
    f"{c} at {int((winner == c).sum())} (mean g_s {gs_of_point[winner.index[winner == c]].mean():.1f})"
    if (winner == c).any() else f"{c} at none" for c in ("spiking", "bursting", "silent")))
show("map_blank", int(len(targets) - len(majority)))

# %% [markdown]
# If the class of a population is a property of its target, the classes occupy separate regions of
# the plane. Counting each grid point under the class most of its neurons fall in, the grid points
# of this run split as follows: {glue:text}`map_sentence`; grid points with no reachable neuron
# (blank): {glue:text}`map_blank`.

# %%
medians = map_table.groupby("point")[["spiking_freq_hz", "spikes_per_burst", "burst_period_ms", "duty_cycle"]].median()
medians = medians.reindex(range(len(targets)))  # NaN where no neuron of the class
bursty = medians["spikes_per_burst"].notna().to_numpy()
spb = medians["spikes_per_burst"].to_numpy()[bursty]
varies = bursty.sum() > 2 and np.ptp(spb) > 0 and np.ptp(gs_of_point[bursty]) > 0  # a rank correlation needs both
rho = stats.spearmanr(gs_of_point[bursty], spb).statistic if varies else np.nan
show("burst_trend", "too few grid points with bursting neurons (or too little variation) to tell a trend" if not np.isfinite(rho) else
     f"the median spikes per burst {'grows' if rho < 0 else 'shrinks'} as g_s decreases "
     f"(Spearman correlation with g_s {rho:.2f} over {int(bursty.sum())} grid points)")
fig = plotting.plot_dic_map(gs_axis, gu_axis, {c: medians[c].to_numpy().reshape(shape) for c in medians.columns},
                            markers=markers, ncols=2)

# %% [markdown]
# Each cell shows the population median over its neurons of the class (blank: none). The DICs
# can tune the rhythm within a class too: over the grid points with bursting neurons,
# {glue:text}`burst_trend`. This map is what the later chapters draw on: a recorded rhythm points to
# a region of the (g_s, g_u) plane, and a neuromodulator is a path through it.

# %% [markdown]
# ## The posterior in DIC space
#
# Chapter 2 inferred, from each recording's spike train alone, a posterior over the maximal
# conductances: a degenerate set. Here every posterior sample is mapped
# to its DICs at its own threshold V_th, and we ask two questions: is the set narrower in the
# (g_s, g_u) plane than in conductance space, and do tonic and bursting recordings land apart? The
# recordings, prior, training budget, estimator and seed are chapter 2's, so its cached posterior is
# loaded from `.cache/condspace/`. This section was built with {glue:text}`post_mode`, on
# {glue:text}`recordings_source`

# %%
data = inference.load_recordings(cell, RECORDINGS, GROUND_TRUTH)  # chapter 2's recordings (RECORDINGS: yours)
trains, duration = data.trains, data.duration
show("recordings_source", f"{data.source}." + ("" if data.has_truth else " No ground truth was given "
     "(GROUND_TRUTH): the comparisons with the true DICs below are skipped."))
prior = inference.make_prior(cell)
n_train = N_TRAIN_FAST if FAST else cell.inference_budget
settings = inference.standard_settings(max_epochs=MAX_EPOCHS_FAST if FAST else None)
post, _ = inference.trained_posterior(cell, n_train, settings=settings, prior=prior, seed=SEED, backend=BACKEND)
print(f"chapter 2's posterior: {post.info['n_train']} training pairs, "
      f"{'loaded from the cache' if post.info['cached'] else 'trained here'}")
show("post_mode", f"chapter 2's FAST posterior ({n_train} simulations, at most {settings.max_epochs} epochs): every "
     "number below comes from that small budget and promises nothing about the standard posterior" if FAST else
     f"chapter 2's standard posterior ({n_train} simulations)")

# %%
observed = {k: inference.observe(v, duration) for k, v in trains.items()}  # (features, feature row)
theta = {k: post.sample(N_SAMPLES, x, seed=SEED) for k, (x, _) in observed.items()}
d_post = {k: dics.dics_at_threshold(cell, inference.conductances(cell, prior, t)) for k, t in theta.items()}
d_truth = (dics.dics_at_threshold(cell, data.truth.to_numpy()).set_index(data.truth.index) if data.has_truth
           else None)  # the true conductances' DICs, when known
theta_prior = prior.sample(N_PRIOR, seed=SEED)
d_prior = dics.dics_at_threshold(cell, inference.conductances(cell, prior, theta_prior))
print(f"samples without a threshold (NaN DICs, left out below): prior {int(d_prior['V_th'].isna().sum())} of "
      f"{N_PRIOR}; posteriors {({k: int(d['V_th'].isna().sum()) for k, d in d_post.items()})} of {N_SAMPLES} each")

# %% [markdown]
# **Measuring spread.** Spaces of different dimension ($d = 8$ conductances for the STG, $d = 6$
# for the DA; $d = 2$ DICs, since $g_f = -g_s - g_u$ at V_th) are compared through the prior. In each space we
# divide, axis by axis, the spread of the posterior by the spread of the prior pushed through the
# same map (prior draws as conductances, or mapped to their DICs at V_th), and average the d ratios
# as a geometric mean: the typical factor by which the recording shrinks one axis of the prior,
# 1 meaning no information. It is the d-th root of the ratio of the volumes of the quartile boxes,
# so spaces of different dimension compare. The spread of an axis is its interquartile range (IQR), not a standard
# deviation: the prior pushed into the DIC plane has extreme tails (DICs are divided by g_leak,
# which the prior lets come close to 0), and a standard deviation, or a covariance determinant,
# would measure those tails alone. The conductances are compared on their own linear scale, on
# which the prior is uniform. The measure ignores correlations between axes, in both spaces alike.

# %%
DIC_AXES = ["g_s", "g_u"]
prior_dics = d_prior[DIC_AXES].to_numpy()
print(f"prior in the DIC plane, (g_s, g_u): IQR {iqr(prior_dics).round(2)}, standard deviation "
      f"{np.nanstd(prior_dics, axis=0).round(1)} × g_leak")

# %%
rows, where = {}, {}
for k, (_, row) in observed.items():
    dk = d_post[k][DIC_AXES].dropna().to_numpy()
    g_ratio, dic_ratio = spread_ratio(theta[k], theta_prior), spread_ratio(dk, prior_dics)
    rows[k] = {"class": row["label"], "conductances": g_ratio, "DICs": dic_ratio,
               "DICs / conductances": dic_ratio / g_ratio, **dict(zip(DIC_AXES, iqr(dk) / iqr(prior_dics), strict=True))}
    where[k] = {"g_s on the class's side of 0": np.mean((dk[:, 0] < 0) == (row["label"] == "bursting")),
                **({f"truth's {n} quantile": np.mean(dk[:, j] < d_truth.loc[k, n]) for j, n in enumerate(DIC_AXES)}
                   if data.has_truth else {})}
spread = pd.DataFrame.from_dict(rows, orient="index")


def span(values):
    """'a–b' (or 'a' when equal) of a few shrink factors, two decimals."""
    lo, hi = np.nanmin(values), np.nanmax(values)
    return f"{lo:.2f}" if round(lo, 2) == round(hi, 2) else f"{lo:.2f}–{hi:.2f}"


show("shrink_g", span(spread["conductances"]))
show("shrink_dic", span(spread["DICs"]))
show("shrink_quotient", span(spread["DICs / conductances"]))
narrower = spread.index[spread["DICs / conductances"] < 1]
show("dic_vs_g", f"the DICs shrink more than the conductances for {len(narrower)} of {len(spread)} recordings"
     + (f" ({', '.join(narrower)})" if 0 < len(narrower) < len(spread) else ""))
show("gs_vs_gu", "; ".join(f"{k}: g_s {r.g_s:.2f}, g_u {r.g_u:.2f}" for k, r in spread.iterrows()))
spread.round(2)

# %% [markdown]
# The columns are shrink factors relative to the prior: conductance space, the DIC plane, their
# quotient, and each DIC alone. In this run the posteriors keep {glue:text}`shrink_g` of the
# prior's spread per conductance axis and {glue:text}`shrink_dic` per DIC axis, a quotient of
# {glue:text}`shrink_quotient`: {glue:text}`dic_vs_g`. Per DIC ({glue:text}`gs_vs_gu`), a
# recording may pin one DIC more than the other. A quotient near 1 means the DICs do not collapse
# an *inferred* degenerate set the way they collapse the population above, whose neurons share one
# DIC target by construction: a spike train fixes a rhythm, and a whole region of the plane can be
# consistent with one rhythm.

# %%
pooled = np.concatenate([d[DIC_AXES].dropna().to_numpy() for d in d_post.values()])
lo, hi = np.percentile(pooled, [0.5, 99.5], axis=0)  # axes: the central 99 % of all posterior samples, padded
lo, hi = lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)
fig, axes = plt.subplots((len(trains) + 1) // 2, 2, figsize=(8.4, 3.3 * ((len(trains) + 1) // 2)), sharex=True,
                         sharey=True, squeeze=False)
for ax, k in zip(axes.flat, trains, strict=False):
    ax.scatter(*prior_dics[:5000].T, s=3, color="0.7", linewidths=0, rasterized=True, zorder=0.5, label="prior")
    plotting.plot_dic_plane(d_post[k]["g_s"], d_post[k]["g_u"], np.full(N_SAMPLES, spread.loc[k, "class"]), ax=ax,
                            size=4)
    if data.has_truth:
        ax.scatter(*d_truth.loc[k, DIC_AXES], marker="*", s=160, color=plotting.HIGHLIGHT_COLOR, edgecolors="black",
                   linewidths=0.6, zorder=3, label="ground truth")
    ax.set(title=k, xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
    ax.label_outer()
    legend = ax.legend(fontsize="small", loc="upper right")
    for handle in legend.legend_handles[:2]:
        handle.set_sizes([20])
for ax in axes.flat[len(trains):]:
    ax.set_visible(False)

# %% [markdown]
# Grey: the prior (at V_th, g_s + g_u = −g_f, so it fills a band along the diagonal); coloured: the
# posterior samples of each recording, by its class; {glue:text}`truth_legend` A recording
# made from a tonic set with strong noise (the STG's irregular one) can be classified as bursting
# by its CV; its posterior is then restricted to bursting neurons although its truth is a tonic
# set. Where the samples lie: the share on the side of g_s = 0 that the recording's class predicts,
# and the quantile of the ground truth in each DIC (0 or 1 would mean "missed"; absent without a
# ground truth):

# %%
show("truth_legend", "orange: the ground truth's DICs." if data.has_truth else "no ground truth was given.")
where = pd.DataFrame.from_dict(where, orient="index")
band = (0.05, 0.95)  # a truth outside the central 90 % of its posterior counts as near a miss
if data.has_truth:
    quantiles = where[[f"truth's {n} quantile" for n in DIC_AXES]]
    central = quantiles.index[((quantiles > band[0]) & (quantiles < band[1])).all(axis=1)]
    show("truth_central", f"the ground truth lies between the {band[0]:.0%} and {band[1]:.0%} quantiles of both DICs "
         f"for {len(central)} of {len(where)} recordings")
else:
    show("truth_central", "the comparison with a ground truth is skipped (none was given)")
show("side_share", span(where["g_s on the class's side of 0"]))
where.round(2)

# %% [markdown]
# In this run {glue:text}`truth_central`, and the share of samples on the side of g_s = 0 that the
# recording's class predicts ranges over {glue:text}`side_share`. Where that share is low, the sign
# of g_s at V_th does not carry the class, as for the populations above.

# %% [markdown]
# **Tonic against bursting.** How well does one number tell a tonic recording's posterior from a
# bursting one's? For two sets of samples and one axis, the separability is max(P(a > b), P(a < b))
# for a sample a of one set and b of the other: the area under the ROC curve of a threshold on that
# axis (read in its better direction), $0.5$ for identical distributions and 1 for disjoint ones.
# We compare g_s and g_u with the single conductance that separates each pair best.

# %%
pairs = {}
for t, b in [(t, b) for t in spread.index[spread["class"] == "spiking"] for b in spread.index[spread["class"] == "bursting"]]:
    by_g = {n: separability(theta[t][:, j], theta[b][:, j]) for j, n in enumerate(prior.conductance_names)}
    best = max(by_g, key=by_g.get)
    pairs[f"{t} vs {b}"] = {**{n: separability(d_post[t][n].to_numpy(), d_post[b][n].to_numpy()) for n in DIC_AXES},
                            "best conductance": best, "its separability": by_g[best]}
pairs = pd.DataFrame.from_dict(pairs, orient="index")
best_dic = pairs[DIC_AXES].max(axis=1)
show("sep_gs", span(pairs["g_s"]) if len(pairs) else "–")
show("sep_gu", span(pairs["g_u"]) if len(pairs) else "–")
show("sep_g", span(pairs["its separability"]) if len(pairs) else "–")
show("sep_sentence", f"a DIC separates {int((best_dic >= pairs['its separability']).sum())} of {len(pairs)} "
     "tonic–bursting pairs at least as well as the best single conductance")
pairs.round(2)

# %% [markdown]
# In this run g_s separates the tonic–bursting pairs of posteriors with {glue:text}`sep_gs`, g_u
# with {glue:text}`sep_gu`, and the best single conductance of each pair with {glue:text}`sep_g`:
# {glue:text}`sep_sentence`. Whether or not the DIC plane shrinks an inferred degenerate set, this
# is the question that matters for sorting recordings: does one number tell the firing classes
# apart?

# %% [markdown]
# ## Summary
#
# In this chapter we computed the fast, slow and ultraslow dynamic input conductances of the
# published neurons from the cell declaration alone, found the threshold voltage where their sum
# vanishes, and read the firing pattern off the sign of the slow DIC there. We built degenerate
# populations that share one DIC target but not their conductances, checked by simulation whether
# they share one firing pattern, and mapped class fractions and burst features over
# a grid of (g_s, g_u) targets. Finally we mapped chapter 2's posteriors of the recordings into the
# plane, compared their spread there with their spread in conductance space (in this run
# {glue:text}`dic_vs_g`), and asked whether one DIC separates tonic from bursting posteriors as well
# as any single conductance (in this run {glue:text}`sep_sentence`). The next chapter moves
# populations through this plane: which
# channel pairs can carry a population from tonic spiking to bursting, for how many neurons, and at
# what cost.
#
# The same results from the command line: `python -m condspace population` builds a population at
# a (g_s, g_u) target, `python -m condspace dics` computes V_th and the DICs of any conductance
# table, and `tools/validate_populations.py` repeats the simulation check with a larger population.
#
# **References.** Drion G, Franci A, Dethier J, Sepulchre R (2015) Dynamic input conductances shape
# neuronal spiking. eNeuro 2(1). Fyon A, Franci A, Sacré P, Drion G (2024) Dimensionality reduction
# of neuronal degeneracy reveals two interfering physiological mechanisms. PNAS Nexus 3:pgae415.
# Brandoit J, Ernst D, Drion G, Fyon A (2025) arXiv:2509.12783. Liu Z et al. (1998) J Neurosci
# 18:2309–2320. Qian K et al. (2014) J Neurophysiol 112:2779–2790.
