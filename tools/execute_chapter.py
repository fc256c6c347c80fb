"""Execute one book chapter: jupytext source -> notebook -> papermill -> executed notebook.

Usage (from the repository root, with the project's virtual environment)::

    .venv/bin/python tools/execute_chapter.py chapters/01_degeneracy.py executed/01_degeneracy.ipynb \
        -p FAST True -p CELL_TYPE da

What it does, and why it is one script rather than three shell commands:

1. ``jupytext`` reads the percent-format source (the only tracked notebook source) and the
   notebook gets the ``python3`` kernel, so the kernel is the Python running this script
   (jupyter_client replaces ``python`` by ``sys.executable``), i.e. the project's venv.
2. ``papermill`` executes it with the parameters, working directory = repository root so that
   chapters find ``data/`` with relative paths.
3. papermill tags the cell it injects ``injected-parameters`` only; the book hides it with the
   ``hide-cell`` tag (STYLE.md §6), so that tag is added here.
4. A JSON record of the run (parameters, wall time, date, commit, versions, and what the library
   noted: backend, device, caches) goes to ``<output folder>/status/<name>.json`` for the book's
   build-status page (``tools/build_status.py``); the kernel finds it through
   ``CONDSPACE_BUILD_RECORD``.
5. The result is written atomically (temp file in the same folder, then ``os.replace``), so an
   interrupted or failed run never leaves a notebook that ``make`` would take for up to date. A
   failed run keeps papermill's partial notebook as ``<name>.failed.ipynb`` for debugging and
   exits with status 1.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HIDE_TAG = "hide-cell"
INJECTED_TAG = "injected-parameters"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def parse_value(text: str):
    """Turn a command-line parameter value into a Python value, like papermill's ``-p``.

    ``True``/``False``/``None``, numbers, and Python literals (lists, quoted strings) are
    evaluated; anything else stays a string (``-p CELL_TYPE da`` gives ``"da"``).
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def tag_injected_cell(nb) -> int:
    """Add ``hide-cell`` to papermill's injected-parameters cell(s); returns how many were tagged."""
    found = 0
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if INJECTED_TAG in tags:
            if HIDE_TAG not in tags:
                cell.metadata["tags"] = [*tags, HIDE_TAG]
            found += 1
    return found


def chapter_defaults(nb) -> dict:
    """The literal assignments of the chapter's ``parameters`` cell (what runs when nothing is overridden)."""
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            values = {}
            for stmt in ast.parse(cell.source).body:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                    try:
                        values[stmt.targets[0].id] = ast.literal_eval(stmt.value)
                    except ValueError:
                        pass
            return values
    return {}


def _commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + (" (with uncommitted changes)" if dirty else "")


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    found = {}
    for name in ("condspace", "numpy", "torch", "sbi"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def start_record(record: Path, nb, parameters: dict) -> None:
    """Begin the run's JSON record: effective parameters, commit, versions (the kernel adds to it)."""
    from condspace._io import atomic_write  # noqa: PLC0415

    facts = {"parameters": {**chapter_defaults(nb), **parameters}, "commit": _commit(), "versions": _versions(),
             "result": "running"}
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(record, lambda fh: json.dump(facts, fh, indent=1, sort_keys=True), mode="w")


def finish_record(record: Path, wall_s: float, result: str) -> None:
    """Close the record with the wall time, the finishing date and the result."""
    from condspace._buildrecord import read  # noqa: PLC0415
    from condspace._io import atomic_write  # noqa: PLC0415

    facts = read(record)
    facts.update(wall_s=round(wall_s, 1), result=result,
                 finished=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"))
    atomic_write(record, lambda fh: json.dump(facts, fh, indent=1, sort_keys=True), mode="w")


def _write_atomic(nb, path: Path) -> None:
    import nbformat  # noqa: PLC0415  (imported late: --help stays fast)

    from condspace._io import atomic_write  # noqa: PLC0415  (one atomic writer, normal permissions)

    atomic_write(path, lambda fh: nbformat.write(nb, fh), mode="w")


def execute_chapter(
    source: Path, output: Path, parameters: dict, cwd: Path = ROOT, timeout: float | None = None
) -> Path:
    """Convert, execute and tag one chapter; returns the executed notebook's path.

    Args:
        source: A jupytext percent file (``chapters/NN_name.py``) or an ``.ipynb``.
        output: Where the executed notebook goes (its folder is created).
        parameters: Papermill parameters (``{"FAST": True, "CELL_TYPE": "da"}``).
        cwd: Working directory of the kernel (the repository root by default).
        timeout: Per-cell timeout in seconds, or None for none.

    Raises:
        FileNotFoundError: When ``source`` does not exist.
        ValueError: When parameters are given but the chapter has no cell tagged ``parameters``.
        papermill.PapermillExecutionError: When a cell raises (partial notebook kept as
            ``<output stem>.failed.ipynb``).
    """
    import jupytext  # noqa: PLC0415
    import papermill  # noqa: PLC0415

    source, output = Path(source), Path(output)
    if not source.is_file():
        raise FileNotFoundError(f"source={source}: no such chapter file (expected chapters/NN_name.py)")
    output.parent.mkdir(parents=True, exist_ok=True)  # papermill needs an existing folder
    nb = jupytext.read(source)
    if parameters and not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        # papermill would silently inject at the top instead; a chapter must declare its parameters
        raise ValueError(f"source={source}: no cell tagged 'parameters'; add `# %% tags=[\"parameters\"]` "
                         "above the parameter assignments (STYLE.md §4.3)")
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("jupytext", {})["source_path"] = str(source)

    # The kernel inherits this environment. A test run sets MPLBACKEND=Agg for itself; inside the
    # kernel that would stop ipykernel from selecting the inline backend and figures would vanish.
    env_backend = os.environ.pop("MPLBACKEND", None)
    record = output.parent / "status" / f"{output.stem}.json"
    start_record(record, nb, parameters)
    previous_record = os.environ.get("CONDSPACE_BUILD_RECORD")
    os.environ["CONDSPACE_BUILD_RECORD"] = str(record.resolve())
    t0 = time.perf_counter()
    # papermill saves after every cell: to a hidden scratch file, so a failed run leaves its
    # partial notebook (renamed <name>.failed.ipynb) and never a half-written <name>.ipynb.
    running = output.with_name(f".{output.stem}.running.ipynb")
    failed = output.with_name(f"{output.stem}.failed.ipynb")
    try:
        executed = papermill.execute_notebook(
            nb, str(running), parameters=parameters, kernel_name=KERNELSPEC["name"], cwd=str(cwd),
            progress_bar=not os.environ.get("CONDSPACE_QUIET"), execution_timeout=timeout,
        )
    except BaseException:
        if running.exists():
            os.replace(running, failed)
        finish_record(record, time.perf_counter() - t0, "failed")
        raise
    finally:
        if env_backend is not None:
            os.environ["MPLBACKEND"] = env_backend
        if previous_record is None:
            os.environ.pop("CONDSPACE_BUILD_RECORD", None)
        else:
            os.environ["CONDSPACE_BUILD_RECORD"] = previous_record
    finish_record(record, time.perf_counter() - t0, "ok")
    running.unlink(missing_ok=True)
    tag_injected_cell(executed)
    _write_atomic(executed, output)
    failed.unlink(missing_ok=True)
    return output


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="chapters/NN_name.py (jupytext percent) or a notebook")
    parser.add_argument("output", type=Path, help="executed notebook to write, e.g. executed/NN_name.ipynb")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="papermill parameter, repeatable: -p FAST True -p CELL_TYPE da")
    parser.add_argument("--cwd", type=Path, default=ROOT, help="kernel working directory (default: repository root)")
    parser.add_argument("--timeout", type=float, default=None, help="per-cell timeout in seconds (default: none)")
    args = parser.parse_args(argv)
    params = {name: parse_value(value) for name, value in args.parameter}
    try:
        execute_chapter(args.source, args.output, params, cwd=args.cwd, timeout=args.timeout)
    except Exception as exc:  # one clear line for make; papermill's traceback is in the .failed notebook
        print(f"execute_chapter: {args.source} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"execute_chapter: {args.source} -> {args.output} {params}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
