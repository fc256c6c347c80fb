"""Worker processes for NumPy work that splits into independent chunks of neurons.

Used by :func:`condspace.simulate` with ``engine="numpy"`` (the compiled engine, its default on the
CPU, spreads neurons over threads instead), :func:`condspace.dics.threshold` and the training of
the flows of an ensemble (:func:`condspace.inference.train`), whose work is NumPy/PyTorch code
that threads do not speed up. Processes are forked,
not spawned: cell declarations hold lambdas (not picklable) and cells registered by the user
exist only in this process, while a forked child inherits both. Only the chunk bounds travel to
a worker and only its result travels back.

The number of workers: an explicit ``workers`` argument; else the environment variable
``CONDSPACE_WORKERS``; else every available core when the work is large enough to repay the
processes (the caller's threshold), and one process inside a worker (workers never nest).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

ENV = "CONDSPACE_WORKERS"

_JOB: Callable[[int, int], Any] | None = None  # what forked workers run (inherited, never pickled)


def available_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_count(workers: int | None, work: float, min_work: float) -> int:
    """How many processes to use for ``work`` units when ``min_work`` units repay a worker.

    Raises:
        ValueError: ``workers`` or ``$CONDSPACE_WORKERS`` is not a positive integer.
    """
    if workers is None:
        env = os.environ.get(ENV, "").strip()
        if env:
            try:
                workers = int(env)
            except ValueError:
                raise ValueError(f"{ENV} must be a positive integer, got {env!r}") from None
            if workers < 1:
                raise ValueError(f"{ENV} must be a positive integer, got {env!r}")
        elif work < min_work or multiprocessing.parent_process() is not None:
            workers = 1
        else:
            workers = available_cores()
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer (or None for automatic), got {workers!r}")
    if workers > 1 and "fork" not in multiprocessing.get_all_start_methods():
        return 1  # no fork (Windows): spawned workers could not rebuild the cells; stay in one process
    return int(workers)


def _run_in_worker(start: int, stop: int) -> Any:
    os.environ[ENV] = "1"  # a worker never starts workers of its own
    return _JOB(start, stop)


def run_chunks(job: Callable[[int, int], Any], bounds: Sequence[tuple[int, int]],
               workers: int, poll: Callable[[], Any] | None = None,
               poll_s: float = 1.0) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(start, stop, job(start, stop))`` for every chunk, in completion order.

    With ``workers`` > 1 and more than one chunk, chunks run in forked processes; otherwise here,
    in order. ``poll`` (e.g. a progress-bar refresh) is called every ``poll_s`` seconds while
    forked workers run.
    """
    if workers <= 1 or len(bounds) <= 1:
        for start, stop in bounds:
            yield start, stop, job(start, stop)
        return
    global _JOB
    _JOB = job
    try:
        ctx = multiprocessing.get_context("fork")
        # Workers ignore SIGINT: a Ctrl-C (sent to the whole process group by a terminal) is handled
        # by this process alone, which then stops the workers instead of waiting for their chunks.
        pool = ProcessPoolExecutor(min(workers, len(bounds)), mp_context=ctx, initializer=_ignore_sigint)
        try:
            futures = {pool.submit(_run_in_worker, a, b): (a, b) for a, b in bounds}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=poll_s if poll else None, return_when=FIRST_COMPLETED)
                if poll is not None:
                    poll()
                for fut in done:
                    a, b = futures[fut]
                    yield a, b, fut.result()
        except BaseException:  # KeyboardInterrupt, an error, or the caller stopped iterating
            _stop(pool)
            raise
        pool.shutdown()
    finally:
        _JOB = None


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Terminate the workers now (running chunks are abandoned) and release the pool."""
    for process in list(getattr(pool, "_processes", {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
