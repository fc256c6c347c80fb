"""Facts a book build records about each chapter run, for the book's build-status page.

``tools/execute_chapter.py`` sets the environment variable ``CONDSPACE_BUILD_RECORD`` to a JSON
file before it runs a chapter; the kernel inherits it, and library functions that decide
something a reader should know about the run (the backend and device :func:`condspace.backend.resolve`
picked, whether :func:`condspace.inference.trained_posterior` loaded its posterior from the cache)
note it here. Outside a book build the variable is unset and :func:`note` does nothing, so the
library never writes files a user did not ask for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ENV_VAR = "CONDSPACE_BUILD_RECORD"
_NOTED: dict[tuple[str, str, bool], Any] = {}  # what this process already wrote: repeats cost nothing


def record_path() -> Path | None:
    """The JSON file of the chapter run in progress, or ``None`` outside a book build."""
    path = os.environ.get(ENV_VAR)
    return Path(path) if path else None


def read(path: str | os.PathLike) -> dict[str, Any]:
    """The facts recorded in ``path`` ({} when the file is missing or unreadable)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def note(key: str, value: Any, *, append: bool = False) -> None:
    """Record ``key = value`` for the running chapter (no-op outside a book build).

    Args:
        key: Name of the fact (``"backend"``, ``"caches"``...).
        value: A JSON-serialisable value.
        append: Add ``value`` to a list under ``key`` (once) instead of replacing it.
    """
    path = record_path()
    if path is None:
        return
    memo = (str(path), key, append)
    seen = _NOTED.setdefault(memo, []) if append else _NOTED.get(memo, _NOTED)
    if (append and value in seen) or (not append and seen == value):
        return  # library functions call this on every use; write only what is new
    from condspace._io import atomic_write  # noqa: PLC0415  (keeps this module import-light)

    facts = read(path)
    if append:
        values = facts.setdefault(key, [])
        if value not in values:
            values.append(value)
    else:
        facts[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: json.dump(facts, fh, indent=1, sort_keys=True), mode="w")
    if append:
        seen.append(value)
    else:
        _NOTED[memo] = value
