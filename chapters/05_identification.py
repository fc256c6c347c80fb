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
# # Which channels did the neuromodulator target?
#
# Chapter 4 moved populations through the (g_s, g_u) plane by changing a pair of channels and asked
# the question the book builds up to: given spike times recorded before and after a neuromodulator,
# which channel subsets did it most likely target? Here we answer it as a comparison of models: every
# single channel and every pair is a hypothesis, a classifier trained on simulated experiments returns
# the posterior probability of each, and the evidence of several neurons recorded under the same drug
# is combined exactly. The DIC route of chapter 4 is measured on the same experiments as a baseline.
#
# - **The experiment and its generative model**: hypotheses, random and DIC-path modulation.
# - **Training**: a softmax classifier on (before, after) summary features.
# - **Accuracy against the number of neurons**: both methods, both scenarios, and chance.
# - **What spike times cannot tell apart**: the confusion matrix and the identifiability groups.
# - **Calibration**: are the probabilities honest?
# - **A worked example**: ten neurons before and after one drug, and the table a reader would report.

# %% [markdown]
# **Prerequisites**: chapter 2 (summary features, the posterior over conductances) and chapter 4
# (paths, reachability and cost of a channel subset).
# **Runtime**: the longest chapter: the first full run simulates every training and held-out
# experiment before and after the drug and trains the classifiers and the DIC route's posterior;
# later runs load them from `.cache/condspace/` (shared with `python -m condspace identify` and
# `benchmarks/identification.py`). A DA simulation costs four times an STG one. The wall time of
# this chapter in the build that rendered it is on the **Build status** page.

# %% tags=["parameters"]
CELL_TYPE = "stg"  # a registered cell type (cells.available()): "stg", "da", ...
FAST = False  # True: tiny budgets and few epochs (used by `make test`)
BACKEND = "numpy"  # simulation backend: "auto", "numpy" or "cupy"
SEED = 0  # seed of the training experiments (held-out ones use SEED + 1)
N_TRAIN = 6000  # prior draws of the random-modulation training set (FAST: N_TRAIN_FAST)
N_TRAIN_FAST = 80  # the same in FAST mode
N_TEST = 3000  # prior draws of the held-out pool (FAST: 40)
N_DIC_PATH = 100  # population size of the DIC-path scenario, training and held-out (FAST: 8)
N_EXPERIMENTS = 2000  # held-out experiments per number of neurons (FAST: 200)
DIC_PER_HYPOTHESIS = 5  # held-out neurons per hypothesis scored by the DIC route (FAST: 1)
N_SAMPLES = 30  # posterior samples per recording for the DIC route (FAST: 15)
MAX_EPOCHS_FAST = 15  # cap on training epochs in FAST mode
MAX_EPOCHS_FLOW = 100  # cap on the epochs of the DIC route's posterior flows in full mode (≈ 8 min at 6,000)
RECORDINGS_BEFORE = None  # your spike-time CSV (ID,spiking_times; ms) before the drug; None (with AFTER): the worked example
RECORDINGS_AFTER = None  # the same neurons (same IDs) after the drug; give both files or neither
GROUND_TRUTH = None  # CSV with columns ID,subset (the targeted channels, e.g. "CaS+H"), or None: the ranking is not scored

# %%
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from myst_nb import glue

import condspace
from condspace import cells, identification, inference, plotting, resolve
from condspace.identification import dic_route, evaluation, plots

# %%
backend = resolve(BACKEND)
cell = cells.get(CELL_TYPE)
plotting.use_style()
n_train, n_test = (N_TRAIN_FAST, 40) if FAST else (N_TRAIN, N_TEST)
n_dic_path, n_exp, per_h = (8, 200, 1) if FAST else (N_DIC_PATH, N_EXPERIMENTS, DIC_PER_HYPOTHESIS)
n_samples = 15 if FAST else N_SAMPLES
NS = (1, 2, 3) if FAST else (1, 5, 20)  # neurons per experiment
settings = identification.ClassifierSettings(**({"max_epochs": MAX_EPOCHS_FAST} if FAST else {}))
hyps = identification.labels(cell)
print(f"condspace {condspace.__version__} | {backend.describe()} | torch {torch.__version__} | cell {cell.name} "
      f"| {len(hyps)} hypotheses | {n_train} training draws | FAST={FAST}")

# %% [markdown]
# ## The experiment and its generative model
#
# A neuron is recorded, a neuromodulator is applied, and the same neuron is recorded again; the drug
# acts on a small subset S of its channels. The candidate subsets come from the cell's declaration:
# every single modulable channel and every pair (the leak and fixed conductances are not candidates).

# %%
glue("n_hypotheses", len(hyps), display=False)
glue("n_channels", len(identification.modulable_channels(cell)), display=False)
glue("factor_lo", float(identification.experiments.FACTOR_RANGE[0]), display=False)
glue("factor_hi", float(identification.experiments.FACTOR_RANGE[1]), display=False)
pd.DataFrame({"hypotheses": [", ".join(hyps[:len(identification.modulable_channels(cell))]),
                             ", ".join(hyps[len(identification.modulable_channels(cell)):])]},
             index=["single channels", "pairs"])

# %% [markdown]
# That is {glue:text}`n_hypotheses` hypotheses from {glue:text}`n_channels` modulable channels. Two
# ways of generating experiments are simulated, both with the cell's protocol and independent noise
# currents before and after, of the strength used for the shipped recordings:
#
# - **random modulation**: ḡ is drawn from chapter 2's prior and kept if the neuron fires before;
#   each channel of S is scaled by its own neuron-specific factor, log-uniform in magnitude between
#   ×{glue:text}`factor_lo:g` and ×{glue:text}`factor_hi:g`, up or down. The "before" simulations *are* an inference training set (the same
#   function and cache as chapter 2, with the recording noise).
# - **DIC-path modulation** (chapter 4's picture): a compensation population at the tonic DIC point
#   is moved to the bursting point by a pair S, each neuron with its own change; only neurons that
#   reach the whole path count. Every pair lands on the same (g_s, g_u) by construction, so whatever
#   separates them comes from spike-train detail beyond the DICs, or from which pairs can reach the
#   target at all.

# %%
train = identification.random_experiments(cell, n_train, seed=SEED, backend=BACKEND)
pool = identification.random_experiments(cell, n_test, seed=SEED + 1, backend=BACKEND)
path_train = identification.dic_path_experiments(cell, n_dic_path, seed=SEED, backend=BACKEND)
path_pool = identification.dic_path_experiments(cell, n_dic_path, seed=SEED + 1, backend=BACKEND)
glue("n_train_exp", int(train.usable.sum()), display=False)
glue("n_pool", int(pool.usable.sum()), display=False)
glue("silent_after", f"{100 * train.info['silent_after_fraction']:.1f}", display=False)
glue("n_path_train", int(path_train.usable.sum()), display=False)
pd.Series(path_train.info["reachable_per_pair"], name="DIC-path experiments (training population)").to_frame().T

# %% [markdown]
# The random scenario gives {glue:text}`n_train_exp` training experiments and a held-out pool of
# {glue:text}`n_pool` neurons; {glue:text}`silent_after`% of the neurons fall silent after the drug,
# which is data, not a failure. The DIC-path scenario gives {glue:text}`n_path_train` training
# experiments; the table counts them per pair, and a pair missing from it cannot bring any neuron of
# the population to the bursting point.

# %% [markdown]
# ## Training
#
# The classifier is a softmax network on the eleven summary features of chapter 2 before and
# after the drug, their difference and a flag for silence after: minimising the cross-entropy over
# simulated experiments makes its output the posterior P(S | before, after) under the simulated prior
# (Radev et al. 2021). A second head gives, for each channel, the probability that it went up were it
# modulated. Five such networks, trained from different initialisations, are averaged (a deep
# ensemble, Lakshminarayanan et al. 2017) and their common temperature is fitted on held-out
# experiments: the evidence of n neurons multiplies n estimated posteriors, so an error of the
# estimator that one network makes and another does not would otherwise grow with n. One classifier
# is trained per scenario.

# %%
model, _ = identification.identifier(cell, n_train, seed=SEED, settings=settings, backend=BACKEND)
path_model, _ = identification.identifier(cell, n_dic_path, scenario="dic_path", seed=SEED, settings=settings,
                                          backend=BACKEND)
pd.DataFrame({s: {k: m.classifier.info[k] for k in ("n_train", "epochs", "val_top1", "train_s")}
              for s, m in (("random", model), ("DIC path", path_model))}).T.round(3)

# %% [markdown]
# ## Accuracy against the number of neurons
#
# Held-out experiments with n neurons draw a subset uniformly and n distinct neurons of it from the
# held-out pool. The classifier's per-neuron posteriors are combined exactly, the neurons being
# independent given S: log P(S | x₁…xₙ) = Σᵢ log q(S | xᵢ) − (n − 1) log p(S) + const. The DIC
# route infers each neuron's posterior over conductances before and after with chapter 2's estimator
# (trained on the same "before" simulations), maps both to (g_s, g_u) at the threshold voltage, and
# ranks subsets by the fraction of the before samples they can bring to the after point, then by cost;
# for n neurons the fractions are averaged. It is costly, so it is scored on a few held-out neurons per
# subset, and the classifier is scored on exactly those neurons beside it.

# %%
tables, evals = {}, {}
for scen, m, p in (("random", model, pool), ("dic_path", path_model, path_pool)):
    lp, y = evaluation.pool_log_posteriors(m, p)
    evals[scen] = evaluation.evaluate_classifier(cell.name, lp, y, m.classifier.log_prior, NS, n_exp, SEED)
    tables[("classifier", scen)] = evals[scen].table
flow_settings = inference.standard_settings(max_epochs=MAX_EPOCHS_FAST if FAST else MAX_EPOCHS_FLOW)
post, _ = inference.trained_posterior(cell, n_train, protocol=identification.recording_protocol(cell), seed=SEED,
                                      settings=flow_settings, backend=BACKEND)
for scen, p in (("random", pool), ("dic_path", path_pool)):
    fr, co, yd = evaluation.dic_route_pool(cell.name, post, p, per_h, n_samples=n_samples, seed=SEED,
                                           limit=4 if FAST else None)
    tables[("DIC route", scen)] = evaluation.evaluate_dic_route(cell.name, fr, co, yd, NS, n_exp, SEED)
fig = plots.plot_accuracy(tables)

# %%
summary = pd.concat({f"{m}, {s}": t.set_index("n")[["top1", "top3", "chance_top1", "chance_top3", "pool"]]
                     for (m, s), t in tables.items()}).round(3)
r = evals["random"].table.set_index("n")
glue("top1_n1", f"{r['top1'].iloc[0]:.2f}", display=False)
glue("top3_n1", f"{r['top3'].iloc[0]:.2f}", display=False)
glue("top1_nmax", f"{r['top1'].iloc[-1]:.2f}", display=False)
glue("top3_nmax", f"{r['top3'].iloc[-1]:.2f}", display=False)
glue("n_max", int(r.index[-1]), display=False)
glue("chance_top1", f"{r['chance_top1'].iloc[0]:.3f}", display=False)
dic_r = tables[("DIC route", "random")].set_index("n")
glue("dic_top3_n1", f"{dic_r['top3'].iloc[0]:.2f}" if len(dic_r) else "n/a", display=False)
glue("dic_pool", int(dic_r["pool"].iloc[0]) if len(dic_r) else 0, display=False)
p_ = evals["dic_path"].table.set_index("n")
glue("path_top1_n1", f"{p_['top1'].iloc[0]:.2f}", display=False)
glue("path_chance", f"{p_['chance_top1'].iloc[0]:.2f}", display=False)
glue("path_dic_top1_n1", f"{tables[('DIC route', 'dic_path')]['top1'].iloc[0]:.2f}"
     if len(tables[("DIC route", "dic_path")]) else "n/a", display=False)
summary

# %% [markdown]
# Under random modulation the classifier puts the true subset first in {glue:text}`top1_n1` of the
# single-neuron experiments and among its top three in {glue:text}`top3_n1` (chance: top-1
# {glue:text}`chance_top1`); with {glue:text}`n_max` neurons per experiment these become
# {glue:text}`top1_nmax` and {glue:text}`top3_nmax`. The DIC route's top-3 accuracy for one neuron is
# {glue:text}`dic_top3_n1`, measured on only {glue:text}`dic_pool` neurons (one (g_s, g_u) point is
# reachable by many subsets, so reachability and cost can only narrow the field). Under DIC-path
# modulation, where every pair lands on the same (g_s, g_u) by construction, the classifier still
# names the pair of one neuron with top-1 accuracy {glue:text}`path_top1_n1` (chance
# {glue:text}`path_chance`; DIC route {glue:text}`path_dic_top1_n1`): that information is in the
# spike trains beyond the DICs, or in which pairs can reach the target at all. The `pool` column is
# the number of distinct held-out neurons behind each row: with few, the accuracies are rough.

# %% [markdown]
# ## What spike times cannot tell apart
#
# The confusion matrix of single neurons shows which subsets are taken for which. Two subsets are put
# in one identifiability group when their symmetrised confusion exceeds a threshold (groups are the
# connected components of that graph); accuracy over groups bounds what spike times can say.

# %%
ev = evals["random"]
fig = plots.plot_confusion(ev.confusion, hyps, ev.groups)
groups = ev.group_names(cell.name)
glue("n_groups", len(np.unique(ev.groups)), display=False)
glue("group_threshold", identification.GROUP_THRESHOLD, display=False)
glue("group_top1_nmax", f"{r['group_top1'].iloc[-1]:.2f}", display=False)
pd.DataFrame({"subsets that look alike": [", ".join(g) for g in groups]}) if groups else "no groups"

# %% [markdown]
# With the threshold {glue:text}`group_threshold` the {glue:text}`n_hypotheses` hypotheses fall into
# {glue:text}`n_groups` groups (outlined on the diagonal); top-1 accuracy over groups reaches
# {glue:text}`group_top1_nmax` with {glue:text}`n_max` neurons. The DIC picture predicts which
# subsets should look alike: those that move the fast, slow and ultraslow feedback in nearly the same
# proportions around threshold, such as subsets that differ by swapping two channels whose sensitivity
# columns are nearly collinear (CaS and CaT in the STG, chapter 4). The table lists the groups found.

# %%
auc = ev.auc.round(3)
auc.columns = [f"AUC, n = {n}" for n in auc.columns]
auc

# %% [markdown]
# The per-channel marginals P(c ∈ S) separate targeted from untargeted channels with the areas under
# the ROC curve above (an AUC of one half is chance).
#
# The direction head says whether a channel went up or down, were it modulated. Scored on every
# held-out neuron for each channel its subset contains (single neurons: in these experiments each
# neuron draws its own direction, so several neurons share no direction to recover):

# %%
direction = evaluation.direction_accuracy(model, pool)
glue("direction_all", f"{direction['all']:.2f}", display=False)
direction.round(3).to_frame("fraction right").T

# %% [markdown]
# The sign of the change is right for {glue:text}`direction_all` of the modulated channels (a guess
# is right one time in two).

# %% [markdown]
# ## Calibration
#
# A subset given probability $p$ should be the true one in a fraction $p$ of the experiments. The reliability diagram bins experiments by
# the probability of the top subset and compares it with the fraction correct.

# %%
fig = plots.plot_reliability({f"n = {n}": ev.reliability[n] for n in r.index})
glue("ece_n1", f"{r['ece'].iloc[0]:.3f}", display=False)
glue("ece_nmax", f"{r['ece'].iloc[-1]:.3f}", display=False)

# %% [markdown]
# The expected calibration error (ten equal-width bins of the top probability) is {glue:text}`ece_n1` for one neuron and
# {glue:text}`ece_nmax` for {glue:text}`n_max`. Combining neurons multiplies their likelihoods, so any
# overconfidence of the single-neuron posterior is compounded as neurons are added.

# %% [markdown]
# ## A worked example
#
# Ten neurons recorded before and after one drug (for the STG, the files
# `data/recordings/stg_modulation_before.csv` and `..._after.csv`, made by
# `tools/make_modulated_recordings.py`; for other cells simulated here the same way). The answer is in
# a separate truth file, read below only to score the ranking. The parameters `RECORDINGS_BEFORE` and
# `RECORDINGS_AFTER` (both, same IDs) put your own pair of files here, and `GROUND_TRUTH` (columns
# `ID,subset`) the subset you know the drug targeted, if you do. This example:
# {glue:text}`example_source`

# %%
before, after, truth = identification.load_modulation(cell, RECORDINGS_BEFORE, RECORDINGS_AFTER, GROUND_TRUTH)
glue("example_source", ("the worked example" if RECORDINGS_BEFORE is None else
                        f"{len(before)} neurons of {Path(RECORDINGS_BEFORE).name} and {Path(RECORDINGS_AFTER).name}")
     + ("." if truth is not None else "; no ground truth was given, so the ranking is not scored against one."),
     display=False)
duration = identification.recording_protocol(cell).duration
ids = list(before)
x_b = inference.summary_features([before[i] for i in ids], duration)
x_a = inference.summary_features([after[i] for i in ids], duration)
result = identification.identify(model, x_b, x_a, ids)
true_subset = None if truth is None else truth["subset"].iloc[0]
fig = plots.plot_ranking(result.ranking, truth=true_subset)

# %%
by_n = pd.DataFrame({k: identification.marginals(
    np.exp(identification.combine(result.per_neuron[:k], model.classifier.log_prior)),
    identification.membership(cell)) for k in range(1, len(result.used) + 1)},
    index=list(identification.modulable_channels(cell))).T
fig = plots.plot_marginals_by_n(by_n, truth=() if true_subset is None else true_subset.split("+"))
glue("example_n", len(result.used), display=False)
glue("example_top", result.ranking["subset"].iloc[0], display=False)
glue("example_top_p", f"{result.ranking['probability'].iloc[0]:.2f}", display=False)
glue("example_true_rank", "is unknown here (no ground truth), so the ranking is not scored" if true_subset is None
     else f"ranks {int(result.ranking.set_index('subset').loc[true_subset, 'rank'])}", display=False)

# %% [markdown]
# As neurons are added, the probability that each channel was targeted sharpens (the true channels,
# when known, in orange). With all {glue:text}`example_n` neurons the most probable subset is
# {glue:text}`example_top` (probability {glue:text}`example_top_p`); the true subset
# {glue:text}`example_true_rank`. The table a reader would report:

# %%
dic_table, _, _ = dic_route.rank_subsets(cell, post, x_b, x_a, n_samples=n_samples, seed=SEED)
report = result.ranking.head(5).set_index("subset").join(
    dic_table.set_index("subset")[["rank"]].rename(columns={"rank": "DIC-route rank"}))
report["probability"] = report["probability"].round(3)
report

# %%
result.channels.round(3)

# %% [markdown]
# The second table gives, per channel, the probability that the drug targeted it and the more likely
# direction of change (the sign that the neurons agree on). The same ranking is what
# `python -m condspace identify --cell stg --before data/recordings/stg_modulation_before.csv --after
# data/recordings/stg_modulation_after.csv --out results/identify` writes to `ranking.csv`,
# `channels.csv` and `summary.json`.

# %% [markdown]
# ## Summary
#
# In this chapter we turned "which channels did the neuromodulator target?" into a comparison of
# {glue:text}`n_hypotheses` models, trained a classifier on simulated before/after experiments whose
# output is the posterior over channel subsets, combined neurons recorded under one drug exactly,
# measured accuracy against the number of neurons for random and DIC-path modulation beside the DIC
# route and chance, named the subsets spike times cannot tell apart, checked calibration, and ranked
# the subsets for ten recorded neurons. The accuracies here come from the budgets in the parameters
# cell; `benchmarks/identification.py` measures them at larger budgets.
#
# **References.** Radev ST, D'Alessandro M, Mertens UK, Voss A, Köthe U, Bürkner PC (2021) Amortized
# Bayesian model comparison with evidential deep learning. IEEE TNNLS 34:4903–4917. Elsemüller L,
# Schnuerch M, Bürkner PC, Radev ST (2024) A deep learning method for comparing Bayesian hierarchical
# models. Psychological Methods. Drion G, Franci A, Dethier J, Sepulchre R (2015) eNeuro 2(1). Fyon A,
# Franci A, Sacré P, Drion G (2024) PNAS Nexus 3:pgae415. Brandoit J, Ernst D, Drion G, Fyon A (2025)
# arXiv:2509.12783. Liu Z, Golowasch J, Marder E, Abbott LF (1998) J Neurosci 18:2309–2320.
