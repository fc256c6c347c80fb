"""Template for a new cell type: copy this file, rename it author+year (e.g. ``smith21_ca1.py``).

Declare channels on top of :mod:`condspace.channels`; every rate function takes the array module
``xp`` first and uses only ``xp`` functions (never ``np.`` directly) so the same declaration runs on
NumPy, CuPy, complex numbers (DIC derivatives) and the CUDA code generator. Then register it:

>>> from condspace import cells
>>> from condspace.cells import _template
>>> cells.register(_template.CELL, "hh52")  # doctest: +SKIP

The engines derive steady states, derivatives, the rate tables and the DIC sensitivity matrix
from this declaration: a cell file never needs its own integrator, Jacobian or DIC code.
This template is the Hodgkin–Huxley (1952) squid axon, shifted to a rest near −65 mV.
"""

from condspace.channels import CellType, Channel, Gate, linear_over_expm1, safe_exp

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

CELL = CellType(
    name="hh52",
    title="Hodgkin-Huxley squid axon (template)",
    channels=CHANNELS,
    leak_reversal=-54.4,
    capacitance=1.0,
    V0=-65.0,
    calcium=None,
    box={"g_Na": (0, 240), "g_K": (0, 72), "g_leak": (0.1, 0.6)},
    fixed={},
    examples={"standard": {"g_Na": 120.0, "g_K": 36.0, "g_leak": 0.3}},
    # DIC reference time constants: a gate's τ(V) or a constant in ms.
    dic_reference={"fast": ("Na", "m"), "slow": ("K", "n"), "ultraslow": 100.0},
    protocol={"t_max": 1000.0, "transient": 200.0},
    population=None,
    meta=META,
)
