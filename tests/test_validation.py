"""Validation by simulation (SCIENCE.md §4): DIC targets predict the firing pattern of whole populations.

An STG population built by compensation at the spiking target (g_f, g_s, g_u) = (−6.2, 4, 5) at
V* = −51 mV must fire tonically; re-solving {CaS, H} to move it to (g_s, g_u) = (−4, 5) (slow
positive feedback) must make it burst (Drion et al. 2015; Fyon et al. 2024). Each population is
simulated with the cell's protocol (6000 ms, first 3000 ms discarded) and classified by
condspace.features. Fractions are over every neuron drawn: an unreachable neuron counts against.

The 1,000-neuron numbers (and the DA case) come from tools/validate_populations.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from condspace import cells, features, simulate
from condspace.populations import modulate, spiking_population

N = 200  # neurons per population: ~15-30 s of simulation each on 2 cores
SEED = 2024
MIN_FRACTION = 0.95  # SCIENCE.md §4 validation: ≥ 95 % of the population in the predicted class
STG = cells.get("stg")


def _labels(g: np.ndarray) -> np.ndarray:
    res = simulate(STG, g, backend="numpy", seed=SEED, **STG.protocol)
    assert res.duration == 3000.0
    return features.from_simulation(res)["label"].to_numpy()


@pytest.fixture(scope="module")
def spiking():
    pop = spiking_population(STG, N, SEED)
    np.testing.assert_allclose(pop.meta["target"], (-6.2, 4.0, 5.0))
    return pop


def test_stg_spiking_population_fires_tonically(spiking):
    labels = _labels(spiking.g[spiking.reachable])
    fraction = np.count_nonzero(labels == "spiking") / N
    classes = dict(zip(*np.unique(labels, return_counts=True), strict=True))
    assert fraction >= MIN_FRACTION, f"only {fraction:.3f} of {N} tonic spiking; classes {classes}"
    # degenerate: one DIC target, several-fold spread in the solved and drawn conductances
    g = spiking.g[spiking.reachable]
    for name in ("g_Na", "g_A", "g_CaS"):
        col = g[:, STG.index(name)]
        assert col.max() / col.min() > 2.0, name


def test_stg_population_modulated_to_slow_positive_feedback_bursts(spiking):
    base = spiking.g[spiking.reachable]
    mod = modulate(STG, base, (-4.0, 5.0), channels=("CaS", "H"))
    assert mod.solve_for == ("CaS", "H")
    # only CaS and H changed, every other conductance kept
    untouched = [j for j, n in enumerate(STG.channel_names) if n not in ("CaS", "H")]
    np.testing.assert_array_equal(mod.g[:, untouched], base[:, untouched])
    labels = _labels(mod.g[mod.reachable])
    fraction = np.count_nonzero(labels == "bursting") / N
    classes = dict(zip(*np.unique(labels, return_counts=True), strict=True))
    assert fraction >= MIN_FRACTION, f"only {fraction:.3f} of {N} bursting; classes {classes}"
