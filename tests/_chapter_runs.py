"""FAST-mode chapter executions shared by the test session, started early so they overlap the unit tests.

A chapter in FAST mode is a papermill subprocess of one to a few minutes, almost all of it
single-threaded Python, sbi training or simulation. Run one after another at the end of the
session they were most of `make test`'s wall time while the second core idled. So, once pytest
has collected the session, :func:`start_prefetch` runs the chapters the selected tests need, one
at a time in a background thread, while the main process runs the unit tests (which
``tests/conftest.py`` orders first). A test that needs a chapter calls the runner, which waits for
the background execution of that chapter or runs it itself if the prefetch has not reached it.

The order of the queue matters where chapters share caches: chapter 2 trains the posterior that
chapter 3 loads, and chapter 6 (on the thalamocortical cell) trains the one the TC runs of
chapters 2 and 3 load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXECUTOR = ROOT / "tools" / "execute_chapter.py"
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.py"))
FAST_PARAMETERS = {"FAST": True, "BACKEND": "numpy"}
CHAPTER_TIMEOUT_S = 1200  # a FAST chapter must run in minutes on 2 CPU cores
# The environment of every chapter execution, taken when tests/conftest.py imports this module (its
# quiet, headless settings already made): a unit test that monkeypatches os.environ (a temporary
# CONDSPACE_CACHE, say) while a chapter starts in the background must not leak into the chapter.
ENVIRONMENT = dict(os.environ)

# ----- the thalamocortical cell through chapters 1-5 (issue 11; chapter 6 runs on it by default) -----
# FAST sizes shrink a little more here to keep `make test` in check (chapter 3 reuses chapter 2's
# posterior: same budget and epoch cap). Chapter 6 runs on this cell by default, so the STG runs
# cover it (and train the posterior these runs then load).
TC_CHAPTERS = [ROOT / "chapters" / name for name in
               ("01_degeneracy.py", "02_inference.py", "03_dics.py", "04_neuromodulation.py",
                "05_identification.py")]
TC_PARAMETERS = {**FAST_PARAMETERS, "CELL_TYPE": "tc"}
_TC_POSTERIOR = {"N_TRAIN_FAST": 800, "MAX_EPOCHS_FAST": 25, "N_SAMPLES": 300}
TC_SIZES = {
    "01_degeneracy": {"N_POPULATION_FAST": 200},
    "02_inference": _TC_POSTERIOR,
    "03_dics": {**_TC_POSTERIOR, "N_POPULATION_FAST": 40, "N_PRIOR": 4000},
    "04_neuromodulation": {"N_POPULATION_FAST": 100, "N_SIMULATED_FAST": 12},
}

# ----- chapter 5 on a second cell type (issue 12) ------------------------------------------------
CHAPTER_5 = ROOT / "chapters" / "05_identification.py"
DA_PARAMETERS = {**FAST_PARAMETERS, "CELL_TYPE": "da"}


class ChapterRunner:
    """Executes each chapter at most once per session with fixed papermill parameters.

    Thread-safe: a per-chapter lock makes a caller wait for an execution already under way in
    the prefetch thread instead of starting a second one.

    Args:
        name: Label of this set of runs (used for its folder).
        parameters: Papermill parameters of every chapter.
        per_chapter: Chapter stem → extra parameters.
    """

    def __init__(self, name: str, parameters: dict, per_chapter: dict | None = None) -> None:
        self.name = name
        self.parameters = parameters
        self.per_chapter = per_chapter or {}
        self._folder: Path | None = None
        self.results: dict[str, subprocess.CompletedProcess] = {}
        self.seconds: dict[str, float] = {}  # wall time of each execution (the session's summary prints them)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._process: subprocess.Popen | None = None
        self.stopped = False

    @property
    def folder(self) -> Path:
        """Where the executed notebooks go (created on first use, removed by :func:`cleanup`)."""
        with self._guard:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix=f"condspace-{self.name}-"))
            return self._folder

    def parameters_of(self, source: Path) -> dict:
        return {**self.parameters, **self.per_chapter.get(source.stem, {})}

    def output(self, source: Path) -> Path:
        return self.folder / "executed" / f"{source.stem}.ipynb"

    def _lock(self, stem: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(stem, threading.Lock())

    def __call__(self, source: Path) -> tuple[subprocess.CompletedProcess, Path]:
        """Execute ``source`` (once) and return (its completed process, the executed notebook)."""
        with self._lock(source.stem):
            if source.stem not in self.results:
                t0 = time.perf_counter()
                self.results[source.stem] = self._execute(source)
                self.seconds[source.stem] = time.perf_counter() - t0
        return self.results[source.stem], self.output(source)

    def _execute(self, source: Path) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(EXECUTOR), str(source), str(self.output(source)), "--timeout",
               str(CHAPTER_TIMEOUT_S)]
        for name, value in self.parameters_of(source).items():
            cmd += ["-p", name, repr(value)]
        if self.stopped:
            return subprocess.CompletedProcess(cmd, 1, "", "the session ended before this chapter ran")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=ENVIRONMENT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        self._process = proc
        try:
            out, err = proc.communicate(timeout=CHAPTER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return subprocess.CompletedProcess(cmd, 124, out, f"timed out after {CHAPTER_TIMEOUT_S} s "
                                                             "(FAST mode must run in minutes)")
        finally:
            self._process = None
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def stop(self) -> None:
        """Kill a running execution and refuse new ones (end of session)."""
        self.stopped = True
        proc = self._process
        if proc is not None and proc.poll() is None:
            proc.kill()


STG = ChapterRunner("fast-book", FAST_PARAMETERS)
TC = ChapterRunner("fast-book-tc", TC_PARAMETERS, TC_SIZES)
DA = ChapterRunner("fast-book-da", DA_PARAMETERS)
RUNNERS = {"run_fast": STG, "run_fast_tc": TC, "run_fast_da": DA}
_PREFETCH: threading.Thread | None = None


def plan(items) -> list[tuple[ChapterRunner, Path]]:
    """The (runner, chapter) executions the selected test items need, in a cache-friendly order."""
    wanted: dict[str, set[Path]] = {key: set() for key in RUNNERS}
    every = {"run_fast": CHAPTERS, "run_fast_tc": TC_CHAPTERS, "run_fast_da": [CHAPTER_5]}
    for item in items:
        for key in RUNNERS:
            if key not in getattr(item, "fixturenames", ()):
                continue
            callspec = getattr(item, "callspec", None)
            source = callspec.params.get("source") if callspec is not None else None
            wanted[key].update([source] if isinstance(source, Path) else every[key])  # a whole-book test: all
    order = ("run_fast", "run_fast_da", "run_fast_tc")  # STG chapter 6 trains the TC posterior first
    return [(RUNNERS[key], source) for key in order for source in sorted(wanted[key])]


def start_prefetch(items) -> None:
    """Start executing the chapters ``items`` need in a background thread (no-op when none do).

    ``CONDSPACE_TEST_PREFETCH=0`` turns it off (chapters then run when their test first needs them).
    """
    global _PREFETCH
    jobs = plan(items)
    if not jobs or os.environ.get("CONDSPACE_TEST_PREFETCH", "1") == "0" or _PREFETCH is not None:
        return

    def work():
        for runner, source in jobs:
            if runner.stopped:
                return
            runner(source)

    _PREFETCH = threading.Thread(target=work, name="chapter-prefetch", daemon=True)
    _PREFETCH.start()


def timings() -> list[tuple[str, str, float]]:
    """(runner, chapter, wall seconds) of every chapter executed this session: runner by runner, each
    runner's chapters in the order they finished."""
    return [(runner.name, stem, sec) for runner in RUNNERS.values() for stem, sec in runner.seconds.items()]


def cleanup(keep: bool) -> None:
    """Stop the prefetch; remove the runners' folders unless ``keep`` (a failed session keeps them)."""
    for runner in RUNNERS.values():
        runner.stop()
    if _PREFETCH is not None:
        _PREFETCH.join(timeout=30)
    if keep:
        return
    for runner in RUNNERS.values():
        if runner._folder is not None:
            shutil.rmtree(runner._folder, ignore_errors=True)
