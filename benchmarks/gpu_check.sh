#!/usr/bin/env bash
# GPU check of the CuPy paths, in one go:
#   1. the gpu-marked tests: the fused CUDA kernel against NumPy (tests/test_gpu.py) and the DIC
#      engine on CuPy against NumPy (tests/test_dics.py),
#   2. the simulation throughput benchmark (benchmarks/simulate_gpu.py), a markdown table,
#   3. V_th + DICs of 10^6 STG vectors on CuPy against NumPy (benchmarks/dics_gpu.py), a table.
# Meant to finish in well under 8 minutes on one H100. Each step has its own time limit, and a
# failing step does not stop the later ones (the exit status says whether any failed).
#
# Needs a CUDA device and CuPy in the Python that runs it: the project's `gpu` extra,
# `pip install -e '.[gpu]'` (cupy-cuda12x). A GPU machine without internet cannot install it: build
# the environment where pip works and bring it along. This script installs nothing.
#
# Usage: benchmarks/gpu_check.sh            (uses .venv/bin/python if present, else python3)
#        PY=/path/to/python benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PY:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
export CONDSPACE_QUIET=1 PYTHONUNBUFFERED=1
# Not installed in that Python (e.g. a GPU image's own python3 with CuPy): use the source tree.
if ! "$PY" -c "import condspace" >/dev/null 2>&1; then
  export PYTHONPATH="$PWD/lib${PYTHONPATH:+:$PYTHONPATH}"
fi

if ! "$PY" -c "import cupy" >/dev/null 2>&1; then
  echo "gpu_check: CuPy is not importable by $PY." >&2
  echo "  Install the gpu extra into that environment where pip can reach PyPI:" >&2
  echo "    $PY -m pip install -e '.[gpu]'      # cupy-cuda12x" >&2
  echo "  (the GPU machine has no internet: the environment must carry CuPy)." >&2
  exit 2
fi
if ! "$PY" -c "import sys; from condspace.backend import gpu_available; sys.exit(0 if gpu_available() else 1)"; then
  echo "gpu_check: CuPy imports, but no CUDA device answers (condspace.backend.gpu_available() is False)." >&2
  exit 3
fi

echo "== device"
"$PY" -c "from condspace import resolve; import cupy; print(resolve('cupy').describe(), '| CuPy', cupy.__version__, \
'| CUDA runtime', cupy.cuda.runtime.runtimeGetVersion())"

status=0
step() {  # step NAME SECONDS CMD...: run with a time limit, report the wall time, remember a failure
  local name=$1 limit=$2 t0=$SECONDS
  shift 2
  echo "== $name"
  timeout "$limit" "$@" || { echo "!! $name failed (exit $?)"; status=1; }
  echo "($name: $((SECONDS - t0)) s)"
}
step "gpu tests (CuPy against NumPy)" 330 "$PY" -m pytest -m gpu tests/test_dics.py tests/test_gpu.py -q -s -p no:cacheprovider
step "benchmarks/simulate_gpu.py" 120 "$PY" benchmarks/simulate_gpu.py
step "benchmarks/dics_gpu.py" 120 "$PY" benchmarks/dics_gpu.py
exit $status
