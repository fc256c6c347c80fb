"""Atomic file writes and checksummed cache files, shared by every module that saves something.

**Decision (output paths).** Only regular files are ever written. A path that names a symlink is
*followed*: the new content is written atomically into the folder of the link's final target and
replaces the target, so the link keeps pointing at the (new) file. A path whose target exists and
is not a regular file (a folder, a device such as ``/dev/null``, a FIFO, a socket) is refused
before anything is written, as is a symlink loop. Replacing a file gives it a new inode: hard
links to the old file keep the old content.

**Decision (cache integrity).** Cached artefacts that carry no checksum of their own (posteriors
with their class-restriction classifier) are written by :func:`write_checked`: a one-line header
``condspace-sha256 <64 hex digits>`` followed by the payload, whose SHA-256 is verified by
:func:`read_checked` before anything is deserialised. A one-byte change anywhere in the file is
detected.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHECKED_MAGIC = b"condspace-sha256 "  # first bytes of a file written by write_checked


class ChecksumError(ValueError):
    """A checksummed file is damaged, truncated or not a checksummed file at all."""


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def output_target(path: str | os.PathLike, name: str = "output") -> Path:
    """The regular file that writing ``path`` will replace or create (symlinks followed).

    Args:
        path: Where the user asked to write.
        name: How the path is named in messages (e.g. ``"--out"``).

    Returns:
        The final target of ``path``: ``path`` itself, or the file a symlink (chain) points to.

    Raises:
        ValueError: The target exists and is not a regular file (folder, device, FIFO, socket),
            or the symlinks loop.
        FileNotFoundError: The folder the file would be written into does not exist.
    """
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as err:  # ELOOP and friends
        raise ValueError(f"{name} {path}: cannot be resolved ({err.strerror}); give a plain file name") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        via = f" (the symlink points to {target})" if target != path else ""
        raise ValueError(f"{name} {path} is {_kind(st.st_mode)}{via}; only regular files are written: "
                         "give the path of a file")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"{name} {path}: folder {folder} does not exist; create it first")
    return target


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb",
                 encoding: str | None = None) -> Path:
    """Write ``path`` atomically: ``write(fileobj)`` into a temp file in the same folder, then replace.

    A reader never sees a half-written file; an interrupted or failed write leaves the previous
    file intact and no temporary file behind. The new file gets the permissions of a normally
    created one (``mkstemp`` would leave it private). A symlink is followed and its target
    replaced; anything that is not a regular file is refused (see the module docstring).

    Args:
        path: Destination; its folder must exist.
        write: Called with the open temporary file object.
        mode: ``"wb"`` or ``"w"``.
        encoding: Text encoding for ``mode="w"`` (default UTF-8).

    Returns:
        The path of the file written (the symlink's target when ``path`` is a symlink).

    Raises:
        FileNotFoundError: The destination folder does not exist.
        ValueError: The destination is a folder, a device, a FIFO, a socket or a symlink loop.
    """
    target = output_target(path)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        kw = {"encoding": encoding or "utf-8", "newline": ""} if "b" not in mode else {}
        with os.fdopen(fd, mode, **kw) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def write_checked(path: str | os.PathLike, payload: bytes) -> Path:
    """Write ``payload`` atomically behind a SHA-256 header line (see the module docstring)."""
    header = CHECKED_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n"

    def write(fh: Any) -> None:
        fh.write(header)
        fh.write(payload)

    return atomic_write(path, write, mode="wb")


def read_checked(path: str | os.PathLike) -> bytes:
    """The payload of a file written by :func:`write_checked`, after verifying its checksum.

    Raises:
        ChecksumError: The file has no checksum header (an older or foreign file), or its
            content does not match the stored checksum (damaged or truncated); the message
            names the file.
        OSError: The file cannot be read.
    """
    data = Path(path).read_bytes()
    head, sep, payload = data.partition(b"\n")
    if not head.startswith(CHECKED_MAGIC) or not sep:
        raise ChecksumError(f"{path} has no condspace checksum header (written by an older version, or not a "
                            "condspace cache file)")
    stored = head[len(CHECKED_MAGIC):]
    if hashlib.sha256(payload).hexdigest().encode() != stored:
        raise ChecksumError(f"{path} fails its SHA-256 checksum: the file is damaged or truncated")
    return payload
