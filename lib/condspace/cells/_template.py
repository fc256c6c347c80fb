"""Template for a new cell type: copy this file to ``condspace/cells/``, named author+year+preparation
without a leading underscore (e.g. ``smith21_ca1.py``), and change ``CELL``.

That is all: every module of :mod:`condspace.cells` whose name does not start with ``_`` and that
defines ``CELL`` is registered on import, under ``CELL.name`` and its file stem, so that
``cells.get("hh52")``, ``python -m condspace ... --cell hh52`` and every chapter with
``CELL_TYPE="hh52"`` find it. (This file starts with ``_``, so it is not registered; a cell
declared elsewhere, e.g. in a notebook, is added with ``cells.register(CELL, "alias")``.)

Declare channels on top of :mod:`condspace.channels`; every rate function takes the array module
``xp`` first and uses only ``xp`` functions (never ``np.`` directly) so the same declaration runs on
NumPy, CuPy, complex numbers (DIC derivatives) and the CUDA code generator.

The engines derive steady states, derivatives, the rate tables and the DIC sensitivity matrix
from this declaration: a cell file never needs its own integrator, Jacobian or DIC code. The
inference budget and prior, the DIC-map ranges, the protocol, the neuromodulation targets and the
demonstration recordings are fields too (below, every field with its units; optional ones show
what omitting them does), so nothing outside this file is keyed by the cell's name. The
``behaviours`` are checked by a generic test (tests/test_cells.py) for every registered cell.

This template is the Hodgkin–Huxley (1952) squid axon, shifted to a rest near −65 mV. It has no
slow regenerative or ultraslow current, so its slow and ultraslow DICs are plain; a real cell
type for the DIC chapters needs both (see the STG and DA files).
"""

from condspace.channels import Behaviour, CellType, Channel, Gate, linear_over_expm1, safe_exp

META = {
    "reference": "Hodgkin AL, Huxley AF (1952) J Physiol 117:500-544",
    "doi": "10.1113/jphysiol.1952.sp004764",
    "species": "Loligo (squid) giant axon",
}


def _rates(alpha, beta):
    """x∞ and τ (ms) from opening/closing rates α(V), β(V) in 1/ms."""
    return (lambda xp, V: alpha(xp, V) / (alpha(xp, V) + beta(xp, V)),
            lambda xp, V: 1.0 / (alpha(xp, V) + beta(xp, V)))


# α_m = 0.1 (V + 40) / (1 − exp(−(V + 40)/10)) = (−4 − 0.1 V) / (exp(−4 − 0.1 V) − 1)
m_inf, m_tau = _rates(lambda xp, V: linear_over_expm1(xp, V, -4.0, -0.1, -4.0, -0.1),
                      lambda xp, V: 4.0 * safe_exp(xp, -(V + 65.0) / 18.0))
h_inf, h_tau = _rates(lambda xp, V: 0.07 * safe_exp(xp, -(V + 65.0) / 20.0),
                      lambda xp, V: 1.0 / (1.0 + safe_exp(xp, -(V + 35.0) / 10.0)))
n_inf, n_tau = _rates(lambda xp, V: linear_over_expm1(xp, V, -0.55, -0.01, -5.5, -0.1),
                      lambda xp, V: 0.125 * safe_exp(xp, -(V + 65.0) / 80.0))

CHANNELS = (
    Channel("Na", (Gate("m", 3, m_inf, m_tau), Gate("h", 1, h_inf, h_tau)), 50.0),
    Channel("K", (Gate("n", 4, n_inf, n_tau),), -77.0),
)

_SOURCE = "Hodgkin AL, Huxley AF (1952) J Physiol 117:500-544, repetitive responses to constant current"

CELL = CellType(
    # --- identity -------------------------------------------------------------------------------
    name="hh52",  # registry name: lower case, unique; also the prefix of cache files
    title="Hodgkin-Huxley squid axon (template)",  # shown in chapter headers and figures
    meta=META,  # reference, DOI, species, notes (free text)
    # --- the model ------------------------------------------------------------------------------
    channels=CHANNELS,  # active channels in conductance order; the leak is implicit and comes last
    leak_reversal=-54.4,  # E_leak (mV)
    capacitance=1.0,  # C (µF/cm²)
    V0=-65.0,  # initial V (mV); every gate starts at its steady state there
    calcium=None,  # a CalciumPool (τ ms, α µM per µA/cm², β µM, initial µM) or None
    # DIC reference time constants: a gate's τ(V) ("channel", "gate") or a constant in ms, one per
    # timescale; a gate's contribution is split between rows by log-interpolating its τ (Drion 2015).
    dic_reference={"fast": ("Na", "m"), "slow": ("K", "n"), "ultraslow": 100.0},
    # --- conductances ---------------------------------------------------------------------------
    box={"g_Na": (0, 240), "g_K": (0, 72), "g_leak": (0.1, 0.6)},  # literature ranges (mS/cm²), inferred ones
    fixed={},  # g_name -> value (mS/cm²): parameters, not inferred (e.g. the DA's g_NMDA)
    examples={"standard": {"g_Na": 120.0, "g_K": 36.0, "g_leak": 0.3}},  # published sets (mS/cm²)
    # --- simulation -----------------------------------------------------------------------------
    # t_max and transient (ms; spikes before the transient are discarded, the analysed window is
    # t_max − transient) and dt (ms; omitted: 0.05). Every function that simulates uses it by default.
    protocol={"t_max": 1000.0, "transient": 200.0, "dt": 0.05},
    # Published behaviours: example set + constant current (µA/cm²) → activity class of
    # condspace.features ("silent", "spiking" or "bursting"), with the paper and figure.
    behaviours=(
        Behaviour("rest without applied current", "standard", 0.0, "silent", _SOURCE),
        Behaviour("repetitive firing (≈ 69 Hz) under a sustained 10 µA/cm² current", "standard", 10.0, "spiking",
                  _SOURCE),
    ),
    # --- populations and neuromodulation (chapters 1, 3, 4) -------------------------------------
    population=None,  # a PopulationRecipe (V*, DIC target, channels solved for, drawn ranges) or None
    # (g_s, g_u) × g_leak of the two regimes a neuromodulation path joins. Omitted (None): spiking =
    # the recipe target's (g_s, g_u), bursting = (−|g_s|, g_u); empty without a recipe.
    modulation_targets=None,
    # ((g_s low, high), (g_u low, high)) × g_leak of the reachability and activity maps. Omitted
    # (None): derived by condspace.neuromodulation.map_ranges from the DICs at V* of 2000 prior
    # draws (±95th percentile of |g_s|; 5th–95th percentile of g_u, widened to include 0; multiples of 5).
    dic_map_ranges=None,
    # --- inference (chapter 2) ------------------------------------------------------------------
    prior_widening={},  # g_name -> (low, high) (mS/cm²) replacing the box in the inference prior
    inference_budget=20_000,  # training simulations of the standard posterior (omitted: 20,000)
    # Demonstration recordings: ID -> (example label, noise std µA/cm² after filtering, seed).
    # Omitted (None): one per example, ID "<name>_<label>", noise 0.1 µA/cm², seeds 1, 2, ...
    recordings={"hh52_standard": ("standard", 0.1, 1)},
    # Upper bound (µA/cm², std after filtering) of the uniform prior on the noise strength the
    # posterior infers; 0: not inferred. Omitted (None): max(2.5, 1.25 × the loudest recording).
    noise_prior=None,
    # Upper bound of the uniform prior on the probability that the spike detector missed a spike,
    # inferred with the conductances; 0 (or omitted): detection taken as perfect, not inferred.
    missed_prior=0.0,
)
