"""Atomic file writes, shared by every module that saves something a user asked for."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb",
                 encoding: str | None = None) -> Path:
    """Write ``path`` atomically: ``write(fileobj)`` into a temp file in the same folder, then replace.

    A reader never sees a half-written file; an interrupted or failed write leaves the previous
    file intact and no temporary file behind. The new file gets the permissions of a normally
    created one (``mkstemp`` would leave it private).

    Args:
        path: Destination; its folder must exist.
        write: Called with the open temporary file object.
        mode: ``"wb"`` or ``"w"``.
        encoding: Text encoding for ``mode="w"`` (default UTF-8).

    Raises:
        FileNotFoundError: The destination folder does not exist.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"{path}: folder {folder} does not exist; create it first")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        kw = {"encoding": encoding or "utf-8", "newline": ""} if "b" not in mode else {}
        with os.fdopen(fd, mode, **kw) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
