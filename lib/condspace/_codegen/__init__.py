"""C/CUDA source generated from a cell declaration: one fused time-stepping kernel.

The GPU path of :func:`condspace.simulate` must not be a second, hand-written copy of the model
equations (STYLE.md §3). Instead, every rate function of the declaration is *traced*: called
with a fake array module (:class:`SymXP`) and symbolic voltage / calcium (:class:`Sym`), which
records the arithmetic as a C expression. The time step itself is traced the same way, from
:meth:`condspace._engine.Engine.step` run on object arrays of such symbols
(:mod:`~condspace._codegen.step`), so the kernels have no update formula of their own: one
per-neuron function advances a neuron ``n_steps`` time steps with the statements of that trace,
in the order of ``Engine.step`` with ``method="exact"``:

gates with V(t) and [Ca](t) → kinetic schemes with their exact propagator expm(Q(V)·dt) →
open conductances → [Ca] with the currents at V(t) → V by exponential Euler with the new
conductances → spike detection → trace sample → blow-up check (every ``check_every`` steps and at
the last step). The matrix exponential of a scheme is a small generated C routine (scaling and
squaring with a Padé approximant, :func:`_expm_c`), the generator Q(V) is traced like any rate.

The same source compiles three ways:

* NVRTC / nvcc (``__CUDACC__``): a ``__global__`` kernel, one thread per neuron, the state in
  registers for the whole block of time steps (:mod:`condspace._cuda` launches it);
* a plain C compiler: a loop over the neurons with the same signature, so the arithmetic is
  tested against the NumPy engine on every CPU run (``tests/test_codegen.py``);
* a C++ compiler with a few CUDA names defined away, which runs the kernel body itself on the
  CPU (also in the tests).

The package: :mod:`~condspace._codegen.trace` (the tracer), :mod:`~condspace._codegen.step` (the
traced time step), :mod:`~condspace._codegen.c_source`
(the C/CUDA kernel) and :mod:`~condspace._codegen.numba_source` (the Numba kernels, generated from
the same traced rates).

Voltages in mV, times in ms, [Ca] in µM, conductances in mS/cm², currents in µA/cm².
"""

from condspace._codegen.c_source import KERNEL_PARAMS, KernelSource, generate
from condspace._codegen.numba_source import (
    NUMBA_GROUP,
    NUMBA_KERNELS,
    NUMBA_LANES,
    NUMBA_NOISE,
    NUMBA_PARAMS,
    NumbaSource,
    generate_numba,
)
from condspace._codegen.trace import KERNEL_NAME, SYMXP, SYMXP_PY, Sym, SymXP, literal, trace

__all__ = ["KERNEL_NAME", "KERNEL_PARAMS", "NUMBA_GROUP", "NUMBA_KERNELS", "NUMBA_LANES", "NUMBA_NOISE",
           "NUMBA_PARAMS", "SYMXP", "SYMXP_PY", "KernelSource", "NumbaSource", "Sym", "SymXP", "generate",
           "generate_numba", "literal", "trace"]
