"""Registry of declared cell types.

>>> from condspace import cells
>>> {"da", "stg"} <= set(cells.available())
True
>>> cells.get("stg").channel_names
('Na', 'Kd', 'CaT', 'CaS', 'KCa', 'A', 'H', 'leak')

A new cell type is one file in this package declaring ``CELL``, a
:class:`condspace.channels.CellType` (copy ``_template.py``): every module here whose name does not
start with ``_`` is imported on first use and its ``CELL`` registered under ``CELL.name``, with the
file stem as an alias (``liu98_stg`` → ``stg``). Cell types declared elsewhere (a notebook, a user
package) are added with :func:`register`.
"""

from __future__ import annotations

import importlib
import pkgutil

from condspace.channels import CellType

_REGISTRY: dict[str, CellType] = {}
_ALIASES: dict[str, str] = {}
_MODULES: dict[str, str] = {}  # registered name → module that declared it (to report duplicates)


def register(cell: CellType, *aliases: str) -> CellType:
    """Add a cell type to the registry (and optional alias names); returns it."""
    if not isinstance(cell, CellType):
        raise TypeError(f"register expects a condspace.channels.CellType, got {type(cell).__name__}")
    _REGISTRY[cell.name] = cell
    for alias in aliases:
        _ALIASES[alias.lower()] = cell.name
    return cell


def _discover() -> None:
    """Import every public module of this package and register the ``CELL`` it declares."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        cell = getattr(module, "CELL", None)
        if cell is None:
            continue
        if not isinstance(cell, CellType):
            raise TypeError(f"{module.__name__}.CELL must be a condspace.channels.CellType, got {type(cell).__name__}")
        if _MODULES.get(cell.name, module.__name__) != module.__name__:
            raise ValueError(f"cell name {cell.name!r} is declared twice: in {_MODULES[cell.name]} and "
                             f"{module.__name__}; give each file its own CellType.name")
        _MODULES[cell.name] = module.__name__
        register(cell, info.name)


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
                         "(declare a new one in a file of condspace/cells/ from _template.py, or register it)")
    return _REGISTRY[key]


_discover()
STG = _REGISTRY["stg"]  # kept for code that imports the two original cell types by name
DA = _REGISTRY["da"]

__all__ = ["CellType", "available", "get", "register", "STG", "DA"]
