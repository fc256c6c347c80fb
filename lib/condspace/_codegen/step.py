"""The compiled kernels' time step, traced from :meth:`condspace._engine.Engine.step`.

The model's update (gates → kinetic schemes → open conductances → [Ca] → V) is written once, in
:meth:`Engine.step`, against the array module. :class:`TracedStep` runs that very method on NumPy
*object* arrays holding one symbolic scalar (:class:`~condspace._codegen.trace.Sym`) per row:
every ``+ - * /`` and ``exp`` the step performs on its arrays becomes the same operation, with the
same operands in the same order, in a C or Python expression. The step's three hooks
(:meth:`Engine.let`, :meth:`Engine.assign`, :meth:`Engine.calcium_gate_inf`) are where this
subclass names intermediate values and writes the kernel's statements, so the generated code is
a sequence of short assignments (each value computed once) rather than one expression per state
variable in which shared subexpressions would be repeated.

What differs between the kernels is only where the voltage-only *rates* come from (traced rate
functions and a generated matrix exponential, or the NumPy engine's interpolated rate table):
each generator passes a ``rates`` callable that writes those statements and returns the rate
columns, and keeps its own run loop (time steps, noise, spike detection, blow-up check).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from condspace._codegen.trace import Sym, SymXP, _code
from condspace._engine import Engine
from condspace.channels import CellType

TEMP_PREFIX = "t_"
"""Prefix of every name the traced step declares (the Numba generator renames them per neuron)."""


class TracedStep(Engine):
    """:class:`Engine` over object arrays of symbolic scalars: one neuron, traced.

    Args:
        cell: The cell declaration.
        dt: Time step (ms).
        dialect: ``"c"`` (statements for the C/CUDA kernel) or ``"python"`` (for the Numba kernel).
        rates: ``rates(step) -> (width, 1)`` object array of the rate columns at V(t) (as
            :meth:`Engine.rates` returns them), writing whatever statements compute them through
            :meth:`declare` / :meth:`emit`.
        constants: Engine attributes to replace by symbols the kernel receives as arguments (the
            Numba kernel takes ``v_rate`` and ``ca_decay`` at run time: one compilation serves
            every dt).
    """

    def __init__(self, cell: CellType, dt: float, dialect: str, rates: Callable[[TracedStep], Any],
                 constants: dict[str, str] | None = None) -> None:
        super().__init__(cell, float(dt), np, object, "exact")
        self.dialect = dialect
        self.symxp = SymXP(dialect)
        self.lines: list[str] = []
        self._rates = rates
        self._n_cainf = 0
        for attr, name in (constants or {}).items():
            if getattr(self, attr) is not None:  # e.g. no ca_decay for a cell without a calcium pool
                # A 0-d object array, not a bare Sym: NumPy refuses a Sym as a ufunc operand.
                setattr(self, attr, np.array(Sym(name), dtype=object))

    # ----- statements ------------------------------------------------------------------------
    def emit(self, line: str) -> None:
        """Append one raw statement (already in the kernel's dialect, without indentation)."""
        self.lines.append(line)

    def declare(self, name: str, expr: Any, ctype: str = "real") -> Sym:
        """Declare a new local ``name = expr`` (a symbol or code text) and return it as a symbol."""
        code = expr if isinstance(expr, str) else _code(expr)
        self.emit(f"const {ctype} {name} = {code};" if self.dialect == "c" else f"{name} = {code}")
        return Sym(name)

    def comment(self, text: str) -> None:
        """Append a comment line in the kernel's dialect."""
        self.emit(f"/* {text} */" if self.dialect == "c" else f"# {text}")

    def _set(self, name: str, code: str) -> None:
        self.emit(f"{name} = {code};" if self.dialect == "c" else f"{name} = {code}")

    # ----- the hooks of Engine.step ------------------------------------------------------------
    def rates(self, V: Any) -> Any:
        return self._rates(self)

    def calcium_gate_inf(self, slot: Any, V: Any, ca: Any) -> Any:
        name = f"{TEMP_PREFIX}cainf{self._n_cainf}"
        self._n_cainf += 1
        return np.array([self.declare(name, slot.gate.inf(self.symxp, V[0], ca[0]))], dtype=object)

    def let(self, value: Any, name: str) -> Any:
        out = np.empty_like(value)
        for idx, expr in np.ndenumerate(value):
            label = f"{TEMP_PREFIX}{name}{idx[0] if value.ndim == 2 else ''}"
            out[idx] = self.declare(label, expr)
        return out

    def assign(self, rows: Any, name: str, offset: int = 0) -> Any:
        targets = {}
        for idx, expr in np.ndenumerate(rows):
            target = f"{name}{offset + idx[0]}" if rows.ndim == 2 else name
            if _code(expr) != target:
                targets[idx] = (target, _code(expr))
        names = {t for t, _ in targets.values()}
        # New values that read another variable assigned here (the occupancies of one kinetic
        # scheme) go through temporaries, so that every right-hand side sees the old state.
        if any(re.search(rf"\b{other}\b", code) for t, code in targets.values() for other in names - {t}):
            targets = {idx: (t, self.declare(f"{TEMP_PREFIX}new_{t}", code).code) for idx, (t, code) in targets.items()}
        for idx, (target, code) in targets.items():
            self._set(target, code)
            rows[idx] = Sym(target)
        return rows

    # ----- the state of one neuron, by name ------------------------------------------------------
    def initial(self, n: int = 1) -> dict[str, Any]:
        def column(names: list[str]) -> Any:
            out = np.empty((len(names), 1), dtype=object)
            for k, nm in enumerate(names):
                out[k, 0] = Sym(nm)
            return out

        return {"V": np.array([Sym("v")], dtype=object), "X": column([f"x{k}" for k in range(self.n_x)]),
                "P": column([f"p{k}" for k in range(self.scheme_offsets[-1])]),
                "ca": np.array([Sym("ca")], dtype=object)}


def trace_step(cell: CellType, dt: float, dialect: str, rates: Callable[[TracedStep], Any],
               constants: dict[str, str] | None = None) -> list[str]:
    """Statements of one time step of one neuron, traced from :meth:`Engine.step`.

    The state is read from and written to the kernel variables ``v``, ``ca``, ``x<k>`` (rows of
    ``X``) and ``p<k>`` (rows of ``P``); the inputs are ``gb<c>`` (ḡ of active channel c), ``gl``
    (leak conductance) and ``drive`` (g_leak·E_leak + I_app + noise). Every other name starts
    with :data:`TEMP_PREFIX`.

    Args:
        cell: The cell declaration.
        dt: Time step (ms).
        dialect: ``"c"`` or ``"python"``.
        rates: Writes the rate statements and returns the rate columns (see :class:`TracedStep`).
        constants: Engine attributes passed to the kernel as arguments (see :class:`TracedStep`).

    Returns:
        The statements, in order, without indentation.
    """
    step = TracedStep(cell, dt, dialect, rates, constants)
    state = step.initial()
    gbar = np.empty((step.n_channels, 1), dtype=object)
    for c in range(step.n_channels):
        gbar[c, 0] = Sym(f"gb{c}")
    step.step(state, gbar, np.array([Sym("gl")], dtype=object), np.array([Sym("drive")], dtype=object))
    return step.lines


def rate_columns(step: TracedStep) -> Any:
    """An empty (width, 1) object array for a ``rates`` callable to fill."""
    return np.empty((step.cols.width, 1), dtype=object)


def exact_rates(step: TracedStep, neg_dt: str, scheme: Callable[[TracedStep, int, Any, list, Any], None]) -> Any:
    """The rate columns of :meth:`Engine.columns_at`, traced: the kernels' ``method="exact"`` rates.

    Declares, for every gate, x∞(V) and exp(−dt/τ(V)) (calcium gates: the decay only, their
    x∞(V, [Ca]) is computed in the step), and leaves each kinetic scheme's propagator to the
    kernel's own matrix exponential.

    Args:
        step: The step being traced.
        neg_dt: −dt as the kernel spells it (a literal, or the name of an argument).
        scheme: ``scheme(step, index, slot, rows, out)`` writes the statements of one scheme's
            propagator and fills its columns ``rows`` (as :attr:`Engine.cols.scheme` lists them).

    Returns:
        The (width, 1) object array of columns.
    """
    out, cols = rate_columns(step), step.cols

    def name(slot: Any) -> str:
        return f"{step.cell.channels[slot.channel].name}.{slot.gate.name}"

    def traced(fn: Callable[..., Any]) -> str:
        return _code(fn(step.symxp, Sym("v")))

    step.comment("---- rates at V(t): gates' x_inf(V) and exp(-dt/tau(V)) ----")
    for k, s in enumerate(step.hh):
        step.comment(f"{name(s)}: x_inf(V), tau(V)")
        out[cols.hh_inf.start + k, 0] = step.declare(f"{TEMP_PREFIX}inf{k}", traced(s.gate.inf))
        out[cols.hh_decay.start + k, 0] = step.declare(f"{TEMP_PREFIX}dec{k}",
                                                       f"exp(({neg_dt} / {traced(s.gate.tau)}))")
    for k, s in enumerate(step.ca_gates):
        step.comment(f"{name(s)}: tau(V); x_inf(V, [Ca]) in the step")
        out[cols.ca_decay.start + k, 0] = step.declare(f"{TEMP_PREFIX}cadec{k}",
                                                       f"exp(({neg_dt} / {traced(s.gate.tau)}))")
    for k, s in enumerate(step.inst):
        step.comment(f"{name(s)}: instantaneous, x_inf(V)")
        out[cols.inst_inf.start + k, 0] = step.declare(f"{TEMP_PREFIX}inst{k}", traced(s.gate.inf))
    for si, (s, rows) in enumerate(zip(step.schemes, cols.scheme, strict=True)):
        step.comment(f"{name(s)}: kinetic scheme {list(s.gate.states)}, exact propagator M = expm(Q(V)·dt) "
                     "at frozen V (kinetics.scheme_propagator)")
        scheme(step, si, s, rows, out)
    step.comment("---- the step itself, traced from Engine.step ----")
    return out
