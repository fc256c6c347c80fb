"""Dynamic input conductances (DICs) of any declared cell type (Drion et al. 2015).

Everything is derived from the :class:`~condspace.channels.CellType` declaration: the gates,
their steady states and time constants, the reversal potentials, the calcium pool and the
reference time constants ``cell.dic_reference``. No cell type has DIC code of its own.

For channel j with gating product G_j (e.g. m³h) and each gating variable x of it,

    s_{j,x}(V) = ∂G_j/∂x · (V − E_j) · dx∞/dV                       (per unit ḡ_j)

and the sensitivity matrix S(V) (rows fast, slow, ultraslow; one column per channel, leak last):

    S_f,j = G_j∞(V) + Σ_x w_fs,x s_{j,x},   S_s,j = Σ_x (w_su,x − w_fs,x) s_{j,x},
    S_u,j = Σ_x (1 − w_su,x) s_{j,x},       leak column (1, 0, 0).

The DICs are g_DIC = S(V)·ḡ = (g_f, g_s, g_u), by default divided by g_leak (dimensionless
multiples of the leak; g_f then contains +1 from the leak). Their sum g_in = g_f + g_s + g_u is
the slope of the steady-state I–V curve (divided by g_leak) and does not depend on the weights.

Derivatives of steady states are complex-step derivatives (f'(V) = Im f(V + ih) / h, exact to
rounding, no subtractive cancellation): every rate function of the declarations accepts complex
input. Kinetic schemes go through :func:`condspace.kinetics.scheme_steady_state`.

Timescale weights of a gating variable with time constant τ_x(V) are log-interpolated between the
reference time constants τ_f(V) < τ_s(V) < τ_u(V) (``timescale_weight``); declared ``timescale``
overrides fix them (fast: w_fs = w_su = 1, slow: 0/1, ultraslow: 0/0) and instantaneous gates are
fast. A gate whose steady state depends on [Ca] (STG KCa) has two feedback paths: its direct
voltage dependence (weighted with its own τ) and the calcium path ∂x∞/∂[Ca] · d[Ca]∞/dV, weighted
with the pool time constant, where

    [Ca]∞(V) = −α · Σ_{c carries calcium} ḡ_c G_c∞(V) (V − E_c) + β.

That column depends on ḡ of the calcium-carrying channels, so S depends on ḡ there.

Shapes: V any shape; conductances ``g`` as (n_channels,) or (N, n_channels) in
``cell.channel_names`` order (leak last). All functions take ``xp`` (NumPy by default, CuPy works
the same way) and return arrays of that module.

The package: :mod:`~condspace.dics.sensitivity` (timescale weights, the columns of S, S and the
DICs) and :mod:`~condspace.dics.threshold` (g_in, V_th, DICs at V_th); the compiled form of a cell
they work on is :func:`condspace.plan.cell_plan`. Every public name is importable from here.

References: Drion G, Franci A, Dethier J, Sepulchre R (2015) eNeuro 2(1); Fyon A, Franci A,
Sacré P, Drion G (2024) PNAS Nexus 3:pgae415.
"""


from condspace.backend import array_module
from condspace.dics.sensitivity import (
    COMPLEX_STEP,
    dics,
    sensitivity,
    sensitivity_columns,
    timescale_weight,
    timescale_weights,
)
from condspace.dics.threshold import (
    BISECT_TOL,
    CPU_SUB_BLOCK,
    PARALLEL_MIN_VECTORS,
    SCAN_START,
    SCAN_STEP,
    SCAN_STOP,
    dics_at_threshold,
    threshold,
)
from condspace.plan import ROWS

__all__ = ["BISECT_TOL", "COMPLEX_STEP", "CPU_SUB_BLOCK", "PARALLEL_MIN_VECTORS", "ROWS", "SCAN_START", "SCAN_STEP",
           "SCAN_STOP", "array_module", "dics", "dics_at_threshold", "sensitivity", "sensitivity_columns", "threshold",
           "timescale_weight", "timescale_weights"]
