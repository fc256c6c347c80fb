"""Simulations as Dask tasks (``simulate(..., client=...)``) on a LocalCluster of two single-threaded
worker processes: results bit-identical to a local run, and an inference training set built through
Dask equal to the local one. Skipped when Dask's ``distributed`` is not installed (an optional
extra: ``pip install -e .[dask]``). One cluster for the whole module: starting one costs seconds.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from condspace import cells, inference, simulate

distributed = pytest.importorskip("distributed", reason="Dask's distributed is not installed (pip install -e .[dask])")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


def _population(n: int) -> np.ndarray:
    stg = cells.get("stg")
    ex = np.array([[stg.example(k)[g] for g in stg.conductance_names] for k in stg.examples])
    return np.repeat(ex, -(-n // len(ex)), axis=0)[:n] * np.random.default_rng(5).uniform(0.9, 1.1, (n, ex.shape[1]))


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_dask_is_bit_identical_to_local(client, engine):
    g = _population(23)
    current = np.zeros(23)
    current[7] = 1e6  # a blow-up, flagged in whichever task integrates it
    kw = dict(t_max=400.0, transient=50.0, noise_std=0.5, seed=3, current=current, engine=engine,
              record={"neurons": [1, 7, 22], "interval": 1.0})
    local = simulate("stg", g, **kw)
    remote = simulate("stg", g, client=client, chunk_size=5, **kw)  # five tasks over two workers
    assert remote.metadata["dask"] and remote.metadata["engine"] == local.metadata["engine"]
    np.testing.assert_array_equal(remote.ok, local.ok)
    assert not local.ok[7]
    for a, b in zip(remote.spike_times, local.spike_times, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(remote.traces["V"], local.traces["V"])
    assert local.n_spikes.sum() > 100


def test_unregistered_cell_travels_to_the_workers(client):
    """A cell that is not built in (here: a renamed copy) is pickled with its rate functions."""
    stg = cells.get("stg")
    twin = dataclasses.replace(stg, name="stg_twin")
    g = _population(6)
    kw = dict(t_max=300.0, transient=0.0)
    np.testing.assert_array_equal(simulate(twin, g, client=client, **kw).n_spikes, simulate(stg, g, **kw).n_spikes)


def test_training_set_through_dask_equals_local(client, tmp_path):
    # The default prior infers the noise: each row's own σ travels with its task (simulate's _Job.slice).
    protocol = inference.Protocol.for_cell("stg", t_max=1500.0, transient=500.0)
    kw = dict(protocol=protocol, seed=4, use_cache=False, progress=False)
    local = inference.training_set("stg", 60, **kw)
    remote = inference.training_set("stg", 60, client=client, **kw)
    np.testing.assert_array_equal(remote.theta, local.theta)
    np.testing.assert_array_equal(remote.x, local.x)  # NaN rows (silent, invalid) in the same places
    np.testing.assert_array_equal(remote.valid, local.valid)
    np.testing.assert_array_equal(remote.labels, local.labels)
    assert local.valid.sum() > 20


def test_bad_client_and_missing_dask_are_clear_errors(monkeypatch):
    g = _population(2)
    with pytest.raises(TypeError, match="client must be a distributed.Client"):
        simulate("stg", g, t_max=10.0, transient=0.0, client="tcp://scheduler:8786")
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if Dask were not installed
    with pytest.raises(ImportError, match=r"pip install -e \.\[dask\]"):
        simulate("stg", g, t_max=10.0, transient=0.0, client=object())
