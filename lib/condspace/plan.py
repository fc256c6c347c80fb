"""The compiled form of a cell declaration, public: one plan per cell, used by every derived computation.

The engines (:mod:`condspace._engine`, :mod:`condspace.reference`, the generated kernels) lay the
gates out with :func:`condspace.kinetics.gate_slots`; the plan holds that same layout together
with what the DIC computations (:mod:`condspace.dics`), compensation (:mod:`condspace.populations`)
and modulation (:mod:`condspace.neuromodulation`) need: channel → gates, reversal potentials,
calcium carriers and calcium-dependent channels, and the reference time constants of the DICs.

>>> from condspace.plan import cell_plan
>>> plan = cell_plan("stg")
>>> plan.n, [plan.factors[k].label for k in plan.per_channel[0]], plan.carriers
(8, ['Na.m', 'Na.h'], (2, 3))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from condspace import cells as _cells
from condspace.channels import CellType, Gate
from condspace.kinetics import GateSlot, gate_slots

ROWS = ("fast", "slow", "ultraslow")
"""The rows of the DICs and of the sensitivity matrix, and the keys of ``cell.dic_reference``."""


@dataclass(frozen=True)
class CellPlan:
    """A cell declaration resolved once: its gating factors, per-channel layout, reversal
    potentials, calcium carriers and calcium-dependent channels, DIC reference time constants.

    Attributes:
        cell: The declaration.
        factors: Every gating factor (:class:`condspace.kinetics.GateSlot`), in channel order then
            declaration order (the layout of the engines, :func:`condspace.kinetics.gate_slots`).
        per_channel: Indices into ``factors`` of each channel's gates.
        reversal: Reversal potential of each channel (mV), leak excluded.
        carriers: Channels feeding the calcium pool.
        ca_dependent: Channels with a calcium-dependent gate.
        references: τ_f, τ_s, τ_u of the DICs: a rate function tau(xp, V) or a float (ms).
    """

    cell: CellType
    factors: tuple[GateSlot, ...]
    per_channel: tuple[tuple[int, ...], ...]  # factor indices of each channel
    reversal: tuple[float, ...]
    carriers: tuple[int, ...]  # channels feeding the calcium pool
    ca_dependent: tuple[int, ...]  # channels with a calcium-dependent gate
    references: tuple[Any, Any, Any]  # τ_f, τ_s, τ_u: a rate function tau(xp, V) or a float (ms)

    @property
    def n(self) -> int:
        return len(self.cell.channels) + 1


_PLANS: dict[int, CellPlan] = {}


def _reference(cell: CellType, key: str) -> Any:
    ref = cell.dic_reference.get(key) if isinstance(cell.dic_reference, dict) else None
    if isinstance(ref, (int, float)) and not isinstance(ref, bool):
        if ref <= 0:
            raise ValueError(f"cell {cell.name!r}: dic_reference[{key!r}] = {ref} must be a positive time (ms)")
        return float(ref)
    if isinstance(ref, tuple) and len(ref) == 2:
        try:
            channel = cell.channel(ref[0])
        except KeyError as err:
            raise ValueError(f"cell {cell.name!r}: dic_reference[{key!r}] = {ref!r}: {err.args[0]}") from None
        for gate in channel.gates:
            if gate.name == ref[1] and isinstance(gate, Gate) and gate.tau is not None:
                return gate.tau
    raise ValueError(f"cell {cell.name!r}: dic_reference[{key!r}] = {ref!r} must be a time constant in ms or "
                     "(channel, gate) naming a gate with a time constant")


def cell_plan(cell: CellType | str) -> CellPlan:
    """The compiled plan of a cell (or registry name), built once per declaration and cached.

    Raises:
        ValueError: Calcium-dependent gates without a calcium pool or carrier; a ``dic_reference``
            entry that is neither a positive time (ms) nor a (channel, gate) with a time constant.
    """
    cell = _cells.get(cell)
    plan = _PLANS.get(id(cell))
    if plan is not None and plan.cell is cell:
        return plan
    factors = gate_slots(cell)
    per_channel = tuple(tuple(k for k, f in enumerate(factors) if f.channel == ci) for ci in range(len(cell.channels)))
    carriers = tuple(i for i, ch in enumerate(cell.channels) if ch.carries_calcium)
    ca_dep = tuple(sorted({f.channel for f in factors if f.kind == "calcium"}))
    if ca_dep and (cell.calcium is None or not carriers):
        raise ValueError(f"cell {cell.name!r} has calcium-dependent gates but no calcium pool or no "
                         "calcium-carrying channel; declare cell.calcium and carries_calcium=True")
    refs = tuple(_reference(cell, k) for k in ROWS)
    plan = CellPlan(cell, factors, per_channel, tuple(ch.reversal for ch in cell.channels), carriers, ca_dep, refs)
    _PLANS[id(cell)] = plan
    return plan


__all__ = ["ROWS", "CellPlan", "cell_plan"]
