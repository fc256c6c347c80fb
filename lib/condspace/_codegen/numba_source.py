"""The Numba (CPU) kernels generated from the same traced rates as the C/CUDA kernel.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from condspace._codegen.c_source import KernelLayout, layout_fields
from condspace._codegen.numba_expm import _expm_py
from condspace._codegen.step import TracedStep, exact_rates, rate_columns, trace_step
from condspace._codegen.trace import Sym, literal, trace
from condspace._engine import SPIKE_REARM, SPIKE_THRESHOLD, V_BOUNDS, Engine
from condspace.channels import CellType

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

NUMBA_NOISE = ("noise_serial", "noise_parallel")
"""The noise filter of a generated module, without and with threads (see :data:`_NOISE_BODY`)."""

_NOISE_BODY = '''

@numba.njit({flags}cache=True, nogil=True, error_model="numpy")
def {name}(white, group_of, column_of, sos, n_sos, zi, scale, out):
    # The noise current of one block: each neuron's white draws (white[group_of[i], :, column_of[i]])
    # through the low-pass filter's second-order sections, then scaled, into out[i, :] (µA/cm²).
    # The arithmetic of scipy.signal.sosfilt (direct form II transposed, same operand order, no
    # fused multiply-add), so that the NumPy engine's noise (_Noise.block) is reproduced exactly.
    # Neurons in tiles of 8, stepped together: each neuron's filter is a serial recurrence, so
    # interleaving independent ones hides its latency, and a tile's draws share cache lines.
    n = zi.shape[0]
    for tile in numba.prange((n + 7) // 8):
        lo = tile * 8
        hi = min(lo + 8, n)
        for s in range(white.shape[1]):
            for i in range(lo, hi):
                x_cur = white[group_of[i], s, column_of[i]]
                for q in range(n_sos):
                    x_new = sos[q, 0] * x_cur + zi[i, q, 0]
                    zi[i, q, 0] = sos[q, 1] * x_cur - sos[q, 4] * x_new + zi[i, q, 1]
                    zi[i, q, 1] = sos[q, 2] * x_cur - sos[q, 5] * x_new
                    x_cur = x_new
                out[i, s] = x_cur * scale[i]
'''
"""Source of the generated noise filter (formatted with ``name`` and ``flags``)."""

NUMBA_GROUP = 2
"""Neurons advanced side by side in one loop iteration of the ``exact`` Numba kernels (the launcher
pads a chunk to a multiple; the ``table`` kernels use tiles of :data:`NUMBA_LANES` instead). The
measurements below are of the table kernel in this layout, before the tiles replaced it.
Interleaving independent neurons lets an out-of-order CPU overlap their
chains of dependent operations (each step of one neuron is a serial chain through two calls of
libm's exp). Measured with ``benchmarks/simulate.py --groups 1 2 4`` on an idle 2-core AMD EPYC
with AVX-512 (one thread, table method, two runs): STG at N = 10,000 931–947 neuron-s per CPU-s with
1, 1,120–1,364 with 2, 990 with 4; DA at N = 1,000 621–681 with 1, 744–948 with 2. The first
compilation of a cell's two kernels takes about twice as long (STG 5 s → 10 s), once per machine
(cached on disk). Results do not depend on it: each neuron's arithmetic is its own. An earlier
measurement on a 2-core AMD EPYC without AVX-512 found 2 and 4 no faster than 1."""

NUMBA_LANES = 16
"""Neurons per tile of the table-method kernel, stepped together by a loop that LLVM vectorises
across them (one SIMD lane per neuron: the exponentials are :data:`_EXP_SOURCE`'s polynomial, the
rate-table reads per-lane loads, see :func:`condspace._numba._prefer_scalar_loads`). Measured with
``benchmarks/simulate.py --groups 8 32`` on an idle 2-core AMD EPYC (Zen 4, AVX-512), one thread,
250 ms, medians of three rounds: STG N = 10,000 2,669 neuron-s per CPU-s with 8, 2,963 with 16,
2,991 with 32; DA N = 1,000 1,751 / 1,943 / 1,995; against 1,137 (STG) and 906 (DA) for the
two-neuron interleaving this layout replaced (:data:`NUMBA_GROUP`, which the ``exact`` kernels keep).
16 rather than 32: as fast, and a chunk pads fewer neurons."""

_EXP_SOURCE = '''

from llvmlite import ir as _ir  # noqa: E402
from numba.core import cgutils as _cgutils  # noqa: E402
from numba.core import types as _types  # noqa: E402
from numba.extending import intrinsic as _intrinsic  # noqa: E402


@_intrinsic
def cs_bits_f64(typingctx, bits):
    # The float64 whose bit pattern is the int64 ``bits`` (an LLVM bitcast; vectorises).
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _ir.DoubleType())
    return _types.float64(_types.int64), codegen


@numba.njit(cache=True, inline="always")
def cs_exp(x):
    # exp(x) in plain IEEE arithmetic, so that a loop over neurons calling it vectorises (libm's
    # exp is an opaque call). Cody-Waite reduction x = k·ln 2 + r, |r| <= ln2/2 (k·LN2_HI exact:
    # LN2_HI has 32 trailing zero bits), then the Taylor polynomial of degree 13 in Horner form
    # (truncation < 1e-17 relative), scaled by 2**k built from its bits. No fused multiply-add
    # (Numba does not contract without fastmath), so every lane and every CPU rounds alike.
    # Within 1.2 ulp of exp (tests/test_numba.py); arguments are clamped to [-708, 709], where
    # 2**k stays a normal double (a kernel's exponents are far inside: decays exp(-dt/tau) and
    # exp(-g_tot·dt/C_m) are < 1, sigmoids clip at ±500). NaN stays NaN.
    x = cs_clip(x, -708.0, 709.0)
    kf = (x * 1.4426950408889634 + 6755399441055744.0) - 6755399441055744.0  # round(x / ln 2)
    r = (x - kf * 0.6931471803691238) - kf * 1.9082149292705877e-10
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    k = int(kf) if kf == kf else 0
    return p * cs_bits_f64((k + 1023) << 52)


@_intrinsic
def cs_lanes(typingctx):
    # A float64 array of {size} values on the stack of the calling function: a tile's lane state.
    # On the stack, LLVM knows it cannot alias the rate table (an argument), so the loop over the
    # lanes, which stores here and gathers from the table, vectorises without runtime alias checks
    # (it does not with a heap array from np.empty).
    arrty = _types.Array(_types.float64, 1, "C")

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(_types.intp)
        ptr = _cgutils.alloca_once(builder, _ir.DoubleType(), size={size})
        ary = context.make_array(arrty)(context, builder)
        context.populate_array(ary, data=ptr, shape=[_ir.Constant(intp, {size})],
                               strides=[_ir.Constant(intp, 8)], itemsize=_ir.Constant(intp, 8), meminfo=None)
        return ary._getvalue()
    return arrty(), codegen
'''
"""Source of ``cs_exp`` and ``cs_lanes`` in a lane-tiled module (formatted with ``size``, the
length of the lane-state array). Part of the generated file, so part of its hash: a change here
recompiles, never reuses a stale cache."""

_PER_NEURON = re.compile(r"\b(v|ca|u|j|f|v_old|drive|drive_base|gl|arm|good|slot|count|"
                         r"t|A|M|r|i|scratch|work|x\d+|p\d+|gb\d+|t_\w+)\b")


def _rename(line: str, b: int) -> str:
    """One line of a neuron's code with its local variables suffixed ``_<b>`` (neuron b of a group)."""
    code, hash_, comment = line.partition("#")
    return _PER_NEURON.sub(lambda m: f"{m.group(1)}_{b}", code) + hash_ + comment
"""The two entry points of a generated module: the same loop compiled without and with threads."""


@dataclass(frozen=True)
class NumbaSource(KernelLayout):
    """Python source of the Numba kernels of one cell / dt / method, and what the launcher needs.

    Attributes:
        source: Python module text (defines :data:`NUMBA_KERNELS`).
        method: ``"table"`` or ``"exact"``.
        table: (grid rows, 2·width) rate table for ``method="table"`` (the NumPy engine's own
            table, transposed so that one voltage reads one contiguous row); a (1, 1) dummy otherwise.
        group_size: The kernels take chunks whose length is a multiple of this.
        neg_dt, v_rate, ca_decay: Kernel arguments that depend on dt (see :data:`NUMBA_PARAMS`),
            computed by the expressions :class:`Engine` uses, so they are the same doubles.
        (and the fields of :class:`KernelLayout`, shared with the C/CUDA kernel)
    """

    source: str = ""
    method: str = "table"
    table: np.ndarray | None = None
    group_size: int = 1
    neg_dt: float = 0.0
    v_rate: float = 0.0
    ca_decay: float = 0.0


_NUMBA_PRELUDE = '''"""Generated by condspace._codegen.generate_numba from the declaration of cell {cell!r}
(method = {method!r}; dt and the rate table are arguments: one compilation serves every dt).
Do not edit: regenerate. The step's statements are traced from condspace._engine.Engine.step
(condspace._codegen.step), as are the C/CUDA kernel's; the rate expressions come from the same tracer."""
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


def generate_numba(cell: CellType, dt: float, method: str = "table", group_size: int | None = None) -> NumbaSource:
    """Generate the Numba CPU kernels of ``cell`` for time step ``dt``.

    One generated function advances every neuron of a chunk ``n_steps`` steps: the outer loop
    over neurons (``numba.prange`` in the threaded variant), the inner loop over time, spike
    detection and the blow-up check inside, like the C/CUDA kernel of :func:`generate`. With
    ``method="table"`` the neurons go in tiles of ``group_size`` (:data:`NUMBA_LANES`) whose step
    is one loop over the tile that LLVM vectorises (:func:`_lane_kernel`); with ``"exact"``
    (per-neuron matrix exponentials) ``group_size`` (:data:`NUMBA_GROUP`) neurons are interleaved
    with their state in local variables (:func:`_interleaved_kernel`). The step's statements are
    traced from :meth:`Engine.step`
    (:func:`~condspace._codegen.step.trace_step`: the same operations in the same operand order,
    so the same rounding): with ``method="table"`` the rates
    are interpolated from the NumPy engine's own rate table, with ``"exact"`` they are the traced
    rate functions, and the kinetic-scheme propagator is a generated matrix exponential.

    Args:
        cell: The cell declaration.
        dt: Time step (ms), compiled in.
        method: ``"table"`` or ``"exact"``.
        group_size: Neurons per tile (``table``, default :data:`NUMBA_LANES`) or interleaved per loop
            iteration (``exact``, default :data:`NUMBA_GROUP`); the launcher pads chunks to a multiple.

    Returns:
        The :class:`NumbaSource`.

    Raises:
        ValueError: Unknown method or a non-positive dt.
    """
    if method not in ("table", "exact"):
        raise ValueError(f"method must be 'table' or 'exact', got {method!r}")
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"dt must be a finite number > 0 ms, got {dt}")
    if group_size is None:
        group_size = NUMBA_LANES if method == "table" else NUMBA_GROUP
    eng = Engine(cell, float(dt), np, np.float64, method)
    init = eng.initial(1)
    n_x, n_p, C, cols = eng.n_x, int(eng.scheme_offsets[-1]), eng.n_channels, eng.cols
    L, w = literal, cols.width

    def tr(fn: Callable[..., Any], *names: str) -> str:
        return trace(fn, *names, dialect="python")

    def rates(step: TracedStep) -> Any:
        """The rate columns at V(t): interpolated from the table, or traced and exponentiated."""
        if method == "table":
            out = rate_columns(step)
            step.emit("# ---- rate-table row and fraction at V(t) (Engine.rates) ----")
            step.emit(f"u = ((v - {L(eng.table_lo)}) * {L(eng.table_inv_step)})")
            step.emit("if not (u > 0.0):  # also NaN (flagged at the next check): stay inside the table")
            step.emit("    u = 0.0")
            step.emit(f"elif u > {L(eng.table_n - 1e-9)}:")
            step.emit(f"    u = {L(eng.table_n - 1e-9)}")
            step.emit("j = int(u)")
            step.emit("f = (u - j)")
            # Engine.rates: increment·f + value at the grid point below V. Written where the step
            # uses it, not declared up front: holding every column live through the step measured
            # ~5 % slower (register pressure); LLVM merges a column used twice (pure loads).
            for c in range(w):
                out[c, 0] = Sym(f"((table[j, {w + c}] * f) + table[j, {c}])")
            return out
        return exact_rates(step, "neg_dt", scheme)

    def scheme(step: TracedStep, si: int, s: Any, rows: list, out: Any) -> None:
        """One scheme's propagator by the generated matrix exponential (cs_expm<n>, scratch arrays)."""
        states = list(s.gate.states)
        ns = len(states)
        pos = {st: i for i, st in enumerate(states)}
        step.emit(f"A = scratch[{si}]")
        step.emit("A[:] = 0.0")
        for t in s.gate.transitions:
            a, b = pos[t.source], pos[t.target]
            step.emit(f"r = {tr(t.rate, 'v')}  # {t.source} -> {t.target}")
            step.emit(f"A[{b * ns + a}] += r")
            step.emit(f"A[{a * ns + a}] -= r")
        step.emit(f"for e in range({ns * ns}):")
        step.emit("    A[e] = A[e] * dt")
        step.emit(f"M = cs_expm{ns}(A, work)")
        # M is a view of the shared work array: copy the entries out before the next scheme.
        for i, row_ids in enumerate(rows, start=1):
            for jj, r in enumerate(row_ids):
                out[r, 0] = step.declare(f"t_m{si}_{i * ns + jj}", f"M[{i * ns + jj}]")

    body = trace_step(cell, dt, "python", rates, {"v_rate": "v_rate", "ca_decay": "ca_decay"})

    scratch = []
    if method == "exact" and eng.schemes:
        big = max(len(sc.gate.states) for sc in eng.schemes) ** 2
        scratch = [f"scratch = np.zeros(({len(eng.schemes)}, {big}))", f"work = np.zeros((8, {big}))"]
    if method == "table":
        kernel = _lane_kernel(body, init, n_x, n_p, C, group_size)
    else:
        kernel = _interleaved_kernel(body, init, n_x, n_p, C, group_size, scratch)
    src = [_NUMBA_PRELUDE.format(cell=cell.name, method=method)]
    src += [_expm_py(n) for n in sorted({len(sc.gate.states) for sc in eng.schemes})] if method == "exact" else []
    src.append(kernel)
    for name, parallel in zip(NUMBA_NOISE, (False, True), strict=True):
        src.append(_NOISE_BODY.format(name=name, flags="parallel=True, " if parallel else ""))
    table = np.ascontiguousarray(eng.table.T) if method == "table" else np.zeros((1, 1))
    return NumbaSource(
        source="".join(src), method=method, **layout_fields(cell, init, dt, n_x, n_p), table=table,
        group_size=group_size,
        neg_dt=-float(dt), v_rate=-float(dt) * eng.inv_cap,  # the very expressions of Engine
        ca_decay=float(eng.ca_decay) if eng.ca_decay is not None else 0.0)


def _reset_lines(init: dict, n_x: int, n_p: int) -> list[tuple[str, str]]:
    """(state variable, its initial value as a literal) for the blow-up reset, in state order."""
    L = literal
    return ([("v", L(float(init["V"][0]))), ("ca", L(float(init["ca"][0])))]
            + [(f"x{k}", L(float(init["X"][k, 0]))) for k in range(n_x)]
            + [(f"p{k}", L(float(init["P"][k, 0]))) for k in range(n_p)])


def _interleaved_kernel(body: list[str], init: dict, n_x: int, n_p: int, C: int, group_size: int,
                        scratch: list[str]) -> str:
    """The two kernels with ``group_size`` neurons interleaved per loop iteration (``exact``).

    Each neuron's state lives in local variables for the whole block of steps; neurons of a group
    have their own names (:func:`_rename`), so that an out-of-order CPU overlaps their chains.
    """
    L = literal
    state = _reset_lines(init, n_x, n_p)
    finite = " and ".join(f"cs_finite({name})" for name, _ in state)
    reset = [f"{name} = {value}" for name, value in state]
    load = (["v = V[i]", "ca = CA[i]"] + [f"x{k} = X[{k}, i]" for k in range(n_x)]
            + [f"p{k} = P[{k}, i]" for k in range(n_p)] + [f"gb{c} = gbar[{c}, i]" for c in range(C)])
    store = (["V[i] = v", "CA[i] = ca"] + [f"X[{k}, i] = x{k}" for k in range(n_x)]
             + [f"P[{k}, i] = p{k}" for k in range(n_p)])
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
    return _serial_and_parallel("grp", group_size, group)


def _lane_kernel(body: list[str], init: dict, n_x: int, n_p: int, C: int, lanes: int) -> str:
    """The two kernels with neurons in tiles of ``lanes``, each step one vectorisable loop (``table``).

    A tile's state lives in one stack array, ``st`` (:data:`_EXP_SOURCE`'s ``cs_lanes``): row q of
    the state at ``st[q·lanes : (q+1)·lanes]``, one entry per neuron, so every access of the step
    loop is at a constant offset from the lane index and LLVM turns the loop into SIMD code, one
    neuron per lane (the rate-table reads become gathers, ``exp`` the inlined :func:`cs_exp`).
    Spike detection is branch-free inside that loop (a crossing flag per lane, the re-arming by
    selects, a count of crossings); only a step with a crossing walks the tile to record the times.
    Each neuron's arithmetic is its own, the same in every lane and with any tile mate.
    """
    L, W = literal, lanes
    state = _reset_lines(init, n_x, n_p)
    names = [nm for nm, _ in state]
    # Rows of st: the state, then v before the step, the drive (with noise), g_leak, the drive
    # without noise, armed (1.0 / 0.0), crossed this step (1.0 / 0.0), then the ḡ of each channel.
    extra = ["v_old", "drive", "gl", "drive_base", "arm", "cross"] + [f"gb{c}" for c in range(C)]
    row = {nm: q * W for q, nm in enumerate(names + extra)}
    size = len(row) * W
    thr, rearm = L(SPIKE_THRESHOLD), L(SPIKE_REARM)

    def at(nm: str) -> str:
        return f"st[{row[nm]} + b]"

    arrays = {"v": "V[i]", "ca": "CA[i]", **{f"x{k}": f"X[{k}, i]" for k in range(n_x)},
              **{f"p{k}": f"P[{k}, i]" for k in range(n_p)}}
    load = (["i = lo + b"] + [f"{at(nm)} = {arrays[nm]}" for nm in names]
            + [f"{at(f'gb{c}')} = gbar[{c}, i]" for c in range(C)]
            + [f"{at('gl')} = gleak[i]", f"{at('drive_base')} = drive0[i]", f"{at('drive')} = drive0[i]",
               f"{at('arm')} = 1.0 if armed[i] else 0.0", "good[b] = ok[i]", "slot[b] = rec_slot[i]", "count[b] = 0"])
    store = (["i = lo + b"] + [f"{arrays[nm]} = {at(nm)}" for nm in names]
             + [f"armed[i] = {at('arm')} > 0.5", "ok[i] = good[b]", "spk_n[i] = count[b]"])
    step = ([f"{nm} = {at(nm)}" for nm in names + ["gl", "drive"] + [f"gb{c}" for c in range(C)]]
            + ["v_old = v", *(re.sub(r"\bexp\(", "cs_exp(", line) for line in body)]
            + [f"{at(nm)} = {nm}" for nm in names] + [f"{at('v_old')} = v_old"]
            + [f"# ---- spike: upward crossing of {SPIKE_THRESHOLD} mV while armed; re-armed below "
               f"{SPIKE_REARM} mV (selects, no branch) ----",
               f"a = {at('arm')}",
               f"crossed = (v >= {thr}) & (a > 0.5)",
               f"{at('cross')} = 1.0 if crossed else 0.0",
               "a = 0.0 if crossed else a",
               f"{at('arm')} = 1.0 if v < {rearm} else a",
               "n_cross += 1 if crossed else 0"])
    finite = " and ".join(f"cs_finite({at(nm)})" for nm in names)
    loop = ["k = k0 + s", "rec_phase += 1", "do_rec = rec_phase == rec_every", "if do_rec:", "    rec_phase = 0",
            "check_phase += 1", "if check_phase == check_every:", "    check_phase = 0",
            "do_check = check_phase == 0 or k + 1 == k_total",
            "if has_noise:",
            f"    for b in range({W}):",
            f"        {at('drive')} = ({at('drive_base')} + noise[lo + b, s])",
            "n_cross = 0",
            f"for b in range({W}):  # the step of every lane: vectorised",
            *("    " + line for line in step),
            "if n_cross > 0:  # record the crossings (interpolated time, as the NumPy engine)",
            f"    for b in range({W}):",
            f"        if {at('cross')} > 0.5:",
            f"            t = ((k + (({thr} - {at('v_old')}) / ({at('v')} - {at('v_old')}))) * dt)",
            "            if t >= transient:",
            "                c = count[b]",
            "                if c < cap:",
            "                    spk_t[lo + b, c] = t",
            "                count[b] = c + 1",
            "if do_rec:",
            f"    for b in range({W}):",
            "        if slot[b] >= 0:",
            f"            trace[slot[b], (k + 1) // rec_every] = {at('v')}",
            f"# ---- blow-up check: non-finite state or V outside {V_BOUNDS} mV -> flag, reset to the "
            "initial state ----",
            "if do_check:",
            f"    for b in range({W}):",
            f"        if not ({finite}) or {at('v')} < {L(V_BOUNDS[0])} or {at('v')} > {L(V_BOUNDS[1])}:",
            "            good[b] = False",
            *(f"            {at(nm)} = {value}" for nm, value in state)]
    tile = [f"lo = tile * {W}", "st = cs_lanes()", f"good = np.empty({W}, np.bool_)",
            f"slot = np.empty({W}, np.int64)", f"count = np.empty({W}, np.int64)",
            f"for b in range({W}):", *("    " + line for line in load),
            "check_phase = k0 % check_every", "rec_phase = k0 % rec_every",
            "for s in range(n_steps):", *("    " + line for line in loop),
            f"for b in range({W}):", *("    " + line for line in store)]
    return _EXP_SOURCE.format(size=size) + _serial_and_parallel("tile", W, tile)


def _serial_and_parallel(index: str, width: int, body: list[str]) -> str:
    """The two entry points (:data:`NUMBA_KERNELS`): ``body`` once per ``index`` over the chunk's groups
    of ``width`` neurons, compiled without threads and with ``numba.prange`` over threads."""
    src = []
    for name, parallel in zip(NUMBA_KERNELS, (False, True), strict=True):
        flags = "parallel=True, " if parallel else ""
        src.append(f"""

@numba.njit({flags}cache=True, nogil=True, error_model="numpy")
def {name}({", ".join(NUMBA_PARAMS)}):
    n = V.shape[0]  # a multiple of {width} (the launcher pads the chunk)
    cap = spk_t.shape[1]
    for {index} in numba.prange(n // {width}):
{_indent(body, 8)}
""")
    return "".join(src)
