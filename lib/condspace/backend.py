"""Array-backend selection: NumPy everywhere, CuPy where a GPU answers.

One function, :func:`resolve`, turns ``"auto" | "numpy" | "cupy"`` (or the aliases
``"cpu"`` / ``"gpu"``) into a small frozen :class:`Backend`. Asking for CuPy where no device
answers is an error, never a silent fallback; ``"auto"`` picks CuPy only when a device answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from condspace import _buildrecord

_ALIASES = {"cpu": "numpy", "gpu": "cupy", "numpy": "numpy", "cupy": "cupy", "auto": "auto"}
_DTYPES = {"float64": np.float64, "float32": np.float32}


@dataclass(frozen=True)
class Backend:
    """The array module, dtype and device a computation runs on.

    Attributes:
        name: ``"numpy"`` or ``"cupy"``.
        xp: The array module (``numpy`` or ``cupy``).
        dtype: The floating dtype (``numpy.float64`` by default).
        device: A human-readable device description.
    """

    name: str
    xp: ModuleType
    dtype: Any
    device: str

    def asarray(self, a: Any) -> Any:
        """Move ``a`` onto this backend with this backend's dtype."""
        return self.xp.asarray(a, dtype=self.dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        """Return ``a`` as a NumPy array on the host."""
        if self.name == "cupy":
            return self.xp.asnumpy(a)
        return np.asarray(a)

    def describe(self) -> str:
        """One line for the top of a chapter: backend, device, dtype."""
        return f"backend={self.name}, device={self.device}, dtype={np.dtype(self.dtype).name}"


def gpu_available() -> bool:
    """True when CuPy is installed and a CUDA device answers (never raises)."""
    try:
        import cupy  # noqa: PLC0415  (optional dependency)

        return bool(cupy.cuda.is_available()) and cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDA driver errors, missing libraries
        return False


def _gpu_name() -> str:
    import cupy  # noqa: PLC0415

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def resolve(backend: str | Backend = "auto", dtype: str = "float64") -> Backend:
    """Resolve a backend request into a :class:`Backend`.

    Args:
        backend: ``"auto"`` (CuPy if a GPU answers, else NumPy), ``"numpy"``/``"cpu"``,
            ``"cupy"``/``"gpu"``, or an existing :class:`Backend` (returned unchanged).
        dtype: ``"float64"`` (default; what every check value is verified in) or ``"float32"``.

    Returns:
        The resolved backend.

    Raises:
        ValueError: For an unknown backend or dtype name.
        RuntimeError: When CuPy is requested but no GPU answers.
    """
    if isinstance(backend, Backend):
        return backend
    key = _ALIASES.get(str(backend).lower())
    if key is None:
        raise ValueError(
            f"backend={backend!r} is not known; use one of 'auto', 'numpy' ('cpu'), 'cupy' ('gpu')."
        )
    if dtype not in _DTYPES:
        raise ValueError(f"dtype={dtype!r} is not supported; use 'float64' or 'float32'.")
    if key == "auto":
        key = "cupy" if gpu_available() else "numpy"
    if key == "cupy":
        if not gpu_available():
            raise RuntimeError(
                "backend='cupy' was requested but no CUDA device answers (is the 'gpu' extra "
                "installed, `pip install -e .[gpu]`, and a GPU visible?). Use backend='numpy' "
                "or 'auto'."
            )
        import cupy  # noqa: PLC0415

        chosen = Backend("cupy", cupy, _DTYPES[dtype], f"GPU {_gpu_name()}")
    else:
        chosen = Backend("numpy", np, _DTYPES[dtype], "CPU")
    # The book's build-status page shows where each chapter ran (a no-op outside a book build).
    _buildrecord.note("backend", chosen.name, append=True)
    _buildrecord.note("device", chosen.device, append=True)
    return chosen


def array_module(backend: Any = "numpy") -> Any:
    """The array module of a public function's ``backend=`` argument.

    Args:
        backend: A backend name (``"numpy"``/``"cpu"``, ``"cupy"``/``"gpu"``, ``"auto"``: resolved by
            :func:`resolve`; ``"numpy"`` directly, without probing for a device), a :class:`Backend`,
            or an array module (numpy, cupy), which is how the library passes it along internally.

    Raises:
        ValueError: Anything else; the message names the argument and what it accepts.
    """
    if isinstance(backend, Backend):
        return backend.xp
    if isinstance(backend, str):
        return np if backend.lower() in ("numpy", "cpu") else resolve(backend).xp
    if not hasattr(backend, "asarray"):
        raise ValueError(f"backend: expected 'numpy', 'cupy', 'auto', a Backend or an array module (numpy, cupy), "
                         f"got {backend!r}")
    return backend
