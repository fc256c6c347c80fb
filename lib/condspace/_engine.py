"""The batched exponential-Euler engine behind :func:`condspace.simulate`.

State of a chunk of N neurons: V (N,), HH gate rows X (n_gates, N), kinetic-scheme occupancies
P (n_scheme_states, N), [Ca] (N,). Every voltage-only quantity a step needs (x∞, exp(−dt/τ),
scheme rates) is one column of a "rate table": either evaluated from the declaration each step
(``method="exact"``) or linearly interpolated from a table built once from the same functions on
a fine voltage grid (``method="table"``, as NEURON does for its rate functions).

Update order per step (t → t + dt), all exponential Euler (Rush–Larsen):
gates with V(t) (and [Ca](t)); kinetic schemes with their exact propagator expm(Q(V)·dt) →
open fractions → [Ca] with the new currents at V(t) →
V with the new conductances → spike detection on the new V.

:meth:`Engine.step` is the only place this update is written. The compiled kernels (C/CUDA and
Numba, :mod:`condspace._codegen`) are *traced* from it: :class:`condspace._codegen.step.TracedStep`
runs the same method on object arrays of symbolic scalars, and the three hooks below
(:meth:`Engine.let`, :meth:`Engine.assign`, :meth:`Engine.calcium_gate_inf`), identities for
arrays, are where the tracer names intermediate values and writes the kernel's statements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from condspace.channels import CellType
from condspace.kinetics import initial_state, scheme_propagator
from condspace.plan import cell_plan

SPIKE_THRESHOLD = 10.0  # mV: a spike is an upward crossing of +10 mV ...
SPIKE_REARM = 0.0  # mV: ... and the next one needs V to have gone below 0 mV first.
V_BOUNDS = (-200.0, 150.0)  # mV: leaving this range flags the neuron as numerically invalid.
TABLE_RANGE = (-200.0, 150.0)  # mV: voltage grid of the rate tables
TABLE_STEP = 0.02  # mV: grid step; linear interpolation error is far below the float32 resolution


_TABLES: dict[tuple, tuple[CellType, np.ndarray]] = {}
"""Rate tables (float64, host) by (cell, dt): building one evaluates every rate on 17,500 voltages
(for DA's kinetic scheme, 17,500 matrix exponentials: seconds), so each is built once per process."""


@dataclass
class _Columns:
    """Positions of each voltage-only quantity in the rate table (rows of ``vals``)."""

    hh_inf: slice
    hh_decay: slice
    ca_decay: slice
    inst_inf: slice
    scheme: list  # per scheme, per integrated state i: the rows of the propagator entries M[i, :]
    width: int


class Engine:
    """Compiled form of a cell for one dt; shared by every chunk of a simulation.

    Args:
        cell: The cell declaration.
        dt: Time step (ms).
        xp: Array module (numpy or cupy).
        dtype: Floating dtype.
        method: ``"table"`` (interpolated rate tables) or ``"exact"``.
    """

    def __init__(self, cell: CellType, dt: float, xp: Any, dtype: Any, method: str) -> None:
        self.cell, self.dt, self.xp, self.dtype, self.method = cell, dt, xp, dtype, method
        slots = cell_plan(cell).factors  # the one compiled layout of a cell (condspace.plan)
        self.hh = [s for s in slots if s.kind == "hh"]
        self.ca_gates = [s for s in slots if s.kind == "calcium"]
        self.inst = [s for s in slots if s.kind == "instant"]
        self.schemes = [s for s in slots if s.kind == "scheme"]
        self.n_x = len(self.hh) + len(self.ca_gates) + len(self.inst)
        self._build_columns()
        self._build_factors()
        C = len(cell.channels)
        self.E = xp.asarray([ch.reversal for ch in cell.channels], dtype=dtype)
        self.E_host = [float(ch.reversal) for ch in cell.channels]
        self.ca_channels = [i for i, ch in enumerate(cell.channels) if ch.carries_calcium]
        self.E_leak = float(cell.leak_reversal)
        self.inv_cap = 1.0 / float(cell.capacitance)
        self.n_channels = C
        pool = cell.calcium
        self.ca_decay = float(np.exp(-dt / pool.tau)) if pool is not None else None
        self.v_rate = -dt * self.inv_cap  # exponent factor of V's decay: exp(g_tot · v_rate)
        if method == "table":
            self._build_table()

    # ----- layout ---------------------------------------------------------------------------
    def _build_columns(self) -> None:
        nh, nc, ni = len(self.hh), len(self.ca_gates), len(self.inst)
        pos = 0
        hh_inf = slice(pos, pos + nh); pos += nh  # noqa: E702
        hh_decay = slice(pos, pos + nh); pos += nh  # noqa: E702
        ca_decay = slice(pos, pos + nc); pos += nc  # noqa: E702
        inst_inf = slice(pos, pos + ni); pos += ni  # noqa: E702
        schemes = []
        for slot in self.schemes:
            # Propagator entries M[i, j] = expm(Q(V)·dt)[i, j] for every integrated state i (rows
            # 1..n-1) and every state j: exact for V frozen over the step and probability-conserving,
            # unlike a per-state exponential Euler, which leaks occupancy when rates are fast
            # (ERG O→I during a spike: rate·dt ≈ 0.2).
            n = len(slot.gate.states)
            schemes.append([[pos + (i - 1) * n + j for j in range(n)] for i in range(1, n)])
            pos += (n - 1) * n
        self.cols = _Columns(hh_inf, hh_decay, ca_decay, inst_inf, schemes, pos)

    def columns_at(self, xp: Any, V: Any) -> Any:
        """Evaluate every rate-table column at voltages V (any 1-D array): shape (width, len(V))."""
        dt = self.dt
        out = xp.empty((self.cols.width,) + V.shape, dtype=V.dtype)
        for k, s in enumerate(self.hh):
            out[self.cols.hh_inf.start + k] = s.gate.inf(xp, V)
            out[self.cols.hh_decay.start + k] = xp.exp(-dt / s.gate.tau(xp, V))
        for k, s in enumerate(self.ca_gates):
            out[self.cols.ca_decay.start + k] = xp.exp(-dt / s.gate.tau(xp, V))
        for k, s in enumerate(self.inst):
            out[self.cols.inst_inf.start + k] = s.gate.inf(xp, V)
        for slot, rows in zip(self.schemes, self.cols.scheme, strict=True):
            M = scheme_propagator(xp, slot.gate, V, dt)
            for i, row_ids in enumerate(rows, start=1):
                for j, r in enumerate(row_ids):
                    out[r] = M[..., i, j]
        return out

    def _build_table(self) -> None:
        lo, hi = TABLE_RANGE
        n = int(round((hi - lo) / TABLE_STEP)) + 1
        key = (id(self.cell), self.dt)
        hit = _TABLES.get(key)
        if hit is None or hit[0] is not self.cell:  # `is`: an id can be reused after garbage collection
            grid = np.linspace(lo, hi, n)
            vals = self.columns_at(np, grid)
            slope = np.diff(vals, axis=1)
            # Row i holds the value at grid[i] and the increment to grid[i + 1]: one gather per step.
            hit = (self.cell, np.concatenate([vals[:, :-1], slope], axis=0))
            _TABLES[key] = hit
        table = hit[1]
        self.table = self.xp.asarray(table, dtype=self.dtype)
        self.table_lo, self.table_inv_step, self.table_n = lo, 1.0 / TABLE_STEP, n - 1

    # ----- per-channel gating products --------------------------------------------------------
    def _build_factors(self) -> None:
        row_of = {}
        for k, s in enumerate(self.hh + self.ca_gates + self.inst):
            row_of[id(s.gate), s.channel] = ("x", k)
        for k, s in enumerate(self.schemes):
            states = list(s.gate.states)
            row_of[id(s.gate), s.channel] = ("p", k, states.index(s.gate.open_state) - 1)
        self.factors = [[] for _ in self.cell.channels]
        for s in self.hh + self.ca_gates + self.inst + self.schemes:
            self.factors[s.channel].append((row_of[id(s.gate), s.channel], s.gate.power))
        self.scheme_offsets = np.cumsum([0] + [len(s.gate.states) - 1 for s in self.schemes]).tolist()

    # ----- state ------------------------------------------------------------------------------
    def initial(self, n: int) -> dict[str, Any]:
        """Initial state of ``n`` neurons (V0, gates at steady state, schemes as declared)."""
        xp, dt = self.xp, self.dtype
        init = initial_state(self.cell)
        slots = cell_plan(self.cell).factors
        x_vals = {id(s.gate): v for s, v in zip([s for s in slots if s.kind != "scheme"], init["gates"], strict=True)}
        order = self.hh + self.ca_gates + self.inst
        X = xp.empty((self.n_x, n), dtype=dt)
        for k, s in enumerate(order):
            X[k] = x_vals[id(s.gate)]
        P = xp.empty((self.scheme_offsets[-1], n), dtype=dt)
        for k, (s, occ) in enumerate(zip(self.schemes, init["schemes"], strict=True)):
            for j, st in enumerate(s.gate.states[1:]):
                P[self.scheme_offsets[k] + j] = occ[st]
        ca = xp.full(n, init["ca"] if init["ca"] is not None else 0.0, dtype=dt)
        return {"V": xp.full(n, init["V"], dtype=dt), "X": X, "P": P, "ca": ca}

    def rates(self, V: Any) -> Any:
        """Rate-table columns at the current V of every neuron: shape (width, N)."""
        xp = self.xp
        if self.method == "exact":
            return self.columns_at(xp, V)
        u = (V - self.table_lo) * self.table_inv_step
        u = xp.clip(u, 0.0, self.table_n - 1e-9)
        i = u.astype(np.intp)
        f = u - i
        rows = xp.take(self.table, i, axis=1)
        w = self.cols.width
        vals = rows[w:]
        vals *= f
        vals += rows[:w]
        return vals

    def step(self, st: dict[str, Any], gbar: Any, g_leak: Any, drive: Any) -> Any:
        """Advance every neuron one step in place; returns the new V.

        Args:
            st: State dict from :meth:`initial` (modified in place; ``st["V"]`` is replaced).
            gbar: Active maximal conductances (n_channels − 1, N), mS/cm².
            g_leak: Leak conductance (N,), mS/cm².
            drive: g_leak·E_leak + I_app (N,), µA/cm².
        """
        xp, cols = self.xp, self.cols
        V, X, P, ca = st["V"], st["X"], st["P"], st["ca"]
        vals = self.rates(V)
        nh, nc = len(self.hh), len(self.ca_gates)
        if nh:
            xinf = vals[cols.hh_inf]
            Xh = X[:nh]
            Xh -= xinf
            Xh *= vals[cols.hh_decay]
            Xh += xinf
        for k, s in enumerate(self.ca_gates):
            xinf = self.calcium_gate_inf(s, V, ca)
            row = X[nh + k]
            row -= xinf
            row *= vals[cols.ca_decay.start + k]
            row += xinf
        if self.inst:
            X[nh + nc:] = vals[cols.inst_inf]
        self.assign(X, "x")
        for k, rows in enumerate(cols.scheme):
            occ = P[self.scheme_offsets[k]:self.scheme_offsets[k + 1]]
            old = [self.let(1.0 - occ.sum(axis=0), f"o{k}")] + [row.copy() for row in occ]
            for i, row_ids in enumerate(rows):
                new = vals[row_ids[0]] * old[0]
                for j in range(1, len(row_ids)):
                    new += vals[row_ids[j]] * old[j]
                occ[i] = new
            self.assign(occ, "p", self.scheme_offsets[k])
        geff = self.let(self.open_conductances(X, P, gbar), "g")
        if self.ca_decay is not None:
            pool = self.cell.calcium
            terms = [geff[c] * (V - self.E_host[c]) for c in self.ca_channels]
            i_ca = terms[0] if terms else 0.0
            for term in terms[1:]:
                i_ca += term
            ca_inf = self.let(pool.beta - pool.alpha * i_ca, "ca_inf")
            ca -= ca_inf
            ca *= self.ca_decay
            ca += ca_inf
            self.assign(ca, "ca")
        g_tot = geff.sum(axis=0)
        g_tot += g_leak
        g_tot = self.let(g_tot, "gt")
        # Σ_c E_c·g_c as a running sum, not a BLAS matrix-vector product: BLAS threads compete
        # with other processes (20× slower on a loaded machine) and its summation order depends
        # on the chunk width, which made results depend on chunking.
        v_inf = drive + self.E_host[0] * geff[0]
        for c in range(1, self.n_channels):
            v_inf += self.E_host[c] * geff[c]
        v_inf /= g_tot
        v_inf = self.let(v_inf, "vinf")
        g_tot *= self.v_rate
        decay = xp.exp(g_tot, out=g_tot)
        V_new = V - v_inf
        V_new *= decay
        V_new += v_inf
        st["V"] = self.assign(V_new, "v")
        return st["V"]

    # ----- hooks of the tracer (identities here; see condspace._codegen.step) -----------------
    def calcium_gate_inf(self, slot: Any, V: Any, ca: Any) -> Any:
        """x∞(V, [Ca]) of a calcium-dependent gate at the current V and [Ca] (not tabulated)."""
        return slot.gate.inf(self.xp, V, ca)

    def let(self, value: Any, name: str) -> Any:
        """An intermediate value the step uses more than once (the tracer gives it a name)."""
        return value

    def assign(self, rows: Any, name: str, offset: int = 0) -> Any:
        """New values of state rows, already written in place (the tracer writes the assignments)."""
        return rows

    def open_conductances(self, X: Any, P: Any, gbar: Any) -> Any:
        """ḡ × gating product for every active channel: shape (n_channels − 1, N)."""
        out = gbar.copy()
        for c, factors in enumerate(self.factors):
            for (src, *idx), power in factors:
                x = X[idx[0]] if src == "x" else P[self.scheme_offsets[idx[0]] + idx[1]]
                row = out[c]
                row *= x
                if power >= 2:
                    if power == 4:
                        x2 = x * x
                        row *= x
                        row *= x2
                    else:
                        for _ in range(power - 1):
                            row *= x
        return out
