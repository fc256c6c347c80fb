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
# # Inferring the degenerate set
#
# Chapter 1 showed that many conductance vectors produce the same firing pattern. Here we turn the
# question around: given only the spike times of one neuron, which conductance vectors could have
# produced them? We answer with neural posterior estimation (NPE): a neural density estimator is
# trained once on simulations drawn from a prior and then returns, for any recording, a posterior
# distribution over conductances, whose samples form the inferred degenerate set.
#
# - **The inverse problem**: the recordings and what is known about them.
# - **Prior, simulations, features**: what the estimator is trained on, and whether the recordings
#   look like the simulations.
# - **Training**: two neural spline flows, trained once for all recordings.
# - **Posteriors of the recordings**: the inferred sets against the ground truth, and how noisy
#   each recording is taken to be (the noise strength is inferred with the conductances).
# - **Posterior predictive traces**: do posterior samples fire like the recording?
# - **Calibration**: are the posterior's credible regions as wide as they claim?
# - **Ablation**: the design choices of the estimator, measured.
# - **How robust is the posterior?** Recordings the training simulator did not make: another
#   integrator, noise, jittered and missed spikes, shorter recordings.

# %% [markdown]
# **Prerequisites**: chapter 1 (the models, degeneracy); the idea of a posterior distribution.
# **Runtime**: minutes in FAST mode on a two-core CPU; in full mode the first run simulates the
# cell's training budget and trains two flows (tens of minutes), later runs load both from
# `.cache/condspace/` (shared with `python -m condspace infer`, `benchmarks/inference.py` and
# `make check`). The wall time of this chapter in the build that rendered it is on the **Build
# status** page. A DA simulation costs four times an STG one (a protocol twice as long at half the time step).
# On a GPU (`BACKEND="cupy"`) the simulations take seconds; training stays on the CPU.

# %% tags=["parameters"]
CELL_TYPE = "stg"  # a registered cell type (cells.available()): "stg" (Liu et al. 1998), "da" (Qian et al. 2014), ...
FAST = False  # True: tiny budget and few epochs (used by `make test`)
BACKEND = "numpy"  # simulation backend: "auto", "numpy" or "cupy"
SEED = 0  # seed of the training set, the training and the sampling
N_TRAIN_FAST = 1500  # training simulations in FAST mode (full mode: the cell's declared inference_budget)
MAX_EPOCHS_FAST = 40  # cap on training epochs in FAST mode
N_TEST = 1000  # held-out simulations for calibration (FAST: 100); ±0.016 standard error at 50 %
N_CHECK = 500  # posterior samples simulated per recording for the predictive check (FAST: 40)
N_SAMPLES = 1000  # posterior samples per recording
ABLATION = "data/ablation/inference_ablation.csv"  # written by benchmarks/inference_ablation.py (not by the book)
RECORDINGS = None  # your spike-time CSV (ID,spiking_times; ms; README "Running the book on your recordings"); None: the cell's demonstration recordings
REFINE_ROUNDS = 5  # refinement of a recording that fails the predictive check: at most this many rounds, stopping once a pass is confirmed on fresh samples (FAST: 1, worst recording only)
REFINE_BUDGET = 1000  # simulations per refinement round (FAST: 300)
REFINE_EPOCHS = None  # cap on the fine-tuning epochs of a refinement round; None: the standard settings with early stopping (FAST: MAX_EPOCHS_FAST)
GROUND_TRUTH = None  # CSV of conductances per recording ID (ID,g_Na,...), or None: no comparison with a truth (the demonstration recordings bring theirs)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import sbi
import torch
from IPython.display import Markdown, display
from myst_nb import glue

import condspace
from condspace import cells, inference, plotting, recordings, resolve, simulate
from condspace.posterior_scores import COVERAGE_TOLERANCE, PREDICTIVE_MIN, learning_rate_note


def show(name, value):
    """Glue a number or sentence of this run for the prose's glue roles, as a plain Python value."""
    glue(name, value.item() if hasattr(value, "item") else value, display=False)


# %%
backend = resolve(BACKEND)
cell = cells.get(CELL_TYPE)
plotting.use_style()
n_train = N_TRAIN_FAST if FAST else cell.inference_budget
settings = inference.standard_settings(max_epochs=MAX_EPOCHS_FAST if FAST else None)
n_test, n_check = (100, 40) if FAST else (N_TEST, N_CHECK)
print(f"condspace {condspace.__version__} | {backend.describe()} | sbi {sbi.__version__} | torch {torch.__version__} "
      f"| cell {cell.name} | {n_train} training simulations | FAST={FAST}")
show("mode", f"FAST mode: {n_train} training simulations, at most {settings.max_epochs} epochs, {n_test} held-out "
     f"simulations and {n_check} simulated samples per recording. Every number on this page comes from that small "
     "budget: it shows that the code runs, and promises nothing about the standard posterior" if FAST else
     f"full mode: the standard budget of {n_train} training simulations of this cell, {n_test} held-out "
     f"simulations and {n_check} simulated samples per recording")

# %% [markdown]
# This page was built in {glue:text}`mode`.

# %% [markdown]
# ## The inverse problem
#
# A recording is a list of spike times. Each cell type declares its demonstration recordings:
# published conductance sets simulated with a noise current. For the STG neuron the book ships four
# (`data/recordings/`, made by `tools/make_recordings.py`): three with a weak noise current (tonic,
# two bursters) and one with a strong noise current (irregular); for other cell types (the DA
# neuron: a fast spiker and a burster) they are simulated here the same way. Because they are
# synthetic, the conductances that produced them are known; the inference never sees them. The
# parameters `RECORDINGS` and `GROUND_TRUTH` run this chapter on other recordings. This page was
# built from {glue:text}`recordings_source`

# %%
data = inference.load_recordings(cell, RECORDINGS, GROUND_TRUTH)  # shipped files, simulated, or RECORDINGS
trains, truth, duration = data.trains, data.table, data.duration  # truth: observed classes (+ ground truth if known)
show("recordings_source", f"{data.source}." + (
    "" if data.has_truth else " No ground truth was given (GROUND_TRUTH), so every comparison with the true "
    "conductances below is skipped; the checks that need no truth (feature cloud, predictive check, calibration "
    "on simulations) still run."))
truth[[c for c in ("example", "noise_std", "label", "rate_hz", "cv_isi", "spikes_per_burst", "burst_period_ms")
       if c in truth]].round(3)

# %%
fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.45 * len(trains)))
ax.eventplot(list(trains.values()), colors=[plotting.class_color(c) for c in truth["label"]], linewidths=0.8)
ax.set_yticks(range(len(trains)), list(trains))
t0 = truth["transient"].iloc[0]
shown_ms = min(duration, 1500.0)
_ = ax.set(xlabel="t (ms)", xlim=(t0, t0 + shown_ms))
show("shown_s", f"{shown_ms / 1000:g}")

# %% [markdown]
# The first {glue:text}`shown_s` s of each recording. The task is to recover, for each, every
# conductance vector consistent with it.

# %% [markdown]
# ## Prior, simulations, features
#
# **Prior.** Uniform on the maximal conductances, with the literature ranges. Uniform rather than
# log-uniform because every range starts at 0 (a channel may be absent, and log-uniform would need
# an arbitrary floor and put most mass at conductances too small to matter), and because the
# literature's Monte-Carlo studies, whose numbers we compare with, are uniform. For the STG the box
# is widened ($\bar g_\text{CaT} \le 15$, $\bar g_\text{CaS} \le 60$ mS/cm², $g_\text{leak} \ge 0.005$)
# so that every published set, including the "bursting" one just outside the literature box, lies
# inside. {glue:text}`fixed_sentence`
#
# **Noise.** A recording carries noise the simulator must be able to make, so the strength of the
# filtered noise current (`noise_std`, its standard deviation after filtering, µA/cm²) is inferred
# too, uniform from 0 (a clean recording) to the cell's declared `noise_prior`: every training
# simulation gets its own noise strength, and one posterior serves clean and noisy recordings.
#
# **Missed spikes.** {glue:text}`missed_sentence`

# %%
prior = inference.make_prior(cell)
if prior.has_missed:
    show("missed_sentence", "A spike detector misses spikes, and a tonic train with a few of them missing has a "
         "few doubled intervals: a CV that neither a regular nor a noisy neuron makes. This cell type declares "
         f"missed_prior = {cell.missed_prior:g}, so the probability that the detector missed a spike (p_missed) "
         f"is inferred as well, uniform on [0, {cell.missed_prior:g}]: each training simulation's spikes are "
         "dropped independently with its own probability before its features are computed, and the predictive "
         "checks below do the same with each sample's inferred probability.")
else:
    show("missed_sentence", "This cell type declares no missed_prior, so spike detection is taken as perfect "
         "and nothing about it is inferred.")
released = {n: cell.inferred_fixed[n] for n in prior.names if n in cell.inferred_fixed}
held = [n for n in cell.fixed if n not in prior.names]
published = {n: [ex[n] for ex in cell.examples.values()] for n in released}
show("fixed_sentence", " ".join(
    [f"{n}, which the populations of chapters 1, 3 and 4 hold at {cell.fixed[n]:g} mS/cm², is inferred here over "
     f"[{lo:g}, {hi:g}] mS/cm²: the published sets that make this cell's recordings have {n} from "
     f"{min(published[n]):.4g} to {max(published[n]):.4g}, so a prior that fixed it could not contain their truth "
     "(the box is the population recipe's scaling of it with g_leak over the prior's g_leak range; "
     "the cell's declaration in lib/condspace/cells documents it)." for n, (lo, hi) in released.items()]
    + ([f"Fixed conductances ({', '.join(held)}) are not inferred."] if held else [])
    + ([] if released or held else ["Every conductance of this cell is inferred."])))
pd.DataFrame({"low": prior.low, "high": prior.high,
              "unit": [{inference.NOISE_NAME: "µA/cm²", inference.MISSED_NAME: "1"}.get(n, "mS/cm²")
                       for n in prior.names]},
             index=list(prior.names)).T

# %% [markdown]
# **Simulations and features.** Each prior draw is simulated with the literature protocol (all
# draws in one batched call) and summarised by eleven features of its spike train: rates, quantiles
# of the log inter-spike intervals, their spread, CV, serial correlation and the fraction of long
# intervals. None is a count, so recordings of different lengths compare. Silent draws (fewer than
# three spikes) and numerically invalid ones have no features and are excluded from training; the
# posterior is then conditioned on the recording being active, which is what we observe.

# %%
ts = inference.training_set(cell, n_train, prior=prior, seed=SEED, backend=BACKEND)
print(f"{ts.info['n']} simulations ({'from the cache' if ts.info['cached'] else 'simulated'}, "
      f"{ts.info['simulate_s']:.0f} s to simulate): excluded {ts.excluded_fraction:.1%} "
      f"(silent or invalid); classes {ts.info['class_fractions']}")
pd.Series(inference.SUMMARY_FEATURES).str[0].rename("unit").to_frame().T

# %% [markdown]
# Before training anything, we check that each recording lies inside the cloud of simulated
# features: a recording outside it asks the estimator to extrapolate. The percentile is the share of
# simulations closer (in Mahalanobis distance) to the centre of the cloud than the recording.

# %%
x_obs = pd.DataFrame({k: inference.observe(v, duration)[0] for k, v in trains.items()},
                     index=list(inference.SUMMARY_NAMES)).T
cloud = pd.DataFrame([vars(inference.feature_cloud_distance(x, ts.x[ts.valid])) for x in x_obs.to_numpy()],
                     index=x_obs.index)
outside = list(cloud.index[cloud["percentile"] > 99.0])  # percentile is a percentage (100: beyond every simulation)
show("cloud_sentence", "every recording lies within the central 99 % of the simulated cloud." if not outside else
     f"{', '.join(outside)} {'lies' if len(outside) == 1 else 'lie'} beyond the 99th percentile of the simulated "
     "cloud; the others lie inside it.")
cloud.round(2)

# %%
sim = pd.DataFrame(ts.x[ts.valid], columns=list(inference.SUMMARY_NAMES)).assign(label=ts.labels[ts.valid])
fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6))
for ax, (fx, fy) in zip(axes, [("log10_isi_q05", "log10_isi_q95"), ("log10_rate_hz", "long_isi_fraction")], strict=True):
    for label, group in sim.groupby("label"):
        ax.scatter(group[fx], group[fy], s=2, alpha=0.3, color=plotting.class_color(label),
                   label=f"simulated {label}", rasterized=True)
    ax.scatter(x_obs[fx], x_obs[fy], marker="*", s=150, color="black", label="recordings")
    ax.set(xlabel=fx, ylabel=fy)
legend = axes[0].legend(fontsize="small")
for handle in legend.legend_handles[:-1]:
    handle.set_sizes([20])

# %% [markdown]
# Tonic trains lie on the diagonal q05 = q95 and bursters above it, where the long interburst gaps
# are. In all eleven dimensions (the table above), {glue:text}`cloud_sentence` A high percentile
# flags a recording the simulator rarely produces.

# %% [markdown]
# ## Training
#
# The estimator is a neural spline flow (NSF; Durkan et al. 2019) conditioned on the features, trained
# by maximum likelihood on the valid simulations (`sbi`'s NPE), on one CPU thread. Four design
# decisions; the ablation at the end of the chapter measures three of them on this problem:
#
# - an NSF rather than the masked autoregressive flow (MAF) of Gonçalves et al. (2020);
# - the flow works on (z-scored) conductances and the mass it puts outside the prior box is
#   rejected when sampling and reported as *leakage* (a logit transform, `transform="logit"`,
#   removes leakage by construction; it is not part of the ablation);
# - the flow is smooth and spills mass across the sharp boundary between tonic and bursting
#   neurons in conductance space, so a small classifier P(class | ḡ), trained on the same
#   simulations, restricts each posterior to the class of its recording;
# - the posterior is an equal mixture of two flows trained from different random initialisations
#   (an *ensemble*; Lakshminarayanan et al. 2017, Hermans et al. 2022), against the overconfidence
#   of single flows (see Calibration). The two train at once, one per core.
#
# The trained posterior is cached as plain tensors (`inference.save_posterior`).

# %%
post, _ = inference.trained_posterior(cell, n_train, settings=settings, prior=prior, seed=SEED, backend=BACKEND)
print(f"{post.info['n_train']} training pairs, {len(post.info['epochs'])} flows, epochs {post.info['epochs']}, "
      f"{'loaded from the cache' if post.info['cached'] else 'trained'} ({post.info['train_s']:.0f} s to train); "
      f"class restriction accuracy {post.info['restriction_accuracy']:.3f}")
show("patience", settings.stop_after_epochs)
show("flows_stopped", "every flow stopped early" if not any(post.info.get("reached_max_epochs", [False])) else
     "at least one flow reached the epoch cap before its validation loss stopped improving")
pd.Series(vars(settings)).to_frame("estimator").T

# %%
fig, ax = plt.subplots(figsize=(5.0, 3.0))
for k, (train_loss, val_loss) in enumerate(zip(post.info["training_loss"], post.info["validation_loss"], strict=True)):
    ax.plot(train_loss, color=f"C{k}", lw=0.8, label=f"flow {k + 1}, training")
    ax.plot(val_loss, color=f"C{k}", ls="--", lw=0.8, label=f"flow {k + 1}, validation")
ax.set_xlabel("epoch")
ax.set_ylabel("loss (−log q, nats)")
legend = ax.legend()

# %% [markdown]
# Training stops once the validation loss has not improved for {glue:text}`patience` epochs, or at
# the epoch cap; in this run {glue:text}`flows_stopped`. The two flows start from different
# initialisations; where they disagree, the mixture is wider than either.

# %% [markdown]
# ## Posteriors of the recordings
#
# For each recording we draw posterior samples: every sample is a conductance vector the estimator
# considers consistent with the spike train. The pair plots show a tonic and a bursting recording
# (where the recordings have both classes); {glue:text}`truth_marker`

# %%
samples = {k: post.sample(N_SAMPLES, x_obs.loc[k].to_numpy(), seed=SEED) for k in trains}
g_cols = len(prior.conductance_names)  # the pair plots show the conductances, not the noise strength
by_class = {c: list(truth.index[truth["label"] == c]) for c in ("spiking", "bursting")}
shown = [(by_class["spiking"] or list(trains))[0], (by_class["bursting"] or list(trains))[-1]]
show("pair_first", f"{shown[0]} ({truth.loc[shown[0], 'label']})")
show("pair_second", f"{shown[1]} ({truth.loc[shown[1], 'label']})")
show("truth_marker", "the orange point is the ground truth." if data.has_truth else
     "no ground truth was given, so none is marked and the comparisons with it are skipped.")


def pairs_with_truth(k):
    """Pair plot of recording k's samples, with its ground truth highlighted when it is known."""
    if not data.has_truth:
        return plotting.plot_conductance_pairs(samples[k][:, :g_cols], prior.conductance_names)
    return plotting.plot_conductance_pairs(
        np.vstack([samples[k][:, :g_cols], data.truth.loc[[k], list(prior.conductance_names)]]),
        prior.conductance_names, highlight=[-1])


fig = pairs_with_truth(shown[0])

# %%
known = [n for n in prior.names if data.has_truth and n in data.truth]  # a user's truth may lack noise_std
if data.has_truth:  # truth's quantile per marginal
    cols = [prior.names.index(n) for n in known]
    below = {k: (samples[k][:, cols] < data.truth.loc[k, known].to_numpy()).mean(axis=0) for k in trains}
    inside = {k: int(((q > 0) & (q < 1)).sum()) for k, q in below.items()}
    verdict = [f"its ground truth lies within the range of the samples in {inside[k]} of {len(known)} marginals"
               for k in shown]
else:
    below = {}
    verdict = ["the comparison with a ground truth is skipped (none was given)"] * 2
show("truth_inside_first", verdict[0])
show("truth_inside_second", verdict[1])

# %% [markdown]
# The pair plot of {glue:text}`pair_first` shows how far its posterior spreads along each conductance
# and which conductances trade off against each other: every sample is a combination the estimator
# considers consistent with the same train; {glue:text}`truth_inside_first`.

# %%
fig = pairs_with_truth(shown[1])

# %% [markdown]
# The set of {glue:text}`pair_second` has its own shape; {glue:text}`truth_inside_second`. Where the
# truth lies in each marginal of every recording (the fraction of samples below it; 0 or 1 would
# mean "missed"; empty without a ground truth):

# %%
pd.DataFrame(below, index=known).T.round(2)

# %% [markdown]
# ### How noisy is each recording?
#
# After the conductances, every sample holds the noise strength the posterior infers: its median and
# the interval between its percentiles `q05` and `q95`, against the noise each recording was made
# with where that is known.

# %%
noise_table = pd.DataFrame({k: post.noise_summary(samples[k]) for k in trains}).T[["median", "q05", "q95"]]
noise_table.insert(0, "true noise_std", truth.loc[noise_table.index, "noise_std"] if "noise_std" in truth
                   else np.nan)  # a user's recordings come without the noise they were made with
noise_table["truth in q05–q95"] = noise_table["true noise_std"].between(noise_table["q05"], noise_table["q95"])


def noise_interval(k):
    row = noise_table.loc[k]
    return f"{row['median']:.1f} µA/cm² (90 % interval {row['q05']:.1f}–{row['q95']:.1f})"


known_noise = noise_table["true noise_std"].dropna()
if len(known_noise):
    loudest, quietest = known_noise.idxmax(), known_noise.idxmin()
    show("noise_sentence", f"The noisiest recording, {loudest} (made with {known_noise[loudest]:g} µA/cm²), is "
         f"inferred at {noise_interval(loudest)}; the quietest, {quietest} (made with {known_noise[quietest]:g}), at "
         f"{noise_interval(quietest)}. The true noise strength lies between q05 and q95 for "
         f"{int(noise_table['truth in q05–q95'].sum())} of {len(known_noise)} recordings.")
else:
    show("noise_sentence", "No recording came with the noise it was made with, so the inferred strengths stand "
         "alone: " + "; ".join(f"{k} {noise_interval(k)}" for k in noise_table.index) + ".")
noise_table.round(2)

# %% [markdown]
# {glue:text}`noise_sentence`
#
# {glue:text}`missed_table_sentence`

# %%
if prior.has_missed:
    missed_table = pd.DataFrame({k: post.missed_summary(samples[k]) for k in trains}).T[["median", "q05", "q95"]]
    missed_table.insert(0, "true p_missed", truth.loc[missed_table.index, "p_missed"] if "p_missed" in truth
                        else np.nan)
    show("missed_table_sentence", "The probability of a missed spike the posterior infers for each recording "
         "(median and 90 % interval) is in the table below" + (
             ("; the ground truth gives no p_missed, so it stands alone" + (
                 " (these demonstration recordings were made by this book's simulator, whose spike detector misses "
                 "nothing: their true value is 0)" if RECORDINGS is None else "") + ".")
             if missed_table["true p_missed"].isna().all() else ", beside the true one.")
         + f" Their medians run from {missed_table['median'].min():.3f} to {missed_table['median'].max():.3f}.")
    display(missed_table.round(3))
else:
    show("missed_table_sentence", "This cell type's posterior takes detection as perfect (no missed_prior).")

# %% [markdown]
# ## Posterior predictive traces
#
# A posterior is useful if its samples reproduce the recording. We simulate the first posterior
# samples of each recording, each with its own inferred noise strength, and count those that match
# it. The class boundary alone would not do: noise makes a tonic train irregular enough to cross the
# CV threshold of the bursting class, so a train counts as *tonic-like* when its CV is at most
# {glue:text}`cv_tonic`. Tonic-like recordings need a tonic-like sample with a rate within
# {glue:text}`rate_tol` and a CV within ±{glue:text}`cv_tol` (the CV is what the noise sets);
# bursting ones a bursting sample with spikes per burst within ±{glue:text}`spb_tol` and a burst
# period within {glue:text}`period_tol`. These tolerances are wider than the spread of the features
# between repeated noisy simulations of the same conductances at the irregular recording's noise
# (`inference.feature_spread`), so the truth passes with fresh noise, and a posterior of the wrong
# regime still fails (both are tests of the library).

# %%
checks = {k: inference.predictive_check(post, trains[k], n_check, duration=duration, samples=samples[k][:n_check],
                                        seed=SEED, backend=BACKEND) for k in trains}
show("rate_tol", f"{inference.RATE_TOLERANCE:.0%}")
show("spb_tol", f"{inference.SPB_TOLERANCE:g}")
show("period_tol", f"{inference.PERIOD_TOLERANCE:.0%}")
show("cv_tol", f"{inference.CV_TOLERANCE:g}")
show("cv_tonic", f"{inference.CV_TONIC_LIKE:g}")
passing = [f"{k} ({c.fraction:.2f})" for k, c in checks.items() if c.fraction >= PREDICTIVE_MIN]
failing = [f"{k} ({c.fraction:.2f})" for k, c in checks.items() if c.fraction < PREDICTIVE_MIN]
show("pc_min", f"{PREDICTIVE_MIN:g}")
show("pc_sentence", (f"{', '.join(passing)} {'reaches' if len(passing) == 1 else 'reach'} the threshold of "
                     f"{PREDICTIVE_MIN:g}" if passing else f"no recording reaches the threshold of {PREDICTIVE_MIN:g}")
     + (f"; {', '.join(failing)} {'does' if len(failing) == 1 else 'do'} not" if failing else
        "; every recording does"))
pd.DataFrame({k: {"class": c.observed["label"], "predictive check": c.fraction, "rule": c.criterion,
                  "feature-cloud percentile": cloud.loc[k, "percentile"]} for k, c in checks.items()}).T

# %%
rec = shown[1]
sample_noise = prior.noise(samples[rec][:3])  # each sample's inferred noise strength (None: not inferred)
res = simulate(cell, inference.conductances(cell, prior, samples[rec][:3]), backend=backend, record=[0, 1, 2],
               noise_std=post.protocol.noise_std if sample_noise is None else sample_noise, seed=SEED,
               **{k: v for k, v in vars(post.protocol).items() if k in ("t_max", "transient", "dt", "method")})
window = res.traces["t"] >= post.protocol.t_max - 1000.0
fig = plotting.plot_traces(res.traces["t"][window], res.traces["V"][:, window],
                           labels=[f"posterior sample {i + 1}" for i in range(3)],
                           colors=[plotting.class_color(c) for c in checks[rec].table["label"][:3]])

# %% [markdown]
# Three posterior samples of {glue:text}`pair_second`, last second of the protocol, coloured by their
# simulated class. The threshold of `make check` for the share of samples that reproduce a recording
# is {glue:text}`pc_min`; in this run {glue:text}`pc_sentence`. The strongly noisy, irregular
# recording is inside the model now that the simulator makes noise: its samples are simulated with
# the noise the posterior infers for it, and the check compares them with it as a tonic-like train.

# %% [markdown]
# ### Refining a recording that fails
#
# One posterior trained for all recordings can be too broad for a particular one. A recording below
# the threshold gets its own posterior by truncated sequential NPE (Deistler et al. 2022): rounds of
# simulations drawn from the prior restricted to the current posterior's high-probability region,
# the estimator fine-tuned on them together with the training simulations that fall inside that
# region (draws from the restricted prior too), and the predictive check repeated after each round.
# A check that passes is confirmed on fresh samples and fresh noise before the rounds stop, because
# the first check to cross the threshold is chosen for being high; the confirmation is the verdict.
# This is what `python -m condspace infer --refine` does.
# {glue:text}`refine_sentence`

# %%
n_rounds, per_round = (1, 300) if FAST else (REFINE_ROUNDS, REFINE_BUDGET)
to_refine = sorted((k for k, c in checks.items() if c.fraction < PREDICTIVE_MIN), key=lambda k: checks[k].fraction)
to_refine = to_refine[:1] if FAST else to_refine  # FAST: the worst recording only, so that make test stays short
refined = {k: inference.refine_if_failing(post, trains[k], ts, before=checks[k], check=n_check, samples=N_SAMPLES,
                                          rounds=n_rounds, per_round=per_round, duration=duration, seed=SEED,
                                          backend=BACKEND, max_epochs=MAX_EPOCHS_FAST if FAST else REFINE_EPOCHS)
           for k in to_refine}
# A passing round's check was chosen for crossing the threshold; the verdict is its confirmation on
# fresh samples (another seed), which decided the stop without being chosen by it.
fresh = {k: r.fraction_verdict for k, r in refined.items()}
outcome = [f"{k} from {r.fraction_before:.2f} to {fresh[k]:.2f} (fresh samples) with {r.n_simulations:,} "
           f"simulations in {len(r.rounds)} round{'s' if len(r.rounds) != 1 else ''}" for k, r in refined.items()]
show("refine_sentence", "In this run every recording passes the amortized check, so none is refined." if not refined
     else f"In this run{' (FAST: only the recording furthest below, one small round)' if FAST else ''}: "
     f"{'; '.join(outcome)}.")
pd.DataFrame({k: {"amortized": r.fraction_before, "refined, last round's check": r.fraction_after,
                  "refined, fresh samples": fresh[k], "simulations": r.n_simulations, "rounds": len(r.rounds),
                  "wall (s)": round(r.wall_s)} for k, r in refined.items()}).T

# %% [markdown]
# ## Calibration
#
# A posterior can reproduce the data and still be overconfident. We test calibration on held-out
# simulations: for each, the true conductances should fall inside the posterior's α-highest-density
# region in a fraction α of cases (expected coverage; Hermans et al. 2022). Below the diagonal means
# overconfident, above means conservative.

# %%
test = inference.held_out(cell, prior, n_test, seed=10_000 + SEED, training_seed=SEED, backend=BACKEND)
coverage = inference.expected_coverage(post, test.theta[test.valid], test.x[test.valid],
                                       levels=np.linspace(0.05, 0.95, 19), seed=SEED)
leak = inference.leakage(post, test.x[test.valid][:50], n=500, seed=SEED)
cov50, cov90 = (float(np.interp(a, coverage.nominal, coverage.empirical)) for a in (0.5, 0.9))
calibrated = abs(cov50 - 0.5) <= COVERAGE_TOLERANCE and abs(cov90 - 0.9) <= COVERAGE_TOLERANCE
print(f"{int(test.valid.sum())} held-out simulations; coverage at 50 %: {cov50:.2f}, at 90 %: {cov90:.2f}; "
      f"leakage outside the prior: {leak.mean():.3f}")
print(f"coverage within ±{COVERAGE_TOLERANCE} of nominal at 50 % and 90 %: {'yes' if calibrated else 'no'}")
show("n_test_valid", int(test.valid.sum()))
show("cov50", cov50)
show("cov90", cov90)
show("cov_tol", f"{COVERAGE_TOLERANCE:g}")
show("cov_verdict", "lies within" if calibrated else "does not lie within")
show("leak", f"{leak.mean():.1%}")

# %%
fig, ax = plt.subplots(figsize=(3.8, 3.6))
ax.fill_between([0, 1], [-0.1, 0.9], [0.1, 1.1], color="0.9", label="±0.1")
ax.plot([0, 1], [0, 1], color="0.5", lw=0.8)
ax.errorbar(coverage.nominal, coverage.empirical, yerr=coverage.stderr, marker="o", ms=3, color="black",
            label="ensemble of two NSFs")
ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="nominal credibility level", ylabel="empirical coverage")
legend = ax.legend(loc="upper left")

# %% [markdown]
# On {glue:text}`n_test_valid` held-out simulations the posterior covers the true conductances in
# a fraction {glue:text}`cov50:.2f` of cases at $\alpha = 0.5$ and {glue:text}`cov90:.2f` at
# $\alpha = 0.9$: the curve {glue:text}`cov_verdict` the band of ±{glue:text}`cov_tol` around the
# diagonal at both levels. Single flows tend to be overconfident, a known weakness of neural
# posterior estimators (Hermans et al. 2022); the ablation below compares one flow with the pair.
# The leakage, {glue:text}`leak` of the flows' mass on average, lies outside the prior box:
# rejection sampling discards it silently, so it is reported here.

# %% [markdown]
# ## Ablation: the design choices, measured
#
# `benchmarks/inference_ablation.py` trains the estimator at several budgets and scores each
# variant with the checks of this chapter: the NSF pair with the class restriction (the standard),
# one flow of that pair, the pair without the restriction, and a MAF pair. It takes hours at the
# budgets of the standard posterior, so the book does not run it: it reads the file the script
# wrote. {glue:md}`ablation_source`

# %%
ablation, about = recordings.read_annotated_csv(ABLATION)
if ablation is None:
    glue("ablation_source", Markdown(f"No ablation file (`{ABLATION}`) is present in this checkout."), display=False)
    show("ablation_sentence", "There is nothing to compare.")
else:
    glue("ablation_source", Markdown(f"The file was written on {about.get('date', '?')} by "
                                     f"`{about.get('command', '?')}` (sizes {about.get('sizes', '?')}); its "
                                     "rows are its own training runs, not this page's." + learning_rate_note(about)),
         display=False)
    checked = [c for c in ablation.columns if c.startswith("predictive_")]
    ablation["worst predictive check"] = ablation[checked].min(axis=1)
    at = int(ablation.loc[ablation["model"] == "maf", "n_train"].max()) if (ablation["model"] == "maf").any() \
        else int(ablation["n_train"].max())
    there = ablation[ablation["n_train"] == at].set_index("variant")
    show("ablation_sentence", f"At {at} training simulations, coverage at α = 0.5: " + "; ".join(
        f"{v} {r['coverage_0.5']:.2f}" for v, r in there.iterrows()) + ". Worst predictive check of the "
        "recordings (amortized, no refinement): " + "; ".join(f"{v} {r['worst predictive check']:.2f}" for v, r in there.iterrows()) + ".")
    standard = ablation[ablation["variant"] == "NSF, 2 flows, restriction"].sort_values("n_train")
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4))
    for column, style in (("coverage_0.5", "o-"), ("coverage_0.9", "s-"), ("worst predictive check", "^--")):
        axes[0].plot(standard["n_train"], standard[column], style, label=column.replace("_", " at "))
    for level in (0.5, 0.9):
        axes[0].axhspan(level - COVERAGE_TOLERANCE, level + COVERAGE_TOLERANCE, color="0.92", zorder=0)
    axes[0].set(xlabel="training simulations", ylabel="fraction", ylim=(0, 1), title="standard estimator")
    axes[0].legend(fontsize="small")
    x = np.arange(len(there))
    axes[1].bar(x - 0.2, there["coverage_0.5"], 0.4, label="coverage at 0.5")
    axes[1].bar(x + 0.2, there["coverage_0.9"], 0.4, label="coverage at 0.9")
    axes[1].set_xticks(x, [v.replace(", ", "\n") for v in there.index], fontsize="small")
    axes[1].set(ylim=(0, 1), title=f"variants at {at} simulations")
    legend = axes[1].legend(fontsize="small")

# %% [markdown]
# {glue:text}`ablation_sentence` Left: the standard estimator against its budget (grey: the
# bands of `make check` around the two nominal levels); right: the variants at one budget.

# %% [markdown]
# ## How robust is the posterior?
#
# Every recording above was made by the simulator the posterior was trained on, with the same
# integrator, time step and spike detector: an *inverse crime* that flatters the posterior. A
# recording from a real neuron differs in all of these. `tools/make_misspecified_recordings.py`
# makes test recordings that the training simulator did not make (`data/recordings/misspecified/`),
# from {glue:text}`robust_n_sets` ground-truth sets drawn from the prior (tonic and bursting), one
# perturbation at a time: the training simulator itself (the point of comparison); a converged
# adaptive integrator (SciPy's LSODA at tight tolerance, `condspace.reference`); that integrator
# driven by a noise current made as the published datasets make theirs (white noise of standard
# deviation $\sigma$ sampled every $0.1$ ms, zero-phase Butterworth low-pass at $1$ kHz; strengths
# below as the standard deviation after filtering); spike times jittered uniformly within
# $\pm w$; a fraction $f$ of the spikes deleted; and a shorter recording. `benchmarks/robustness.py`
# scores the posterior on every one: the predictive check of this chapter and the HPD rank of the
# true conductances (the share of posterior samples denser than the truth: the truth lies in the
# $\alpha$-HPD region when its rank is below $\alpha$). It simulates and trains far more than a
# book build can afford, so the book reads the file it wrote. {glue:md}`robust_source`

# %%
import re
from pathlib import Path

from IPython.display import Markdown
from myst_nb import glue

from condspace import plotting, recordings
from condspace.posterior_scores import PREDICTIVE_MIN, learning_rate_note, robustness_sentence

ROBUSTNESS_CSV = Path("data/robustness") / f"{CELL_TYPE}_robustness.csv"  # written by benchmarks/robustness.py
ROBUSTNESS_COMMAND = "python benchmarks/robustness.py"  # the run at the standard budget (hours on two cores)
robust, robust_about = recordings.read_annotated_csv(ROBUSTNESS_CSV)
if robust is None:
    glue("robust_source", Markdown(
        f"No robustness file (`{ROBUSTNESS_CSV}`) is present in this checkout; " + (
            f"`{ROBUSTNESS_COMMAND}` writes it (`--fast` for a run of minutes on chapter 2's FAST posterior)."
            if CELL_TYPE == "stg" else f"the misspecified recordings and the benchmark exist for the STG neuron only, "
                                       f"and this page is built for the {CELL_TYPE} cell.")), display=False)
    glue("robust_n_sets", "several", display=False)
    glue("robust_sentence", "There is nothing to show.", display=False)
else:
    fast = "FAST" in robust_about.get("budget", "")
    glue("robust_source", Markdown(
        f"The file was written on {robust_about.get('date', '?')} by `{robust_about.get('command', '?')}` "
        f"({robust_about.get('budget', '?')})" + (": a FAST posterior, which shows that the pipeline runs and promises "
                                                 f"nothing about the standard one; the standard run is "
                                                 f"`{ROBUSTNESS_COMMAND}`." if fast else ".")
        + (" Updated since: " + re.sub(r"by (python [^;]+)", r"by `\1`", robust_about["update"]) + "."
           if "update" in robust_about else "") + learning_rate_note(robust_about)), display=False)
    glue("robust_n_sets", str(robust["set"].nunique()), display=False)
    glue("robust_sentence", robustness_sentence(robust, robust_about), display=False)
    fig = plotting.plot_robustness(robust, threshold=PREDICTIVE_MIN)

# %% [markdown]
# {glue:text}`robust_sentence` Top: the predictive-check fraction of each perturbation against
# its strength, averaged over the tonic and the bursting sets (dotted: the threshold of `make
# check`; arrows: single recordings refined by TSNPE, from the amortised to the refined fraction,
# where the file has them). Bottom: the HPD rank
# of the true conductances of every recording (dots) and the share of recordings whose truth lies
# in the $\alpha = 0.5$ and $\alpha = 0.9$ HPD regions (black; calibrated: on the grey lines). A perturbation the
# posterior is robust to leaves both rows flat; with this few sets per point a share moves in
# large steps, so read the rows for trends.

# %% [markdown]
# **A spike detector that misses.** A missed spike doubles one interval of a tonic train, which
# the standard posterior, taking detection as perfect, can only read as irregularity.
# `python -m condspace infer --missed-prior P` uses a posterior that also infers the probability
# of a missed spike (README, "What the checks mean"). {glue:md}`missed_model_sentence`

# %%
MISSED_CSV = Path("data/robustness") / f"{CELL_TYPE}_robustness_missed.csv"  # robustness.py --missed-prior
missed_model, missed_about = recordings.read_annotated_csv(MISSED_CSV)


def _rows(table, kind, strength, cls):
    return table[(table["kind"] == kind) & np.isclose(table["strength"], strength) & (table["class"] == cls)]


def _deleted(table, rows):
    """Spikes each of ``rows`` lost: its set's clean (integrator) recording's count minus its own ("?": no clean row)."""
    clean = table[table["kind"] == "integrator"].set_index("set")["n_spikes"]
    return [str(int(clean[s] - n)) if s in clean.index else "?" for s, n in zip(rows["set"], rows["n_spikes"],
                                                                                strict=True)]


if missed_model is None or robust is None:
    glue("missed_model_sentence", Markdown(f"No scores of that posterior (`{MISSED_CSV}`) are in this checkout."),
         display=False)
else:
    parts = []
    for kind, strength in (("missed", 0.02), ("integrator", 0.0)):
        for cls, name in (("spiking", "tonic"), ("bursting", "bursting")):
            rows = _rows(missed_model, kind, strength, cls)
            if not len(rows):
                continue
            what = ("with 2 % of their spikes deleted (" + ", ".join(_deleted(missed_model, rows))
                    + " spikes)" if kind == "missed" else "without deletions")
            parts.append(f"{rows['predictive'].mean():.2f} on the {len(rows)} {name} recordings {what} (standard "
                         f"posterior {_rows(robust, kind, strength, cls)['predictive'].mean():.2f})")
    glue("missed_model_sentence", Markdown(
        f"Scored on the same recordings by `{missed_about.get('command', '?')}` "
        f"({missed_about.get('date', '?')}), the amortised predictive check averages " + "; ".join(parts)
        + "." + learning_rate_note(missed_about) + " Which model fits is a property of the recording's detector, "
        "not a free choice per recording: "
        "a posterior that allows misses also simulates them, and fails a clean tonic train for it."),
        display=False)

# %% [markdown]
# ## Summary
#
# In this chapter we trained a neural posterior estimator (two flows) on noisy simulations drawn
# from a uniform prior over maximal conductances and the noise strength, checked where the
# recordings lie in the simulated feature cloud, and inferred for each recording a posterior whose
# samples form its degenerate set and say how noisy the recording is. Whether those
# samples reproduce the recordings is what the predictive checks measure (in this run
# {glue:text}`pc_sentence`), and whether the credible regions have the coverage they claim is
# what the calibration curve measures (in this run it {glue:text}`cov_verdict` the band at both
# levels). `make check` repeats both checks on the standard posterior. The same inference runs from
# the command line:
# `python -m condspace infer --cell stg --recordings data/recordings/stg_recordings.csv --out DIR`;
# with `--refine` it sharpens the posterior of each recording that fails its predictive check by
# truncated sequential NPE (Deistler et al. 2022), simulations restricted to that posterior's
# support.
# Next, chapter 3 maps these conductance sets to dynamic input conductances and asks whether one
# number, the slow feedback g_s, tells the tonic from the bursting recordings.
#
# **References.** Gonçalves PJ et al. (2020) eLife 9:e56261. Tejero-Cantero A et al. (2020) JOSS
# 5:2505. Durkan C, Bekasov A, Murray I, Papamakarios G (2019) NeurIPS 32 (neural spline flows).
# Hermans J et al. (2022) TMLR (expected coverage). Fyon A et al. (2024) PNAS Nexus 3:pgae415.
# Brandoit J et al. (2025) arXiv:2509.12783. Liu Z et al. (1998) J Neurosci 18:2309–2320.
# Deistler M, Goncalves PJ, Macke JH (2022) NeurIPS 35 (truncated sequential NPE).
