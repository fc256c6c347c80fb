"""Shared test setup: quiet progress bars, a headless matplotlib, and a self-skipping ``gpu`` marker."""

from __future__ import annotations

import os

# Set before anything imports condspace or matplotlib: tests never draw to a screen and never
# print progress bars (simulate() reads CONDSPACE_QUIET).
os.environ["CONDSPACE_QUIET"] = "1"
os.environ["MPLBACKEND"] = "Agg"

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
