"""Write the book's build-status page from the records the chapter runs left behind.

Usage (``make book`` runs it after the chapters, before ``jupyter-book build``)::

    .venv/bin/python tools/build_status.py executed

``tools/execute_chapter.py`` leaves one JSON record per chapter in ``executed/status/``: the
parameters it ran with, wall time, date, commit, package versions, and what the library noted
while it ran (backend, device, caches hit or built; see ``condspace._buildrecord``). This script
turns them into ``executed/build_status.md``, which ``_toc.yml`` lists last. The page is written
by the build, never by hand: a chapter without a record is listed as "no record".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lib"))  # runs before or without the editable install too

from condspace._buildrecord import read  # noqa: E402
from condspace._io import atomic_write  # noqa: E402

PAGE = "build_status.md"
COLUMNS = ("Chapter", "Mode", "Cell", "Backend (device)", "Wall", "Caches", "Finished (UTC)", "Result")


def _cell(value) -> str:
    if value is None or value == []:
        return "–"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value).replace("|", "\\|")


def _row(stem: str, rec: dict) -> list[str]:
    if not rec:
        return [stem] + ["no record"] + ["–"] * (len(COLUMNS) - 2)
    params = rec.get("parameters", {})
    mode = "FAST" if params.get("FAST") else "full"
    seconds = rec.get("wall_s")
    wall = f"{seconds / 60:.1f} min" if seconds is not None else "–"
    where = f"{_cell(rec.get('backend'))} ({_cell(rec.get('device'))})"
    return [stem, mode, _cell(params.get("CELL_TYPE")), where, wall, _cell(rec.get("caches")),
            _cell(rec.get("finished")), _cell(rec.get("result"))]


def render(executed: Path, chapters: list[str]) -> str:
    """The page's markdown for the chapter stems ``chapters`` (records read from ``executed/status``)."""
    records = {stem: read(executed / "status" / f"{stem}.json") for stem in chapters}
    any_rec = next((r for r in records.values() if r), {})
    lines = ["# Build status", "",
             "This page is written by the build that rendered this book (`tools/build_status.py`), from "
             "the records each chapter run left behind: how it ran, where, for how long, and whether "
             "it reused cached simulations and posteriors. FAST chapters use small budgets: their numbers "
             "are not the book's standard results.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_row(stem, records[stem])) + " |" for stem in chapters]
    versions = any_rec.get("versions", {})
    commit = any_rec.get("commit", "unknown")
    lines += ["", f"Commit: `{commit}`." if commit else "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "." if versions else "",
              "", "Caches: `posterior hit` means the chapter loaded a posterior trained by an earlier run "
              "(from `.cache/condspace/`); `posterior built` means it simulated and trained it itself."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("executed", nargs="?", type=Path, default=ROOT / "executed",
                        help="folder of the executed chapters (default executed/)")
    parser.add_argument("--chapters", nargs="*", default=None,
                        help="chapter stems to list (default: every chapters/NN_name.py)")
    args = parser.parse_args(argv)
    stems = args.chapters or [p.stem for p in sorted((ROOT / "chapters").glob("[0-9][0-9]_*.py"))]
    args.executed.mkdir(parents=True, exist_ok=True)
    out = atomic_write(args.executed / PAGE, lambda fh: fh.write(render(args.executed, stems)), mode="w")
    print(f"build_status: {out} ({len(stems)} chapters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
