"""Registry of declared cell types.

>>> from condspace import cells
>>> cells.available()
('da', 'stg')
>>> cells.get("stg").channel_names
('Na', 'Kd', 'CaT', 'CaS', 'KCa', 'A', 'H', 'leak')

A new cell type is one file declaring a :class:`condspace.channels.CellType` (copy
``_template.py``), registered with :func:`register`.
"""

from __future__ import annotations

from condspace.cells.liu98_stg import CELL as STG
from condspace.cells.qian14_da import CELL as DA
from condspace.channels import CellType

_REGISTRY: dict[str, CellType] = {}
_ALIASES: dict[str, str] = {"liu98_stg": "stg", "qian14_da": "da"}


def register(cell: CellType, *aliases: str) -> CellType:
    """Add a cell type to the registry (and optional alias names); returns it."""
    if not isinstance(cell, CellType):
        raise TypeError(f"register expects a condspace.channels.CellType, got {type(cell).__name__}")
    _REGISTRY[cell.name] = cell
    for alias in aliases:
        _ALIASES[alias] = cell.name
    return cell


def available() -> tuple[str, ...]:
    """Names of the registered cell types, sorted."""
    return tuple(sorted(_REGISTRY))


def get(cell: str | CellType) -> CellType:
    """Look up a cell type by name (``"stg"``, ``"da"``, or a file alias); a CellType passes through.

    Raises:
        ValueError: For an unknown name, listing the known ones.
    """
    if isinstance(cell, CellType):
        return cell
    key = str(cell).lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(f"unknown cell type {cell!r}; available: {', '.join(available())} "
                         "(declare a new one from cells/_template.py and register it)")
    return _REGISTRY[key]


register(STG)
register(DA)

__all__ = ["CellType", "available", "get", "register", "STG", "DA"]
