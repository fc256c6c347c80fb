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
# # How neuromodulation moves populations
#
# A neuromodulator changes a few maximal conductances of every neuron it reaches, and a tonically
# spiking neuron may start to burst. In the DIC picture of chapter 3 it moves the neuron in the
# (g_s, g_u) plane. This chapter asks which pairs of channels can move a whole degenerate
# population from tonic spiking to bursting, for how many of its neurons, and at what cost, and
# checks the answer by simulation.
#
# - **A path from tonic spiking to bursting**: the target moves, every neuron re-solves two channels.
# - **Every neuron its own trajectory**: neither additive nor multiplicative.
# - **Reachability maps of every pair**: where in the (g_s, g_u) plane each pair can take the population.
# - **The cost of each reachable pair**: fold changes of the modulated conductances.
# - **Checked by simulation**: traces before and after, for the cheapest and the most expensive pair.
# - **A population inferred from a recording**: the same questions for a population not built by compensation.
# - **How fast**: maps of all pairs over the whole plane.

# %% [markdown]
# **Prerequisites**: chapter 3 (DICs, compensation populations); chapter 2 for the inferred population.
# **Runtime**: minutes on a two-core CPU with NumPy, longer for the DA neuron (a protocol twice as
# long at half the time step), plus the training of chapter 2's posterior in full mode if it is not cached yet
# (`.cache/condspace/`); the wall time of this chapter in the build that rendered it is on the
# **Build status** page. DIC algebra takes seconds; the rest is simulation, which on a GPU
# (`BACKEND="cupy"`) takes seconds too.

# %% tags=["parameters"]
CELL_TYPE = "stg"  # a registered cell type (cells.available()): "stg" (Liu et al. 1998), "da" (Qian et al. 2014), ...
FAST = False  # True: small populations, a coarse map, few simulations (used by `make test`)
BACKEND = "auto"  # simulation backend: "auto", "numpy" or "cupy"
SEED = 0  # seed of the population draws and of the posterior samples
N_POPULATION = 1000  # neurons in the compensation population (full mode)
N_POPULATION_FAST = 200  # neurons in the compensation population (FAST mode)
PATH_END = None  # end of the path (g_s, g_u) × g_leak; None: the cell's declared bursting target
N_POINTS = 21  # points along the path
GRID_STEP = 0.5  # spacing of the reachability maps, × g_leak (full mode)
GRID_STEP_FAST = 2.0  # spacing of the reachability maps, × g_leak (FAST mode)
N_SIMULATED = 300  # neurons simulated per population and pair for the check by simulation (full mode)
N_SIMULATED_FAST = 24  # neurons simulated per population and pair (FAST mode)
USE_POSTERIOR = True  # full mode: posterior samples of chapter 2 (cached); FAST always uses a recording's neighbourhood
N_INFERRED = 1000  # posterior samples, or neighbourhood draws (full mode)
N_INFERRED_FAST = 120  # neighbourhood draws (FAST mode)
RECORDINGS = None  # your spike-time CSV (ID,spiking_times; ms), as chapter 2's; None: the cell's demonstration recordings
GROUND_TRUTH = None  # CSV of conductances per recording ID (ID,g_Na,...), or None (the demonstration recordings bring theirs)
N_TRAIN_FAST = 1500  # chapter 2's FAST budget: the posterior used in FAST mode when there is no ground truth
MAX_EPOCHS_FAST = 40  # chapter 2's FAST cap on training epochs

# %%
import numpy as np
import pandas as pd
from myst_nb import glue

import condspace
from condspace import cells, dics, features, inference, plotting, populations, resolve, simulate
from condspace import neuromodulation as nm


def show(name, value):
    """Glue a number or sentence of this run for the prose's glue roles, as a plain Python value."""
    glue(name, value.item() if hasattr(value, "item") else value, display=False)


# %%
backend = resolve(BACKEND)
cell = cells.get(CELL_TYPE)
recipe, protocol = cell.population, dict(cell.protocol)
plotting.use_style()
n_population = N_POPULATION_FAST if FAST else N_POPULATION
n_simulated = N_SIMULATED_FAST if FAST else N_SIMULATED
step = GRID_STEP_FAST if FAST else GRID_STEP
start, end = cell.modulation_target("spiking"), PATH_END or cell.modulation_target("bursting")  # declared
print(f"condspace {condspace.__version__} | {backend.describe()} | numpy {np.__version__} | pandas {pd.__version__} | "
      f"cell {cell.name}: {cell.title} | V* = {recipe.V_ref} mV | path {start} → {end} | N = {n_population}")
show("mode", f"FAST mode: a population of {n_population} neurons, a grid step of {step:g} × g_leak and "
     f"{n_simulated} simulated neurons per check, so every number on this page comes from a small sample"
     if FAST else f"full mode: a population of {n_population} neurons, a grid step of {step:g} × g_leak")
show("target", "(" + ", ".join(f"{float(x):g}" for x in recipe.target) + ")")
show("v_ref", f"{recipe.V_ref:g}")
show("eps", f"{nm.DEFAULT_EPS:g}")

# %% [markdown]
# This page was built in {glue:text}`mode`.

# %% [markdown]
# ## A path from tonic spiking to bursting
#
# We start from the degenerate spiking population of chapter 3: conductances drawn at random, then
# three channels solved so that every neuron has the same DICs at V* (here (g_f, g_s, g_u) =
# {glue:text}`target` at {glue:text}`v_ref` mV). A neuromodulator that acts on two channels K = {a, b} moves the target
# (g_s, g_u) and leaves g_f free; each neuron then re-solves
#
# $$S_{\{s,u\},K}(V^*)\,\bar g_K = (g_s^*, g_u^*) - S_{\{s,u\},\text{rest}}(V^*)\,\bar g_\text{rest},$$
#
# with the KCa column of S recomputed when a calcium channel moves (it depends on ḡ_CaT and ḡ_CaS
# through [Ca]∞). A **path** is a sequence of such targets; a neuron follows it when every point
# has a solution with non-negative conductances whose recomputed DICs are within ε = {glue:text}`eps` of the
# target.

# %%
pop = populations.spiking_population(cell, n_population, seed=SEED)
G = pop.g[pop.reachable]
points = nm.path(start, end, N_POINTS)
summary, trajectories = nm.path_summary(cell, G, points)
print(f"{len(G)} of {n_population} drawn neurons solved; {len(summary)} channel pairs; "
      f"{int((summary['reachable_fraction'] > 0).sum())} move some neurons along the whole path")
summary[["pair", "reachable_fraction", "reason", "n_negative", "n_missed"]].set_index("pair").T.round(2)

# %% [markdown]
# The table counts, for every pair, the neurons that can follow the whole path and, for the others,
# why not: a singular system (no combination of the two channels moves g_s and g_u independently), or
# a conductance that would have to become negative somewhere on the way.

# %%
d0 = dics.dics(cell, G, recipe.V_ref)
fig = plotting.plot_dic_plane(d0[:, 1], d0[:, 2])
ax = fig.axes[0]
ax.plot(points[:, 0], points[:, 1], color=plotting.HIGHLIGHT_COLOR, lw=2, label="path")
ax.plot(*points[-1], marker=">", color=plotting.HIGHLIGHT_COLOR, ms=8, ls="none")
legend = ax.legend()

# %% [markdown]
# The whole population sits on one point of the (g_s, g_u) plane (its neurons share their DICs at V*,
# not their conductances), and the path crosses g_s = 0, from slow negative to slow positive feedback.

# %% [markdown]
# ## Every neuron its own trajectory
#
# Take the default pair of the literature for this move (STG: {CaS, H}; DA: {ERG, CaL}). Each neuron
# has its own solution at every point of the path.

# %%
pair = populations.modulation_pair(cell, *end)
tr = trajectories[nm.pair_label(sorted(pair, key=cell.index))]
print(f"pair {tr.channels}: {tr.reachable_fraction:.1%} of the population follows the whole path")
fig = plotting.plot_trajectories(tr.targets[:, 1], tr.g[:, :, tr.indices], tr.channels)

# %% [markdown]
# Thin lines are neurons, the thick line the median: the conductances change by different amounts
# and by different factors from neuron to neuron, and not linearly along the path when a calcium
# channel is involved.

# %%
fig = plotting.plot_modulation_scatter(tr.baseline[:, tr.indices], tr.g[-1][:, tr.indices], tr.channels)
delta, fold = tr.g[-1][:, tr.indices] - tr.baseline[:, tr.indices], tr.fold_change()[-1]
spread_table = pd.DataFrame({"CV of Δḡ": delta.std(0) / np.abs(delta.mean(0)),
                             "CV of the fold change": fold.std(0) / fold.mean(0)}, index=list(tr.channels))
show("cv_delta", ", ".join(f"{v:.2f}" for v in spread_table["CV of Δḡ"]))
show("cv_fold", ", ".join(f"{v:.2f}" for v in spread_table["CV of the fold change"]))
spread_table.round(3)

# %% [markdown]
# If the modulation were additive every neuron would sit on the dashed line (one Δḡ, a coefficient
# of variation of 0 across neurons); if it were multiplicative, on the dotted line (one fold change).
# In this run the coefficients of variation across neurons are {glue:text}`cv_delta` for Δḡ and
# {glue:text}`cv_fold` for the fold change (one per channel of the pair): the further both are from
# zero, the more the change each neuron needs depends on its whole conductance vector, which is what
# degeneracy implies.

# %% [markdown]
# ## Reachability maps of every pair
#
# The reachable fraction of the population over a grid of targets, for all channel pairs at once.
# Pairs without a calcium channel have a solution that is affine in the target (one inverse per
# neuron maps the whole grid); pairs with one iterate only the KCa column, for all targets and
# neurons together.

# %%
gs, gu = nm.grid(cell, step)
maps = nm.reachability_map(cell, G, gs=gs, gu=gu)
fig = plotting.plot_reachability_maps(maps.gs, maps.gu, dict(zip(maps.labels, maps.fraction, strict=True)),
                                      path=points, reasons=dict(zip(maps.labels, maps.reason, strict=True)))

# %% [markdown]
# Each pair reaches its own region of the plane. Pairs whose two columns are both slow or both
# ultraslow reach only a band; a pair can move the population from spiking to bursting only when
# its region contains the whole path (orange), and a singular pair reaches nothing.

# %% [markdown]
# ## The cost of each reachable pair
#
# The cost of a modulation is the fold change ḡ_new / ḡ_baseline of each modulated channel, per
# neuron; below, its median and interquartile range over the neurons that follow the whole path.

# %%
costs = nm.cost_table(trajectories)
fig = plotting.plot_costs(costs, channels=nm.active_channels(cell))


def cost_sentence(table):
    """'cheapest X (largest median fold change a), most expensive Y (b)' of a cost table, cheapest first."""
    if not len(table):
        return "no pair carries any neuron along the whole path"
    largest = table.groupby("pair", sort=False)["median"].apply(lambda m: float(np.max(np.maximum(m, 1 / m))))
    return (f"the cheapest pair is {largest.index[0]} (largest median fold change ×{largest.iloc[0]:.2f}), the most "
            f"expensive {largest.index[-1]} (×{largest.iloc[-1]:.2f})")


show("cost_sentence", cost_sentence(costs))
costs.round(3)

# %% [markdown]
# Pairs are sorted from cheapest (smallest largest fold change) to most expensive; in this run
# {glue:text}`cost_sentence`. The interquartile ranges show how different the efforts are that the
# same modulation asks of different neurons.

# %% [markdown]
# ## Checked by simulation
#
# The DIC reading predicts bursting at the end of the path. We simulate a sample of the population
# before the modulation and at the end of the path with the cheapest and the most expensive pair,
# and count who bursts. Neurons that the DICs call reachable but that do not burst are counted
# separately (`n_failed`).

# %%
ranked = list(dict.fromkeys(costs["pair"]))
chosen = {label: trajectories[label] for label in (ranked[0], ranked[-1])}
sub = np.random.default_rng(SEED).permutation(len(G))[:n_simulated]
sampled = {label: nm.modulate_along(cell, G[sub], points, t.channels) for label, t in chosen.items()}
checks, extra = nm.validate(cell, sampled, points=[-1], backend=backend, record=2)
checks[["channels", "g_s", "g_u", "target_label", "n_neurons", "n_reachable", "n_validated", "n_failed",
        "validated_fraction", "fraction_spiking", "fraction_bursting", "fraction_silent"]].round(3)

# %%
keys = [("before", -1)] + [(label, len(points) - 1) for label in sampled]
t_all = next(iter(extra["traces"].values()))[1]
window = t_all >= protocol["t_max"] - (1000.0 if FAST else 2000.0)
traces = [extra["traces"][k][2][0, window] for k in keys]
labels = [f"{k[0]} (neuron {extra['traces'][k][0][0]}): {extra['labels'][k][extra['traces'][k][0][0]]}" for k in keys]
fig = plotting.plot_traces(t_all[window], np.array(traces),
                           labels=labels, colors=[plotting.class_color(lab.split(": ")[1]) for lab in labels])

# %% [markdown]
# One neuron before the modulation and at the end of the path with each pair; the table above gives
# the classes of the whole sample. Reaching the DIC target is necessary, not sufficient: the DICs at
# one voltage do not fix every feature of the rhythm, and a pair that needs large changes can leave
# the neuron where the DIC reading no longer predicts its class. Compare `validated_fraction` of the
# two pairs; `n_failed` counts the neurons the DICs call reachable that do not burst.

# %% [markdown]
# ## A population inferred from a recording
#
# A compensation population sits exactly on one DIC target. A population inferred from a recording
# (chapter 2) does not: its neurons fire like the recording but their DICs at V* spread out. In full
# mode (and `USE_POSTERIOR`) we take posterior samples of chapter 2's estimator for a tonic recording
# (its cached posterior; it is trained here if the cache is empty). **FAST mode cannot train a
# posterior in minutes**, so it uses a stand-in: conductances drawn log-normally (spread
# {glue:text}`cloud_sigma` in log units) around the
# recording's ground truth, kept when their simulated train reproduces the recording (chapter 2's
# predictive-check rule). That population is not inferred; it is a neighbourhood of the recording.
# Recordings without a ground truth (`RECORDINGS` without `GROUND_TRUTH`) have no neighbourhood:
# FAST mode then uses chapter 2's FAST posterior. This section used {glue:text}`inferred_source`.

# %%
data = inference.load_recordings(cell, RECORDINGS, GROUND_TRUTH)  # chapter 2's recordings (RECORDINGS: yours)
trains, table = data.trains, data.table
tonic = (list(table.index[table["label"] == "spiking"]) or list(table.index))[0]  # the first tonic one, if any
train = trains[tonic]
x_obs, observed = inference.observe(train, data.duration)
prior = inference.make_prior(cell)
print(f"recording {tonic}: {observed['label']}, {observed['rate_hz']:.1f} Hz")

# %%
rng = np.random.default_rng(SEED)
cloud_sigma = 0.25  # log-normal spread of the FAST stand-in around the recording's ground truth
show("cloud_sigma", f"{cloud_sigma:g}")
if (USE_POSTERIOR and not FAST) or not data.has_truth:
    n_post = N_TRAIN_FAST if FAST else cell.inference_budget
    settings = inference.standard_settings(max_epochs=MAX_EPOCHS_FAST if FAST else None)
    post, _ = inference.trained_posterior(cell, n_post, settings=settings, prior=prior, seed=SEED, backend=BACKEND)
    source, G_inf = (f"posterior samples ({n_post} training simulations) of recording {tonic}",
                     inference.conductances(cell, prior, post.sample(N_INFERRED_FAST if FAST else N_INFERRED, x_obs,
                                                                     seed=SEED)))
else:
    g_truth = data.truth.loc[tonic].to_numpy(dtype=float)
    n_draw = N_INFERRED_FAST if FAST else N_INFERRED
    cloud = g_truth * np.exp(rng.normal(0.0, cloud_sigma, (n_draw, cell.n_channels)))
    held = [k for k in cell.fixed if k not in prior.names]  # fixed and not inferred (an inferred one varies)
    cloud[:, [cell.index(k) for k in held]] = [cell.fixed[k] for k in held]
    feats = features.from_simulation(simulate(cell, cloud, backend=backend, **protocol))
    source, G_inf = "recording's neighbourhood (not inferred)", cloud[inference.reproduces(observed, feats)[0]]
d_inf = dics.dics(cell, G_inf, recipe.V_ref)
show("inferred_source", f"{source}: {len(G_inf)} neurons")
show("inf_iqr", f"{np.subtract(*np.percentile(d_inf[:, 1], [75, 25])):.2f}")
show("inf_iqr_u", f"{np.subtract(*np.percentile(d_inf[:, 2], [75, 25])):.2f}")
print(f"{source}: {len(G_inf)} neurons; their (g_s, g_u) at V*: median ({np.median(d_inf[:, 1]):.2f}, "
      f"{np.median(d_inf[:, 2]):.2f}), IQR of g_s {np.subtract(*np.percentile(d_inf[:, 1], [75, 25])):.2f}")

# %%
fig = plotting.plot_dic_plane(d_inf[:, 1], d_inf[:, 2])
start_inf = (float(np.median(d_inf[:, 1])), float(np.median(d_inf[:, 2])))
points_inf = nm.path(start_inf, end, N_POINTS)
fig.axes[0].plot(points_inf[:, 0], points_inf[:, 1], color=plotting.HIGHLIGHT_COLOR, lw=2, label="path")
legend = fig.axes[0].legend()

# %% [markdown]
# Neurons that all fire like the recording need not share their DICs: in this run their g_s at V*
# has an interquartile range of {glue:text}`inf_iqr` and their g_u of {glue:text}`inf_iqr_u`
# (× g_leak), where the compensation population has none. We move them along the path from their
# median to the same end.

# %%
summary_inf, traj_inf = nm.path_summary(cell, G_inf, points_inf)
compare = summary[["pair", "reachable_fraction"]].merge(summary_inf[["pair", "reachable_fraction"]], on="pair",
                                                       suffixes=(" (compensation)", " (inferred)"))
moved_any = compare[(compare.iloc[:, 1:] > 0).any(axis=1)]
higher = int((moved_any.iloc[:, 2] > moved_any.iloc[:, 1]).sum())
lower = int((moved_any.iloc[:, 2] < moved_any.iloc[:, 1]).sum())
show("compare_sentence", f"of the {len(moved_any)} pairs that move some neurons, {higher} reach a larger fraction of "
     f"the inferred population than of the compensation population, {lower} a smaller one")
moved_any.set_index("pair").round(3)

# %%
costs_inf = nm.cost_table(traj_inf)
if len(costs_inf):
    fig = plotting.plot_costs(costs_inf, channels=nm.active_channels(cell))
show("cost_sentence_inf", cost_sentence(costs_inf))
costs_inf.round(3)

# %% [markdown]
# Compare the two columns and the costs with the compensation population's: the inferred neurons
# start from different DICs, so for each pair some start closer to the region it can reach and some
# farther. In this run {glue:text}`compare_sentence`; for the inferred population
# {glue:text}`cost_sentence_inf`. Which channels a neuromodulator "needs" can depend on the
# population.

# %%
best = costs_inf["pair"].iloc[0] if len(costs_inf) else ranked[0]
sub = np.random.default_rng(SEED).permutation(len(G_inf))[:n_simulated]
moved = nm.modulate_along(cell, G_inf[sub], points_inf, traj_inf[best].channels)
checks_inf, extra_inf = nm.validate(cell, {best: moved}, points=[-1], backend=backend, record=1)
keys_inf = [("before", -1)] + [k for k in extra_inf["traces"] if k[0] == best]
labels_inf = [extra_inf["labels"][k][extra_inf["traces"][k][0][0]] for k in keys_inf]
fig = plotting.plot_traces(t_all[window], np.array([extra_inf["traces"][k][2][0, window] for k in keys_inf]),
                           labels=[f"{k[0]}: {lab}" for k, lab in zip(keys_inf, labels_inf, strict=True)],
                           colors=[plotting.class_color(lab) for lab in labels_inf])
checks_inf[["channels", "n_neurons", "n_reachable", "n_validated", "n_failed", "validated_fraction",
            "fraction_spiking", "fraction_bursting"]].round(3)

# %% [markdown]
# The cheapest pair for the inferred population, checked the same way: one neuron before and at the
# end of the path, and the classes of the whole sample in the table.

# %% [markdown]
# ## How fast
#
# The maps above solved every pair for every neuron and grid point at once:

# %%
pd.Series({"neurons": maps.n_neurons, "grid points": maps.gs.size * maps.gu.size, "pairs": len(maps.pairs),
           "wall time, all pairs (s)": round(sum(maps.seconds), 1),
           "slowest pair": f"{maps.labels[int(np.argmax(maps.seconds))]} ({max(maps.seconds):.1f} s)"})

# %% [markdown]
# `benchmarks/reachability.py` times the full STG problem (every pair, the full grid, a population
# of the size of the full-mode chapter) and compares it with a loop over neurons.

# %% [markdown]
# ## Summary
#
# In this chapter we moved a degenerate population along a path from tonic spiking to bursting in
# the (g_s, g_u) plane, found that every neuron needs its own change (neither additive nor
# multiplicative), mapped where each pair of channels can take the population, ranked the pairs by
# the fold change they require, and checked by simulation that the DIC prediction holds, for a
# compensation population and for a population that only shares a recording. Chapter 5 takes up the
# question the book builds towards: given recordings before and after a neuromodulator, which channel
# subsets did it most likely target? It ranks them with a classifier trained on simulated experiments
# and measures this chapter's reachability-and-cost ranking beside it.
#
# **References.** Drion G, Franci A, Dethier J, Sepulchre R (2015) eNeuro 2(1). Fyon A, Franci A,
# Sacré P, Drion G (2024) PNAS Nexus 3:pgae415. Brandoit J, Ernst D, Drion G, Fyon A (2025)
# arXiv:2509.12783. Marder E, Goaillard JM (2006) Nat Rev Neurosci 7:563–574. Liu Z, Golowasch J,
# Marder E, Abbott LF (1998) J Neurosci 18:2309–2320. Qian K et al. (2014) J Neurophysiol 112:2779–2790.
