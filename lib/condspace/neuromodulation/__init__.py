"""Neuromodulation of degenerate populations: paths in the (g_s, g_u) plane, reachability, cost.

A neuromodulator changes a few maximal conductances of every neuron. In the DIC picture (Drion
et al. 2015; Fyon et al. 2024) it moves the population from one point of the (g_s, g_u) plane at
the reference voltage V* (e.g. tonic spiking at (4, 5)) to another (e.g. bursting at (−4, 5)).
Which channel subset K can do it, for how many neurons, and at what cost?

For every neuron and target d* the modulated conductances ḡ_K solve (SCIENCE.md §4)

    S_{R,K}(V*) · ḡ_K = d*_R − S_{R,rest}(V*) · ḡ_rest,

with R = (slow, ultraslow) for a pair (g_f is left free) and R = (fast, slow, ultraslow) for a
triplet (g_f targeted too, by default on the recipe's line g_f = a·g_s + b). S is the DIC
sensitivity matrix of :func:`condspace.dics.sensitivity`, normalised by g_leak.

* **Affine case.** S does not depend on ḡ except through calcium: for a cell without a calcium
  pool, or a subset K without calcium-carrying channels, the solution is affine in d*. One
  per-neuron inverse then maps a whole grid of targets at once.
* **Calcium case.** In the STG the KCa column depends on ḡ_CaT and ḡ_CaS through
  [Ca]∞(V*) = β − α Σ_c ḡ_c G_c∞(V*)(V* − E_Ca) (affine in ḡ_CaT, ḡ_CaS). When K holds a calcium
  carrier the system is solved by fixed-point iteration (SCIENCE.md §4): solve with a guess of the
  carriers, recompute the ḡ-dependent columns of S with the solution, solve again. Only those
  columns are recomputed, for all targets × neurons at once.
* **Reachable** (SCIENCE.md §4): the system is non-singular, the solution finite and
  non-negative, and the DICs recomputed at V* with the new conductances lie within ε of the
  target on the targeted rows. Otherwise the status says why (:data:`STATUS`).
* **Cost**: the fold change ḡ_new / ḡ_baseline of each modulated channel, per neuron; summaries
  give the population median and interquartile range over the reachable neurons.

The package: :mod:`~condspace.neuromodulation.system` (the system of one subset at V* and its
calcium fixed point; the linear solve is :mod:`condspace.subsets`, shared with compensation),
:mod:`~condspace.neuromodulation.paths` (paths, :func:`modulate_along`),
:mod:`~condspace.neuromodulation.maps` (:func:`reachability`, :func:`reachability_map`),
:mod:`~condspace.neuromodulation.costs`, :mod:`~condspace.neuromodulation.summary` and
:mod:`~condspace.neuromodulation.validation`. Every public name is importable from here.

Any starting population works: a compensation population (:mod:`condspace.populations`),
posterior samples (:mod:`condspace.inference`) or a table read from disk.

References: Drion G, Franci A, Dethier J, Sepulchre R (2015) eNeuro 2(1); Fyon A, Franci A,
Sacré P, Drion G (2024) PNAS Nexus 3:pgae415; Brandoit J, Ernst D, Drion G, Fyon A (2025)
arXiv:2509.12783.
"""

from condspace.neuromodulation.costs import cost, fold_change
from condspace.neuromodulation.maps import (
    GRID_STEP,
    MAP_RANGE_DRAWS,
    MAP_RANGE_ROUNDING,
    Reachability,
    ReachabilityMap,
    grid,
    map_ranges,
    reachability,
    reachability_map,
)
from condspace.neuromodulation.paths import Trajectory, modulate_along, path
from condspace.neuromodulation.summary import cost_table, path_summary
from condspace.neuromodulation.system import (
    CONVERGENCE_TOL,
    DEFAULT_EPS,
    DEFAULT_ITERATIONS,
    SINGULAR_TOL,
    active_channels,
    channel_pairs,
    pair_label,
)
from condspace.neuromodulation.validation import expected_label, validate
from condspace.subsets import STATUS

__all__ = ["CONVERGENCE_TOL", "DEFAULT_EPS", "DEFAULT_ITERATIONS", "GRID_STEP", "MAP_RANGE_DRAWS",
           "MAP_RANGE_ROUNDING", "SINGULAR_TOL", "STATUS", "Reachability", "ReachabilityMap", "Trajectory",
           "active_channels", "channel_pairs", "cost", "cost_table", "expected_label", "fold_change", "grid",
           "map_ranges", "modulate_along", "pair_label", "path", "path_summary", "reachability", "reachability_map",
           "validate"]
