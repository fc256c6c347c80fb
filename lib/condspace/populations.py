"""Degenerate neuron populations by DIC compensation, and their neuromodulation (Fyon et al. 2024).

At a reference voltage V* the DICs are linear in the maximal conductances: g_DIC = S(V*)·ḡ
(:mod:`condspace.dics`). Draw some conductances, leave a few unknown, and solve per neuron

    S_{R,unknown}(V*) · ḡ_unknown = g*_R − S_{R,drawn}(V*) · ḡ_drawn

for the targeted DIC rows R (as many rows as unknowns): every solution hits the same DIC target,
so the population is degenerate by construction. The leak is always drawn. When an unknown
channel carries calcium (STG CaT, CaS), the calcium-dependent column (KCa) depends on the unknown
itself through [Ca]∞(V*): solve with a guess, feed the solution back, repeat.

A neuron is *reachable* when its system is non-singular and its solution finite and non-negative.
Unreachable neurons are kept and flagged with a reason; nothing is dropped.

References: Drion G et al. (2015) eNeuro 2(1); Fyon A, Franci A, Sacré P, Drion G (2024) PNAS
Nexus 3:pgae415; Brandoit J et al. (2025) arXiv:2509.12783.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from condspace import _checks
from condspace import cells as _cells
from condspace.backend import array_module
from condspace.channels import CellType
from condspace.dics import sensitivity_columns
from condspace.plan import ROWS, cell_plan
from condspace.subsets import REASONS, outcome, solve
from condspace.subsets import SINGULAR_RTOL as SINGULAR_RTOL  # the one singularity test, kept under its old name

_ROW_INDEX = {"f": 0, "s": 1, "u": 2, "fast": 0, "slow": 1, "ultraslow": 2, "g_f": 0, "g_s": 1, "g_u": 2}


@dataclass
class CompensationResult:
    """Outcome of :func:`compensate` (also of :func:`spiking_population` and :func:`modulate`).

    Attributes:
        g: (N, n_channels) conductances (mS/cm², ``cell.channel_names`` order) with the unknown
            columns solved. Unreachable neurons keep their (negative or non-finite) solution so
            they can be inspected; singular systems give NaN there.
        reachable: (N,) bool: non-singular, finite and non-negative.
        reason: (N,) str: ``""`` when reachable, else ``"singular"``, ``"non-finite"`` or
            ``"negative"`` (the first that applies, in that order).
        solve_for: Channel names solved for.
        rows: DIC rows imposed (subset of ``("fast", "slow", "ultraslow")``).
        targets: (N, 3) targets (g_f, g_s, g_u) in multiples of g_leak; NaN in rows not imposed.
        V: (N,) reference voltage per neuron (mV).
        residual: (N,) max over the imposed rows of |S(V; g)·g / g_leak − target| recomputed with
            the final conductances (zero up to rounding without a calcium iteration).
        iterations: Calcium feedback iterations done after the first solve (0 when no unknown
            carries calcium).
        cell: Name of the cell type.
    """

    g: np.ndarray
    reachable: np.ndarray
    reason: np.ndarray
    solve_for: tuple[str, ...]
    rows: tuple[str, ...]
    targets: np.ndarray
    V: np.ndarray
    residual: np.ndarray
    iterations: int
    cell: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_reachable(self) -> int:
        """Number of reachable neurons."""
        return int(np.count_nonzero(self.reachable))

    def counts(self) -> dict[str, int]:
        """Neurons per outcome: ``{"reachable": …, "singular": …, "non-finite": …, "negative": …}``."""
        out = {"reachable": self.n_reachable}
        for r in REASONS[1:]:
            out[r] = int(np.count_nonzero(self.reason == r))
        return out

    def frame(self) -> Any:
        """The population as a pandas DataFrame: conductance columns, V, reachable, reason."""
        import pandas as pd  # noqa: PLC0415

        cell = _cells.get(self.cell)
        df = pd.DataFrame(self.g, columns=list(cell.conductance_names))
        df["V"] = self.V
        df["reachable"] = self.reachable
        df["reason"] = self.reason
        return df


# ----- argument checking --------------------------------------------------------------------------
def _channel_indices(cell: CellType, names: Any, arg: str) -> tuple[int, ...]:
    if isinstance(names, str):
        names = (names,)
    try:
        idx = tuple(cell.index(n) for n in names)
    except KeyError as err:
        raise KeyError(f"{arg}: {err.args[0]}") from None
    except TypeError:
        raise ValueError(f"{arg}: expected channel names such as ('Na', 'A', 'H'), got {names!r}") from None
    leak = cell.n_channels - 1
    if leak in idx:
        raise ValueError(f"{arg}: the leak is always drawn, it cannot be solved for")
    if len(set(idx)) != len(idx):
        raise ValueError(f"{arg}: channel names repeat: {tuple(names)}")
    if not 1 <= len(idx) <= 3:
        raise ValueError(f"{arg}: solve for 1 to 3 channels (one per DIC row), got {len(idx)}")
    return idx


def _rows(rows: Any, k: int) -> tuple[int, ...]:
    """Row indices: given, or by the number of unknowns (3 → f, s, u; 2 → s, u)."""
    if rows is None:
        if k == 3:
            return (0, 1, 2)
        if k == 2:
            return (1, 2)
        raise ValueError("rows: with one unknown channel, say which DIC row to impose, e.g. rows=('u',)")
    if isinstance(rows, str):
        rows = (rows,)
    try:
        idx = tuple(_ROW_INDEX[r] for r in rows)
    except (KeyError, TypeError):
        raise ValueError(f"rows: use names from 'f', 's', 'u' (or 'fast', 'slow', 'ultraslow'), got {rows!r}") from None
    if len(idx) != k or len(set(idx)) != k:
        raise ValueError(f"rows: need {k} distinct rows for {k} unknown channels, got {rows!r}")
    return tuple(sorted(idx))


def _drawn_matrix(cell: CellType, g: Any, unknown: tuple[int, ...], arg: str) -> np.ndarray:
    """(N, n) float array, a copy; unknown columns may hold anything (NaN), the drawn ones are
    checked by the one conductance validator (:func:`condspace._checks.conductances`)."""
    return np.array(_checks.conductances(cell, g, arg, unknown=unknown), dtype=float, copy=True)


def _per_neuron(value: Any, N: int, width: int | None, arg: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    shape = (N,) if width is None else (N, width)
    try:
        out = np.array(np.broadcast_to(arr, shape), dtype=float)
    except ValueError:
        want = "a scalar or (N,)" if width is None else f"({width},) or (N, {width})"
        raise ValueError(f"{arg}: expected {want} with N = {N}, got shape {arr.shape}") from None
    if not np.isfinite(out).all():
        raise ValueError(f"{arg}: values must be finite")
    return out


def _targets(targets: Any, rows: tuple[int, ...], N: int) -> np.ndarray:
    """(N, 3) targets with NaN outside the imposed rows, from full (…, 3) or row-only (…, |R|) input."""
    arr = np.asarray(targets, dtype=float)
    width = arr.shape[-1] if arr.ndim else 0
    if width == 3:
        full = _per_neuron(arr, N, 3, "targets")
    elif width == len(rows):
        part = _per_neuron(arr, N, len(rows), "targets")
        full = np.full((N, 3), np.nan)
        full[:, list(rows)] = part
    else:
        raise ValueError(f"targets: give (g_f, g_s, g_u) as (3,) or (N, 3), or only the imposed rows "
                         f"{tuple(ROWS[r] for r in rows)} as ({len(rows)},) or (N, {len(rows)}); got shape {arr.shape}")
    out = np.full((N, 3), np.nan)
    out[:, list(rows)] = full[:, list(rows)]
    if not np.isfinite(out[:, list(rows)]).all():
        raise ValueError("targets: imposed targets must be finite")
    return out


# ----- the batched solve --------------------------------------------------------------------------
def _classify(G: Any, unknown: tuple[int, ...], singular: Any) -> tuple[np.ndarray, np.ndarray]:
    code = outcome(G[:, list(unknown)], singular)
    return code == 0, np.asarray(REASONS, dtype=object)[code]


def _initial_guess(cell: CellType, G: np.ndarray, unknown: tuple[int, ...], carriers: tuple[int, ...],
                   targets: np.ndarray, guess: Any) -> None:
    """Fill the unknown calcium carriers of G in place with their starting values."""
    N = G.shape[0]
    for j in unknown:
        if j not in carriers:
            continue
        name = cell.channel_names[j]
        if guess is not None:
            value = guess.get(name, guess.get(f"g_{name}")) if isinstance(guess, Mapping) else guess
            if value is None:
                raise ValueError(f"guess: no starting value for {name}; give guess={{'{name}': value}}")
            G[:, j] = _per_neuron(value, N, None, "guess")
            continue
        recipe = cell.population.calcium_guess if cell.population is not None else {}
        if name not in recipe:
            raise ValueError(f"guess: {name} carries calcium, so the KCa column depends on it; cell "
                             f"{cell.name!r} declares no starting guess for it (population.calcium_guess), "
                             "pass guess=…")
        gs = targets[:, 1]
        if not np.isfinite(gs).all():
            raise ValueError(f"guess: the declared starting guess of {name} is a function of the target g_s, "
                             "which is not imposed here; pass guess=…")
        intercept, slope = recipe[name]
        G[:, j] = intercept + slope * gs


def _compensate(cell: CellType, G: np.ndarray, unknown: tuple[int, ...], rows: tuple[int, ...],
                targets: np.ndarray, V: np.ndarray, iterations: int, xp: Any) -> CompensationResult:
    """Core of compensate / modulate on validated input; G holds the starting values of the unknowns.

    Works on un-normalised columns: S_{R,U} ḡ_U = g_leak·g*_R − S_{R,D} ḡ_D. With one voltage for
    all neurons the voltage-only columns are scalars; only calcium-dependent columns are per neuron.
    """
    plan = cell_plan(cell)
    N = G.shape[0]
    drawn = [j for j in range(plan.n) if j not in unknown]
    needs_loop = bool(plan.ca_dependent) and any(j in plan.carriers for j in unknown)
    n_solves = 1 + int(iterations) if needs_loop else 1  # first solve with the guess, then feedbacks
    Gx = xp.asarray(G)
    Vx = xp.asarray(V)
    if N and bool(xp.all(Vx == Vx[0])):
        Vx = Vx[0]  # one voltage: the voltage-only columns are computed once
    gl = Gx[:, -1]
    T = [xp.asarray(targets[:, r]) * gl for r in rows]
    singular = xp.zeros(N, dtype=bool)

    def columns(g: Any) -> list[tuple[Any, Any, Any]]:
        return sensitivity_columns(plan, xp, Vx, [g[:, j] for j in range(plan.n)])

    for _ in range(n_solves):
        cols = columns(xp.where(xp.isfinite(Gx), Gx, 0.0))
        A = [[cols[u][r] for u in unknown] for r in rows]
        b = [T[i] - sum(cols[j][r] * Gx[:, j] for j in drawn) for i, r in enumerate(rows)]
        x, singular = solve(A, b, xp)
        singular = xp.broadcast_to(singular, (N,))
        for u, xu in zip(unknown, x, strict=True):
            Gx[:, u] = xu
    cols = columns(xp.where(xp.isfinite(Gx), Gx, 0.0))
    residual = 0.0
    for i, r in enumerate(rows):
        achieved = sum(cols[j][r] * Gx[:, j] for j in range(plan.n))
        residual = xp.maximum(residual, xp.abs(achieved - T[i]) / gl)
    to_np = (lambda a: a.get()) if hasattr(Gx, "__cuda_array_interface__") else np.asarray
    G_out, sing, res = to_np(Gx), to_np(singular), np.array(to_np(residual), dtype=float)
    res[sing] = np.nan
    reachable, reason = _classify(G_out, unknown, sing)
    return CompensationResult(g=G_out, reachable=reachable, reason=reason,
                              solve_for=tuple(cell.channel_names[j] for j in unknown),
                              rows=tuple(ROWS[r] for r in rows), targets=targets,
                              V=np.broadcast_to(V, (N,)).copy(),
                              residual=res, iterations=n_solves - 1, cell=cell.name)


# ----- public API ----------------------------------------------------------------------------------
def compensate(cell: CellType | str, g_drawn: Any, targets: Any, V: Any, solve_for: Sequence[str],
               iterations: int = 5, guess: Any = None, rows: Any = None, backend: Any = "numpy") -> CompensationResult:
    """Solve for the unknown conductances that put each neuron's DICs on target at V.

    Args:
        cell: Cell type or registry name.
        g_drawn: (N, n_channels) or (n_channels,) conductances (mS/cm²) in ``cell.channel_names``
            order; the unknown columns are ignored (NaN is fine there). A mapping or DataFrame
            with conductance names works too (unknown columns may be absent).
        targets: DIC targets in multiples of g_leak: (g_f, g_s, g_u) as (3,) or (N, 3), or only
            the imposed rows as (|R|,) or (N, |R|).
        V: Reference voltage (mV), scalar or (N,); ``None`` means ``cell.population.V_ref``.
        solve_for: The unknown channels (1 to 3 names, e.g. ``("Na", "A", "H")``).
        iterations: Feedback iterations of the calcium loop after the first solve with the guess
            (1 + iterations solves; used only when an unknown carries calcium). 5 reach ≤ 1e-4
            residual in typical cases, 25 for maps; the modulation check values of Fyon et al.
            2024 are reproduced with this count.
        guess: Starting value(s) of unknown calcium carriers: a scalar / (N,) array, or a mapping
            name → value(s). Default: ``cell.population.calcium_guess`` as a function of the
            target g_s (STG: ḡ_CaS⁽⁰⁾ = 34.12 − 2.330·g_s*, ḡ_CaT⁽⁰⁾ = 24.6 − 5.14·g_s*).
        rows: Imposed DIC rows R, |R| = number of unknowns. Default: three unknowns → (f, s, u);
            two → (s, u) (g_f left free, as in neuromodulation); one unknown needs explicit rows.
        backend: Where the sensitivity and the solves run (as in :func:`condspace.dics.dics`); inputs
            and results stay NumPy arrays on the host.

    Returns:
        A :class:`CompensationResult` with every neuron, reachable or not.

    Raises:
        KeyError: Unknown channel names.
        ValueError: Malformed shapes, negative/non-finite drawn conductances, bad targets/rows.
    """
    cell = _cells.get(cell)
    xp = array_module(backend)
    unknown = _channel_indices(cell, solve_for, "solve_for")
    R = _rows(rows, len(unknown))
    G = _drawn_matrix(cell, g_drawn, unknown, "g_drawn")
    N = G.shape[0]
    if V is None:
        if cell.population is None:
            raise ValueError(f"V: cell {cell.name!r} declares no reference voltage; pass V")
        V = cell.population.V_ref
    Vn = _per_neuron(V, N, None, "V")
    T = _targets(targets, R, N)
    if int(iterations) < 0:
        raise ValueError(f"iterations: need a count >= 0, got {iterations}")
    plan = cell_plan(cell)
    G[:, list(unknown)] = 0.0
    _initial_guess(cell, G, unknown, plan.carriers if plan.ca_dependent else (), T, guess)
    return _compensate(cell, G, unknown, R, T, Vn, iterations, xp)


def gamma_matched(a: float, b: float) -> tuple[float, float]:
    """(shape k, scale θ) of the Gamma distribution with the mean and variance of U[a, b].

    k = 3(a+b)²/(b−a)², θ = (b−a)²/(6(a+b)): mean kθ = (a+b)/2, variance kθ² = (b−a)²/12.
    """
    if not 0 <= a < b:
        raise ValueError(f"leak range: need 0 <= a < b, got ({a}, {b})")
    return 3.0 * (a + b) ** 2 / (b - a) ** 2, (b - a) ** 2 / (6.0 * (a + b))


def full_target(cell: CellType | str, target: Any) -> np.ndarray:
    """(g_f, g_s, g_u) from a full target or from (g_s, g_u) with g_f from ``cell.population.gf_rule``."""
    cell = _cells.get(cell)
    t = np.asarray(target, dtype=float)
    if t.shape == (3,):
        return t
    if t.shape == (2,):
        a, b = cell.population.gf_rule
        return np.array([a * t[0] + b, t[0], t[1]])
    raise ValueError(f"target: give (g_f, g_s, g_u) or (g_s, g_u), got shape {t.shape}")


def spiking_population(cell: CellType | str, n: int, seed: int | None, target: Any = None,
                       iterations: int = 5, backend: Any = "numpy") -> CompensationResult:
    """A degenerate population built by compensation, following ``cell.population``.

    Draws (in this order, from ``numpy.random.default_rng(seed)``): each conductance of
    ``population.drawn`` ~ U[lo, hi] (declaration order, n values each), then g_leak ~ Gamma with
    the mean and variance of U[leak_uniform] (:func:`gamma_matched`). Every drawn conductance is
    multiplied by g_leak / mean(g_leak), mean(g_leak) = (a + b)/2 being the distribution mean (so
    the DIC targets, multiples of g_leak, mean the same for every neuron). ``cell.fixed`` values
    (DA: g_NMDA = 0.012) are used as they are. The ``population.solve_for`` channels are then
    solved at ``population.V_ref`` for the target.

    Args:
        cell: Cell type or registry name (must declare ``population``).
        n: Number of neurons.
        seed: Seed of the random generator.
        target: (g_f, g_s, g_u), or (g_s, g_u) with g_f from ``population.gf_rule``;
            default ``population.target``.
        iterations: Calcium iterations when a solved channel carries calcium.
        backend: Where the solves run (as in :func:`compensate`).

    Returns:
        A :class:`CompensationResult` with all n neurons (check ``reachable``).
    """
    cell = _cells.get(cell)
    xp = array_module(backend)
    recipe = cell.population
    if recipe is None:
        raise ValueError(f"cell {cell.name!r} declares no population recipe (CellType.population)")
    if int(n) < 1:
        raise ValueError(f"n: need at least one neuron, got {n}")
    t = full_target(cell, recipe.target if target is None else target)
    rng = np.random.default_rng(seed)
    G = np.full((int(n), cell.n_channels), np.nan)
    for name, (lo, hi) in recipe.drawn.items():
        G[:, cell.index(name)] = rng.uniform(lo, hi, int(n))
    a, b = recipe.leak_uniform
    k, theta = gamma_matched(a, b)
    g_leak = rng.gamma(k, theta, int(n))
    for name in recipe.drawn:
        G[:, cell.index(name)] *= g_leak / (0.5 * (a + b))
    for name, value in cell.fixed.items():
        G[:, cell.index(name)] = value
    G[:, -1] = g_leak
    res = compensate(cell, G, t, recipe.V_ref, recipe.solve_for, iterations=iterations, backend=xp)
    res.meta.update(seed=seed, target=tuple(t))
    return res


def modulation_pair(cell: CellType | str, g_s: float, g_u: float) -> tuple[str, str]:
    """The default channel pair for a (g_s, g_u) target from ``cell.population.modulation_pairs``."""
    cell = _cells.get(cell)
    rules = cell.population.modulation_pairs if cell.population is not None else ()
    tests = {"gu<0": g_u < 0, "gs>=0": g_s >= 0, "gs<0": g_s < 0, "else": True}
    for condition, pair in rules:
        if condition not in tests:
            raise ValueError(f"cell {cell.name!r}: unknown modulation rule condition {condition!r}")
        if tests[condition]:
            return tuple(pair)
    raise ValueError(f"cell {cell.name!r} declares no modulation pair for (g_s, g_u) = ({g_s}, {g_u}); pass channels")


def modulate(cell: CellType | str, g: Any, target: Any, V: Any = None, channels: Sequence[str] | None = None,
             iterations: int = 25, guess: Any = None, backend: Any = "numpy") -> CompensationResult:
    """Move neurons to a new (g_s, g_u) by re-solving two channels with the slow and ultraslow rows.

    g_f is left free and every other conductance keeps its value. A calcium-carrying channel in the
    pair starts the calcium iteration from ``cell.population.calcium_guess`` at the target g_s (as
    in :func:`compensate`; this reproduces the published modulation check values), from the
    neuron's own current value with ``guess="baseline"``, or from explicit values.

    Args:
        cell: Cell type or registry name.
        g: (N, n_channels) current conductances (mS/cm²), all finite and non-negative.
        target: (g_s*, g_u*) as (2,) or (N, 2), multiples of g_leak.
        V: Reference voltage (mV), scalar or (N,); default ``cell.population.V_ref``.
        channels: The pair to re-solve, e.g. ``("CaS", "H")``; default per neuron from
            ``cell.population.modulation_pairs`` (:func:`modulation_pair`).
        iterations: Calcium feedback iterations after the first solve (when the pair carries
            calcium).
        guess: ``None`` (declared guess), ``"baseline"`` (current values) or starting values of
            the calcium carriers in the pair (see :func:`compensate`).
        backend: Where the solves run (as in :func:`compensate`).

    Returns:
        A :class:`CompensationResult`; ``meta["pairs"]`` holds the pair used per neuron.
        Singular pairs (e.g. STG {Na, Kd}, any DA pair with NMDA) come back unreachable with
        reason ``"singular"``.
    """
    cell = _cells.get(cell)
    xp = array_module(backend)
    G0 = _drawn_matrix(cell, g, (), "g")
    N = G0.shape[0]
    if V is None:
        if cell.population is None:
            raise ValueError(f"V: cell {cell.name!r} declares no reference voltage; pass V")
        V = cell.population.V_ref
    Vn = _per_neuron(V, N, None, "V")
    tgt = _per_neuron(target, N, 2, "target")
    if channels is not None:
        pairs = np.empty(N, dtype=object)
        pairs[:] = [tuple(channels)] * N
    else:
        pairs = np.empty(N, dtype=object)
        pairs[:] = [modulation_pair(cell, s, u) for s, u in tgt]
    if int(iterations) < 0:
        raise ValueError(f"iterations: need a count >= 0, got {iterations}")
    plan = cell_plan(cell)
    carriers = plan.carriers if plan.ca_dependent else ()
    out_g = G0.copy()
    reachable = np.zeros(N, dtype=bool)
    reason = np.full(N, "", dtype=object)
    residual = np.full(N, np.nan)
    targets = np.full((N, 3), np.nan)
    targets[:, 1:] = tgt
    n_iter = 0
    for pair in sorted(set(pairs), key=str):
        unknown = _channel_indices(cell, pair, "channels")
        if len(unknown) != 2:
            raise ValueError(f"channels: modulation re-solves exactly two channels, got {pair!r}")
        sel = np.nonzero([p == pair for p in pairs])[0]
        Gs = G0[sel].copy()
        if not (isinstance(guess, str) and guess == "baseline"):
            _initial_guess(cell, Gs, unknown, carriers, targets[sel], guess)
        res = _compensate(cell, Gs, unknown, (1, 2), targets[sel], Vn[sel], iterations, xp)
        out_g[sel], reachable[sel], reason[sel], residual[sel] = res.g, res.reachable, res.reason, res.residual
        n_iter = max(n_iter, res.iterations)
    solved = tuple(pairs[0]) if len(set(pairs)) == 1 else ()
    return CompensationResult(g=out_g, reachable=reachable, reason=reason, solve_for=solved, rows=("slow", "ultraslow"),
                              targets=targets, V=Vn, residual=residual, iterations=n_iter, cell=cell.name,
                              meta={"pairs": pairs})
