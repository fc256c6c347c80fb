"""C/CUDA source generated from a cell declaration: one fused time-stepping kernel.

The GPU path of :func:`condspace.simulate` must not be a second, hand-written copy of the model
equations (STYLE.md §3). Instead, every rate function of the declaration is *traced*: called
with a fake array module (:class:`SymXP`) and symbolic voltage / calcium (:class:`Sym`), which
records the arithmetic as a C expression. Those expressions are pasted into one per-neuron
function that advances a neuron ``n_steps`` time steps with the same update order and the same
formulas as :meth:`condspace._engine.Engine.step` with ``method="exact"``:

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

Voltages in mV, times in ms, [Ca] in µM, conductances in mS/cm², currents in µA/cm².
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from condspace._engine import SPIKE_REARM, SPIKE_THRESHOLD, V_BOUNDS, Engine
from condspace.channels import CellType

KERNEL_NAME = "condspace_advance"
"""Name of the generated kernel (``extern "C"``, so NVRTC does not mangle it)."""

_REAL = {"float64": "double", "float32": "float"}


# ----- symbolic tracing ------------------------------------------------------------------------
def literal(x: float) -> str:
    """A Python number as a C double literal that round-trips exactly (``repr``), parenthesised if negative.

    Raises:
        ValueError: For NaN or infinity (no portable literal; a rate function should not produce one).
    """
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"cannot emit the non-finite constant {x!r} into generated C code; "
                         "rewrite the rate function so that its constants are finite")
    text = repr(x)
    if not any(c in text for c in ".en"):  # repr(float) always has '.' or 'e', but stay safe
        text += ".0"
    return f"({text})" if text.startswith("-") else text


def _code(x: Any) -> str:
    if isinstance(x, Sym):
        if x.is_bool:
            raise TypeError("a comparison was used as a number in a traced rate function; use xp.where")
        return x.code
    if isinstance(x, bool | np.bool_):
        raise TypeError("a Python bool reached traced arithmetic; rate functions must not branch on values")
    if isinstance(x, int | float | np.integer | np.floating):
        return literal(x)
    raise TypeError(f"cannot trace a value of type {type(x).__name__} into C code "
                    "(rate functions may only combine V, [Ca] and Python numbers)")


class Sym:
    """A traced scalar: the C expression (fully parenthesised) that computes it.

    Supports ``+ - * /``, unary ``-``, ``**`` with small constant exponents and the comparisons
    ``< <= > >=`` (which give a boolean ``Sym`` for :meth:`SymXP.where`). Evaluation order and
    operand order are kept exactly, so the compiled expression rounds like the NumPy one.
    Using a ``Sym`` in a Python ``if`` raises: traced functions must be branch-free.

    Args:
        code: C expression.
        is_bool: The expression is a comparison (0/1), not a number.
    """

    __slots__ = ("code", "is_bool")
    __array_ufunc__ = None  # NumPy scalars defer to our reflected operators instead of broadcasting

    def __init__(self, code: str, is_bool: bool = False) -> None:
        self.code = code
        self.is_bool = is_bool

    def __repr__(self) -> str:
        return f"Sym({self.code!r})"

    def __bool__(self) -> bool:
        raise TypeError("a traced value was used in a Python condition; rate functions must be branch-free "
                        "(use xp.where)")

    # Arithmetic, left operand first, as Python evaluates it.
    def _bin(self, op: str, a: Any, b: Any) -> Sym:
        return Sym(f"({_code(a)} {op} {_code(b)})")

    def __add__(self, o: Any) -> Sym:
        return self._bin("+", self, o)

    def __radd__(self, o: Any) -> Sym:
        return self._bin("+", o, self)

    def __sub__(self, o: Any) -> Sym:
        return self._bin("-", self, o)

    def __rsub__(self, o: Any) -> Sym:
        return self._bin("-", o, self)

    def __mul__(self, o: Any) -> Sym:
        return self._bin("*", self, o)

    def __rmul__(self, o: Any) -> Sym:
        return self._bin("*", o, self)

    def __truediv__(self, o: Any) -> Sym:
        return self._bin("/", self, o)

    def __rtruediv__(self, o: Any) -> Sym:
        return self._bin("/", o, self)

    def __neg__(self) -> Sym:
        return Sym(f"(-{_code(self)})")

    def __pos__(self) -> Sym:
        return self

    def __pow__(self, p: Any) -> Sym:
        # The exponents NumPy special-cases (square, sqrt, reciprocal) are emitted the same way.
        if isinstance(p, Sym):
            return Sym(f"pow({_code(self)}, {_code(p)})")
        p = float(p)
        c = _code(self)
        if p == 1.0:
            return self
        if p == 2.0:
            return Sym(f"({c} * {c})")
        if p == 0.5:
            return Sym(f"sqrt({c})")
        if p == -1.0:
            return Sym(f"(1.0 / {c})")
        if p == 0.0:
            return Sym("1.0")
        return Sym(f"pow({c}, {literal(p)})")

    def __rpow__(self, base: Any) -> Sym:
        return Sym(f"pow({_code(base)}, {_code(self)})")

    def _cmp(self, op: str, o: Any) -> Sym:
        return Sym(f"({_code(self)} {op} {_code(o)})", is_bool=True)

    def __lt__(self, o: Any) -> Sym:
        return self._cmp("<", o)

    def __le__(self, o: Any) -> Sym:
        return self._cmp("<=", o)

    def __gt__(self, o: Any) -> Sym:
        return self._cmp(">", o)

    def __ge__(self, o: Any) -> Sym:
        return self._cmp(">=", o)

    # Rate functions are written for complex-step differentiation too: ``x.real`` must work.
    @property
    def real(self) -> Sym:
        return self

    @property
    def imag(self) -> float:
        return 0.0


def _num(x: Any) -> bool:
    return not isinstance(x, Sym)


class SymXP:
    """A stand-in for the array module that rate functions receive as ``xp``.

    On :class:`Sym` arguments each function returns a ``Sym`` holding the C call; on plain
    numbers it returns the number computed by NumPy (so constants such as ``exp(-delta)`` are the
    very doubles the NumPy engine uses). Anything else a rate function asks for raises an
    ``AttributeError`` naming the function to add here.

    Args:
        dialect: ``"c"`` (C/CUDA expressions) or ``"python"`` (the same expressions for the Numba
            kernel of :func:`generate_numba`). The two differ only in :meth:`where` (``c ? a : b``
            against ``(a if c else b)``): the generated Python module binds ``exp``, ``fabs``,
            ``pow``, ``cs_clip``, ... to functions of the same names and semantics.
    """

    def __init__(self, dialect: str = "c") -> None:
        if dialect not in ("c", "python"):
            raise ValueError(f"dialect must be 'c' or 'python', got {dialect!r}")
        self.dialect = dialect

    @staticmethod
    def _unary(name: str, cname: str, x: Any) -> Any:
        if _num(x):
            return float(getattr(np, name)(float(x)))
        return Sym(f"{cname}({_code(x)})")

    def exp(self, x: Any) -> Any:
        """e**x."""
        return self._unary("exp", "exp", x)

    def expm1(self, x: Any) -> Any:
        """e**x − 1."""
        return self._unary("expm1", "expm1", x)

    def log(self, x: Any) -> Any:
        """Natural logarithm."""
        return self._unary("log", "log", x)

    def log1p(self, x: Any) -> Any:
        """log(1 + x)."""
        return self._unary("log1p", "log1p", x)

    def sqrt(self, x: Any) -> Any:
        """Square root."""
        return self._unary("sqrt", "sqrt", x)

    def tanh(self, x: Any) -> Any:
        """Hyperbolic tangent."""
        return self._unary("tanh", "tanh", x)

    def abs(self, x: Any) -> Any:
        """Absolute value (``fabs``)."""
        return self._unary("abs", "fabs", x)

    def clip(self, x: Any, lo: Any, hi: Any) -> Any:
        """min(max(x, lo), hi), NaN propagating like ``numpy.clip``."""
        if _num(x) and _num(lo) and _num(hi):
            return float(np.clip(float(x), float(lo), float(hi)))
        return Sym(f"cs_clip({_code(x)}, {_code(lo)}, {_code(hi)})")

    def minimum(self, a: Any, b: Any) -> Any:
        """Elementwise minimum, NaN propagating like ``numpy.minimum``."""
        if _num(a) and _num(b):
            return float(np.minimum(float(a), float(b)))
        return Sym(f"cs_min({_code(a)}, {_code(b)})")

    def maximum(self, a: Any, b: Any) -> Any:
        """Elementwise maximum, NaN propagating like ``numpy.maximum``."""
        if _num(a) and _num(b):
            return float(np.maximum(float(a), float(b)))
        return Sym(f"cs_max({_code(a)}, {_code(b)})")

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        """``a`` where ``cond`` else ``b`` (a C conditional expression)."""
        if isinstance(cond, Sym):
            if not cond.is_bool:
                raise TypeError("xp.where: the condition must be a comparison of traced values")
            if self.dialect == "python":
                return Sym(f"({_code(a)} if {cond.code} else {_code(b)})")
            return Sym(f"({cond.code} ? {_code(a)} : {_code(b)})")
        return a if bool(cond) else b

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        """Pass-through: a traced scalar is already 'an array'."""
        return x

    def iscomplexobj(self, x: Any) -> bool:
        """Always False: the kernel runs in real arithmetic."""
        return False

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"xp.{name} is not supported by the C code generator (condspace._codegen.SymXP); "
                             "add it there, or write the rate function with exp/clip/where/abs")


SYMXP = SymXP()
SYMXP_PY = SymXP("python")


def trace(fn: Callable[..., Any], *names: str, dialect: str = "c") -> str:
    """Trace a rate function into a C (or Python) expression.

    Args:
        fn: A declared rate function, called as ``fn(xp, *args)``.
        names: Variable names of its arguments after ``xp`` (e.g. ``"v"``, ``"ca"``).
        dialect: ``"c"`` or ``"python"`` (see :class:`SymXP`).

    Returns:
        The C expression (a literal when the function is constant).

    Example:
        >>> from condspace.channels import sigmoid
        >>> trace(lambda xp, V: sigmoid(xp, V, 25.5, -5.29), "v")
        '(1.0 / (1.0 + exp(cs_clip(((v + 25.5) / (-5.29)), (-500.0), 500.0))))'
    """
    xp = {"c": SYMXP, "python": SYMXP_PY}.get(dialect)
    if xp is None:
        raise ValueError(f"dialect must be 'c' or 'python', got {dialect!r}")
    return _code(fn(xp, *(Sym(n) for n in names)))


# ----- kernel layout ---------------------------------------------------------------------------
KERNEL_PARAMS: tuple[tuple[str, str], ...] = (
    ("long long", "n"),  # neurons in this chunk
    ("int", "n_steps"),  # steps in this launch
    ("long long", "k0"),  # global index of this launch's first step
    ("long long", "k_total"),  # steps of the whole simulation (the last one is checked)
    ("int", "check_every"),  # steps between blow-up checks
    ("double", "transient"),  # ms: spikes before are not kept
    ("const real*", "gbar"),  # (n_channels - 1, n) maximal conductances, mS/cm²
    ("const real*", "gleak"),  # (n,) leak conductance, mS/cm²
    ("const real*", "drive0"),  # (n,) g_leak·E_leak + I_app, µA/cm²
    ("const real*", "noise"),  # (n_steps, n) noise current, µA/cm² (read only if has_noise)
    ("int", "has_noise"),
    ("real*", "V"),  # (n,) mV
    ("real*", "X"),  # (n_x, n) HH / calcium / instantaneous gates, Engine row order
    ("real*", "P"),  # (n_p, n) kinetic-scheme occupancies, Engine row order
    ("real*", "CA"),  # (n,) µM
    ("int*", "armed"),  # (n,) 1 while a spike may be detected
    ("int*", "ok"),  # (n,) 0 once a blow-up was detected
    ("double*", "spk_t"),  # (spk_cap,) spike times, ms
    ("long long*", "spk_i"),  # (spk_cap,) neuron index of each spike (within the chunk)
    ("unsigned long long*", "spk_count"),  # (1,) spikes found in this launch (may exceed spk_cap)
    ("unsigned long long", "spk_cap"),
    ("const int*", "rec_slot"),  # (n,) row of the trace buffer, −1 if not recorded (read only if has_rec)
    ("real*", "trace"),  # (n_rec, trace_len) voltage samples, mV
    ("long long", "trace_len"),
    ("int", "rec_every"),  # steps between samples
    ("int", "has_rec"),
)
"""The kernel's parameters, in order: (C type, name). ``real`` is double or float (the dtype)."""


@dataclass(frozen=True)
class KernelSource:
    """Generated source of one cell / dt / dtype and what a launcher needs to drive it.

    Attributes:
        source: C/CUDA source text.
        name: Kernel function name.
        dtype: ``"float64"`` or ``"float32"`` (the type of the state arrays, ``real``).
        dt: Time step (ms) compiled into the source.
        n_x: Rows of ``X`` (gates with one variable).
        n_p: Rows of ``P`` (integrated kinetic-scheme states).
        init_v: Declared initial V (mV).
        init_x: Initial gate values, rows of ``X``.
        init_p: Initial scheme occupancies, rows of ``P``.
        init_ca: Initial [Ca] (µM); 0 for a cell without a calcium pool.
        E_leak: Leak reversal (mV), for the drive g_leak·E_leak + I_app.
        n_active: Number of active channels (rows of ``gbar``).
    """

    source: str
    name: str
    dtype: str
    dt: float
    n_x: int
    n_p: int
    init_v: float
    init_x: tuple[float, ...]
    init_p: tuple[float, ...]
    init_ca: float
    E_leak: float
    n_active: int


def _powered(base: str, x: str, power: int) -> str:
    """ḡ·x^power exactly as :meth:`Engine.open_conductances` multiplies it (same rounding)."""
    out = f"({base} * {x})"
    if power == 4:
        out = f"(({out} * {x}) * ({x} * {x}))"
    else:
        for _ in range(power - 1):
            out = f"({out} * {x})"
    return out


def _chain(terms: list[str], op: str, empty: str) -> str:
    """Left-to-right ``op`` of ``terms`` (Python ``sum`` / sequential NumPy reductions)."""
    if not terms:
        return empty
    out = terms[0]
    for t in terms[1:]:
        out = f"({out} {op} {t})"
    return out


_PRELUDE = r"""/* Generated by condspace._codegen from the declaration of cell '{cell}' (dt = {dt} ms).
   Do not edit: regenerate. One source for NVRTC/nvcc (one thread per neuron) and plain C. */
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define CS_DEVICE __device__ __forceinline__
#define CS_RESTRICT __restrict__
#define CS_GLOBAL extern "C" __global__
#else
#define CS_DEVICE static inline
#define CS_RESTRICT restrict
#define CS_GLOBAL
#endif
#ifndef __CUDACC_RTC__
#include <math.h>
#endif

typedef {real} real;

/* NaN-propagating clip / min / max, like numpy.clip / minimum / maximum. */
CS_DEVICE double cs_clip(double x, double lo, double hi) {{ return x < lo ? lo : (x > hi ? hi : x); }}
CS_DEVICE double cs_min(double a, double b) {{ return (a != a || a < b) ? a : b; }}
CS_DEVICE double cs_max(double a, double b) {{ return (a != a || a > b) ? a : b; }}
/* Finite test without isfinite(): x − x is 0 for finite x and NaN for ±inf and NaN. */
CS_DEVICE int cs_finite(double x) {{ return (x - x) == 0.0; }}
"""


# Matrix exponential for the kinetic schemes: scaling and squaring with a diagonal Padé
# approximant of degree 3, 5, 7, 9 or 13 chosen by the 1-norm (Higham 2005, SIAM J. Matrix Anal.
# Appl. 26:1179; θ_m from its Table 2.3). SciPy's expm (Al-Mohy & Higham 2009) is a refinement of
# the same method; both are accurate to a few units of rounding for these small generators.
_THETA = {3: 1.495585217958292e-2, 5: 2.539398330063230e-1, 7: 9.504178996162932e-1,
          9: 2.097847961257068e0, 13: 5.371920351148152e0}


def _pade(m: int) -> list[str]:
    """Coefficients b_j = (2m − j)! / (j! (m − j)!) of the degree-m Padé numerator, as C literals."""
    f = math.factorial
    return [literal(float(f(2 * m - j) // (f(j) * f(m - j)))) for j in range(m + 1)]


def _pade13_parts(eye: str) -> tuple[str, str, str, str]:
    """Entry ``e`` of the degree-13 Padé parts, as expressions valid in C and in Python.

    Returns (high odd, high even, low odd, low even): the sums over A6, A4, A2 (``[e]``-indexed
    arrays) with b_13..b_8 and b_7..b_2, the low ones plus b_1 or b_0 times ``eye`` (entry e of
    the identity, written in the caller's dialect).
    """
    b13 = _pade(13)

    def chain(ks: tuple[int, int, int], extra: list[str]) -> str:
        return _chain([f"({b13[k]} * {p}[e])" for k, p in zip(ks, ("A6", "A4", "A2"), strict=True)] + extra,
                      "+", "0.0")

    return (chain((13, 11, 9), []), chain((12, 10, 8), []),
            chain((7, 5, 3), [f"({b13[1]} * {eye})"]), chain((6, 4, 2), [f"({b13[0]} * {eye})"]))


def _expm_c(n: int) -> str:
    """C source of ``cs_expm<n>(A, E)``: E = expm(A) for a row-major n×n matrix (A is overwritten)."""
    nn = n * n
    eye = f"((e % {n + 1}) == 0 ? 1.0 : 0.0)"  # entry e of the identity
    th = {m: literal(v) for m, v in _THETA.items()}

    def part(m: int, powers: tuple[str, ...], odd: bool, skip: int = 0) -> str:
        """Σ_k b_(2k+odd) · powers[k-1] (+ b_odd · I): one entry of the odd or even Padé part."""
        b = _pade(m)
        terms = [f"({b[2 * k + odd]} * {p}[e])" for k, p in reversed(list(enumerate(powers, start=1))) if k > skip]
        if skip == 0:
            terms.append(f"({b[int(odd)]} * {eye})")
        return _chain(terms, "+", "0.0")

    def both(m: int, powers: tuple[str, ...]) -> str:
        return (f"for (int e = 0; e < {nn}; ++e) {{\n"
                f"      T[e] = {part(m, powers, True)};\n      V[e] = {part(m, powers, False)}; }}")

    hi_odd, hi_even, lo_odd, lo_even = _pade13_parts(eye)
    return f"""
CS_DEVICE void cs_matmul{n}(const double* X, const double* Y, double* Z) {{
  for (int i = 0; i < {n}; ++i)
    for (int j = 0; j < {n}; ++j) {{
      double acc = 0.0;
      for (int k = 0; k < {n}; ++k) acc += X[i * {n} + k] * Y[k * {n} + j];
      Z[i * {n} + j] = acc;
    }}
}}

/* E = expm(A), A row-major {n}x{n} (overwritten): scaling and squaring, diagonal Pade approximant. */
CS_DEVICE void cs_expm{n}(double* A, double* E) {{
  double nrm = 0.0;  /* 1-norm */
  for (int j = 0; j < {n}; ++j) {{
    double c = 0.0;
    for (int i = 0; i < {n}; ++i) c += fabs(A[i * {n} + j]);
    if (c > nrm) nrm = c;
  }}
  if (!(nrm <= 1e300)) {{ for (int e = 0; e < {nn}; ++e) E[e] = nrm - nrm; return; }}  /* inf: NaN out */
  int s = 0;
  if (nrm > {th[13]}) {{
    s = (int)ceil(log2(nrm / {th[13]}));
    const double sc = ldexp(1.0, -s);
    for (int e = 0; e < {nn}; ++e) A[e] = A[e] * sc;
  }}
  double A2[{nn}], A4[{nn}], A6[{nn}], U[{nn}], V[{nn}], T[{nn}], W[{nn}];
  cs_matmul{n}(A, A, A2);
  if (nrm <= {th[3]}) {{
    {both(3, ("A2",))}
  }} else {{
    cs_matmul{n}(A2, A2, A4);
    if (nrm <= {th[5]}) {{
      {both(5, ("A2", "A4"))}
    }} else {{
      cs_matmul{n}(A4, A2, A6);
      if (nrm <= {th[7]}) {{
        {both(7, ("A2", "A4", "A6"))}
      }} else if (nrm <= {th[9]}) {{
        cs_matmul{n}(A4, A4, W);  /* A^8 */
        {both(9, ("A2", "A4", "A6", "W"))}
      }} else {{  /* degree 13: A^6 (b13 A^6 + b11 A^4 + b9 A^2) + b7 A^6 + ..., likewise the even part */
        for (int e = 0; e < {nn}; ++e) {{
          U[e] = {hi_odd};
          W[e] = {hi_even}; }}
        cs_matmul{n}(A6, U, T);
        cs_matmul{n}(A6, W, V);
        for (int e = 0; e < {nn}; ++e) {{
          T[e] = (T[e] + {lo_odd});
          V[e] = (V[e] + {lo_even}); }}
      }}
    }}
  }}
  cs_matmul{n}(A, T, U);  /* U: odd part, V: even part */
  for (int e = 0; e < {nn}; ++e) {{ A2[e] = V[e] - U[e]; E[e] = V[e] + U[e]; }}
  /* Solve (V - U) E = (V + U): Gaussian elimination with partial pivoting. */
  for (int c = 0; c < {n}; ++c) {{
    int p = c;
    double best = fabs(A2[c * {n} + c]);
    for (int r = c + 1; r < {n}; ++r)
      if (fabs(A2[r * {n} + c]) > best) {{ best = fabs(A2[r * {n} + c]); p = r; }}
    if (p != c)
      for (int k = 0; k < {n}; ++k) {{
        double t = A2[c * {n} + k]; A2[c * {n} + k] = A2[p * {n} + k]; A2[p * {n} + k] = t;
        t = E[c * {n} + k]; E[c * {n} + k] = E[p * {n} + k]; E[p * {n} + k] = t;
      }}
    for (int r = c + 1; r < {n}; ++r) {{
      const double f = A2[r * {n} + c] / A2[c * {n} + c];
      for (int k = c; k < {n}; ++k) A2[r * {n} + k] -= f * A2[c * {n} + k];
      for (int k = 0; k < {n}; ++k) E[r * {n} + k] -= f * E[c * {n} + k];
    }}
  }}
  for (int c = {n} - 1; c >= 0; --c)
    for (int k = 0; k < {n}; ++k) {{
      double acc = E[c * {n} + k];
      for (int r = c + 1; r < {n}; ++r) acc -= A2[c * {n} + r] * E[r * {n} + k];
      E[c * {n} + k] = acc / A2[c * {n} + c];
    }}
  for (int q = 0; q < s; ++q) {{  /* undo the scaling: square s times */
    cs_matmul{n}(E, E, T);
    for (int e = 0; e < {nn}; ++e) E[e] = T[e];
  }}
}}
"""

def _conductance_products(eng: Engine) -> list[str]:
    """Per channel, ḡ·Π x^power over the kernel's variables (gb<c>, x<k>, p<k>), in the order of
    :meth:`Engine.open_conductances` (factors as :meth:`Engine._build_factors` lists them)."""
    row_name = {}
    for k, s in enumerate(eng.hh + eng.ca_gates + eng.inst):
        row_name[id(s.gate), s.channel] = f"x{k}"
    for k, s in enumerate(eng.schemes):
        states = list(s.gate.states)
        row_name[id(s.gate), s.channel] = f"p{eng.scheme_offsets[k] + states.index(s.gate.open_state) - 1}"
    order = eng.hh + eng.ca_gates + eng.inst + eng.schemes
    out = []
    for c in range(eng.n_channels):
        expr = f"gb{c}"
        for s in order:
            if s.channel == c:
                expr = _powered(expr, row_name[id(s.gate), s.channel], s.gate.power)
        out.append(expr)
    return out


def _calcium_inf(eng: Engine) -> str:
    """[Ca]∞ = β − α·I_Ca(V(t)) over the new conductances g<c> (the calcium pool of the cell)."""
    pool = eng.cell.calcium
    i_ca = _chain([f"(g{c} * (v - {literal(eng.E_host[c])}))" for c in eng.ca_channels], "+", "0.0")
    return f"({literal(pool.beta)} - ({literal(pool.alpha)} * {i_ca}))"


def generate(cell: CellType, dt: float, dtype: str = "float64") -> KernelSource:
    """Generate the fused time-stepping kernel of ``cell`` for time step ``dt``.

    Args:
        cell: The cell declaration.
        dt: Time step (ms); it is compiled in as a constant.
        dtype: ``"float64"`` (state and arithmetic in double) or ``"float32"`` (state stored
            and carried between operations in float; constants and library calls in double).

    Returns:
        The :class:`KernelSource`.

    Raises:
        ValueError: For an unknown dtype or a non-positive dt.
    """
    if dtype not in _REAL:
        raise ValueError(f"dtype={dtype!r} is not supported by the kernel generator; use 'float64' or 'float32'")
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"dt must be a finite number > 0 ms, got {dt}")
    eng = Engine(cell, float(dt), np, np.float64, "exact")  # the layout the NumPy engine uses
    init = eng.initial(1)
    n_x, n_p = eng.n_x, int(eng.scheme_offsets[-1])
    C = eng.n_channels
    E = [float(ch.reversal) for ch in cell.channels]
    L = literal
    mdt = L(-float(dt))

    body: list[str] = []
    add = body.append
    add("    /* ---- gates, with V(t) and [Ca](t) (Rush–Larsen / exponential Euler) ---- */")
    for k, s in enumerate(eng.hh):
        ch = cell.channels[s.channel]
        add(f"    {{ /* {ch.name}.{s.gate.name}: x_inf(V), tau(V) */")
        add(f"      const real xinf = {trace(s.gate.inf, 'v')};")
        add(f"      const real dec = exp(({mdt} / {trace(s.gate.tau, 'v')}));")
        add(f"      x{k} = (((x{k} - xinf) * dec) + xinf); }}")
    nh = len(eng.hh)
    for j, s in enumerate(eng.ca_gates):
        k = nh + j
        ch = cell.channels[s.channel]
        add(f"    {{ /* {ch.name}.{s.gate.name}: x_inf(V, [Ca]), tau(V) */")
        add(f"      const real xinf = {trace(s.gate.inf, 'v', 'ca')};")
        add(f"      const real dec = exp(({mdt} / {trace(s.gate.tau, 'v')}));")
        add(f"      x{k} = (((x{k} - xinf) * dec) + xinf); }}")
    nc = len(eng.ca_gates)
    for j, s in enumerate(eng.inst):
        k = nh + nc + j
        ch = cell.channels[s.channel]
        add(f"    x{k} = {trace(s.gate.inf, 'v')}; /* {ch.name}.{s.gate.name}: instantaneous */")
    for si, s in enumerate(eng.schemes):
        sch = s.gate
        states = list(sch.states)
        ns = len(states)
        pos = {st: i for i, st in enumerate(states)}
        occ = ["o0"] + [f"p{eng.scheme_offsets[si] + i}" for i in range(ns - 1)]
        ch = cell.channels[s.channel]
        add(f"    {{ /* {ch.name}.{sch.name}: kinetic scheme {states}, '{states[0]}' by conservation;")
        add("         exact propagator M = expm(Q(V)·dt) at frozen V (kinetics.scheme_propagator) */")
        for ti, t in enumerate(sch.transitions):
            add(f"      const double r{ti} = {trace(t.rate, 'v')}; /* {t.source} -> {t.target} */")
        add(f"      double A[{ns * ns}] = {{{', '.join(['0.0'] * ns * ns)}}};")
        for ti, t in enumerate(sch.transitions):  # Q[target, source] += r; Q[source, source] -= r
            i, j = pos[t.source], pos[t.target]
            add(f"      A[{j * ns + i}] += r{ti}; A[{i * ns + i}] -= r{ti};")
        add(f"      for (int e = 0; e < {ns * ns}; ++e) A[e] = A[e] * {L(dt)};")
        add(f"      double M[{ns * ns}];")
        add(f"      cs_expm{ns}(A, M);")
        add(f"      const double o0 = (1.0 - {_chain(occ[1:], '+', '0.0')});")
        for i in range(1, ns):
            terms = [f"(M[{i * ns + j}] * {occ[j]})" for j in range(ns)]
            add(f"      const real n{i} = {_chain(terms, '+', '0.0')};")
        add("      " + " ".join(f"{occ[i]} = n{i};" for i in range(1, ns)))
        add("    }")

    add("    /* ---- open conductances: gbar · Π x^power ---- */")
    for c, expr in enumerate(_conductance_products(eng)):
        add(f"    const real g{c} = {expr}; /* {cell.channels[c].name} */")

    if eng.ca_decay is not None:
        add("    /* ---- [Ca] with the currents at V(t) ---- */")
        add(f"    {{ const real ca_inf = {_calcium_inf(eng)};")
        add(f"      ca = (((ca - ca_inf) * {L(eng.ca_decay)}) + ca_inf); }}")

    g_tot = f"({_chain([f'g{c}' for c in range(C)], '+', '0.0')} + gl)"
    e_g = _chain([f"({L(E[c])} * g{c})" for c in range(C)], "+", "0.0")
    add("    /* ---- V by exponential Euler with the new conductances ---- */")
    add(f"    {{ const real gt = {g_tot};")
    add(f"      const real vinf = (({e_g} + drive) / gt);")
    add(f"      const real dec = exp((gt * {L(-float(dt) * eng.inv_cap)}));")
    add("      v = (((v - vinf) * dec) + vinf); }")

    xs = [f"x{k}" for k in range(n_x)]
    ps = [f"p{k}" for k in range(n_p)]
    finite = " && ".join(f"cs_finite({s})" for s in ["v", "ca", *xs, *ps])
    reset = " ".join([f"v = {L(float(init['V'][0]))};", f"ca = {L(float(init['ca'][0]))};"]
                     + [f"x{k} = {L(float(init['X'][k, 0]))};" for k in range(n_x)]
                     + [f"p{k} = {L(float(init['P'][k, 0]))};" for k in range(n_p)])

    decl = ["    real v = V[i];", "    real ca = CA[i];"]
    decl += [f"    real x{k} = X[{k}LL * n + i];" for k in range(n_x)]
    decl += [f"    real p{k} = P[{k}LL * n + i];" for k in range(n_p)]
    decl += [f"    const real gb{c} = gbar[{c}LL * n + i];" for c in range(C)]
    store = ["    V[i] = v;", "    CA[i] = ca;"]
    store += [f"    X[{k}LL * n + i] = x{k};" for k in range(n_x)]
    store += [f"    P[{k}LL * n + i] = p{k};" for k in range(n_p)]

    params = ",\n    ".join(f"{t} {'CS_RESTRICT ' if t.endswith('*') else ''}{nm}" for t, nm in KERNEL_PARAMS)
    args = ", ".join(nm for _, nm in KERNEL_PARAMS)
    thr, rearm = L(SPIKE_THRESHOLD), L(SPIKE_REARM)
    src = [_PRELUDE.format(cell=cell.name, dt=repr(float(dt)), real=_REAL[dtype])]
    src += [_expm_c(n) for n in sorted({len(s.gate.states) for s in eng.schemes})]
    src.append(f"""
/* Advance neuron i by n_steps steps; its state stays in registers in between. */
CS_DEVICE void cs_neuron(long long i,
    {params})
{{
{chr(10).join(decl)}
    const real gl = gleak[i];
    const real drive_base = drive0[i];
    int arm = armed[i];
    int good = ok[i];
    const int slot = has_rec ? rec_slot[i] : -1;
    /* Phases of step k + 1 in the check and sampling cycles: counters, not a 64-bit modulo per step. */
    int check_phase = (int)(k0 % check_every);
    int rec_phase = (int)(k0 % rec_every);
    for (int s = 0; s < n_steps; ++s) {{
    const long long k = k0 + s;
    const real drive = has_noise ? (real)(drive_base + noise[(long long)s * n + i]) : drive_base;
    const real v_old = v;
{chr(10).join(body)}
    /* ---- spike: upward crossing of {SPIKE_THRESHOLD} mV while armed; re-armed below {SPIKE_REARM} mV ---- */
    if (v >= {thr} && arm) {{
      const double t = (((double)k + (({thr} - v_old) / (v - v_old))) * {L(dt)});
      arm = 0;
      if (t >= transient) {{
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
        const unsigned long long at = atomicAdd(spk_count, 1ULL);
#else
        const unsigned long long at = (*spk_count)++;
#endif
        if (at < spk_cap) {{ spk_t[at] = t; spk_i[at] = i; }}
      }}
    }}
    if (v < {rearm}) arm = 1;
    if (++rec_phase == rec_every) {{
      rec_phase = 0;
      if (slot >= 0) trace[(long long)slot * trace_len + (k + 1) / rec_every] = v;
    }}
    /* ---- blow-up check: non-finite state or V outside {V_BOUNDS} mV -> flag, reset to the initial state ---- */
    if (++check_phase == check_every) check_phase = 0;
    if (check_phase == 0 || k + 1 == k_total) {{
      if (!({finite}) || v < {L(V_BOUNDS[0])} || v > {L(V_BOUNDS[1])}) {{
        good = 0;
        {reset}
      }}
    }}
    }}
{chr(10).join(store)}
    armed[i] = arm;
    ok[i] = good;
}}

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
CS_GLOBAL void {KERNEL_NAME}(
    {params})
{{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) cs_neuron(i, {args});
}}
#else
void {KERNEL_NAME}(
    {params})
{{
    for (long long i = 0; i < n; ++i) cs_neuron(i, {args});
}}
#endif
""")
    return KernelSource(
        source="".join(src), name=KERNEL_NAME, dtype=dtype, dt=float(dt), n_x=n_x, n_p=n_p,
        init_v=float(init["V"][0]), init_x=tuple(float(x) for x in init["X"][:, 0]),
        init_p=tuple(float(p) for p in init["P"][:, 0]), init_ca=float(init["ca"][0]),
        E_leak=float(cell.leak_reversal), n_active=C)


# ----- the Numba (CPU) kernel -------------------------------------------------------------------
NUMBA_PARAMS: tuple[str, ...] = (
    "n_steps",  # int: steps in this launch
    "k0",  # int: global index of this launch's first step
    "k_total",  # int: steps of the whole simulation (the last one is checked)
    "check_every",  # int: steps between blow-up checks
    "transient",  # float, ms: spikes before are not kept
    "dt",  # float, ms: time step
    "neg_dt",  # float: -dt (Engine: exp(-dt / tau))
    "v_rate",  # float: -dt / C_m (Engine: exp(g_tot · (-dt · 1/C_m)))
    "ca_decay",  # float: exp(-dt / tau_Ca) (unused without a calcium pool)
    "gbar",  # (n_channels - 1, n) maximal conductances, mS/cm²
    "gleak",  # (n,) leak conductance, mS/cm²
    "drive0",  # (n,) g_leak·E_leak + I_app, µA/cm²
    "noise",  # (n, n_steps) noise current, µA/cm² (read only if has_noise)
    "has_noise",  # bool
    "V",  # (n,) mV
    "X",  # (n_x, n) HH / calcium / instantaneous gates, Engine row order
    "P",  # (n_p, n) kinetic-scheme occupancies, Engine row order
    "CA",  # (n,) µM
    "armed",  # (n,) bool: a spike may be detected
    "ok",  # (n,) bool: False once a blow-up was detected
    "table",  # (grid rows, 2·width) rate table: values, then increments to the next grid point
    "spk_t",  # (n, cap) spike times of this launch, ms
    "spk_n",  # (n,) spikes found in this launch per neuron (may exceed cap: then rerun)
    "rec_slot",  # (n,) row of the trace buffer, -1 if not recorded
    "trace",  # (n_rec, trace_len) voltage samples, mV
    "rec_every",  # int: steps between samples
)
"""Parameters of the generated Numba kernels, in order."""

NUMBA_KERNELS = ("advance_serial", "advance_parallel")
"""The two entry points of a generated module: the same loop compiled without and with threads."""

NUMBA_GROUP = 1
"""Neurons advanced side by side in one loop iteration of the Numba kernel (the launcher pads a
chunk to a multiple). Interleaving independent neurons lets an out-of-order CPU overlap their
chains of dependent operations; measured on a 2-core AMD EPYC (STG, table), 2 and 4 were no
faster than 1 and cost 3× the compile time, so the default is 1."""

_PER_NEURON = re.compile(r"\b(v|ca|xinf|dec|u|j|f|o0|ca_inf|gt|vinf|v_old|drive|drive_base|gl|arm|good|slot|count|"
                         r"t|A|M|r|i|scratch|work|x\d+|p\d+|gb\d+|g\d+|n\d+)\b")


def _rename(line: str, b: int) -> str:
    """One line of a neuron's code with its local variables suffixed ``_<b>`` (neuron b of a group)."""
    code, hash_, comment = line.partition("#")
    return _PER_NEURON.sub(lambda m: f"{m.group(1)}_{b}", code) + hash_ + comment
"""The two entry points of a generated module: the same loop compiled without and with threads."""


@dataclass(frozen=True)
class NumbaSource:
    """Python source of the Numba kernels of one cell / dt / method, and what the launcher needs.

    Attributes:
        source: Python module text (defines :data:`NUMBA_KERNELS`).
        method: ``"table"`` or ``"exact"``.
        dt: Time step (ms) compiled into the source.
        n_x, n_p, init_v, init_x, init_p, init_ca, E_leak, n_active: As in :class:`KernelSource`.
        table: (grid rows, 2·width) rate table for ``method="table"`` (the NumPy engine's own
            table, transposed so that one voltage reads one contiguous row); a (1, 1) dummy otherwise.
        group_size: The kernels take chunks whose length is a multiple of this.
        neg_dt, v_rate, ca_decay: Kernel arguments that depend on dt (see :data:`NUMBA_PARAMS`),
            computed by the expressions :class:`Engine` uses, so they are the same doubles.
    """

    source: str
    method: str
    dt: float
    n_x: int
    n_p: int
    init_v: float
    init_x: tuple[float, ...]
    init_p: tuple[float, ...]
    init_ca: float
    E_leak: float
    n_active: int
    table: np.ndarray
    group_size: int = 1
    neg_dt: float = 0.0
    v_rate: float = 0.0
    ca_decay: float = 0.0


_NUMBA_PRELUDE = '''"""Generated by condspace._codegen.generate_numba from the declaration of cell {cell!r}
(method = {method!r}; dt and the rate table are arguments: one compilation serves every dt).
Do not edit: regenerate. Same arithmetic, in the same order,
as condspace._engine.Engine.step; the rate expressions come from the tracer that writes the C/CUDA kernel."""
import math  # noqa: F401
from math import exp, expm1, fabs, log, log1p, pow, sqrt, tanh  # noqa: F401  (names the traced code calls)

import numba
import numpy as np  # noqa: F401


@numba.njit(cache=True, inline="always")
def cs_clip(x, lo, hi):
    return lo if x < lo else (hi if x > hi else x)


@numba.njit(cache=True, inline="always")
def cs_min(a, b):
    return a if (a != a or a < b) else b


@numba.njit(cache=True, inline="always")
def cs_max(a, b):
    return a if (a != a or a > b) else b


@numba.njit(cache=True, inline="always")
def cs_finite(x):
    return (x - x) == 0.0
'''


def _indent(lines: list[str], n: int) -> str:
    return "\n".join((" " * n + line) if line else "" for line in lines)


def generate_numba(cell: CellType, dt: float, method: str = "table", group_size: int = NUMBA_GROUP) -> NumbaSource:
    """Generate the Numba CPU kernels of ``cell`` for time step ``dt``.

    One generated function advances every neuron of a chunk ``n_steps`` steps: the outer loop
    over neurons (``numba.prange`` in the threaded variant), the inner loop over time with the
    neuron's state in local variables, spike detection and the blow-up check inside, like the
    C/CUDA kernel of :func:`generate`. The arithmetic follows :meth:`Engine.step` operation by
    operation (the same operand order, so the same rounding): with ``method="table"`` the rates
    are interpolated from the NumPy engine's own rate table, with ``"exact"`` they are the traced
    rate functions, and the kinetic-scheme propagator is a generated matrix exponential.

    Args:
        cell: The cell declaration.
        dt: Time step (ms), compiled in.
        method: ``"table"`` or ``"exact"``.
        group_size: Neurons advanced side by side per loop iteration (:data:`NUMBA_GROUP`).

    Returns:
        The :class:`NumbaSource`.

    Raises:
        ValueError: Unknown method or a non-positive dt.
    """
    if method not in ("table", "exact"):
        raise ValueError(f"method must be 'table' or 'exact', got {method!r}")
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"dt must be a finite number > 0 ms, got {dt}")
    eng = Engine(cell, float(dt), np, np.float64, method)
    init = eng.initial(1)
    n_x, n_p, C, cols = eng.n_x, int(eng.scheme_offsets[-1]), eng.n_channels, eng.cols
    L, w = literal, cols.width

    def tr(fn: Callable[..., Any], *names: str) -> str:
        return trace(fn, *names, dialect="python")

    def col(c: int) -> str:  # Engine.rates: increment·f + value at the grid point below V
        return f"((table[j, {w + c}] * f) + table[j, {c}])"

    body: list[str] = []
    add = body.append
    if method == "table":
        add("# ---- rate-table row and fraction at V(t) (Engine.rates) ----")
        add(f"u = ((v - {L(eng.table_lo)}) * {L(eng.table_inv_step)})")
        add("if not (u > 0.0):  # also NaN (flagged at the next check): stay inside the table")
        add("    u = 0.0")
        add(f"elif u > {L(eng.table_n - 1e-9)}:")
        add(f"    u = {L(eng.table_n - 1e-9)}")
        add("j = int(u)")
        add("f = (u - j)")
    add("# ---- gates, with V(t) and [Ca](t) (Rush-Larsen / exponential Euler) ----")
    for k, s in enumerate(eng.hh):
        add(f"# {cell.channels[s.channel].name}.{s.gate.name}")
        if method == "table":
            add(f"xinf = {col(cols.hh_inf.start + k)}")
            add(f"dec = {col(cols.hh_decay.start + k)}")
        else:
            add(f"xinf = {tr(s.gate.inf, 'v')}")
            add(f"dec = exp((neg_dt / {tr(s.gate.tau, 'v')}))")
        add(f"x{k} = (((x{k} - xinf) * dec) + xinf)")
    nh = len(eng.hh)
    for j, s in enumerate(eng.ca_gates):
        k = nh + j
        add(f"# {cell.channels[s.channel].name}.{s.gate.name}: x_inf(V, [Ca]) exact, as Engine.step")
        add(f"xinf = {tr(s.gate.inf, 'v', 'ca')}")
        add(f"dec = {col(cols.ca_decay.start + j)}" if method == "table"
            else f"dec = exp((neg_dt / {tr(s.gate.tau, 'v')}))")
        add(f"x{k} = (((x{k} - xinf) * dec) + xinf)")
    nc = len(eng.ca_gates)
    for j, s in enumerate(eng.inst):
        k = nh + nc + j
        add(f"# {cell.channels[s.channel].name}.{s.gate.name}: instantaneous")
        add(f"x{k} = {col(cols.inst_inf.start + j) if method == 'table' else tr(s.gate.inf, 'v')}")
    for si, s in enumerate(eng.schemes):
        states = list(s.gate.states)
        ns = len(states)
        occ = ["o0"] + [f"p{eng.scheme_offsets[si] + i}" for i in range(ns - 1)]
        add(f"# {cell.channels[s.channel].name}.{s.gate.name}: kinetic scheme {states}, "
            f"'{states[0]}' by conservation, propagator M = expm(Q(V)·dt)")
        if method == "table":
            entry = {(i, jj): col(r) for i, row_ids in enumerate(cols.scheme[si], start=1)
                     for jj, r in enumerate(row_ids)}
        else:
            pos = {st: i for i, st in enumerate(states)}
            add(f"A = scratch[{si}]")
            add("A[:] = 0.0")
            for t in s.gate.transitions:
                a, b = pos[t.source], pos[t.target]
                add(f"r = {tr(t.rate, 'v')}  # {t.source} -> {t.target}")
                add(f"A[{b * ns + a}] += r")
                add(f"A[{a * ns + a}] -= r")
            add(f"for e in range({ns * ns}):")
            add("    A[e] = A[e] * dt")
            add(f"M = cs_expm{ns}(A, work)")
            entry = {(i, jj): f"M[{i * ns + jj}]" for i in range(1, ns) for jj in range(ns)}
        add(f"o0 = (1.0 - {_chain(occ[1:], '+', '0.0')})")
        for i in range(1, ns):
            add(f"n{i} = {_chain([f'({entry[i, jj]} * {occ[jj]})' for jj in range(ns)], '+', '0.0')}")
        for i in range(1, ns):
            add(f"{occ[i]} = n{i}")
    add("# ---- open conductances: gbar · Π x^power (Engine.open_conductances) ----")
    for c, expr in enumerate(_conductance_products(eng)):
        add(f"g{c} = {expr}  # {cell.channels[c].name}")
    if eng.ca_decay is not None:
        add("# ---- [Ca] with the currents at V(t) ----")
        add(f"ca_inf = {_calcium_inf(eng)}")
        add("ca = (((ca - ca_inf) * ca_decay) + ca_inf)")
    add("# ---- V by exponential Euler with the new conductances (Engine.step's summation order) ----")
    add(f"gt = ({_chain([f'g{c}' for c in range(C)], '+', '0.0')} + gl)")
    add(f"vinf = ({_chain(['drive'] + [f'({L(eng.E_host[c])} * g{c})' for c in range(C)], '+', '0.0')} / gt)")
    add("dec = exp((gt * v_rate))")
    add("v = (((v - vinf) * dec) + vinf)")

    xs, ps = [f"x{k}" for k in range(n_x)], [f"p{k}" for k in range(n_p)]
    finite = " and ".join(f"cs_finite({s})" for s in ["v", "ca", *xs, *ps])
    reset = ([f"v = {L(float(init['V'][0]))}", f"ca = {L(float(init['ca'][0]))}"]
             + [f"x{k} = {L(float(init['X'][k, 0]))}" for k in range(n_x)]
             + [f"p{k} = {L(float(init['P'][k, 0]))}" for k in range(n_p)])
    load = (["v = V[i]", "ca = CA[i]"] + [f"x{k} = X[{k}, i]" for k in range(n_x)]
            + [f"p{k} = P[{k}, i]" for k in range(n_p)] + [f"gb{c} = gbar[{c}, i]" for c in range(C)])
    store = (["V[i] = v", "CA[i] = ca"] + [f"X[{k}, i] = x{k}" for k in range(n_x)]
             + [f"P[{k}, i] = p{k}" for k in range(n_p)])
    sizes = sorted({len(s.gate.states) for s in eng.schemes})
    scratch = []
    if method == "exact" and eng.schemes:
        big = max(sizes) ** 2
        scratch = [f"scratch = np.zeros(({len(eng.schemes)}, {big}))",
                   f"work = np.zeros((8, {big}))"]
    thr, rearm = L(SPIKE_THRESHOLD), L(SPIKE_REARM)
    step = [  # one neuron's step; k, do_rec and do_check are shared by the group
        "drive = (drive_base + noise[i, s]) if has_noise else drive_base",
        "v_old = v",
        *body,
        f"# ---- spike: upward crossing of {SPIKE_THRESHOLD} mV while armed; re-armed below {SPIKE_REARM} mV ----",
        f"if v >= {thr} and arm:",
        "    t = ((k + ((" + thr + " - v_old) / (v - v_old))) * dt)",
        "    arm = False",
        "    if t >= transient:",
        "        if count < cap:",
        "            spk_t[i, count] = t",
        "        count += 1",
        f"if v < {rearm}:",
        "    arm = True",
        "if do_rec and slot >= 0:",
        "    trace[slot, (k + 1) // rec_every] = v",
        f"# ---- blow-up check: non-finite state or V outside {V_BOUNDS} mV -> flag, reset to the initial state ----",
        "if do_check:",
        f"    if not ({finite}) or v < {L(V_BOUNDS[0])} or v > {L(V_BOUNDS[1])}:",
        "        good = False",
        *("        " + r for r in reset),
    ]
    start = [*load, "gl = gleak[i]", "drive_base = drive0[i]", "arm = armed[i]", "good = ok[i]",
             "slot = rec_slot[i]", "count = 0", *scratch]
    finish = [*store, "armed[i] = arm", "ok[i] = good", "spk_n[i] = count"]
    # group_size neurons per loop iteration, each with its own variables (see NUMBA_GROUP).
    group = [f"i = grp * {group_size} + {b}" for b in range(group_size)]
    group = [_rename(line, b) for b, line in enumerate(group)]
    for b in range(group_size):
        group += [_rename(line, b) for line in start]
    group += ["check_phase = k0 % check_every", "rec_phase = k0 % rec_every", "for s in range(n_steps):"]
    group += ["    " + line for line in (
        "k = k0 + s",
        "rec_phase += 1",
        "do_rec = rec_phase == rec_every",
        "if do_rec:",
        "    rec_phase = 0",
        "check_phase += 1",
        "if check_phase == check_every:",
        "    check_phase = 0",
        "do_check = check_phase == 0 or k + 1 == k_total")]
    for b in range(group_size):
        group += ["    " + _rename(line, b) for line in step]
    for b in range(group_size):
        group += [_rename(line, b) for line in finish]
    src = [_NUMBA_PRELUDE.format(cell=cell.name, method=method)]
    src += [_expm_py(n) for n in sizes] if method == "exact" else []
    for name, parallel in zip(NUMBA_KERNELS, (False, True), strict=True):
        flags = "parallel=True, " if parallel else ""
        src.append(f"""

@numba.njit({flags}cache=True, nogil=True, error_model="numpy")
def {name}({", ".join(NUMBA_PARAMS)}):
    n = V.shape[0]  # a multiple of {group_size} (the launcher pads the chunk)
    cap = spk_t.shape[1]
    for grp in numba.prange(n // {group_size}):
{_indent(group, 8)}
""")
    table = np.ascontiguousarray(eng.table.T) if method == "table" else np.zeros((1, 1))
    return NumbaSource(
        source="".join(src), method=method, dt=float(dt), n_x=n_x, n_p=n_p,
        init_v=float(init["V"][0]), init_x=tuple(float(x) for x in init["X"][:, 0]),
        init_p=tuple(float(p) for p in init["P"][:, 0]), init_ca=float(init["ca"][0]),
        E_leak=float(cell.leak_reversal), n_active=C, table=table, group_size=group_size,
        neg_dt=-float(dt), v_rate=-float(dt) * eng.inv_cap,  # the very expressions of Engine
        ca_decay=float(eng.ca_decay) if eng.ca_decay is not None else 0.0)


def _expm_py(n: int) -> str:
    """Python (Numba) source of ``cs_expm<n>(A, work)``: the routine of :func:`_expm_c`, line for line.

    ``A`` (n·n, row-major) is overwritten; ``work`` is an (8, ≥ n·n) scratch array; the result
    is returned as a view of ``work[7]``.
    """
    nn = n * n
    th = {m: literal(v) for m, v in _THETA.items()}

    def eye(e: str) -> str:
        return f"(1.0 if ({e} % {n + 1}) == 0 else 0.0)"

    def part(m: int, powers: tuple[str, ...], odd: bool) -> str:
        b = _pade(m)
        terms = [f"({b[2 * k + odd]} * {p}[e])" for k, p in reversed(list(enumerate(powers, start=1)))]
        terms.append(f"({b[int(odd)]} * {eye('e')})")
        return _chain(terms, "+", "0.0")

    def both(m: int, powers: tuple[str, ...], pad: str) -> str:
        return (f"{pad}for e in range({nn}):\n{pad}    T[e] = {part(m, powers, True)}\n"
                f"{pad}    Vv[e] = {part(m, powers, False)}")

    hi_odd, hi_even, lo_odd, lo_even = _pade13_parts(eye("e"))
    return f'''

@numba.njit(cache=True, inline="always")
def cs_matmul{n}(X, Y, Z):
    for i in range({n}):
        for j in range({n}):
            acc = 0.0
            for k in range({n}):
                acc += X[i * {n} + k] * Y[k * {n} + j]
            Z[i * {n} + j] = acc


@numba.njit(cache=True, error_model="numpy")
def cs_expm{n}(A, work):
    A2, A4, A6, U, Vv, T, W, E = work[0], work[1], work[2], work[3], work[4], work[5], work[6], work[7]
    nrm = 0.0  # 1-norm
    for j in range({n}):
        c = 0.0
        for i in range({n}):
            c += fabs(A[i * {n} + j])
        if c > nrm:
            nrm = c
    if not (nrm <= 1e300):
        for e in range({nn}):
            E[e] = nrm - nrm
        return E
    s = 0
    if nrm > {th[13]}:
        s = int(math.ceil(math.log2(nrm / {th[13]})))
        sc = math.ldexp(1.0, -s)
        for e in range({nn}):
            A[e] = A[e] * sc
    cs_matmul{n}(A, A, A2)
    if nrm <= {th[3]}:
{both(3, ("A2",), " " * 8)}
    else:
        cs_matmul{n}(A2, A2, A4)
        if nrm <= {th[5]}:
{both(5, ("A2", "A4"), " " * 12)}
        else:
            cs_matmul{n}(A4, A2, A6)
            if nrm <= {th[7]}:
{both(7, ("A2", "A4", "A6"), " " * 16)}
            elif nrm <= {th[9]}:
                cs_matmul{n}(A4, A4, W)  # A^8
{both(9, ("A2", "A4", "A6", "W"), " " * 16)}
            else:
                for e in range({nn}):
                    U[e] = {hi_odd}
                    W[e] = {hi_even}
                cs_matmul{n}(A6, U, T)
                cs_matmul{n}(A6, W, Vv)
                for e in range({nn}):
                    T[e] = (T[e] + {lo_odd})
                    Vv[e] = (Vv[e] + {lo_even})
    cs_matmul{n}(A, T, U)  # U: odd part, Vv: even part
    for e in range({nn}):
        A2[e] = Vv[e] - U[e]
        E[e] = Vv[e] + U[e]
    # Solve (Vv - U) E = (Vv + U): Gaussian elimination with partial pivoting.
    for c in range({n}):
        p = c
        best = fabs(A2[c * {n} + c])
        for r in range(c + 1, {n}):
            if fabs(A2[r * {n} + c]) > best:
                best = fabs(A2[r * {n} + c])
                p = r
        if p != c:
            for k in range({n}):
                t = A2[c * {n} + k]
                A2[c * {n} + k] = A2[p * {n} + k]
                A2[p * {n} + k] = t
                t = E[c * {n} + k]
                E[c * {n} + k] = E[p * {n} + k]
                E[p * {n} + k] = t
        for r in range(c + 1, {n}):
            fct = A2[r * {n} + c] / A2[c * {n} + c]
            for k in range(c, {n}):
                A2[r * {n} + k] -= fct * A2[c * {n} + k]
            for k in range({n}):
                E[r * {n} + k] -= fct * E[c * {n} + k]
    for c in range({n} - 1, -1, -1):
        for k in range({n}):
            acc = E[c * {n} + k]
            for r in range(c + 1, {n}):
                acc -= A2[c * {n} + r] * E[r * {n} + k]
            E[c * {n} + k] = acc / A2[c * {n} + c]
    for q in range(s):  # undo the scaling: square s times
        cs_matmul{n}(E, E, T)
        for e in range({nn}):
            E[e] = T[e]
    return E
'''
