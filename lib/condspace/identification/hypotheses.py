"""Candidate targets of a neuromodulator, read from the cell declaration.

A hypothesis is a subset S of the cell's modulable channels: every single channel and every pair
(SCIENCE.md §6b). Modulable means an active channel whose conductance is inferred: the leak and the
conductances a cell holds fixed (DA ``g_NMDA``) are not candidates. STG: 7 + 21 = 28; DA: 5 + 10 = 15.
"""

from __future__ import annotations

import itertools

from condspace import cells as _cells
from condspace.channels import CellType


def modulable_channels(cell: str | CellType) -> tuple[str, ...]:
    """Channel names (without ``g_``) a neuromodulator may target, in declaration order."""
    cell = _cells.get(cell)
    return tuple(ch.name for ch in cell.channels if f"g_{ch.name}" not in cell.fixed)


def hypotheses(cell: str | CellType) -> tuple[tuple[str, ...], ...]:
    """Every single modulable channel, then every pair (declaration order)."""
    names = modulable_channels(cell)
    return tuple((n,) for n in names) + tuple(itertools.combinations(names, 2))


def label(subset: tuple[str, ...]) -> str:
    """``("CaS", "H")`` → ``"CaS+H"``."""
    return "+".join(subset)


def labels(cell: str | CellType) -> list[str]:
    """The labels of :func:`hypotheses`, in the same order."""
    return [label(h) for h in hypotheses(cell)]


def membership(cell: str | CellType):
    """(H, C) bool matrix: hypothesis h contains modulable channel c."""
    import numpy as np  # noqa: PLC0415

    names = modulable_channels(cell)
    return np.array([[c in h for c in names] for h in hypotheses(cell)], dtype=bool)
