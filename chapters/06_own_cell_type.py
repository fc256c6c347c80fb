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
# # Appendix: bringing your own cell type
#
# Every chapter of this book runs on any cell type the library knows, and a cell type is one file:
# a declaration of its channels, its conductances and how the book should treat it. This appendix
# shows how to write that file, which checks tell you it is right before you trust a chapter run on
# it, and the whole pipeline of the book on the third cell type, a thalamocortical relay neuron
# added exactly this way.
#
# - **The template**: the file to copy, and what each field of a declaration means.
# - **Checks on a new declaration**: steady states, DIC invariants, and the integrator against
#   SciPy's `solve_ivp`, plus the published behaviours the file declares.
# - **The whole pipeline in a few cells**: simulation, DICs, a small posterior and a reachability
#   map on the new cell.

# %% [markdown]
# **Prerequisites**: chapters 1–4 (what the pipeline does); a model from a paper with its rate
# functions. **Runtime**: minutes in FAST mode on a two-core CPU (the small posterior is trained,
# or loaded from the cache of chapter 2's FAST run on the same cell); full mode adds the SciPy
# comparison on the whole protocol and a larger posterior. A GPU shortens only the simulations. The
# wall time of this chapter in the build that rendered it is on the **Build status** page.

# %% tags=["parameters"]
CELL_TYPE = "tc"  # a registered cell type (cells.available()); "tc" is the one added as a single file
FAST = False  # True: short SciPy comparison, tiny posterior (used by `make test`)
BACKEND = "auto"  # simulation backend: "auto", "numpy" or "cupy"
SEED = 0  # seed of the population, the training set, the training and the sampling
N_TRAIN = 5000  # training simulations of the small posterior (full mode)
N_TRAIN_FAST = 800  # training simulations in FAST mode (the tc run of chapter 2 in `make test` uses the same)
MAX_EPOCHS_FAST = 25  # cap on training epochs in FAST mode
T_SCIPY_FAST = 1000.0  # ms simulated by solve_ivp per example in FAST mode (full: the cell's protocol)
N_POPULATION = 200  # neurons of the compensation population for the reachability map

# %%
import dataclasses
import inspect
import re

import numpy as np
import pandas as pd
from myst_nb import glue
from scipy.optimize import brentq

import condspace
from condspace import cells, dics, features, inference, plotting, populations, reference, resolve, simulate
from condspace import neuromodulation as nm
from condspace.cells import _template
from condspace.channels import CellType

# %%
backend = resolve(BACKEND)
cell = cells.get(CELL_TYPE)
plotting.use_style()
n_train = N_TRAIN_FAST if FAST else N_TRAIN
settings = inference.standard_settings(max_epochs=MAX_EPOCHS_FAST if FAST else None)
print(f"condspace {condspace.__version__} | {backend.describe()} | numpy {np.__version__} | "
      f"cell {cell.name}: {cell.title} | protocol {cell.protocol} ms | FAST={FAST}")

# %% [markdown]
# ## The template
#
# Copy `lib/condspace/cells/_template.py` to a new file in the same folder, named after the paper
# (author, year, preparation: `smith21_ca1.py`), and edit it. The registry imports every file of
# that folder whose name does not start with `_` and registers the `CELL` it declares, so nothing
# else changes: `cells.get("hh52")`, `python -m condspace ... --cell hh52` and every chapter with
# `CELL_TYPE="hh52"` find it. The template declares the Hodgkin–Huxley axon; its `CELL`:

# %%
source = inspect.getsource(_template)
print(source[source.index("CELL = CellType("):])

# %% [markdown]
# Channels are built from `condspace.channels`: a `Gate` has a power, a steady state x∞(V) and a
# time constant τ(V) (ms), both written with the array module `xp` passed in, never `np.`, so that
# the same functions run on NumPy, on CuPy, on complex numbers (the DICs differentiate them by
# complex steps) and through the code generator of the compiled engines. Exponentials go through
# `safe_exp`; rates with a removable singularity (HH's α_m) through `linear_over_expm1`. Multi-state
# gates are a `KineticScheme`, a calcium pool a `CalciumPool`. A cell file never needs its own
# integrator, Jacobian or DIC code.

# %% [markdown]
# ## What each field means
#
# Every field of a declaration, whether it is required, and what the book does with it (from the
# documentation of `CellType`). Fields marked *derived* may be left out: the declaration fills
# them in from the others when the cell is built.

# %%
doc = inspect.getdoc(CellType).split("Attributes:")[1]
meaning = {}
for line in doc.splitlines():
    name, _, text = line.strip().partition(": ")
    if line.startswith("    ") and not line.startswith("        ") and text:
        meaning[name] = text
    elif meaning and line.strip():
        meaning[list(meaning)[-1]] += " " + line.strip()
meaning = {k: re.sub(r":\w+:`~?([^`]+)`", r"\1", v).replace("``", "") for k, v in meaning.items()}  # plain text
required = {f.name: f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            for f in dataclasses.fields(CellType)}
fields = pd.DataFrame({"required": required, "meaning": pd.Series(meaning)})
fields.style.set_properties(subset=["meaning"], **{"text-align": "left", "white-space": "normal"})

# %% [markdown]
# Every published fact about the cell lives in these fields: the chapters ask the declaration for
# the prior (`box`, `prior_widening`), the training budget (`inference_budget`), the protocol and
# its time step (`protocol`), the compensation recipe and the reference voltage V* (`population`),
# the two regimes of the neuromodulation chapters (`modulation_targets`), the range of the DIC maps
# (`dic_map_ranges`) and the recordings chapter 2 infers from (`recordings`). The values of this
# cell:

# %%
declared = {"box (mS/cm²)": cell.box, "prior box (mS/cm²)": cell.prior_box(), "protocol (ms)": cell.protocol,
            "inference budget": cell.inference_budget, "V* (mV)": getattr(cell.population, "V_ref", None),
            "modulation targets (× g_leak)": cell.modulation_targets, "DIC-map ranges (× g_leak)": nm.map_ranges(cell),
            "recordings (example, noise µA/cm², seed)": cell.recordings}
for field, value in declared.items():
    print(f"{field}: {value}")

# %% [markdown]
# ## Checks on a new declaration
#
# A declaration that imports is not yet a right one. Four checks catch the usual mistakes (a sign
# in a sigmoid, τ in seconds instead of milliseconds, a rate in the wrong units, a gate that should
# have been instantaneous) before any chapter is run on the cell.
#
# **Steady states.** Every simulation starts with the gates at their steady state at V0, so there
# the gates must not move: their derivatives vanish. A candidate rest of each example is the lowest
# voltage in $[-100, -40]$ mV where the steady-state current turns outward (dV/dt from positive
# to negative); whether the cell stays there is for the simulation to say.

# %%
def at_steady_state(V):
    """State vector [V, gates...] with every gate at its steady state at V (mV)."""
    return reference.initial_vector(dataclasses.replace(cell, V0=float(V)))


def resting_voltage(f):
    """Lowest V (mV) where dV/dt at steady state turns from positive to negative (a candidate rest), or NaN."""
    V = np.arange(-100.0, -39.5, 0.5)
    dv = np.array([f(0.0, at_steady_state(v))[0] for v in V])
    down = np.nonzero((dv[:-1] > 0) & (dv[1:] <= 0))[0]
    return brentq(lambda v: f(0.0, at_steady_state(v))[0], V[down[0]], V[down[0] + 1]) if down.size else np.nan


rows = {}
for label, g in cell.examples.items():
    f = reference.rhs(cell, [g[n] for n in cell.conductance_names])
    rows[label] = {"max |dx/dt| of the gates at V0 (1/ms, µM/ms for [Ca])": float(np.abs(f(0.0, reference.initial_vector(cell))[1:]).max()),
                   "steady state (mV)": resting_voltage(f)}
steady = pd.DataFrame(rows).T
glue("max_gate_drift", float(steady.iloc[:, 0].max()), display=False)
steady

# %% [markdown]
# The largest derivative of a gate (or of [Ca]) at V0 is {glue:text}`max_gate_drift:.1e` per ms.
# Zero means the initial state is a steady state of the gates; a value above rounding is either a
# mistake in x∞ or τ, or an initial state the paper declares on purpose (the DA cell's ERG scheme
# starts closed). A steady state found here need not be stable: the published behaviours below say
# which examples rest and which fire.

# %% [markdown]
# **DIC invariants.** For a cell without calcium-dependent channels (for one with them the
# calcium column depends on the calcium conductances, and the check fails by design) the DICs are
# linear in the conductances, g_DIC(V; a·ḡ₁ + b·ḡ₂) = a·g_DIC(V; ḡ₁) + b·g_DIC(V; ḡ₂) before normalisation by the
# leak; for every cell the three DICs add up to the slope of the steady-state I–V curve,
# g_f + g_s + g_u = dI_ss/dV / g_leak, whatever the timescale weights; and every gate's weights are
# ordered, w_fs ≤ w_su, so that its shares of the three rows (w_fs, w_su − w_fs, 1 − w_su) are
# non-negative and add up to one.

# %%
G = np.array([[g[n] for n in cell.conductance_names] for g in cell.examples.values()])
V = np.linspace(-90.0, -40.0, 51)
mix = 0.3 * G[0] + 1.7 * G[-1]
S = dics.sensitivity(cell, V, np.vstack([G[0], G[-1], mix]), normalize=False)  # (3 sets, V, 3 rows, channels)
linear_error = np.abs(S[2] @ mix - (0.3 * S[0] @ G[0] + 1.7 * S[1] @ G[-1])).max()  # DICs before normalisation
f0 = reference.rhs(cell, G[0])
def i_ss(v):
    """Steady-state ionic current (µA/cm²) at v (mV): −C·dV/dt with the gates at steady state, no applied current."""
    return -f0(0.0, at_steady_state(v))[0] * cell.capacitance


h = 1e-4  # mV: central differences, error O(h²)
slope = np.array([(i_ss(v + h) - i_ss(v - h)) / (2 * h) for v in V]) / G[0, -1]
g_in = dics.dics(cell, G[:1], V[:, None])[:, 0].sum(axis=-1)  # (V,): g_f + g_s + g_u
weights = dics.timescale_weights(cell, V)
weight_rows = {k: float(np.abs(np.minimum(w[0], w[1]) - w[0]).max()) for k, w in weights.items()}  # w_fs ≤ w_su
checks = pd.Series({"linearity, max |error| (mS/cm²)": linear_error,
                    "g_in − slope of I_ss, max |error| (× g_leak)": float(np.abs(g_in - slope).max()),
                    "max |g_in| on the grid (× g_leak)": float(np.abs(g_in).max()),
                    "weights with w_fs > w_su": sum(v > 0 for v in weight_rows.values())})
glue("slope_error", float(checks.iloc[1]), display=False)
checks

# %% [markdown]
# The sum of the DICs follows the slope of the steady-state I–V curve to within
# {glue:text}`slope_error:.1e` × g_leak (central differences with a step $h = 10^{-4}$ mV): the complex-step
# derivatives of the DIC engine agree with the rate functions of the declaration.

# %% [markdown]
# **The integrator against SciPy.** The book's simulator (exponential Euler at the protocol's dt,
# all neurons at once) against `scipy.integrate.solve_ivp` (LSODA, tight tolerances) on each
# example. Compare spike counts and the first spike times, not voltages after the first spike:
# a small phase error grows along a spike train without changing what the neuron does. If the
# counts differ, lower `dt` in the protocol until they agree (this is how the protocol's dt of
# each cell was chosen).

# %%
t_max = T_SCIPY_FAST if FAST else cell.protocol["t_max"]
ours = simulate(cell, G, t_max=t_max, transient=0.0, backend=backend)
rows = {}
for k, label in enumerate(cell.examples):
    ref = reference.simulate_scipy(cell, G[k], t_max=t_max, transient=0.0, rtol=1e-7, atol=1e-9)
    n = min(ref.size, ours.spike_times[k].size, 5)
    rows[label] = {"spikes (solve_ivp)": ref.size, "spikes (book)": ours.spike_times[k].size,
                   "max |Δt| of the first 5 spikes (ms)": np.abs(ref[:n] - ours.spike_times[k][:n]).max() if n else np.nan}
versus = pd.DataFrame(rows).T
glue("n_count_agree", int((versus.iloc[:, 0] == versus.iloc[:, 1]).sum()), display=False)
glue("n_examples", len(versus), display=False)
versus

# %% [markdown]
# The spike counts agree for {glue:text}`n_count_agree` of the {glue:text}`n_examples` examples
# over the simulated window.

# %% [markdown]
# **Published behaviours.** Each declaration lists behaviours its paper reports (an example set, a
# constant current, the expected activity class); the test suite simulates them for every
# registered cell. The same here, with the cell's protocol:

# %%
behaviours = pd.DataFrame([dataclasses.asdict(b) for b in cell.behaviours])
g_b = np.array([[cell.examples[b.example][n] for n in cell.conductance_names] for b in cell.behaviours])
res_b = simulate(cell, g_b, current=behaviours["current"].to_numpy(), backend=backend)
behaviours["simulated"] = features.from_simulation(res_b)["label"].to_numpy()
glue("n_behaviours_ok", int((behaviours["simulated"] == behaviours["activity"]).sum()), display=False)
glue("n_behaviours", len(behaviours), display=False)
behaviours[["description", "example", "current", "activity", "simulated", "source"]]

# %% [markdown]
# {glue:text}`n_behaviours_ok` of {glue:text}`n_behaviours` declared behaviours are reproduced.
# The file itself has more specific tests where the paper gives more than a class (for the
# thalamocortical cell: tests/test_tc.py, with a rebound burst that disappears without I_T).

# %% [markdown]
# ## The whole pipeline in a few cells
#
# **Simulate.** The examples, one call for all of them, with the cell's protocol:

# %%
shown = min(1500.0, cell.protocol["t_max"] - cell.protocol["transient"])
res = simulate(cell, G, backend=backend, record=list(range(len(G))), seed=SEED)
classes = features.from_simulation(res)["label"].tolist()
window = res.traces["t"] >= cell.protocol["t_max"] - shown
fig = plotting.plot_traces(res.traces["t"][window], res.traces["V"][:, window],
                           labels=[f"{k}: {c}" for k, c in zip(cell.examples, classes, strict=True)],
                           colors=[plotting.class_color(c) for c in classes])

# %% [markdown]
# **DICs.** Their curves over voltage and the values at each example's threshold:

# %%
V = np.linspace(-90.0, -40.0, 201)
at_vth = dics.dics_at_threshold(cell, G).set_index(pd.Index(list(cell.examples)))
curves = dics.dics(cell, G, V[:, None]).transpose(1, 0, 2)
fig = plotting.plot_dic_curves_grid(V, curves, at_vth["V_th"], list(cell.examples), classes)
at_vth.round(3)

# %% [markdown]
# **A small posterior.** Neural posterior estimation on the cell's prior and protocol, trained on
# few simulations (FAST: {glue:text}`n_train` draws), and the posterior of the first demonstration
# recording, simulated back (the predictive check of chapter 2):

# %%
glue("n_train", n_train, display=False)
trains, truth = inference.demonstration_recordings(cell)
first = next(iter(trains))
post, ts = inference.trained_posterior(cell, n_train, settings=settings, prior=inference.make_prior(cell), seed=SEED,
                                       backend=BACKEND)
x, _ = inference.observe(trains[first], float(truth.loc[first, "duration_ms"]))
samples = post.sample(200 if FAST else 1000, x, seed=SEED)
check = inference.predictive_check(post, trains[first], 40 if FAST else 200, samples=samples[:40 if FAST else 200],
                                   duration=float(truth.loc[first, "duration_ms"]), seed=SEED, backend=BACKEND)
glue("check_fraction", float(check.fraction), display=False)
glue("first_recording", str(first), display=False)
g_names = list(post.prior.conductance_names)  # the pair plot shows conductances, not the inferred noise
truth_g = truth.loc[[first], g_names].to_numpy(dtype=float)
fig = plotting.plot_conductance_pairs(np.vstack([samples[:, :len(g_names)], truth_g]), g_names, highlight=[-1])

# %% [markdown]
# The posterior of {glue:text}`first_recording` and its ground truth (orange); a fraction
# {glue:text}`check_fraction:.2f` of the simulated posterior samples reproduce the recording. With
# so few simulations this says the plumbing works on the new cell, not that the posterior is good:
# chapter 2 with the cell's `inference_budget` does that.

# %% [markdown]
# **A reachability map.** A degenerate population built by the cell's compensation recipe at V*,
# and the fraction of it that each pair of channels can move to each (g_s, g_u) of the cell's map:

# %%
pop = populations.spiking_population(cell, N_POPULATION, SEED)
maps = nm.reachability_map(cell, pop.g[pop.reachable])
path = nm.path(cell.modulation_target("spiking"), cell.modulation_target("bursting"), 11)
fig = plotting.plot_reachability_maps(maps.gs, maps.gu, dict(zip(maps.labels, maps.fraction, strict=True)), path=path,
                                      reasons=dict(zip(maps.labels, maps.reason, strict=True)))
best = maps.labels[int(np.argmax([np.nanmean(f) for f in maps.fraction]))]  # largest reachable area
glue("best_pair", str(best), display=False)

# %% [markdown]
# The pair that reaches most of the plane here is {glue:text}`best_pair`; chapter 4 follows the
# population along the path (orange) and checks the result by simulation.

# %% [markdown]
# ## Summary
#
# In this appendix we walked through the one file a new cell type takes: the template, what each
# field of a declaration means, and the checks that tell you the declaration is right (gates at
# steady state, the DIC invariants, agreement with `solve_ivp`, the published behaviours). Then the
# pipeline of the book ran on the thalamocortical cell with nothing but `CELL_TYPE` changed. To run
# any chapter on your own cell, pass `-p CELL_TYPE '"yourname"'` to `tools/execute_chapter.py`.
#
# **References.** Destexhe A, Bal T, McCormick DA, Sejnowski TJ (1996) J Neurophysiol
# 76:2049–2070. McCormick DA, Huguenard JR (1992) J Neurophysiol 68:1384–1400. Hodgkin AL, Huxley AF
# (1952) J Physiol 117:500–544. Drion G, Franci A, Dethier J, Sepulchre R (2015) eNeuro 2(1).
