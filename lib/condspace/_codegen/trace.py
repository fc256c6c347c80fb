"""Symbolic tracing: rate functions called with a fake array module record their arithmetic as C or Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

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

    def exp(self) -> Sym:
        """e**self: what ``numpy.exp`` calls on an object array of traced values (the traced step)."""
        return Sym(f"exp({_code(self)})")

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


