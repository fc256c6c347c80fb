"""The compiled CPU engine (``engine="numba"``, condspace._numba / _codegen.generate_numba) against NumPy.

The compiled engine is generated from the declaration by the tracer that writes the CUDA kernel
and follows :meth:`condspace._engine.Engine.step` operation by operation, reading the same rate
table. Compared with the NumPy engine (``engine="numpy"``, the reference), on

* every published example set over the cell's full literature protocol (``cell.protocol``), and
* 1,000 draws from the prior box of each cell (:func:`condspace.inference.make_prior`) over 1 s
  at the cell's own dt (STG 0.05 ms, DA 0.025 ms), from rest (no transient: the whole
  trajectory is compared). One second instead of the full protocol keeps this in ``make test``
  on two cores; it still compares about 2·10⁴ (STG) and 4·10⁴ (DA) steps of every neuron, with
  spikes, bursts and the slow calcium and H dynamics under way, and a discrepancy in any rate,
  update or summation order shows up within the first steps (see the trace test) and is then
  amplified, not hidden, by longer runs.

The criterion is that of tests/test_gpu.py: the table kernels evaluate ``exp`` with their own
vectorisable polynomial (``cs_exp``, within 1.2 ulp; libm's ``exp`` is an opaque call no loop can
vectorise), which rounds differently from NumPy's ``exp`` in about one call in nine, as CUDA's
does; an irregular neuron amplifies such an ulp into other spike times, exactly as it amplifies a
one-ulp change of its conductances. So NumPy itself is rerun with every conductance one ulp larger
and one ulp smaller: among neurons whose NumPy count is unchanged by both, at least 99 % identical
counts; spike times within 1e-6 ms wherever NumPy's own times move by less than 1e-8 ms under both;
and over all neurons, agreement at least NumPy's agreement with itself, less 1 %. Without noise
each neuron's arithmetic is its own, so threads, chunks and tile mates change nothing (tested bit
for bit below).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from condspace import _numba, cells, inference, simulate

pytestmark = pytest.mark.skipif(not _numba.available(), reason="Numba is not installed: no compiled engine")

N_DRAWS = 1000
RANDOM = {"t_max": 1000.0, "transient": 0.0}  # ms, each cell at its protocol dt
ROBUST = 1e-8  # ms: NumPy's own spike times move less than this when g moves by one ulp
SPIKE_TOL = 1e-6  # ms


def _examples(cell) -> np.ndarray:
    return np.array([[cell.example(k)[g] for g in cell.conductance_names] for k in cell.examples])


def _draws(cell) -> np.ndarray:
    prior = inference.make_prior(cell)
    return inference.conductances(cell, prior, prior.sample(N_DRAWS, seed=13))


def _numpy(name: str, g: np.ndarray, kw: dict):
    """NumPy engine on g and on g one ulp up and down, in one call (rows are independent without noise)."""
    res = simulate(name, np.vstack([g, np.nextafter(g, np.inf), np.nextafter(g, 0.0)]), backend="numpy",
                   engine="numpy", progress=False, **kw)
    n = len(g)
    return res.spike_times[:n], (res.spike_times[n:2 * n], res.spike_times[2 * n:]), res.ok[:n]


def _protocol(name: str, kind: str) -> dict:
    cell = cells.get(name)
    if kind == "examples":
        return dict(cell.protocol)
    return {**RANDOM, "dt": float(cell.protocol.get("dt", 0.05))}


@pytest.fixture(scope="module")
def reference():
    """NumPy references of this module, computed in two spawned processes with one BLAS thread each."""
    jobs = {}
    with pytest.MonkeyPatch.context() as env, ProcessPoolExecutor(
            2, mp_context=multiprocessing.get_context("spawn")) as pool:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setenv(var, "1")
        for name in ("da", "stg"):  # the longest first
            cell = cells.get(name)
            for kind, g in (("random", _draws(cell)), ("examples", _examples(cell))):
                jobs[name, kind] = (g, pool.submit(_numpy, name, g, _protocol(name, kind)))
        return {key: (g, *fut.result()) for key, (g, fut) in jobs.items()}


def _shift(a: list, b: list) -> np.ndarray:
    """Per neuron: the largest spike-time difference (ms); inf where the counts differ."""
    return np.array([np.inf if len(x) != len(y) else (np.max(np.abs(x - y)) if len(x) else 0.0)
                     for x, y in zip(a, b, strict=True)])


@pytest.mark.parametrize("kind", ["examples", "random"])
@pytest.mark.parametrize("name", ["stg", "da"])
def test_compiled_engine_matches_numpy(reference, name, kind):
    g, ref, perturbed, ok = reference[name, kind]
    res = simulate(name, g, engine="numba", workers=2, progress=False, **_protocol(name, kind))
    assert res.metadata["engine"] == "numba"
    np.testing.assert_array_equal(res.ok, ok)
    counts = np.array([len(s) for s in res.spike_times])
    ref_counts = np.array([len(s) for s in ref])
    pert_counts = [np.array([len(s) for s in pert]) for pert in perturbed]
    if kind == "examples":
        assert ok.all() and (ref_counts > 0).all()
    else:
        assert len(np.unique(ref_counts)) > 20  # a varied population, not 1,000 silent cells
    count_robust = np.logical_and.reduce([p == ref_counts for p in pert_counts])
    time_robust = np.logical_and.reduce([_shift(pert, ref) < ROBUST for pert in perturbed])
    self_agreement = min(np.mean(p == ref_counts) for p in pert_counts)
    shift = _shift(res.spike_times, ref)
    same = counts == ref_counts
    report = (f"{name} {kind}: {count_robust.sum()} of {len(g)} neurons count-robust, {time_robust.sum()} "
              f"time-robust; identical counts {np.mean(same[count_robust]):.4f} of the count-robust, "
              f"{np.mean(same):.4f} overall (NumPy vs one ulp: {self_agreement:.4f}); identical times "
              f"{np.mean(shift == 0):.4f}; largest shift among time-robust "
              f"{np.max(shift[time_robust], initial=0.0):.3g} ms; counts differ for robust neurons "
              f"{np.flatnonzero(count_robust & ~same).tolist()}")
    print(report)
    if kind == "examples":  # the published sets: every one, without exception
        np.testing.assert_array_equal(counts, ref_counts, err_msg=report)
    assert np.mean(same[count_robust]) >= 0.99, report
    bad = np.flatnonzero(time_robust & (shift > SPIKE_TOL))
    assert bad.size == 0, f"{report}; spike times differ for robust neurons {bad.tolist()}: {shift[bad]}"
    assert np.mean(same) >= self_agreement - 0.01, report


@pytest.mark.parametrize(("name", "method", "t_max"), [("stg", "table", 200.0), ("da", "table", 200.0),
                                                     ("stg", "exact", 200.0), ("da", "exact", 20.0)])
def test_traces_follow_numpy(name, method, t_max):
    """Recorded voltages of the two engines. ``exact`` evaluates every rate each step, for DA's ERG
    scheme with the kernel's own matrix exponential (against SciPy's in the NumPy engine: 20 ms,
    as SciPy's per-step expm makes the NumPy reference slow).

    The kernels' exp and expm round differently from NumPy's now and then; a bursting neuron
    amplifies that as it amplifies a one-ulp change of its conductances. So each trace must stay
    within 1e-9 mV (table) or 1e-7 mV (exact) of NumPy's, or within ten times NumPy's own
    deviation when its conductances move by one ulp, whichever is larger (measured: STG's
    8-spike burster moves by 3e-6 mV on NumPy alone within 200 ms, the compiled trace by 1e-5 or
    less; the other traces stay below 1e-9)."""
    g = _examples(cells.get(name))
    kw = {"t_max": t_max, "transient": 0.0, "dt": 0.05, "method": method,
          "record": {"neurons": [0, len(g) - 1], "interval": 0.05}}
    ref = simulate(name, g, engine="numpy", **kw)
    own = np.max([np.abs(simulate(name, np.nextafter(g, to), engine="numpy", **kw).traces["V"] - ref.traces["V"])
                  for to in (np.inf, 0.0)], axis=(0, 2))
    res = simulate(name, g, engine="numba", **kw)
    assert res.metadata["method"] == method
    np.testing.assert_array_equal(res.traces["t"], ref.traces["t"])
    floor = 1e-9 if method == "table" else 1e-7
    for row in range(2):
        deviation = np.max(np.abs(res.traces["V"][row] - ref.traces["V"][row]))
        assert deviation <= max(floor, 10.0 * own[row]), (row, deviation, own[row])
    np.testing.assert_array_equal(res.n_spikes, ref.n_spikes)
    if t_max >= 200.0:
        assert np.ptp(ref.traces["V"]) > 50.0  # spikes in the window


def test_noise_is_reproducible_and_independent_of_threads_and_chunks():
    """Same seed → the same noise as the NumPy engine, whatever the threads and chunking; a blow-up is flagged.

    Spike times within 1e-6 ms of NumPy's, or ten times NumPy's own spread under a one-ulp change
    of ḡ where that is larger (measured: neuron 16 moves by 2e-6 ms under the test run's NumPy, by
    1.4e-4 ms under NumPy's AVX-512 exp, whose own one-ulp spread there is 1.8e-4 ms); among the
    compiled runs, identical to the last bit."""
    stg = cells.get("stg")
    rng = np.random.default_rng(4)
    g = np.repeat(_examples(stg), 5, axis=0) * rng.uniform(0.9, 1.1, (25, 8))
    current = np.zeros(25)
    current[13] = 1e6  # blows up: flagged per neuron, like the NumPy engine
    kw = dict(t_max=600.0, transient=100.0, noise_std=0.5, seed=11, current=current,
              record={"neurons": [2, 13, 24], "interval": 0.5})
    ref = simulate(stg, g, engine="numpy", workers=1, **kw)
    # NumPy's own spread (ms) when ḡ moves by one ulp, same noise: the kernels' exp rounds otherwise.
    own = np.max([_shift(simulate(stg, np.nextafter(g, to), engine="numpy", workers=1, **kw).spike_times,
                         ref.spike_times) for to in (np.inf, 0.0)], axis=0)
    assert np.isfinite(own[ref.ok]).all()  # same counts: the comparison below is of times
    runs = [simulate(stg, g, engine="numba", workers=w, chunk_size=c, **kw) for w, c in ((1, 25), (2, 25), (2, 7))]
    assert runs[1].metadata["workers"] == 2
    assert not ref.ok[13] and ref.ok.sum() == 24
    for res in runs:
        np.testing.assert_array_equal(res.ok, ref.ok)
        shift = _shift(res.spike_times, ref.spike_times)
        assert (shift[ref.ok] <= np.maximum(SPIKE_TOL, 10.0 * own[ref.ok])).all(), (shift, own)
        for a, b in zip(res.spike_times, runs[0].spike_times, strict=True):
            np.testing.assert_array_equal(a, b)  # threads and chunks change nothing, bit for bit
        np.testing.assert_array_equal(res.traces["V"], runs[0].traces["V"])
    other = simulate(stg, g, engine="numba", **{**kw, "seed": 12})
    assert any(len(a) != len(b) or np.any(a != b) for a, b in zip(other.spike_times, ref.spike_times, strict=True))


@pytest.mark.parametrize("std", [0.7, "per-neuron"])
@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_noise_filter_is_scipys_bit_for_bit(std, threads):
    """The compiled engine's noise (white draws filtered in compiled code) equals _Noise.block, which
    filters with scipy.signal.sosfilt: same values to the last bit, for a chunk that straddles the
    noise groups, whatever the block lengths; and the filter state carries over between blocks."""
    from condspace._results import NOISE_GROUP, _Noise

    start, n = NOISE_GROUP - 40, 300  # neurons 216..515: three groups, neither border aligned
    sigma = 0.7 if std == 0.7 else np.linspace(0.1, 2.0, n)
    src = _numba.kernel_source(cells.get("stg"), 0.05, "table")
    reference, compiled = _Noise(sigma, 0.05, 9, start, n), _Noise(sigma, 0.05, 9, start, n)
    blocks = _numba._NoiseBlocks(src, threads, compiled, n + 3)
    for steps in (700, 700, 129):
        want = reference.block(steps).T
        got = blocks.next(steps)
        np.testing.assert_array_equal(got[:n], want)
        assert not got[n:].any()  # the padding rows of the chunk get no current
        assert np.std(want) > 0


@pytest.mark.parametrize("method", ["table", "exact"])
def test_tiles_and_interleaving_change_nothing(monkeypatch, method):
    """The table kernels step _numba.GROUP_SIZE neurons as the SIMD lanes of one tile, the exact
    kernels interleave that many per loop iteration (a chunk padded with copies of its last neuron):
    results are bit-identical for 1, 3, 8 and 16 at once, an odd population and per-neuron noise
    included."""
    stg = cells.get("stg")
    g = np.repeat(_examples(stg), 3, axis=0)[:7] * np.random.default_rng(2).uniform(0.9, 1.1, (7, 8))
    kw = dict(t_max=400.0 if method == "table" else 100.0, transient=50.0, noise_std=np.linspace(0.0, 2.0, 7),
              seed=5, engine="numba", workers=1, method=method, record={"neurons": [0, 6], "interval": 0.5})
    runs = {}
    sizes = (1, 3, 8, 16) if method == "table" else (1, 2, 3)
    for size in sizes:
        monkeypatch.setattr(_numba, "GROUP_SIZE", size)
        runs[size] = simulate(stg, g, **kw)
    assert sum(len(s) for s in runs[1].spike_times) > (20 if method == "table" else 3)
    for size in sizes[1:]:
        for a, b in zip(runs[size].spike_times, runs[1].spike_times, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(runs[size].traces["V"], runs[1].traces["V"])
        np.testing.assert_array_equal(runs[size].ok, runs[1].ok)


def test_kernel_exp_is_within_an_ulp_and_a_fifth():
    """The table kernels' vectorisable exp (cs_exp of the generated module) against exp in 80-bit long
    double: within 1.2 ulp over the whole range the kernels use and beyond; exact at 0; NaN stays NaN;
    and, compiled into a loop over an array, the very values of the scalar function (lanes round alike)."""
    import numba

    mod = _numba._module(_numba.kernel_source(cells.get("stg"), 0.05, "table").source)
    cs_exp = mod.cs_exp

    @numba.njit
    def over(x, out):
        for i in range(x.size):
            out[i] = cs_exp(x[i])

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-1.0, 1.0, 200_000), rng.uniform(-60.0, 0.0, 200_000),
                        rng.uniform(-708.0, 709.0, 200_000), np.linspace(-0.36, 0.36, 10_001)])
    got = np.empty_like(x)
    over(x, got)
    exact = np.exp(x.astype(np.longdouble))
    ulp = np.abs((got.astype(np.longdouble) - exact) / np.spacing(np.exp(x)).astype(np.longdouble)).astype(float)
    assert ulp.max() <= 1.2, (ulp.max(), x[np.argmax(ulp)])
    assert 0.05 < np.mean(got != np.exp(x)) < 0.2  # it is not libm's exp: the equality tests above say why
    assert cs_exp(0.0) == 1.0 and np.isnan(cs_exp(np.nan))
    assert all(cs_exp(x[i]) == got[i] for i in range(0, x.size, 10_007))


def test_per_neuron_noise_matches_scalar_runs_on_threads_and_chunks():
    """Per-neuron σ in the compiled engine: neuron i equals a scalar-σ_i run, σ_i = 0 the noiseless run,
    whatever the threads and chunks."""
    stg = cells.get("stg")
    g = np.repeat(_examples(stg), 2, axis=0)[:8]
    sigma = np.array([0.0, 2.0, 8.0, 0.0, 0.3, 5.0, 1.0, 0.0])
    kw = dict(t_max=600.0, transient=100.0, seed=21, engine="numba")
    runs = [simulate(stg, g, noise_std=sigma, workers=w, chunk_size=c, **kw) for w, c in ((1, 8), (2, 3))]
    clean = simulate(stg, g, **kw)
    for i, s in enumerate(sigma):
        scalar = simulate(stg, g, noise_std=float(s), **kw)
        for res in runs:
            np.testing.assert_array_equal(res.spike_times[i], scalar.spike_times[i])
        if s == 0:
            np.testing.assert_array_equal(runs[0].spike_times[i], clean.spike_times[i])


def test_engine_selection_and_fallback(monkeypatch):
    g = _examples(cells.get("stg"))[:1]
    kw = {"t_max": 20.0, "transient": 0.0}
    assert simulate("stg", g, **kw).metadata["engine"] == "numba"  # the default where Numba is importable
    assert simulate("stg", g, dtype="float32", **kw).metadata["engine"] == "numpy"  # compiled is float64 only
    with pytest.raises(ValueError, match="engine must be one of"):
        simulate("stg", g, engine="fast", **kw)
    with pytest.raises(ValueError, match="dtype='float64' or engine='numpy'"):
        simulate("stg", g, engine="numba", dtype="float32", **kw)
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        simulate("stg", g, engine="numba", workers=0, **kw)
    monkeypatch.setattr(_numba, "available", lambda: False)  # as without Numba installed
    assert simulate("stg", g, **kw).metadata["engine"] == "numpy"
    with pytest.raises(ImportError, match="needs Numba"):
        simulate("stg", g, engine="numba", **kw)


def test_compilation_is_cached_on_disk(tmp_path):
    """A second process loads the compiled kernel from the disk cache instead of compiling it."""
    script = textwrap.dedent("""
        from condspace import _numba, cells, simulate
        simulate("stg", [cells.get("stg").example("bursting")], t_max=5.0, transient=0.0, engine="numba", workers=1)
        fn = _numba.kernel(_numba.kernel_source(cells.get("stg"), 0.05, "table"), 1)
        print(sum(fn.stats.cache_hits.values()), sum(fn.stats.cache_misses.values()))
    """)
    env = {**os.environ, "CONDSPACE_CACHE": str(tmp_path), "PYTHONPATH": str(Path(_numba.__file__).parents[1])}
    out = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600,
                          check=True).stdout.split() for _ in range(2)]
    assert out[0] == ["0", "1"], out  # compiled in the first process ...
    assert out[1] == ["1", "0"], out  # ... loaded from the cache in the second
    assert len(list((tmp_path / "numba").glob("kernel_*.py"))) == 1


def test_python_dialect_of_the_tracer_evaluates_to_the_numpy_rates():
    """Every rate function of both cells, traced in the Python dialect, evaluates (with the names the
    generated module binds) to what the declaration computes with NumPy."""
    import math

    from condspace._codegen import trace
    from condspace.kinetics import gate_slots

    ns = {name: getattr(math, name) for name in ("exp", "expm1", "fabs", "log", "log1p", "pow", "sqrt", "tanh")}
    ns.update(cs_clip=lambda x, lo, hi: lo if x < lo else (hi if x > hi else x),
              cs_min=lambda a, b: a if (a != a or a < b) else b, cs_max=lambda a, b: a if (a != a or a > b) else b)
    voltages = np.linspace(-120.0, 60.0, 37)
    checked = 0
    for name in ("stg", "da"):
        cell = cells.get(name)
        for slot in gate_slots(cell):
            gate = slot.gate
            if slot.kind == "scheme":
                fns = [(t.rate, ("v",)) for t in gate.transitions]
            else:
                fns = [(gate.inf, ("v", "ca") if slot.kind == "calcium" else ("v",))]
                fns += [(gate.tau, ("v",))] if slot.kind != "instant" else []
            for fn, args in fns:
                expr = trace(fn, *args, dialect="python")
                assert "?" not in expr
                for V in voltages:
                    env = {**ns, "v": float(V), "ca": 0.7}
                    got = eval(expr, {"__builtins__": {}}, env)  # noqa: S307  (our own generated expression)
                    want = fn(np, np.float64(V), np.float64(0.7)) if len(args) == 2 else fn(np, np.float64(V))
                    assert got == pytest.approx(float(want), rel=1e-14, abs=1e-300), (name, expr, V)
                checked += 1
    assert checked > 25
