"""The channel library: gating shapes, a safe exponential and the declaration types.

A cell type (see :mod:`condspace.cells`) is a list of :class:`Channel` objects on top of these
types. Every rate function receives the array module ``xp`` first so the same function runs on
NumPy, on CuPy and on complex numbers (complex-step derivatives in :mod:`condspace.dics`).
Voltages in mV, times in ms, [Ca] in µM.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

EXP_CAP = 500.0
"""Exponents are clipped to ±EXP_CAP before ``exp`` (exp(709) overflows float64)."""

TIMESCALES = ("fast", "slow", "ultraslow")


def safe_exp(xp: Any, x: Any) -> Any:
    """``exp(x)`` with the real part of the exponent clipped to ±:data:`EXP_CAP`.

    The imaginary part is kept, so complex-step differentiation goes through unchanged.
    """
    if xp.iscomplexobj(x):
        re, im = xp.clip(x.real, -EXP_CAP, EXP_CAP), x.imag
        if im.size == 0 or float(xp.max(xp.abs(im))) < 1e-10:  # (CuPy's max has no `initial`)
            # Complex-step derivatives use im ~ 1e-20: there cos(im) == 1 and sin(im) == im in
            # double precision, so exp(re)·(1 + i·im) is exact and avoids a complex exp.
            e = xp.exp(re)
            return e + 1j * (e * im)
        return xp.exp(re + 1j * im)
    return xp.exp(xp.clip(x, -EXP_CAP, EXP_CAP))


def sigmoid(xp: Any, V: Any, D: float, k: float) -> Any:
    """Boltzmann shape σ(V; D, k) = 1 / (1 + exp((V + D) / k)) (dimensionless)."""
    return 1.0 / (1.0 + safe_exp(xp, (V + D) / k))


def tau_sigmoid(xp: Any, V: Any, A: float, B: float, D: float, k: float) -> Any:
    """The "tau sigmoid" A + B·σ(V; D, k) (ms)."""
    return A + B * sigmoid(xp, V, D, k)


def tau_double_exp(xp: Any, V: Any, A: float, B: float, D1: float, k1: float, D2: float, k2: float) -> Any:
    """A + B / (exp((V + D1)/k1) + exp((V + D2)/k2)) (ms), the bell-shaped τ of Liu et al. 1998."""
    return A + B / (safe_exp(xp, (V + D1) / k1) + safe_exp(xp, (V + D2) / k2))


def linear_over_expm1(xp: Any, V: Any, a: float, b: float, c: float, d: float, delta: float = 1e-2) -> Any:
    """(a + b·V) / (exp(c + d·V) − 1), evaluated safely near the zero of the exponent.

    Hodgkin–Huxley style rates have a removable singularity where the exponent vanishes when the
    numerator vanishes at the same voltage. With published, rounded coefficients the two zeros can
    differ by a few hundredths of a mV, leaving a narrow pole. Inside ``|c + d·V| < delta`` the
    function is replaced by the straight line between its values at ``c + d·V = ±delta``; outside
    it is the expression as published.

    Args:
        xp: Array module.
        V: Membrane potential (mV), any shape.
        a: Numerator constant term.
        b: Numerator coefficient of V (1/mV).
        c: Exponent constant term.
        d: Exponent coefficient of V (1/mV), non-zero.
        delta: Half-width of the bridged window in units of the exponent.
    """
    x = c + d * V
    inside = xp.abs(x.real if xp.iscomplexobj(x) else x) < delta
    x_safe = xp.where(inside, delta, x)
    direct = (a + b * V) / (safe_exp(xp, x_safe) - 1.0)
    v_lo, v_hi = (-delta - c) / d, (delta - c) / d
    f_lo = (a + b * v_lo) / (xp.exp(-delta) - 1.0)
    f_hi = (a + b * v_hi) / (xp.exp(delta) - 1.0)
    bridged = f_lo + (f_hi - f_lo) * (V - v_lo) / (v_hi - v_lo)
    return xp.where(inside, bridged, direct)


RateFn = Callable[..., Any]


@dataclass(frozen=True)
class Gate:
    """One Hodgkin–Huxley gating variable.

    Attributes:
        name: Gate name within its channel, e.g. ``"m"``.
        power: Exponent of the gate in the channel's gating product (m³h → m: 3, h: 1).
        inf: Steady state, ``inf(xp, V)`` or ``inf(xp, V, ca)`` when ``uses_calcium``.
        tau: Time constant ``tau(xp, V)`` in ms; ``None`` for an instantaneous gate.
        uses_calcium: The steady state depends on [Ca] (µM) as well as V.
        timescale: Optional DIC override, one of ``"fast"``, ``"slow"``, ``"ultraslow"``;
            ``None`` means: weight by ``tau`` (instantaneous gates are fast).
    """

    name: str
    power: int
    inf: RateFn
    tau: RateFn | None
    uses_calcium: bool = False
    timescale: str | None = None

    def __post_init__(self) -> None:
        if self.timescale is not None and self.timescale not in TIMESCALES:
            raise ValueError(f"Gate {self.name}: timescale must be one of {TIMESCALES}")
        if self.power < 1:
            raise ValueError(f"Gate {self.name}: power must be a positive integer")


@dataclass(frozen=True)
class Transition:
    """One first-order transition ``source → target`` of a kinetic scheme, rate in 1/ms."""

    source: str
    target: str
    rate: RateFn  # rate(xp, V) in 1/ms


@dataclass(frozen=True)
class KineticScheme:
    """A multi-state (Markov) gate; the channel conducts in ``open_state``.

    The first state in ``states`` is eliminated by conservation (occupancies sum to 1), the
    others are integrated. Its steady state is derived by the engines from the transitions.

    Attributes:
        name: Name of the gating variable, e.g. ``"o"``.
        states: State names; ``states[0]`` is the conserved one.
        transitions: The transitions between them.
        open_state: The conducting state.
        power: Exponent of the open probability in the gating product.
        initial: Initial occupancies of the integrated states; ``None`` = steady state at V0.
        timescale: DIC timescale of the whole scheme (required: schemes have no single τ).
    """

    name: str
    states: tuple[str, ...]
    transitions: tuple[Transition, ...]
    open_state: str
    timescale: str
    power: int = 1
    initial: dict[str, float] | None = None

    def __post_init__(self) -> None:
        known = set(self.states)
        for t in self.transitions:
            if t.source not in known or t.target not in known:
                raise ValueError(f"Scheme {self.name}: transition {t.source}->{t.target} names an unknown state")
        if self.open_state not in known or self.open_state == self.states[0]:
            raise ValueError(f"Scheme {self.name}: open_state must be one of the integrated states")
        if self.timescale not in TIMESCALES:
            raise ValueError(f"Scheme {self.name}: timescale must be one of {TIMESCALES}")


@dataclass(frozen=True)
class Channel:
    """An ionic channel: ḡ · Π gates^power · (V − E).

    Attributes:
        name: Channel name; its conductance is called ``g_<name>`` everywhere.
        gates: Gates and/or kinetic schemes, whose powered product is the open fraction.
        reversal: Reversal potential E (mV).
        carries_calcium: Its current feeds the cell's calcium pool.
        meta: Reference, DOI, species and notes.
    """

    name: str
    gates: tuple[Gate | KineticScheme, ...]
    reversal: float
    carries_calcium: bool = False
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CalciumPool:
    """First-order intracellular calcium: τ d[Ca]/dt = −α·I_Ca − [Ca] + β.

    Attributes:
        tau: Time constant (ms).
        alpha: Current-to-concentration factor (µM per µA/cm²).
        beta: Resting [Ca] (µM).
        initial: [Ca] at t = 0 (µM).
    """

    tau: float
    alpha: float
    beta: float
    initial: float


GateRef = tuple[str, str]
"""A reference to one gate, ``(channel name, gate name)``, e.g. ``("Na", "m")``."""


@dataclass(frozen=True)
class PopulationRecipe:
    """How the literature builds a degenerate spiking population by compensation (DICs).

    Attributes:
        V_ref: Reference voltage V* (mV) at which DIC targets are imposed.
        target: Default (g_f, g_s, g_u) target, in multiples of g_leak.
        gf_rule: (slope, intercept) of the g_f target as a function of g_s: g_f = a·g_s + b.
        solve_for: Channels solved for (one per targeted DIC row).
        drawn: Uniform ranges of the drawn conductances (mS/cm²), before leak scaling.
        leak_uniform: (a, b): g_leak ~ Gamma with the mean and variance of U[a, b].
        calcium_guess: For channels whose column depends on themselves through [Ca]:
            name → (intercept, slope) of the initial guess as a function of target g_s.
        modulation_pairs: Default channel pairs for (g_s, g_u) modulation, as
            ``(condition, pair)`` rules checked in order; condition is one of
            ``"gu<0"``, ``"gs>=0"``, ``"gs<0"``, ``"else"``.
    """

    V_ref: float
    target: tuple[float, float, float]
    gf_rule: tuple[float, float]
    solve_for: tuple[str, ...]
    drawn: dict[str, tuple[float, float]]
    leak_uniform: tuple[float, float]
    calcium_guess: dict[str, tuple[float, float]] = field(default_factory=dict)
    modulation_pairs: tuple[tuple[str, tuple[str, str]], ...] = ()


ACTIVITIES = ("silent", "spiking", "bursting")
"""Activity classes a :class:`Behaviour` may name: the classes of :mod:`condspace.features`
(silent: fewer than 3 spikes; spiking: CV_ISI ≤ 0.15; bursting: otherwise; SCIENCE.md §5)."""

DEFAULT_DT = 0.05
"""Time step (ms) of a protocol that declares none."""

DEFAULT_INFERENCE_BUDGET = 20_000
"""Training simulations of a cell that declares no ``inference_budget``."""

DEFAULT_RECORDING_NOISE = 0.1
"""Noise (µA/cm², standard deviation after filtering) of the default demonstration recordings."""

DEFAULT_NOISE_PRIOR = 2.5
"""Smallest derived upper bound (µA/cm², std after filtering) of the inferred noise strength: the noisy
published STG datasets inject σ = 5 µA/cm² of white noise at 10 kHz before a zero-phase 1 kHz
Butterworth low-pass, about 2.1 µA/cm² after it (SCIENCE.md §5), so the default prior covers them."""

NOISE_PRIOR_MARGIN = 1.25
"""The derived noise prior reaches this factor above the loudest declared recording, so that a
recording's noise lies inside the prior, not on its edge."""


@dataclass(frozen=True)
class Behaviour:
    """A published behaviour that a declaration must reproduce (checked by tests/test_cells.py).

    The example set ``cell.examples[example]`` is simulated with the constant applied current
    ``current`` and the cell's protocol (t_max, transient, dt, no noise); the activity class of the
    spikes after the transient (:func:`condspace.features.classify`) must equal ``activity``.

    Attributes:
        description: What the paper reports, in words (e.g. "tonic firing at ≈ 15 Hz").
        example: Label of the example set in ``cell.examples``.
        current: Constant applied current I_app (µA/cm²); positive depolarises.
        activity: Expected class, one of :data:`ACTIVITIES`.
        source: Paper and figure (or table) that reports the behaviour.
    """

    description: str
    example: str
    current: float
    activity: str
    source: str

    def __post_init__(self) -> None:
        if self.activity not in ACTIVITIES:
            raise ValueError(f"Behaviour {self.description!r}: activity must be one of {ACTIVITIES}, "
                             f"got {self.activity!r}")
        current = self.current
        if isinstance(current, bool) or not isinstance(current, (int, float)) or not math.isfinite(current):
            raise ValueError(f"Behaviour {self.description!r}: current must be a finite number (µA/cm²), "
                             f"got {self.current!r}")


DICPoint = tuple[float, float]
"""A point (g_s, g_u) of the DIC plane, in multiples of g_leak."""


@dataclass(frozen=True)
class CellType:
    """A conductance-based cell type, declared once and read by every engine, chapter and tool.

    Everything the book needs to know about a cell type is a field here, so that a new cell type
    is one file in :mod:`condspace.cells`. Fields marked *derived* may be omitted: ``None`` is
    replaced at construction by a value computed from the other fields (documented per field).

    Attributes:
        name: Short registry name (``"stg"``).
        title: Human-readable title.
        channels: The active channels, in conductance order (leak comes last, implicitly).
        leak_reversal: E_leak (mV).
        capacitance: C (µF/cm²).
        V0: Initial membrane potential (mV); gates start at their steady state there.
        calcium: The calcium pool, or ``None``.
        box: Literature box of conductance ranges (mS/cm²) for the inferred conductances.
        fixed: Conductances held at a value (mS/cm²) by populations, maps and neuromodulation, and
            not inferred unless listed in ``inferred_fixed``.
        examples: Published example conductance sets, label → {g_name: value} (mS/cm²).
        dic_reference: Reference time constants for the DIC weights, one per timescale
            ("fast", "slow", "ultraslow"): a gate reference (its τ(V)) or a constant (ms).
        protocol: Default simulation protocol, {"t_max": ms, "transient": ms, "dt": ms}, used by
            every function that simulates unless told otherwise. ``dt`` may be omitted
            (:data:`DEFAULT_DT`, 0.05 ms); the analysed window is t_max − transient.
        population: The compensation recipe of the literature, or ``None``.
        meta: Reference, DOI, species, notes.
        prior_widening: Inference prior bounds that replace the box's, g_name → (low, high)
            (mS/cm²), e.g. so that every published example lies inside the prior or the leak
            stays positive; default none (the prior is the box, :meth:`prior_box`).
        inferred_fixed: Conductances of ``fixed`` that the inference prior infers all the same,
            g_name → (low, high) (mS/cm²): populations, maps and the modulation hypotheses keep
            the fixed value, the posterior does not (the DA's g_NMDA: the published sets that make
            its recordings do not share one value). Each range must contain the fixed value.
        inference_budget: Training simulations of the standard posterior
            (:func:`condspace.inference.trained_posterior` with the standard estimator); default
            :data:`DEFAULT_INFERENCE_BUDGET` (20,000).
        dic_map_ranges: ((g_s low, g_s high), (g_u low, g_u high)) of the cell's reachability and
            activity maps (multiples of g_leak). ``None`` (default): derived by
            :func:`condspace.neuromodulation.map_ranges` from the DICs at V* of draws from the
            prior box (the DIC engine is not importable here).
        modulation_targets: The two regimes of the neuromodulation chapters as DIC points,
            {"spiking": (g_s, g_u), "bursting": (g_s, g_u)} (× g_leak at the recipe's V*); a path
            runs from the first to the second. *Derived* when ``None``: spiking = the (g_s, g_u)
            of the population recipe's target, bursting = (−|g_s|, g_u) of it (slow positive
            feedback of the same size, SCIENCE.md §3); empty without a recipe.
        recordings: Demonstration recordings (synthetic, ground truth known), ID →
            (example label, noise_std µA/cm² after filtering, noise seed), simulated with the
            cell's protocol by :func:`condspace.inference.synthetic_recordings`. *Derived* when
            ``None``: one per example set, ID ``<name>_<label>``, noise
            :data:`DEFAULT_RECORDING_NOISE`, seeds 1, 2, …
        behaviours: Published behaviours the declaration must reproduce (:class:`Behaviour`);
            a generic test simulates each of them.
        noise_prior: Upper bound (µA/cm², standard deviation after filtering) of the uniform prior
            on the noise current's strength, which the posterior infers with the conductances
            (:func:`condspace.inference.make_prior`); 0: noise not inferred (noiseless training).
            *Derived* when ``None``: max(:data:`DEFAULT_NOISE_PRIOR`, :data:`NOISE_PRIOR_MARGIN` ×
            the loudest declared recording).
        missed_prior: Upper bound of the uniform prior on ``p_missed``, the probability that the
            spike detector misses a spike (each independently): the posterior infers it with the
            conductances, and every training simulation loses its spikes at its own rate
            (:func:`condspace.inference.make_prior`). 0 (default): detection is taken as perfect
            and nothing is inferred. Below 1.
    """

    name: str
    title: str
    channels: tuple[Channel, ...]
    leak_reversal: float
    capacitance: float
    V0: float
    calcium: CalciumPool | None
    box: dict[str, tuple[float, float]]
    fixed: dict[str, float]
    examples: dict[str, dict[str, float]]
    dic_reference: dict[str, GateRef | float]
    protocol: dict[str, float]
    population: PopulationRecipe | None = None
    meta: dict[str, str] = field(default_factory=dict)
    prior_widening: dict[str, tuple[float, float]] = field(default_factory=dict)
    inferred_fixed: dict[str, tuple[float, float]] = field(default_factory=dict)
    inference_budget: int = DEFAULT_INFERENCE_BUDGET
    dic_map_ranges: tuple[DICPoint, DICPoint] | None = None
    modulation_targets: dict[str, DICPoint] | None = None
    recordings: dict[str, tuple[str, float, int]] | None = None
    behaviours: tuple[Behaviour, ...] = ()
    noise_prior: float | None = None
    missed_prior: float = 0.0

    def __post_init__(self) -> None:
        _set = object.__setattr__  # frozen: derived defaults are filled in once, here
        _set(self, "protocol", self._checked_protocol())
        budget = self.inference_budget
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ValueError(f"cell {self.name!r}: inference_budget must be a positive integer (simulations), "
                             f"got {self.inference_budget!r}")
        for g_name, lohi in self.prior_widening.items():
            if g_name not in self.box:
                raise ValueError(f"cell {self.name!r}: prior_widening names {g_name!r}, which is not in the box "
                                 f"{tuple(self.box)}")
            if not float(lohi[0]) < float(lohi[1]):
                raise ValueError(f"cell {self.name!r}: prior_widening[{g_name!r}] = {lohi} needs low < high")
        for g_name, lohi in self.inferred_fixed.items():
            if g_name not in self.fixed:
                raise ValueError(f"cell {self.name!r}: inferred_fixed names {g_name!r}, which is not in fixed "
                                 f"{tuple(self.fixed)}; a conductance of the box is inferred already")
            lo, hi = float(lohi[0]), float(lohi[1])
            if not (0.0 <= lo < hi and lo <= float(self.fixed[g_name]) <= hi):
                raise ValueError(f"cell {self.name!r}: inferred_fixed[{g_name!r}] = {lohi} needs 0 ≤ low < high "
                                 f"around the fixed value {self.fixed[g_name]}")
        if self.dic_map_ranges is not None:
            for axis, (lo, hi) in zip(("g_s", "g_u"), self.dic_map_ranges, strict=True):
                if not float(lo) < float(hi):
                    raise ValueError(f"cell {self.name!r}: dic_map_ranges {axis} range {(lo, hi)} needs low < high")
        if self.modulation_targets is None:
            _set(self, "modulation_targets", self._derived_modulation_targets())
        if self.recordings is None:
            _set(self, "recordings", {f"{self.name}_{label.replace(' ', '_')}": (label, DEFAULT_RECORDING_NOISE, i + 1)
                                      for i, label in enumerate(self.examples)})
        for ident, (label, _, _) in self.recordings.items():
            if label not in self.examples:
                raise ValueError(f"cell {self.name!r}: recording {ident!r} names unknown example {label!r}; "
                                 f"known: {sorted(self.examples)}")
        if self.noise_prior is None:
            loudest = max((float(noise) for _, noise, _ in self.recordings.values()), default=0.0)
            _set(self, "noise_prior", max(DEFAULT_NOISE_PRIOR, NOISE_PRIOR_MARGIN * loudest))
        noise_max = self.noise_prior
        if isinstance(noise_max, bool) or not isinstance(noise_max, int | float) or not 0 <= noise_max < float("inf"):
            raise ValueError(f"cell {self.name!r}: noise_prior must be a finite number ≥ 0 (µA/cm², the largest "
                             f"noise strength the prior allows; 0 = not inferred), got {noise_max!r}")
        _set(self, "noise_prior", float(noise_max))
        missed = self.missed_prior
        if isinstance(missed, bool) or not isinstance(missed, int | float) or not 0 <= missed < 1:
            raise ValueError(f"cell {self.name!r}: missed_prior must be a number in [0, 1) (the largest probability "
                             f"of missing a spike the prior allows; 0 = perfect detection), got {missed!r}")
        _set(self, "missed_prior", float(missed))
        for b in self.behaviours:
            if not isinstance(b, Behaviour):
                raise TypeError(f"cell {self.name!r}: behaviours must be Behaviour objects, got {type(b).__name__}")
            if b.example not in self.examples:
                raise ValueError(f"cell {self.name!r}: behaviour {b.description!r} names unknown example "
                                 f"{b.example!r}; known: {sorted(self.examples)}")

    def _checked_protocol(self) -> dict[str, float]:
        missing = {"t_max", "transient"} - set(self.protocol)
        unknown = set(self.protocol) - {"t_max", "transient", "dt"}
        if missing or unknown:
            raise ValueError(f"cell {self.name!r}: protocol needs keys t_max, transient and optionally dt (ms); "
                             f"missing {sorted(missing)}, unknown {sorted(unknown)}")
        proto = {"t_max": float(self.protocol["t_max"]), "transient": float(self.protocol["transient"]),
                 "dt": float(self.protocol.get("dt", DEFAULT_DT))}
        if not (0 < proto["dt"] <= proto["t_max"] and 0 <= proto["transient"] < proto["t_max"]):
            raise ValueError(f"cell {self.name!r}: protocol {proto} needs 0 < dt ≤ t_max and 0 ≤ transient < t_max")
        return proto

    def _derived_modulation_targets(self) -> dict[str, DICPoint]:
        if self.population is None:
            return {}
        g_s, g_u = (float(x) for x in self.population.target[1:])
        return {"spiking": (g_s, g_u), "bursting": (-abs(g_s), g_u)}

    def prior_box(self) -> dict[str, tuple[float, float]]:
        """The inference prior's box (mS/cm²), inferred names only, in conductance order.

        ``box`` with ``prior_widening`` applied, plus the ranges of ``inferred_fixed``.
        """
        ranges = {**self.box, **self.inferred_fixed}
        box = {n: (float(ranges[n][0]), float(ranges[n][1])) for n in self.inferred_names}
        box.update({n: (float(lo), float(hi)) for n, (lo, hi) in self.prior_widening.items()})
        return box

    def modulation_target(self, regime: str) -> DICPoint:
        """The declared (g_s, g_u) of a regime (``"spiking"`` or ``"bursting"``), × g_leak."""
        try:
            return tuple(float(x) for x in self.modulation_targets[regime])
        except KeyError:
            raise KeyError(f"cell {self.name!r} declares no modulation target {regime!r} (CellType.modulation_targets:"
                           f" {sorted(self.modulation_targets)}); declare it or a population recipe") from None

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Channel names in conductance order, ``"leak"`` last."""
        return tuple(c.name for c in self.channels) + ("leak",)

    @property
    def conductance_names(self) -> tuple[str, ...]:
        """``g_<name>`` for every channel, leak last: the column names used everywhere."""
        return tuple(f"g_{n}" for n in self.channel_names)

    @property
    def n_channels(self) -> int:
        """Number of conductances, leak included."""
        return len(self.channels) + 1

    @property
    def inferred_names(self) -> tuple[str, ...]:
        """Conductance names the inference prior infers, in order: not in ``fixed``, or in ``inferred_fixed``."""
        return tuple(n for n in self.conductance_names if n not in self.fixed or n in self.inferred_fixed)

    def channel(self, name: str) -> Channel:
        """The channel called ``name`` (without the ``g_`` prefix)."""
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(f"cell {self.name!r} has no channel {name!r}; channels: {self.channel_names}")

    def example(self, label: str) -> dict[str, float]:
        """A published example set by label (see ``examples``)."""
        try:
            return dict(self.examples[label])
        except KeyError:
            raise KeyError(f"cell {self.name!r} has no example {label!r}; known: {sorted(self.examples)}") from None

    def index(self, name: str) -> int:
        """Column index of a channel (``"Na"`` or ``"g_Na"``)."""
        key = name[2:] if name.startswith("g_") else name
        try:
            return self.channel_names.index(key)
        except ValueError:
            raise KeyError(f"cell {self.name!r} has no conductance {name!r}; known: {self.conductance_names}") from None
