# condspace: build the book, run the tests. Needs only Python >= 3.11; everything else is
# installed into .venv by `make setup` (which `book` and `test` run first).
#
#   make book    execute every chapters/NN_name.py in full mode into executed/, build _build/html
#   make test    the whole pytest suite (chapters in FAST mode, a -W book build, every page in a browser)
#   make check   the science check: standard-budget results (tools/science_check.py), non-zero on a miss
#   make fuzz    the Hypothesis input fuzzing suite with many examples (profile "fuzz", minutes)
#   make browser install Debian's chromium for the browser checks, when none is on PATH
#   make bench   run every benchmarks/*.py (not the _helpers)
#   make clean   remove build outputs (keeps .venv); `make distclean` removes .venv too

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The interpreter that creates the venv: python3.11 when there is one, else python3.
BOOTSTRAP_PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
# Extra pip flags, e.g. PIP_FLAGS="--extra-index-url https://download.pytorch.org/whl/cpu" on a
# machine whose default index would serve the multi-GB CUDA build of torch.
PIP_FLAGS ?=

CHAPTERS := $(sort $(wildcard chapters/[0-9]*.py))
EXECUTED := $(patsubst chapters/%.py,executed/%.ipynb,$(CHAPTERS))
# A chapter is re-executed when its source, the library, the data or the executor change.
LIBRARY  := $(shell find lib/condspace -name '*.py' -o -name '*.mplstyle' 2>/dev/null)
DATA     := $(shell find data -type f 2>/dev/null)

# No progress bars in executed notebooks or test logs; tests draw headless.
export CONDSPACE_QUIET := 1

STATUS_PAGE := executed/build_status.md
BROWSER := $(shell command -v chromium || command -v chromium-browser || command -v google-chrome 2>/dev/null)

.PHONY: help setup book chapters check-book browser test check fuzz bench lint clean distclean

help:
	@echo "make setup     create .venv (Python >= 3.11) and install requirements.txt and -e ."
	@echo "make book      execute chapters/*.py in full mode into executed/, build _build/html"
	@echo "make test      run the test suite (chapters in FAST mode, -W book build, pages in a browser)"
	@echo "make check     the science check of the standard results (posterior from .cache/condspace, or trained)"
	@echo "make fuzz      fuzz the input layer with many Hypothesis examples (tests/test_fuzz.py)"
	@echo "make browser   install Debian's chromium (used by the browser checks of the book)"
	@echo "make bench     run benchmarks/*.py"
	@echo "make lint      ruff check"
	@echo "make clean     remove _build, executed, caches;  make distclean: also .venv"

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -n "$(BOOTSTRAP_PYTHON)" || { echo "make setup: no python3.11 or python3 on PATH" >&2; exit 1; }
	@test -x $(PY) || { echo "creating $(VENV) with $(BOOTSTRAP_PYTHON)"; $(BOOTSTRAP_PYTHON) -m venv $(VENV); }
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "condspace needs Python >= 3.11, $(VENV) has " + sys.version.split()[0] + ": make distclean, then make setup BOOTSTRAP_PYTHON=python3.11")'
	$(PY) -m pip install $(PIP_FLAGS) -r requirements.txt
	$(PY) -m pip install $(PIP_FLAGS) -e .
	touch $@

# Full-mode execution of one chapter (jupytext -> papermill -> hide-cell tag; see tools/execute_chapter.py).
executed/%.ipynb: chapters/%.py $(STAMP) $(LIBRARY) $(DATA) tools/execute_chapter.py
	$(PY) tools/execute_chapter.py $< $@ -p FAST False

# Chapters 3 and 4 load the posterior chapter 2 trains and caches (.cache/condspace): after it, also
# under `make -j`, so that it is trained once.
executed/03_dics.ipynb executed/04_neuromodulation.ipynb: | executed/02_inference.ipynb

chapters: $(EXECUTED)

# The build-status page: written from the records the chapter runs left in executed/status/.
$(STATUS_PAGE): $(EXECUTED) tools/build_status.py
	$(PY) tools/build_status.py executed

# Chapters run BOOK_JOBS at a time (default 2, one per core of the 2-core reference machine): while
# chapter 2 trains, chapters 1, 5 and 6 run beside it; 3 and 4 wait for chapter 2's posterior.
BOOK_JOBS ?= 2

book: setup
	@$(MAKE) --no-print-directory -j$(BOOK_JOBS) $(EXECUTED) $(STATUS_PAGE)
	rm -rf _build
	$(VENV)/bin/jupyter-book build . -W --keep-going
	@$(MAKE) --no-print-directory check-book
	@echo "book: open _build/html/index.html"

# Every page of the built book in headless Chromium (tools/check_book.py); screenshots for a person.
check-book:
	@if [ -z "$(BROWSER)" ]; then echo "check-book: no Chromium on PATH, pages not checked (make browser installs one)"; \
	else $(PY) tools/check_book.py _build/html --screenshots _build/screenshots; fi

# Debian's chromium, for the browser checks; needs root and apt-get, else says how and carries on.
browser:
	@if [ -n "$(BROWSER)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "browser: installing Debian's chromium"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "browser: apt-get could not install chromium; the browser tests will skip"; \
	else echo "browser: no Chromium and no root apt-get: install chromium yourself, or the browser tests skip"; fi

test: setup browser
	MPLBACKEND=Agg $(VENV)/bin/pytest

# The standard-budget results the book states (predictive checks, coverage, DIC check values,
# chapter 4's reachability): a table, exit status 1 on a miss. Uses chapter 2's cached posterior.
check: setup
	$(PY) tools/science_check.py

# The Hypothesis profiles are registered in tests/conftest.py; `make test` uses "quick".
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz MPLBACKEND=Agg $(VENV)/bin/pytest tests/test_fuzz.py -q

bench: setup
	@shopt -s nullglob; scripts=(benchmarks/[!_]*.py); \
	if [ $${#scripts[@]} -eq 0 ]; then echo "bench: no benchmarks/*.py"; fi; \
	for script in "$${scripts[@]}"; do \
	  if [ "$$script" = benchmarks/inference_ablation.py ]; then echo "== $$script: skipped (hours; writes data/ablation/, run it by hand)"; continue; fi; \
	  if [ "$$script" = benchmarks/robustness.py ]; then echo "== $$script: skipped (hours; writes data/robustness/, run it by hand)"; continue; fi; \
	  echo "== $$script"; $(PY) "$$script"; done

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf _build executed .pytest_cache .ruff_cache sbi-logs .hypothesis

distclean: clean
	rm -rf $(VENV)
