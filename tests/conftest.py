"""Shared test setup: quiet progress bars, a headless matplotlib, and a self-skipping ``gpu`` marker."""

from __future__ import annotations

import os

# Set before anything imports condspace or matplotlib: tests never draw to a screen and never
# print progress bars (simulate() reads CONDSPACE_QUIET).
os.environ["CONDSPACE_QUIET"] = "1"
os.environ["MPLBACKEND"] = "Agg"


def _numpy_rounds_like_libm() -> None:
    """Have NumPy compute exp/log with libm's rounding, in this process and every child.

    The C kernel is compared with NumPy bit for bit (tests/test_codegen.py), as are the ``exact``
    Numba kernels' traces closely (tests/test_numba.py): they call the C library's ``exp``, and so
    does NumPy, except where it dispatches to
    its own AVX-512 ``exp``/``log``, which differ from libm's by an ulp for a few per cent of inputs
    (measured on an AVX-512 AMD EPYC: 4.6 % of exp values). A difference of one ulp in a chaotic
    neuron grows into a different spike train, so on such a machine the comparison would measure
    the two libraries' exp, not the engines. NPY_DISABLE_CPU_FEATURES switches NumPy's AVX-512
    dispatch off; it must be set before NumPy is imported, and names only features that this
    NumPy dispatches (asked of a child interpreter). An explicit setting is left alone; if NumPy is
    already imported (by a pytest plugin, say), it warns and changes nothing.
    """
    if "NPY_DISABLE_CPU_FEATURES" in os.environ:
        return
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    if "numpy" in sys.modules:  # e.g. a pytest plugin imported it: too late for this process
        import warnings  # noqa: PLC0415

        warnings.warn("tests/conftest.py: NumPy was imported before the test setup could choose its exp; on an "
                      "AVX-512 machine the bit-for-bit engine comparisons may then fail. Set "
                      "NPY_DISABLE_CPU_FEATURES yourself (see _numpy_rounds_like_libm).", stacklevel=1)
        return
    names = "__cpu_dispatch__ as d, __cpu_features__ as f"
    probe = (f"try:\n from numpy._core._multiarray_umath import {names}\n"
             f"except ImportError:\n from numpy.core._multiarray_umath import {names}\n"
             "print(' '.join(x for x in d if f.get(x) and (x.startswith('AVX512') or x == 'X86_V4')))")
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    os.environ["NPY_DISABLE_CPU_FEATURES"] = found


_numpy_rounds_like_libm()

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import _chapter_runs  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from condspace import simulate  # noqa: E402
from condspace.backend import gpu_available  # noqa: E402

# Hypothesis budgets (tests/test_fuzz.py): "quick" keeps `make test` short (a few seconds per
# property, no example database written); `make fuzz` selects "fuzz" with HYPOTHESIS_PROFILE=fuzz.
settings.register_profile("quick", max_examples=25, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))

MARKERS = {
    "gpu": "needs a CUDA device and CuPy (skipped automatically without one)",
    "slow": "long-running check (minutes); run with -m slow",
    "chapters": "executes a book chapter with papermill in FAST mode, or builds the book",
}


def pytest_configure(config):
    """Register the markers here too, so they exist whatever the ini file says."""
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def pytest_collection_modifyitems(config, items):
    """Run the ``chapters`` tests last; skip ``gpu`` tests where ``condspace.backend.gpu_available()`` is False.

    The chapters execute in a background thread from the start of the session
    (tests/_chapter_runs.py), so their tests go last: by then their notebooks are ready, and the
    unit tests have run on the other core meanwhile.
    """
    items.sort(key=lambda item: item.get_closest_marker("chapters") is not None)  # stable: order kept within
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items or gpu_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device answers (condspace.backend.gpu_available() is False)")
    for item in gpu_items:
        item.add_marker(skip)


def pytest_collection_finish(session):
    """Start executing the chapters the selected tests need (tests/_chapter_runs.py)."""
    if not session.config.option.collectonly:
        _chapter_runs.start_prefetch(session.items)


def pytest_terminal_summary(terminalreporter):
    """Wall time of each FAST chapter execution: they run beside the unit tests (a background
    thread), so --durations shows only how long a chapter test waited, not what the chapter cost."""
    rows = _chapter_runs.timings()
    if rows:
        terminalreporter.section("chapter executions (wall s)")
        for runner, stem, sec in rows:
            terminalreporter.write_line(f"{sec:8.1f}  {runner}: {stem}")
        terminalreporter.write_line(f"{sum(sec for *_, sec in rows):8.1f}  in all")


def pytest_sessionfinish(session, exitstatus):
    """Stop the chapter prefetch; keep its notebooks only when something failed (for inspection)."""
    _chapter_runs.cleanup(keep=exitstatus != 0)


_PUBLISHED_RUNS: dict[int, tuple] = {}


def _published_run(cell):
    """One NumPy simulation of every published example set of ``cell`` (``cell.examples`` order) with
    the cell's protocol and no applied current, computed once per session and cell object."""
    cached = _PUBLISHED_RUNS.get(id(cell))
    if cached is None or cached[0] is not cell:
        g = np.array([[ex[k] for k in cell.conductance_names] for ex in cell.examples.values()])
        cached = (cell, simulate(cell, g, backend="numpy", **cell.protocol))
        _PUBLISHED_RUNS[id(cell)] = cached
    return cached[1]


@pytest.fixture(scope="session")
def published_run():
    """``published_run(cell)``: the shared simulation of a cell's published examples (the DA one
    costs about a minute, so test_simulate and test_cells share it)."""
    return _published_run


@pytest.fixture(scope="session")
def tiny_posterior_cache(tmp_path_factory):
    """A cache folder shared by the tests that train the same tiny STG posterior (200 simulations,
    2 epochs: tests/test_science_check.py, tests/test_ablation.py), so that it is trained once."""
    return tmp_path_factory.mktemp("tiny_posterior_cache")


@pytest.fixture(scope="session")
def load_script():
    """Import a script of ``tools/`` or ``benchmarks/`` (not packages) as a module, once per path."""
    import importlib.util  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    root, loaded = Path(__file__).resolve().parent.parent, {}

    def load(relative: str):
        if relative not in loaded:
            spec = importlib.util.spec_from_file_location(Path(relative).stem, root / relative)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded[relative] = module
        return loaded[relative]

    return load
