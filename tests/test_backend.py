"""Backend resolution is explicit and loud (STYLE.md §3)."""

import numpy as np
import pytest

from condspace import backend


def test_numpy_aliases():
    for name in ("numpy", "cpu", "NumPy"):
        be = backend.resolve(name)
        assert be.name == "numpy" and be.xp is np and be.dtype is np.float64
    assert backend.resolve("numpy", "float32").dtype is np.float32
    assert "dtype=float64" in backend.resolve("cpu").describe()


def test_auto_without_gpu_is_numpy(monkeypatch):
    monkeypatch.setattr(backend, "gpu_available", lambda: False)
    assert backend.resolve("auto").name == "numpy"


def test_cupy_without_gpu_raises(monkeypatch):
    monkeypatch.setattr(backend, "gpu_available", lambda: False)
    for name in ("cupy", "gpu"):
        with pytest.raises(RuntimeError, match="no CUDA device answers"):
            backend.resolve(name)


def test_unknown_names():
    with pytest.raises(ValueError, match="backend='jax'"):
        backend.resolve("jax")
    with pytest.raises(ValueError, match="dtype='float16'"):
        backend.resolve("numpy", "float16")


def test_backend_passes_through_and_converts():
    be = backend.resolve("numpy")
    assert backend.resolve(be) is be
    assert isinstance(be.to_numpy(be.asarray([1, 2])), np.ndarray)
