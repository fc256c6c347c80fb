"""Simulation chunks as tasks on a Dask cluster (``simulate(..., client=...)``).

Dask is an optional dependency (``pip install -e .[dask]``), imported only here and only when a
``client`` is passed. Each chunk of the population becomes one task that carries only its own
rows of conductances and current; the worker integrates it with the same engine, the same noise
streams (seeded by the seed and the neuron index, :class:`condspace._results._Noise`) and one
thread, so the result is identical to a local run, bit for bit, whatever the cluster.

A built-in cell travels as its name (the worker imports condspace and finds it); any other cell
travels as its pickled declaration
(cloudpickle handles the lambdas of rate functions).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from condspace import cells as _cells

INSTALL_HINT = "pip install -e .[dask]  (or: pip install 'dask[distributed]')"
TASKS_PER_THREAD = 2  # tasks per worker thread by default, so that the workers finish together


def _distributed() -> Any:
    try:
        import distributed  # noqa: PLC0415
    except ImportError:
        raise ImportError(f"simulate(client=...) needs Dask's distributed scheduler, which is not installed: "
                          f"{INSTALL_HINT}") from None
    return distributed


def _task(job: Any, start: int, stop: int) -> tuple:
    """Run on a Dask worker: integrate neurons start..stop-1 of the job (one thread)."""
    if isinstance(job.cell, str):
        from dataclasses import replace  # noqa: PLC0415

        job = replace(job, cell=_cells.get(job.cell))
    return job.run(start, stop)


def run_chunks_on(client: Any, job: Any, n: int, chunk_size: int | None) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(start, stop, job.run(start, stop))`` for chunks of ``n`` neurons, computed on ``client``.

    Args:
        client: A ``distributed.Client``.
        job: The :class:`condspace.simulate._Job` of the simulation (its ``threads`` is set to 1).
        n: Population size.
        chunk_size: Neurons per task; ``None``: n split over TASKS_PER_THREAD tasks per worker
            thread, at most 16384 per task.

    Raises:
        ImportError: Dask's ``distributed`` is not installed.
        TypeError: ``client`` is not a ``distributed.Client``.
    """
    from dataclasses import replace  # noqa: PLC0415

    distributed = _distributed()
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}; e.g. "
                        "client = distributed.Client(dask_jobqueue.SLURMCluster(...))")
    if chunk_size is None:
        threads = sum(client.nthreads().values()) or 1
        chunk_size = max(1, min(16384, -(-n // (TASKS_PER_THREAD * threads))))
    builtin = {c.name: c for c in (_cells.STG, _cells.DA)}  # what every worker has on import
    cell = job.cell.name if builtin.get(job.cell.name) is job.cell else job.cell
    job = replace(job, threads=1)
    bounds = [(a, min(n, a + chunk_size)) for a in range(0, n, chunk_size)]
    futures = {}
    for a, b in bounds:
        part = replace(job.slice(a, b), cell=cell)
        futures[client.submit(_task, part, a, b, pure=False)] = (a, b)
    try:
        for fut, result in distributed.as_completed(futures, with_results=True):
            a, b = futures[fut]
            yield a, b, result
    finally:
        for fut in futures:
            fut.release()
