"""The chapters' prose states no measured figure as literal text (issue 15).

A number that a run measures (a coverage, a fraction, a wall time, a spread) reaches the page
through myst-nb's ``glue`` from the run that rendered it (``{glue:text}`` roles), never typed into
a markdown cell, where it would drift from the next build. This test scans the markdown cells of
every ``chapters/NN_*.py`` for digits outside the places a number may legitimately stand:

- math (``$…$``, ``$$…$$``) and code spans (parameter names, commands, file names), and
  ``{glue:…}`` roles;
- references: the **References** paragraph, citation years, "chapter 2", "§3";
- names that carry a digit (``q05``, ``log10``, ``arXiv:…``); 0 and 1 alone (:data:`BOUNDS`);
- :data:`MODEL_CONSTANTS`, the explicit allow-list of constants of the models and protocols
  (declared in ``lib/condspace/cells`` and SCIENCE.md, not measured).

It also checks that every glued key a chapter's prose pastes is glued by that chapter's code.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.py"))

# Constants of the models, their protocols and the methods' definitions, with where they come from.
# A phrase here may stand in any chapter's prose; anything measured may not.
MODEL_CONSTANTS = {
    "C = 1 µF/cm²": "membrane capacitance of every cell (Liu et al. 1998; Qian et al. 2014)",
    "−80 mV": "start of the threshold scan (SCIENCE.md §3)",
    "−51 mV": "reference voltage V* of the STG recipe (Fyon et al. 2024)",
    "100 ms": "the DA's ultraslow reference time constant (cells/qian14_da.py)",
}

# 0 and 1 alone are the bounds of fractions and the sign thresholds of definitions ("g_s < 0",
# "a quantile of 0 or 1 would mean missed"), not measurements.
BOUNDS = ("0", "1")
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.S)
_CODE = re.compile(r"\{glue[^}]*\}`[^`]*`|`[^`]*`")
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_REFERENCE = re.compile(r"(?:\b(?:[Cc]hapters?|[Ss]ections?|[Ff]ig(?:ure|\.)?|[Ii]ssue)|§)\s*\d+"
                        r"(?:\s*(?:and|,|–|-)\s*\d+)*")
_YEAR = re.compile(r"\b(?:19|20)\d{2}[a-z]?\b(?!\s*(?:ms|s\b|neurons|simulations))")
_NAME_WITH_DIGIT = re.compile(r"[A-Za-z_][\w.:/-]*\d[\w.:/-]*")


def markdown_cells(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of each ``# %% [markdown]`` cell of a percent-format chapter, comments removed."""
    cells, current, start = [], None, 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("# %%"):
            if current is not None:
                cells.append((start, "\n".join(current)))
            current, start = ([] if line.startswith("# %% [markdown]") else None), number
        elif current is not None:
            current.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
    if current is not None:
        cells.append((start, "\n".join(current)))
    return cells


def literal_figures(text: str) -> list[str]:
    """The digit runs of a markdown text that stand outside every allowed context (with context)."""
    text = text.split("**References")[0]
    for pattern in (_MATH, _CODE, _LINK_TARGET):
        text = pattern.sub(" ", text)
    for phrase in MODEL_CONSTANTS:
        text = text.replace(phrase, " ")
    for pattern in (_REFERENCE, _YEAR, _NAME_WITH_DIGIT):
        text = pattern.sub(" ", text)
    return [text[max(0, m.start() - 25):m.end() + 25].replace("\n", " ").strip()
            for m in re.finditer(r"\d[\d.,]*", text) if m.group().rstrip(".,") not in BOUNDS]


def glued_keys(path: Path) -> tuple[set[str], set[str]]:
    """(keys pasted by the prose, keys glued by the code) of one chapter."""
    source = path.read_text(encoding="utf-8")
    pasted = set(re.findall(r"\{glue(?::\w+)?\}`(?:[^`:]*::)?([\w.-]+)", source))
    glued = set(re.findall(r"""\bglue\(\s*["']([\w.-]+)["']""", source))
    glued |= set(re.findall(r"""\bshow\(\s*["']([\w.-]+)["']""", source))  # the chapters' glue helper
    return pasted, glued


@pytest.mark.parametrize("source", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_no_measured_figure_is_typed_into_the_prose(source):
    found = [f"line {line}: …{hit}…" for line, text in markdown_cells(source) for hit in literal_figures(text)]
    assert not found, (f"{source.name}: figures typed into the prose (glue them from the run, write a "
                       f"definition in math, or add a model constant to MODEL_CONSTANTS):\n" + "\n".join(found))


@pytest.mark.parametrize("source", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_pasted_key_is_glued(source):
    pasted, glued = glued_keys(source)
    assert not pasted - glued, f"{source.name}: pasted but never glued: {sorted(pasted - glued)}"


@pytest.mark.parametrize("planted, caught", [
    ("The coverage was 0.48 at the 50 % level.", True),
    ("A single flow covered 38–41 % of cases.", True),
    ("Full mode took ≈ 19 min on 2 cores.", True),
    ("Book build of 2026-11-26.", True),
    ("Coverage at $\\alpha = 0.5$ was {glue:text}`cov50:.2f`.", False),
    ("Durkan et al. (2019) and chapter 2, §3, `N_TEST = 1000`, q05, log10, arXiv:2509.12783.", False),
    ("with C = 1 µF/cm² and $dt = 0.05$ ms", False),
    ("**References.** Liu Z et al. (1998) J Neurosci 18:2309–2320.", False),
])
def test_the_scan_catches_a_planted_literal(planted, caught):
    assert bool(literal_figures(planted)) is caught, literal_figures(planted)


def test_the_scan_reads_a_planted_chapter(tmp_path):
    chapter = tmp_path / "99_planted.py"
    chapter.write_text("# %% [markdown]\n# # Title\n#\n# Clean prose, {glue:text}`n`.\n\n"
                       "# %%\nshow('n', 3)\n\n# %% [markdown]\n# It covered 83–85 % at 90 %.\n", encoding="utf-8")
    hits = [hit for _, text in markdown_cells(chapter) for hit in literal_figures(text)]
    assert len(hits) == 3 and "83" in hits[0]
    assert glued_keys(chapter) == ({"n"}, {"n"})
