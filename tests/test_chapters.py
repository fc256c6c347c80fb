"""The book itself: every chapter follows the contract, executes in FAST mode, and the book builds with -W.

Chapters are discovered at run time (``chapters/NN_name.py``), converted with jupytext and
executed with papermill by ``tools/execute_chapter.py`` (the same script ``make book`` uses) with
``FAST=True, BACKEND="numpy"`` into a temporary folder. The book is then built with
``jupyter-book build -W --keep-going`` from a temporary copy of ``_config.yml``, ``_toc.yml``,
``index.md`` and those notebooks, so the real ``_build`` and ``executed/`` are never touched.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from _chapter_runs import CHAPTER_5, CHAPTERS, DA, FAST_PARAMETERS, ROOT, STG, TC, TC_CHAPTERS

BUILD_STATUS = ROOT / "tools" / "build_status.py"
STATUS_PAGE = "executed/build_status"  # written by the build (tools/build_status.py), listed last in _toc.yml
REQUIRED_PARAMETERS = ("CELL_TYPE", "FAST", "BACKEND", "SEED")  # STYLE.md §4.3
BUILD_TIMEOUT_S = 900

pytestmark = pytest.mark.chapters


def _ids(paths):
    return [p.stem for p in paths]


def _cells(nb, kind):
    return [c for c in nb.cells if c.cell_type == kind]


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


# The FAST executions are shared by the session and may already be running in the background
# (tests/_chapter_runs.py, started by tests/conftest.py once the session is collected).
@pytest.fixture(scope="session")
def run_fast():
    return STG


# ----- the chapter contract (STYLE.md §4), checked on the source without running it ------------
@pytest.mark.parametrize("source", CHAPTERS, ids=_ids(CHAPTERS))
def test_chapter_contract(source):
    import jupytext

    nb = jupytext.read(source)
    markdown = _cells(nb, "markdown")
    assert markdown and markdown[0].source.lstrip().startswith("# "), (
        f"{source.name}: must open with a markdown cell whose first line is the '# ' title")
    assert sum(line.startswith("# ") for c in markdown for line in c.source.splitlines()) == 1, (
        f"{source.name}: exactly one '#' title (sections are '##')")

    params = [c for c in _cells(nb, "code") if "parameters" in _tags(c)]
    assert len(params) == 1, f"{source.name}: needs exactly one code cell tagged 'parameters', found {len(params)}"
    tree = ast.parse(params[0].source)
    assigned = []
    for stmt in tree.body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name), (
            f"{source.name}: the parameters cell holds plain `NAME = value` assignments only, got "
            f"{ast.get_source_segment(params[0].source, stmt)!r}")
        ast.literal_eval(stmt.value)  # a literal, so papermill can override it
        assigned.append(stmt.targets[0].id)
    missing = [p for p in REQUIRED_PARAMETERS if p not in assigned]
    assert not missing, f"{source.name}: parameters cell lacks {missing}"
    for line in params[0].source.splitlines():
        if re.match(r"^[A-Za-z_]\w*\s*=", line):
            assert "#" in line, f"{source.name}: every parameter gets a comment: {line!r}"

    code = "\n".join(c.source for c in _cells(nb, "code"))
    assert "sys.path" not in code, f"{source.name}: no sys.path edits (the package is installed editable)"
    assert not re.search(r"^\s*[!%]\s*pip", code, re.M), f"{source.name}: no pip installs in a chapter"


# ----- execution in FAST mode -------------------------------------------------------------------
@pytest.mark.parametrize("source", CHAPTERS, ids=_ids(CHAPTERS))
def test_chapter_executes_fast(source, run_fast):
    result, out = run_fast(source)
    assert result.returncode == 0, (
        f"{source.name} failed in FAST mode (partial notebook: {out.with_name(out.stem + '.failed.ipynb')}):\n"
        f"{result.stderr[-4000:]}")
    nb = nbformat.read(out, as_version=4)
    code = _cells(nb, "code")
    assert code and all(c.get("execution_count") is not None for c in code), f"{source.name}: not every cell ran"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{source.name}: error outputs {[e.get('ename') for e in errors]}"
    assert nb.metadata["papermill"]["parameters"] == FAST_PARAMETERS

    injected = [c for c in code if "injected-parameters" in _tags(c)]
    assert len(injected) == 1 and "hide-cell" in _tags(injected[0]), "papermill's cell must be tagged hide-cell"
    assert "FAST = True" in injected[0].source and "BACKEND = \"numpy\"" in injected[0].source
    def has_figure(cell):
        return any("image/png" in o.get("data", {}) for o in cell.get("outputs", []))

    assert any(has_figure(c) for c in code), f"{source.name}: a chapter shows its results as figures (STYLE.md §4.6)"
    silent = [c.source.splitlines()[0] for c in code if "plotting.plot_" in c.source and not has_figure(c)]
    assert not silent, f"{source.name}: cells calling condspace.plotting rendered no figure: {silent}"


# ----- every chapter on the third cell type ---------------------------------------------------
# The thalamocortical cell was added as one file (cells/destexhe96_tc.py); chapters 1-5 must run on
# it with nothing but parameters changed (issue 11). Its FAST sizes are in tests/_chapter_runs.py.
@pytest.fixture(scope="session")
def run_fast_tc():
    return TC


@pytest.mark.parametrize("source", TC_CHAPTERS, ids=_ids(TC_CHAPTERS))
def test_chapter_executes_fast_on_the_tc_cell(source, run_fast_tc):
    result, out = run_fast_tc(source)
    assert result.returncode == 0, (
        f"{source.name} failed on CELL_TYPE='tc' (partial notebook: {out.with_name(out.stem + '.failed.ipynb')}):\n"
        f"{result.stderr[-4000:]}")
    nb = nbformat.read(out, as_version=4)
    code = _cells(nb, "code")
    assert all(c.get("execution_count") is not None for c in code), f"{source.name}: not every cell ran"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{source.name}: error outputs {[e.get('ename') for e in errors]}"
    assert nb.metadata["papermill"]["parameters"] == run_fast_tc.parameters_of(source)
    printed = "".join(o.get("text", "") for c in code for o in c.get("outputs", []) if o.get("output_type") == "stream")
    assert re.search(r"\bcell tc\b", printed), f"{source.name}: the environment line does not name the tc cell"


# ----- the book -------------------------------------------------------------------------------
def _toc_files(entries):
    """Every ``file:`` in a (nested) Jupyter Book table of contents."""
    for entry in entries or []:
        if "file" in entry:
            yield entry["file"]
        for key in ("parts", "chapters", "sections"):
            yield from _toc_files(entry.get(key))


def _filter_toc(entries, keep):
    """The TOC entries whose file is in ``keep`` (sub-entries filtered the same way)."""
    kept = []
    for entry in entries or []:
        entry = dict(entry)
        for key in ("parts", "chapters", "sections"):
            if key in entry:
                entry[key] = _filter_toc(entry[key], keep)
                if not entry[key]:
                    del entry[key]
        if entry.get("file", None) in keep or any(k in entry for k in ("chapters", "sections")):
            kept.append(entry)
    return kept


def test_toc_lists_exactly_the_chapters():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert toc["root"] == "index"
    listed = [f for f in _toc_files(toc.get("parts", toc.get("chapters")))]
    sources = [f"executed/{p.stem}" for p in CHAPTERS]
    assert not [s for s in sources if s not in listed], "a chapter in chapters/ is missing from _toc.yml"
    orphans = [f for f in listed if f.startswith("executed/") and f not in sources and f != STATUS_PAGE]
    assert not orphans, f"_toc.yml lists {orphans} but chapters/ has no source for them (make book would fail)"
    assert all(f.startswith("executed/") for f in listed), "the TOC lists executed notebooks, never chapters/*.py"
    assert listed[-1] == STATUS_PAGE, "the build-status page (written by the build) comes last in _toc.yml"


@pytest.fixture(scope="session")
def built_book(run_fast, tmp_path_factory):
    """The FAST book built once per session with ``-W``: (html folder, pages built, build result)."""
    book = tmp_path_factory.mktemp("book")
    (book / "executed").mkdir(parents=True)
    for name in ("_config.yml", "index.md"):
        shutil.copy(ROOT / name, book / name)
    for extra in [*ROOT.glob("*.bib"), ROOT / "_static"]:  # assets the config may point at
        if extra.is_dir():
            shutil.copytree(extra, book / extra.name)
        elif extra.is_file():
            shutil.copy(extra, book / extra.name)

    built = []
    for source in CHAPTERS:
        result, out = run_fast(source)
        if result.returncode == 0:  # a failing chapter is reported by test_chapter_executes_fast
            shutil.copy(out, book / "executed" / out.name)
            built.append(f"executed/{source.stem}")
    # The build-status page, from the records the FAST runs left (as make book writes it).
    status = subprocess.run([sys.executable, str(BUILD_STATUS), str(run_fast.folder / "executed"), "--chapters",
                             *[p.stem for p in CHAPTERS]], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    shutil.copy(run_fast.folder / "executed" / "build_status.md", book / "executed" / "build_status.md")
    built.append(STATUS_PAGE)
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for key in ("parts", "chapters"):
        if key in toc:
            toc[key] = _filter_toc(toc[key], set(built))
            if not toc[key]:
                del toc[key]
    (book / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))

    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(book), "-W", "--keep-going"]
    proc = subprocess.run(cmd, cwd=book, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    return book / "_build" / "html", built, proc


def test_book_builds_with_warnings_as_errors(built_book):
    html, built, proc = built_book
    assert proc.returncode == 0, f"jupyter-book build -W failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"

    assert (html / "index.html").is_file()
    for page in built:
        page_html = html / f"{page}.html"
        assert page_html.is_file(), f"{page}.html was not built"
        if page != STATUS_PAGE:
            assert "tag_hide-cell" in page_html.read_text(encoding="utf-8"), f"{page}: injected parameters not hidden"
    status = (html / f"{STATUS_PAGE}.html").read_text(encoding="utf-8")
    for source in CHAPTERS:
        assert source.stem in status, f"the build-status page does not list {source.stem}"
    assert "no record" not in status, "a chapter ran without leaving a build record"

    # math renders offline: MathJax is bundled and index.html loads it from _static, not a CDN
    index = (html / "index.html").read_text(encoding="utf-8")
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert re.search(r'<script[^>]+src="_static/mathjax/tex-chtml\.js', index), "index.html does not load local MathJax"
    assert not re.search(r'src="https?://[^"]*mathjax', index, re.I), "index.html still loads MathJax from a CDN"


# ----- the rendered book in a real browser ------------------------------------------------------
# tools/check_book.py drives headless Chromium over the DevTools protocol; without a Chromium on
# PATH these tests skip and say how to install one (`make browser`). Screenshots of every page land
# in _build/screenshots/ for a person to look at.
_spec = importlib.util.spec_from_file_location("check_book", ROOT / "tools" / "check_book.py")
check_book = importlib.util.module_from_spec(_spec)
sys.modules["check_book"] = check_book  # dataclasses look their module up while the class is built
_spec.loader.exec_module(check_book)

needs_browser = pytest.mark.skipif(check_book.find_browser() is None,
                                   reason="no Chromium on PATH: `make browser` installs Debian's chromium")


def _html(built_book):
    html, _, proc = built_book
    if proc.returncode != 0:
        pytest.skip("the book did not build (test_book_builds_with_warnings_as_errors reports why)")
    return html


@needs_browser
def test_every_page_reads_cleanly_in_a_browser(built_book):
    html = _html(built_book)
    shots = ROOT / "_build" / "screenshots"
    shutil.rmtree(shots, ignore_errors=True)
    reports = check_book.check_book(html, screenshots=shots)
    pages = {r.page for r in reports}
    assert "index.html" in pages and any(p.startswith("executed/") for p in pages)
    bad = {r.page: r.findings for r in reports if r.findings}
    assert not bad, "pages a reader would see broken:\n" + "\n".join(
        f"{page}:\n  - " + "\n  - ".join(found) for page, found in bad.items())
    assert all(r.screenshot is not None and r.screenshot.stat().st_size > 10_000 for r in reports)
    assert sum(r.math_rendered for r in reports) > 0, "MathJax rendered no math anywhere in the book"


# Each fault is injected into its own copy of a built chapter page; the check must name it.
_FAULTS = {
    "error cell": ('<div class="cell_output docutils container"><div class="output traceback highlight-ipythontb">'
                   '<pre>Traceback (most recent call last):\n  ZeroDivisionError: division by zero</pre></div></div>',
                   "error in an output"),
    "broken image": ('<img alt="figure" src="../_images/no_such_figure.png">', "broken image"),
    "bad math": ('<div class="math notranslate nohighlight">\\[\\frac{1}\\]</div>', "MathJax error"),
    "undefined macro": ('<div class="math notranslate nohighlight">\\[x = \\nosuchmacro{y}\\]</div>', "MathJax error"),
    "unrendered math": ('<p>the rate $f = 1/T$ in hertz</p>', "unrendered inline math"),
    "object repr": ('<div class="cell_output docutils container"><div class="output text_plain highlight-myst-ansi">'
                    '<pre>&lt;matplotlib.legend.Legend at 0x7f3a2c1d9e50&gt;</pre></div></div>', "stray object repr"),
    "machine path": ('<div class="cell_output docutils container"><div class="output text_plain highlight-myst-ansi">'
                     '<pre>/root/project/.venv/lib/python3.11/site-packages/tqdm/auto.py:21</pre></div></div>',
                     "absolute path"),
    "outside request": ('<img alt="remote" src="https://example.org/logo.png">', "request outside the book"),
    "dead link": ('<a href="no_such_page.html">a link</a>', "broken link"),
}


@needs_browser
@pytest.mark.parametrize("fault", sorted(_FAULTS))
def test_browser_check_catches_an_injected_fault(built_book, tmp_path, fault):
    html = _html(built_book)
    copy = tmp_path / "html"
    shutil.copytree(html, copy)
    page = next(p for p in sorted((copy / "executed").glob("*.html")) if p.stem != "build_status")
    snippet, expected = _FAULTS[fault]
    text = page.read_text(encoding="utf-8")
    assert "</main>" in text, "the page layout changed: update where faults are injected"
    page.write_text(text.replace("</main>", snippet + "</main>", 1), encoding="utf-8")
    clean = next(p for p in sorted((copy / "executed").glob("*.html")) if p != page)
    reports = check_book.check_book(copy, pages=[Path(page), Path(clean)])
    injected, untouched = reports
    assert any(expected in f for f in injected.findings), f"{fault} not caught; findings: {injected.findings}"
    assert not untouched.findings, f"an untouched page was flagged: {untouched.findings}"


def test_check_book_needs_a_built_book(tmp_path):
    with pytest.raises(FileNotFoundError, match="build the book first"):
        check_book.check_book(tmp_path)


# ----- chapter 5 with a second cell type (issue 12: it runs with CELL_TYPE="da" too) -------------
@pytest.fixture(scope="session")
def run_fast_da():
    return DA


def test_chapter_5_executes_fast_for_the_da_neuron(run_fast_da):
    result, out = run_fast_da(CHAPTER_5)
    assert result.returncode == 0, f"chapter 5 failed for the DA neuron in FAST mode:\n{result.stderr[-4000:]}"
    nb = nbformat.read(out, as_version=4)
    code = _cells(nb, "code")
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors and nb.metadata["papermill"]["parameters"]["CELL_TYPE"] == "da"
    text = "".join(o.get("text", "") for c in code for o in c.get("outputs", []))
    assert "cell da | 15 hypotheses" in text  # 5 modulable DA channels (NMDA fixed) and their 10 pairs


# ----- the book on the user's recordings (RECORDINGS, GROUND_TRUTH) ------------------------------
# One FAST run of chapter 2 on a user's file without ground truth: two shipped trains under new IDs,
# written to tmp_path (its posterior is chapter 2's FAST one, which the shared STG run has cached by
# the time these last tests run), and one on a malformed file, which stops at the loading cell. The
# run with the shipped ground truth is test_chapter_executes_fast; ground-truth files and chapters
# 3-5's loaders are tested in tests/test_user_recordings.py without running a chapter.
CHAPTER_2 = ROOT / "chapters" / "02_inference.py"


def _run_chapter(source, out, parameters):
    from _chapter_runs import CHAPTER_TIMEOUT_S, ENVIRONMENT, EXECUTOR  # noqa: PLC0415

    cmd = [sys.executable, str(EXECUTOR), str(source), str(out), "--timeout", str(CHAPTER_TIMEOUT_S)]
    for name, value in parameters.items():
        cmd += ["-p", name, repr(value)]
    return subprocess.run(cmd, cwd=ROOT, env=ENVIRONMENT, capture_output=True, text=True, timeout=CHAPTER_TIMEOUT_S)


def _glued(nb):
    """name → text of every value the notebook glued (myst-nb stores them as scrapbook outputs)."""
    out = {}
    for c in _cells(nb, "code"):
        for o in c.get("outputs", []):
            book = o.get("metadata", {}).get("scrapbook")
            if book:
                out[book["name"]] = o["data"].get(book.get("mime_prefix", "") + "text/plain", "")
    return out


def test_chapter_2_runs_on_a_users_recordings_without_ground_truth(tmp_path):
    from condspace import recordings

    shipped = recordings.load_csv(ROOT / "data" / "recordings" / "stg_recordings.csv")
    mine = tmp_path / "my_recordings.csv"
    recordings.save_csv(mine, {"neuron_A": shipped["stg_tonic"], "neuron_B": shipped["stg_bursting"]})
    out = tmp_path / "02_mine.ipynb"
    result = _run_chapter(CHAPTER_2, out, {**FAST_PARAMETERS, "RECORDINGS": str(mine)})
    assert result.returncode == 0, f"chapter 2 failed on a user's recordings:\n{result.stderr[-4000:]}"
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in _cells(nb, "code") for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    glued = _glued(nb)
    assert "my_recordings.csv (2 recordings)" in glued["recordings_source"]
    assert "No ground truth was given" in glued["recordings_source"]
    assert "skipped" in glued["truth_inside_first"] and "skipped" in glued["truth_inside_second"]
    assert "neuron_A (spiking)" in glued["pair_first"] and "neuron_B (bursting)" in glued["pair_second"]
    # the checks that need no truth ran on the user's IDs
    printed = "".join(str(o.get("data", {}).get("text/plain", "")) + o.get("text", "")
                      for c in _cells(nb, "code") for o in c.get("outputs", [])
                      if "scrapbook" not in o.get("metadata", {}))
    assert "neuron_A" in printed and "neuron_B" in printed and "stg_tonic" not in printed


def test_chapter_2_names_the_file_and_line_of_a_bad_recording(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text('ID,spiking_times\nn1,"[3001.0, 3050.5, 3100.0]"\nn2,"[3001.0, 3000.0, 3200.0]"\n')
    result = _run_chapter(CHAPTER_2, tmp_path / "02_bad.ipynb", {**FAST_PARAMETERS, "RECORDINGS": str(bad)})
    assert result.returncode != 0
    assert f"{bad}, line 3: spike times must be strictly increasing" in result.stderr + result.stdout
