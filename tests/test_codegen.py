"""The generated C/CUDA kernel (condspace._codegen) and its launcher (condspace._cuda), on the CPU.

The GPU path must compute what the NumPy engine computes. Its arithmetic is one generated source;
here it is compiled twice with the machine's compilers and run through the real launcher:

* ``"c"``: the plain-C branch (gcc, ``-ffp-contract=off``), a loop over the neurons;
* ``"cuda"``: the ``__global__`` kernel body itself (g++, with the few CUDA names it uses
  defined for the CPU: thread indices, ``atomicAdd``), each launch emulated block by block.

A small stand-in for CuPy (:class:`FakeCupy`: NumPy arrays, ``RawModule`` compiling with gcc/g++,
kernels called through ctypes with their argument types checked against the kernel signature)
lets ``condspace.simulate(..., backend=<cupy backend>)`` run end to end. Results are compared with
``simulate(..., method="exact", backend="numpy")``: same spike counts, spike times within 1e-6 ms,
final voltages within 1e-9 mV. The two do not agree to the last bit (NumPy's ``exp`` and BLAS
``E @ g`` round differently from libm's ``exp`` and a sequential sum, by one ulp now and then),
so these tolerances test that nothing but rounding separates the two paths.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import multiprocessing
import os
import pathlib
import shutil
import subprocess
import types
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from condspace import _cuda as cuda_mod
from condspace import cells, simulate
from condspace._codegen import KERNEL_NAME, KERNEL_PARAMS, SYMXP, Sym, generate, literal, trace
from condspace._codegen.step import rate_columns, trace_step
from condspace._engine import Engine
from condspace.backend import Backend
from condspace.channels import EXP_CAP, linear_over_expm1, safe_exp, sigmoid
from condspace.kinetics import gate_slots

CC = shutil.which("gcc") or shutil.which("cc")
CXX = shutil.which("g++") or shutil.which("c++")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (gcc/cc) on PATH: the generated C cannot be built")
needs_cxx = pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++/c++) on PATH: the CUDA branch cannot be "
                                                   "emulated")

T_MAX, TRANSIENT = 1500.0, 500.0  # ms: a short protocol (the full ones run in tests/test_gpu.py)
DT = 0.05  # ms, for both cells here (DA's protocol step, 0.025 ms, is used on the GPU): halves the NumPy time
# Neurons drawn from each cell's box. Fewer for DA: its exact NumPy reference calls SciPy's expm
# for every neuron at every step (three runs of 30,000 steps), which made this module's fixture
# the slowest setup of `make test`; tests/test_gpu.py compares far larger DA populations on a device.
N_RANDOM = {"stg": 48, "da": 24}


# ----- the symbolic tracer -----------------------------------------------------------------------
def _eval_c(expr: str, V: np.ndarray, ca: np.ndarray | None = None) -> np.ndarray:
    """Evaluate a traced expression (no ?: inside) with NumPy, by the names the C code calls."""
    ns = {"exp": np.exp, "cs_clip": np.clip, "fabs": np.abs, "v": V, "ca": ca}
    return eval(expr, {"__builtins__": {}}, ns)  # noqa: S307  (our own generated expression)


def test_trace_sigmoid_evaluates_back_to_the_numpy_value():
    fn = lambda xp, V: 1.32 - 1.26 * sigmoid(xp, V, 120.0, -25.0)  # τ of STG Na m (Liu et al. 1998)
    expr = trace(fn, "v")
    assert "exp(cs_clip(" in expr and "-500.0" in expr  # safe_exp clips the exponent at ±EXP_CAP
    V = np.linspace(-200.0, 150.0, 2001)
    np.testing.assert_array_equal(_eval_c(expr, V), fn(np, V))  # same operations in the same order


def test_trace_calcium_gate_and_clip():
    stg = cells.get("stg")
    kca = stg.channel("KCa").gates[0]
    expr = trace(kca.inf, "v", "ca")
    V, ca = np.meshgrid(np.linspace(-100, 60, 81), np.geomspace(1e-3, 1e3, 31))
    np.testing.assert_array_equal(_eval_c(expr, V, ca), kca.inf(np, V, ca))
    steep = trace(lambda xp, V: safe_exp(xp, 10.0 * V), "v")  # exponents beyond ±EXP_CAP are clipped
    np.testing.assert_array_equal(_eval_c(steep, np.array([-100.0, 0.0, 100.0])),
                                  [np.exp(-EXP_CAP), 1.0, np.exp(EXP_CAP)])


def test_trace_keeps_operand_order_and_literals():
    v = Sym("v")
    assert (2.0 - v).code == "(2.0 - v)"
    assert (v / 4).code == "(v / 4.0)"
    assert (-v).code == "(-v)"
    assert (v ** 2).code == "(v * v)"
    assert (v ** 3).code == "pow(v, 3.0)"
    assert (np.float64(0.5) * v).code == "(0.5 * v)"  # NumPy scalars defer to Sym
    assert literal(-1e-05) == "(-1e-05)" and literal(3) == "3.0"
    assert float(literal(0.1)) == 0.1 and float(literal(1 / 3)) == 1 / 3  # repr round-trips
    assert SYMXP.exp(0.5) == np.exp(0.5) and isinstance(SYMXP.exp(0.5), float)  # numbers stay numbers
    assert SYMXP.where(v < 1.0, 0.0, v).code == "((v < 1.0) ? 0.0 : v)"
    assert SYMXP.iscomplexobj(v) is False


def test_trace_rejects_what_it_cannot_compile():
    with pytest.raises(TypeError, match="branch-free"):
        trace(lambda xp, V: 1.0 if V > 0 else 0.0, "v")
    with pytest.raises(AttributeError, match="not supported by the C code generator"):
        trace(lambda xp, V: xp.arctan(V), "v")
    with pytest.raises(ValueError, match="non-finite"):
        literal(float("inf"))
    with pytest.raises(ValueError, match="dtype"):
        generate(cells.get("stg"), 0.05, "float16")
    with pytest.raises(ValueError, match="dt"):
        generate(cells.get("stg"), 0.0)


def test_generated_source_covers_every_declared_gate():
    for name in ("stg", "da"):
        cell = cells.get(name)
        src = generate(cell, 0.05)
        for slot in gate_slots(cell):
            assert f"/* {cell.channels[slot.channel].name}.{slot.gate.name}:" in src.source
        eng = Engine(cell, 0.05, np, np.float64, "exact")
        assert src.n_x == eng.n_x and src.n_p == eng.scheme_offsets[-1]
        assert f'CS_GLOBAL void {KERNEL_NAME}(' in src.source  # the CUDA kernel ...
        assert "for (long long i = 0; i < n; ++i)" in src.source  # ... and the C loop, one source
        assert "dt = 0.05 ms" in src.source and "exp(((-0.05) /" in src.source


# ----- compiling the generated source on the CPU ---------------------------------------------------
_CTYPE = {"int": ctypes.c_int, "long long": ctypes.c_longlong, "unsigned long long": ctypes.c_ulonglong,
          "double": ctypes.c_double}
_NPSCALAR = {"int": np.int32, "long long": np.int64, "unsigned long long": np.uint64, "double": np.float64}
_NPPOINTER = {"int*": np.int32, "long long*": np.int64, "unsigned long long*": np.uint64, "double*": np.float64}

_CUDA_SHIM = r"""
#define __device__
#define __forceinline__ inline
#define __global__
struct cs_uint3 { unsigned int x, y, z; };
static cs_uint3 blockIdx, blockDim, threadIdx;
static unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) {
  unsigned long long o = *a; *a += v; return o;
}
"""


def _compile(source: str, mode: str, workdir) -> ctypes.CDLL:
    """Build the generated source as plain C (``mode="c"``) or as the emulated CUDA kernel (``"cuda"``).

    Each source gets its own library file: overwriting a library that is loaded crashes the process.
    """
    workdir = workdir / f"{mode}_{hashlib.sha1(source.encode()).hexdigest()[:16]}"
    lib = workdir / "kernel.so"
    if lib.exists():
        return ctypes.CDLL(str(lib))
    workdir.mkdir(parents=True, exist_ok=True)
    if mode == "c":
        path = workdir / "kernel.c"
        path.write_text(source)
        cmd = [CC, "-std=c11", "-O2", "-ffp-contract=off", "-shared", "-fPIC", str(path), "-o", str(lib), "-lm"]
    else:
        params = ", ".join(f"{t} {nm}" for t, nm in KERNEL_PARAMS)
        args = ", ".join(nm for _, nm in KERNEL_PARAMS)
        driver = (f'\nextern "C" void cs_emulate(unsigned int grid, unsigned int block, {params}) {{\n'
                  "  blockDim.x = block; blockDim.y = blockDim.z = 1;\n"
                  "  for (unsigned int b = 0; b < grid; ++b) { blockIdx.x = b;\n"
                  "    for (unsigned int t = 0; t < block; ++t) {\n"
                  f"      threadIdx.x = t; {KERNEL_NAME}({args}); }} }}\n}}\n")
        path = workdir / "kernel.cu.cpp"
        path.write_text(_CUDA_SHIM + "#define __CUDACC__ 1\n" + source + driver)
        cmd = [CXX, "-std=c++14", "-O2", "-ffp-contract=off", "-shared", "-fPIC", str(path), "-o", str(lib)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"compiling the generated {mode} source failed:\n{done.stderr[-4000:]}")
    return ctypes.CDLL(str(lib))


class FakeKernel:
    """A compiled kernel called like ``cupy.RawKernel``: ``kernel(grid, block, args)``.

    Checks every argument against :data:`KERNEL_PARAMS` (NumPy scalar of the exact C type, array
    of the exact element type, C-contiguous), as a real launch silently would not.
    """

    def __init__(self, lib: ctypes.CDLL, mode: str, real: type) -> None:
        self.mode, self.real, self.calls = mode, real, 0
        self.fn = lib.cs_emulate if mode == "cuda" else getattr(lib, KERNEL_NAME)
        types_ = [ctypes.c_void_p if t.endswith("*") else _CTYPE[t] for t, _ in KERNEL_PARAMS]
        self.fn.argtypes = ([ctypes.c_uint, ctypes.c_uint] if mode == "cuda" else []) + types_
        self.fn.restype = None

    def __call__(self, grid: tuple, block: tuple, args: tuple) -> None:
        assert len(args) == len(KERNEL_PARAMS)
        conv = []
        for (ctype, name), a in zip(KERNEL_PARAMS, args, strict=True):
            base = ctype.replace("const ", "")
            if base.endswith("*"):
                want = self.real if base == "real*" else _NPPOINTER[base]
                assert isinstance(a, np.ndarray) and a.dtype == want, f"{name}: {type(a)} {getattr(a, 'dtype', '')}"
                assert a.flags.c_contiguous, f"{name} is not contiguous"
                conv.append(a.ctypes.data)
            else:
                assert type(a) is _NPSCALAR[base], f"{name}: expected {_NPSCALAR[base].__name__}, got {type(a)}"
                conv.append(a.item())
        self.calls += 1
        if self.mode == "cuda":
            n = int(args[0])
            assert grid[0] * block[0] >= n and (grid[0] - 1) * block[0] < n, "launch does not cover the chunk tightly"
            self.fn(grid[0], block[0], *conv)
        else:
            self.fn(*conv)


class FakeCupy(types.ModuleType):
    """The part of the CuPy API that condspace._cuda uses, on NumPy arrays and the host compilers."""

    def __init__(self, mode: str, workdir, real: type = np.float64) -> None:
        super().__init__(f"fake_cupy_{mode}")
        self.mode, self.workdir, self.real = mode, workdir, real
        self.kernels: list[FakeKernel] = []
        self.options: list[tuple] = []
        self.sources: list[str] = []

    @staticmethod
    def asarray(a, dtype=None):
        return np.array(a, dtype=dtype, copy=True)  # a host→device copy never aliases

    @staticmethod
    def asnumpy(a):
        return np.array(a, copy=True)

    zeros = staticmethod(np.zeros)
    empty = staticmethod(np.empty)
    ones = staticmethod(np.ones)
    full = staticmethod(np.full)

    def RawModule(self, code: str, options: tuple = ()):  # noqa: N802  (CuPy's name)
        fake = self
        fake.options.append(tuple(options))
        fake.sources.append(code)
        lib = _compile(code, self.mode, self.workdir)

        class _Module:
            def get_function(self, name: str) -> FakeKernel:
                assert name == KERNEL_NAME
                k = FakeKernel(lib, fake.mode, fake.real)
                fake.kernels.append(k)
                return k

        return _Module()


# ----- the launcher on the CPU against the NumPy engine --------------------------------------------
def _box_population(cell, n: int, seed: int) -> np.ndarray:
    lo = np.array([cell.box[k][0] if k in cell.box else cell.fixed[k] for k in cell.conductance_names])
    hi = np.array([cell.box[k][1] if k in cell.box else cell.fixed[k] for k in cell.conductance_names])
    lo[-1] = max(lo[-1], 0.005)  # a leak that sets a rest
    return lo + (hi - lo) * np.random.default_rng(seed).random((n, len(lo)))


def _population(name: str) -> np.ndarray:
    """The published example sets of the cell, then N_RANDOM[name] sets drawn from its box."""
    cell = cells.get(name)
    ex = np.array([[cell.example(k)[g] for g in cell.conductance_names] for k in cell.examples])
    return np.vstack([ex, _box_population(cell, N_RANDOM.get(name, 48), seed=7)])


def _fake_backend(mode: str, tmp_path, real=np.float64) -> tuple[Backend, FakeCupy]:
    fake = FakeCupy(mode, tmp_path, real)
    cuda_mod._KERNELS.clear()
    return Backend("cupy", fake, real, f"CPU stand-in ({mode})"), fake


def _max_shift(a, b) -> np.ndarray:
    """Per neuron: the largest spike-time difference (ms); inf where the spike counts differ."""
    return np.array([np.inf if len(x) != len(y) else (np.max(np.abs(x - y)) if len(x) else 0.0)
                     for x, y in zip(a.spike_times, b.spike_times, strict=True)])


ROBUST = 1e-8  # ms: NumPy's own spike times move less than this when g moves by one ulp
# A relative nudge of g. The C kernel calls libm's exp where NumPy uses its own (SIMD) exp; the
# one-ulp differences, over 30,000 steps, act like a perturbation of this order: with NumPy 2.4 one
# STG neuron of the test population slips phase in the transient (6 ms, one spike more in the
# window) for the C kernel and for NumPy under this nudge, but not under a one-ulp nudge of g.
REL_NUDGE = 1e-14
SPIKE_TOL = 1e-6  # ms


def _assert_matches_numpy(res, ref, pert, min_robust: float) -> None:
    """Kernel ``res`` against NumPy ``ref``; ``pert`` is NumPy with every conductance one ulp larger.

    ``pert`` may also be a tuple of such perturbed runs (one ulp up, and ×(1 + REL_NUDGE)). Spike
    counts must be identical wherever NumPy's own count survives every perturbation (at least 90 %
    of the neurons), and spike times must agree within SPIKE_TOL wherever NumPy itself is robust
    to rounding (every ``pert`` within ROBUST of ``ref``); where NumPy's own count or times move,
    the dynamics amplify rounding (chaotic bursting, or a phase slip in the transient) and no
    second implementation that rounds one exp differently can agree pointwise.
    """
    perts = pert if isinstance(pert, tuple) else (pert,)
    np.testing.assert_array_equal(res.ok, ref.ok)
    count_stable = np.logical_and.reduce([p.n_spikes == ref.n_spikes for p in perts])
    assert count_stable.mean() >= 0.9, f"only {count_stable.sum()} of {len(ref.n_spikes)} counts survive the nudges"
    np.testing.assert_array_equal(res.n_spikes[count_stable], ref.n_spikes[count_stable])
    floor = np.max([_max_shift(p, ref) for p in perts], axis=0)
    robust = floor < ROBUST
    assert robust.mean() >= min_robust, f"only {robust.sum()} of {len(robust)} neurons are rounding-robust"
    shift = _max_shift(res, ref)
    bad = np.flatnonzero(robust & (shift > SPIKE_TOL))
    assert bad.size == 0, (f"neurons {bad.tolist()}: spike times differ by {shift[bad].tolist()} ms "
                           f"(NumPy's own one-ulp sensitivity {floor[bad].tolist()} ms)")


def _numpy_runs(jobs: dict) -> dict:
    """``simulate(*args, backend="numpy", engine="numpy", **kwargs)`` for each ``key: (args, kwargs)``,
    in worker processes.

    One BLAS thread per worker: OpenBLAS threads (the engine's ``E @ g``, SciPy's expm) that
    compete with other processes slow the NumPy engine down by an order of magnitude on a
    loaded machine. Spawned, not forked, so no state of this process is inherited.
    """
    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    with pytest.MonkeyPatch.context() as env, ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setenv(var, "1")
        futures = {key: pool.submit(simulate, *args, backend="numpy", engine="numpy", **kwargs)
                   for key, (args, kwargs) in jobs.items()}
        return {key: fut.result() for key, fut in futures.items()}


RECORD = {"neurons": [0, 2, 2], "interval": 0.1}  # a repeated neuron on purpose


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Per cell: NumPy exact, NumPy with g one ulp up, and the plain-C kernel through the launcher."""
    out = {}
    kw = dict(t_max=T_MAX, transient=TRANSIENT, dt=DT, method="exact", record=RECORD)
    jobs = {}
    for name in ("stg", "da"):
        g = _population(name)
        jobs[name, "ref"] = ((name, g), kw)
        jobs[name, "pert"] = ((name, np.nextafter(g, np.inf)), kw)
        jobs[name, "pert_rel"] = ((name, g * (1.0 + REL_NUDGE)), kw)
    numpy_runs = _numpy_runs(jobs)
    for name in ("stg", "da"):
        g = _population(name)
        ref, pert = numpy_runs[name, "ref"], (numpy_runs[name, "pert"], numpy_runs[name, "pert_rel"])
        c = None
        if CC is not None:
            c = simulate(name, g, backend=_fake_backend("c", tmp_path_factory.mktemp("c"))[0], **kw)
        out[name] = {"g": g, "ref": ref, "pert": pert, "c": c, "kw": kw}
    return out


@needs_cc
@pytest.mark.parametrize("name", ["stg", "da"])
def test_kernel_matches_numpy_engine(runs, name):
    r = runs[name]
    ref, res = r["ref"], r["c"]
    n_examples = len(cells.get(name).examples)
    assert ref.ok.all() and (ref.n_spikes[:n_examples] > 0).all() and len(np.unique(ref.n_spikes)) > 5
    _assert_matches_numpy(res, ref, r["pert"], min_robust=0.6)
    np.testing.assert_array_equal(res.traces["t"], ref.traces["t"])
    np.testing.assert_array_equal(res.traces["neurons"], ref.traces["neurons"])
    np.testing.assert_array_equal(res.traces["V"][:, 0], ref.traces["V"][:, 0])
    early = ref.traces["t"] <= 100.0  # the first 100 ms, before rounding differences can grow
    np.testing.assert_allclose(res.traces["V"][:, early], ref.traces["V"][:, early], rtol=0, atol=1e-9)
    assert res.metadata["backend"] == "cupy" and res.metadata["method"] == "exact"
    assert res.metadata["duration"] == ref.metadata["duration"] == T_MAX - TRANSIENT


@needs_cxx
@pytest.mark.parametrize("name", ["stg", "da"])
def test_cuda_branch_equals_c_branch(runs, tmp_path, monkeypatch, name):
    """The __global__ kernel (emulated thread by thread), in chunks of 20 and launches of 7000 steps,
    gives bit for bit what the C loop gave in one chunk and launches of 10000 steps."""
    r = runs[name]
    if r["c"] is None:
        pytest.skip("no C compiler for the reference C-branch run")
    monkeypatch.setattr(cuda_mod, "STEPS_PER_LAUNCH", 7000)
    be, fake = _fake_backend("cuda", tmp_path)
    res = simulate(name, r["g"], backend=be, chunk_size=20, **r["kw"])
    np.testing.assert_array_equal(res.ok, r["c"].ok)
    for a, b in zip(res.spike_times, r["c"].spike_times, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(res.traces["V"], r["c"].traces["V"])
    assert fake.options == [cuda_mod.NVRTC_OPTIONS] and "--fmad=false" in fake.options[0]
    n_chunks, n_launches = -(-len(r["g"]) // 20), -(-int(round(T_MAX / DT)) // 7000)
    assert fake.kernels[0].calls == n_chunks * n_launches


@needs_cxx
@pytest.mark.parametrize("name", ["stg", "da"])
def test_float32_kernel_keeps_the_examples_spike_counts(runs, tmp_path, name):
    """dtype="float32": state stored in float (as on the GPU, through C++ overloads); the published
    examples keep their float64 spike counts within ±1."""
    r = runs[name]
    n_ex = len(cells.get(name).examples)
    be, fake = _fake_backend("cuda", tmp_path, real=np.float32)
    res = simulate(name, r["g"][:n_ex], backend=be, dtype="float32", **r["kw"])
    assert res.ok.all() and res.metadata["dtype"] == "float32" and "typedef float real;" in fake.sources[0]
    assert np.abs(res.n_spikes - r["ref"].n_spikes[:n_ex]).max() <= 1


@needs_cc
def test_spike_pool_overflow_reruns_without_losing_spikes(runs, tmp_path, monkeypatch):
    """A pool far too small forces both remedies (grow; split the stretch): bit for bit the same spikes."""
    r = runs["stg"]
    monkeypatch.setattr(cuda_mod, "SPIKE_POOL_HZ", 0.0)
    monkeypatch.setattr(cuda_mod, "SPIKE_POOL_MIN", 2)
    monkeypatch.setattr(cuda_mod, "MAX_POOL", 150)
    be, fake = _fake_backend("c", tmp_path)
    res = simulate("stg", r["g"], backend=be, **r["kw"])
    for a, b in zip(res.spike_times, r["c"].spike_times, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(res.traces["V"], r["c"].traces["V"])
    assert fake.kernels[0].calls > 30  # reruns happened (3 launches without them)


@needs_cc
def test_noise_path_matches_numpy(tmp_path, monkeypatch):
    """Same seed, same noise streams: chunks (of 3) and noise blocks differ from NumPy's, results do not."""
    stg = cells.get("stg")
    g = _population("stg")[:12]
    kw = dict(t_max=300.0, transient=50.0, noise_std=2.0, seed=11, method="exact", record=[0, 4, 4])
    done = _numpy_runs({"ref": (("stg", g), kw), "pert": (("stg", np.nextafter(g, np.inf)), kw),
                        "quiet": (("stg", g), dict(t_max=300.0, transient=50.0, method="exact"))})
    ref, pert, quiet = done["ref"], done["pert"], done["quiet"]
    assert np.mean(_max_shift(ref, quiet) > 1e-3) > 0.5  # the noise changes the spikes
    monkeypatch.setattr(cuda_mod, "NOISE_BLOCK_BYTES", 8 * 3 * 450)  # 450-step noise blocks
    be, fake = _fake_backend("c", tmp_path)
    res = simulate(stg, g, backend=be, chunk_size=3, **kw)
    _assert_matches_numpy(res, ref, pert, min_robust=0.6)
    np.testing.assert_array_equal(res.traces["neurons"], [0, 4, 4])
    np.testing.assert_array_equal(res.traces["V"][1], res.traces["V"][2])
    early = ref.traces["t"] <= 100.0
    np.testing.assert_allclose(res.traces["V"][:, early], ref.traces["V"][:, early], rtol=0, atol=1e-9)


@needs_cc
def test_blow_up_is_flagged_and_reset_like_numpy(tmp_path):
    """A current that drives V past V_BOUNDS: both paths flag (and reset) the same neuron."""
    stg = cells.get("stg")
    g = [stg.example("tonic spiking")] * 3
    kw = dict(t_max=300.0, transient=0.0, method="exact", current=[0.0, 1e5, 0.0])
    ref = simulate(stg, g, backend="numpy", engine="numpy", **kw)
    assert ref.ok.tolist() == [True, False, True]
    res = simulate(stg, g, backend=_fake_backend("c", tmp_path)[0], **kw)
    np.testing.assert_array_equal(res.ok, ref.ok)
    np.testing.assert_array_equal(res.n_spikes, ref.n_spikes)
    assert res.n_spikes[1] == 0 and res.n_spikes[0] > 0
    np.testing.assert_allclose(res.spike_times[0], ref.spike_times[0], rtol=0, atol=SPIKE_TOL)


def _engine_states(cell, g: np.ndarray, steps: int) -> dict:
    """``steps`` calls of the NumPy Engine.step (exact rates), no noise: the final state."""
    eng = Engine(cell, 0.05, np, np.float64, "exact")
    st = eng.initial(len(g))
    gbar, gl = g[:, :-1].T.copy(), g[:, -1].copy()
    for _ in range(steps):
        eng.step(st, gbar, gl, gl * eng.E_leak)
    return st


def _state_rows(st: dict, n_x: int, n_p: int) -> np.ndarray:
    """(n_vars, N): V, [Ca], gates, scheme occupancies."""
    return np.vstack([st["V"][None], st["ca"][None], st["X"][:n_x], st["P"][:n_p]])


@needs_cc
@pytest.mark.parametrize("name", ["stg", "da"])
def test_final_state_of_one_launch_matches_engine_steps(tmp_path, name):
    """The raw kernel, called once for 2000 steps (100 ms), against Engine.step: every state variable
    within 1e-9 wherever NumPy's own state moves by less than 1e-11 when g moves by one ulp."""
    cell = cells.get(name)
    g = _population(name)[:24]
    n, steps = len(g), 2000
    src = generate(cell, 0.05)
    ref = _state_rows(_engine_states(cell, g, steps), src.n_x, src.n_p)
    pert = _state_rows(_engine_states(cell, np.nextafter(g, np.inf), steps), src.n_x, src.n_p)
    init = Engine(cell, 0.05, np, np.float64, "exact").initial(n)
    st = {"V": init["V"].copy(), "CA": init["ca"].copy(),
          "X": init["X"].copy() if src.n_x else np.zeros((1, n)),
          "P": init["P"].copy() if src.n_p else np.zeros((1, n))}
    gl = g[:, -1].copy()
    args = dict(n=n, n_steps=steps, k0=0, k_total=steps, check_every=200, transient=0.0, gbar=g[:, :-1].T.copy(),
                gleak=gl, drive0=gl * cell.leak_reversal, noise=np.zeros((1, 1)), has_noise=0,
                armed=np.ones(n, np.int32), ok=np.ones(n, np.int32), spk_t=np.empty(10000),
                spk_i=np.empty(10000, np.int64), spk_count=np.zeros(1, np.uint64), spk_cap=10000,
                rec_slot=np.full(1, -1, np.int32), trace=np.zeros(1), trace_len=1, rec_every=1, has_rec=0, **st)
    kern = FakeKernel(_compile(src.source, "c", tmp_path), "c", np.float64)
    kern(None, None, cuda_mod.pack_args(args, np.float64))
    got = np.vstack([st["V"][None], st["CA"][None], st["X"][: src.n_x], st["P"][: src.n_p]])
    robust = (np.abs(pert - ref) < 1e-11).all(axis=0)
    assert robust.mean() >= 0.6, f"only {robust.sum()} of {n} neurons are rounding-robust at 100 ms"
    assert int(args["ok"].sum()) == n and int(args["spk_count"][0]) >= 10  # spikes happened
    np.testing.assert_allclose(got[:, robust], ref[:, robust], rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["stg", "da", "tc"])
def test_kernel_step_is_traced_from_engine_step_bit_for_bit(name):
    """The statements both kernels are built from (trace_step), run with NumPy on the rates of the
    NumPy engine, give Engine.step's new state to the last bit, from states along a real run: the
    model's update is written once (Engine.step), the kernels only copy it."""
    cell = cells.get(name)
    g = _population(name)[:6]
    eng = Engine(cell, 0.05, np, np.float64, "exact")
    # Between the checked steps the run is carried by the table method: its states are as real, and
    # SciPy's expm at every step of the exact method made DA's 3000 steps take two minutes.
    walker = Engine(cell, 0.05, np, np.float64, "table")
    st = eng.initial(len(g))
    gbar, gl = g[:, :-1].T.copy(), g[:, -1].copy()
    drive = gl * eng.E_leak + 0.3  # a nonzero applied current too

    def rates(step):
        out = rate_columns(step)
        for r in range(step.cols.width):
            out[r, 0] = Sym(f"col[{r}]")
        return out

    lines = trace_step(cell, 0.05, "python", rates)
    code = compile("\n".join(lines), f"<traced step of {name}>", "exec")
    checked = 0
    for k in range(3000):
        if k % 500 == 0:  # trace one step from here, then take the same step with the engine
            ns = {"col": eng.rates(st["V"]), "exp": np.exp, "cs_clip": np.clip, "cs_min": np.minimum,
                  "cs_max": np.maximum, "fabs": np.abs, "v": st["V"].copy(), "ca": st["ca"].copy(),
                  "gl": gl, "drive": drive}
            ns.update({f"x{i}": st["X"][i].copy() for i in range(eng.n_x)})
            ns.update({f"p{i}": st["P"][i].copy() for i in range(eng.scheme_offsets[-1])})
            ns.update({f"gb{c}": gbar[c] for c in range(eng.n_channels)})
            exec(code, {"__builtins__": {}}, ns)  # noqa: S102  (our own generated statements)
        (eng if k % 500 == 0 else walker).step(st, gbar, gl, drive)
        if k % 500 == 0:
            assert np.array_equal(ns["v"], st["V"]) and np.array_equal(ns["ca"], st["ca"])
            for i in range(eng.n_x):
                assert np.array_equal(ns[f"x{i}"], st["X"][i]), f"gate row {i} at step {k}"
            for i in range(eng.scheme_offsets[-1]):
                assert np.array_equal(ns[f"p{i}"], st["P"][i]), f"scheme row {i} at step {k}"
            checked += 1
    assert checked == 6 and np.ptp(st["V"]) > 1.0  # the neurons moved apart: real states were compared


def test_generators_hold_no_model_arithmetic_of_their_own():
    """The C and Numba generators take the step from the tracer: no update formula of their own."""
    import condspace._codegen.c_source as c_mod
    import condspace._codegen.numba_source as nb_mod
    for mod in (c_mod, nb_mod):
        text = pathlib.Path(mod.__file__).read_text()
        assert "trace_step(" in text
        for formula in ("- xinf) * dec) + xinf", "(v - vinf)", "ca_inf", "gt = ", "open_conductances"):
            assert formula not in text, f"{mod.__name__} writes {formula!r} itself"


@needs_cc
def test_every_rate_function_compiles_to_its_numpy_value(tmp_path):
    """All traced rate functions, as C, on a voltage grid spanning V_BOUNDS: NumPy's values to rounding."""
    exprs, ref = [], []
    V = np.linspace(-200.0, 150.0, 3501)
    V = np.concatenate([V, np.linspace(-38.75, -38.70, 101)])  # DA Na m: linear_over_expm1's bridged window
    ca = np.geomspace(1e-3, 50.0, len(V))
    for name in ("stg", "da"):
        for slot in gate_slots(cells.get(name)):
            gate = slot.gate
            if slot.kind == "scheme":
                fns = [(t.rate, False) for t in gate.transitions]
            else:
                fns = [(gate.inf, slot.kind == "calcium")] + ([(gate.tau, False)] if gate.tau else [])
            for fn, with_ca in fns:
                exprs.append(trace(fn, "v", "ca") if with_ca else trace(fn, "v"))
                ref.append(fn(np, V, ca) if with_ca else fn(np, V))
    exprs.append(trace(lambda xp, V: linear_over_expm1(xp, V, -15.6504, -0.4043, -19.565, -0.5052), "v"))
    ref.append(linear_over_expm1(np, V, -15.6504, -0.4043, -19.565, -0.5052))
    cases = "\n".join(f"    case {k}: return {e};" for k, e in enumerate(exprs))
    src = generate(cells.get("stg"), 0.05).source.split("/* Advance neuron")[0]  # prelude: typedef, cs_clip
    src += f"double rate(int k, double v, double ca) {{\n  switch (k) {{\n{cases}\n  }}\n  return 0.0;\n}}\n"
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "rates.c").write_text(src)
    subprocess.run([CC, "-std=c11", "-O2", "-ffp-contract=off", "-shared", "-fPIC", str(tmp_path / "r" / "rates.c"),
                    "-o", str(tmp_path / "r" / "rates.so"), "-lm"], check=True)
    lib = ctypes.CDLL(str(tmp_path / "r" / "rates.so"))
    lib.rate.restype = ctypes.c_double
    lib.rate.argtypes = [ctypes.c_int, ctypes.c_double, ctypes.c_double]
    assert len(exprs) >= 20
    for k, want in enumerate(ref):
        got = np.array([lib.rate(k, v, c) for v, c in zip(V, ca, strict=True)])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, err_msg=exprs[k][:200])


@needs_cc
def test_generated_expm_matches_scipy(tmp_path):
    """The kernel's matrix exponential of ERG generators Q(V)·dt (DA cell) against scipy.linalg.expm,
    which the NumPy engine uses: rounding-level agreement over the physiological range, all five
    Padé branches and the scaling and squaring exercised."""
    from scipy.linalg import expm

    from condspace.kinetics import scheme_generator

    src = generate(cells.get("da"), 0.025).source.split("/* Advance neuron")[0]  # prelude + cs_expm3
    src += "void ex(double* A, double* E) { cs_expm3(A, E); }\n"
    (tmp_path / "ex.c").write_text(src)
    subprocess.run([CC, "-std=c11", "-O2", "-ffp-contract=off", "-shared", "-fPIC", str(tmp_path / "ex.c"),
                    "-o", str(tmp_path / "ex.so"), "-lm"], check=True)
    lib = ctypes.CDLL(str(tmp_path / "ex.so"))

    def c_expm(A: np.ndarray) -> np.ndarray:
        A, E = np.array(A, dtype=float, order="C"), np.empty((3, 3))
        lib.ex(ctypes.c_void_p(A.ctypes.data), ctypes.c_void_p(E.ctypes.data))
        return E

    erg = cells.get("da").channel("ERG").gates[0]
    V = np.linspace(-120.0, 60.0, 361)
    for dt in (0.025, 0.05, 1.0):
        Q = scheme_generator(np, erg, V) * dt
        got = np.array([c_expm(q) for q in Q])
        np.testing.assert_allclose(got, expm(Q), rtol=0, atol=5e-14)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=0, atol=1e-13)  # probability is conserved
    norms = []
    rng = np.random.default_rng(3)
    for scale in (1e-3, 0.1, 0.5, 1.5, 4.0, 8.0):
        A = rng.normal(size=(3, 3)) * scale
        norms.append(np.abs(A).sum(axis=0).max())
        want = expm(A)
        np.testing.assert_allclose(c_expm(A), want, rtol=0, atol=1e-12 * max(1.0, np.abs(want).max()))
    assert min(norms) < 0.015 and max(norms) > 5.4  # degree 3 ... degree 13 with squaring
    assert np.isnan(c_expm(np.diag([np.inf, 0.0, 0.0]))).all()  # a blown-up state stays visible


def _nvrtc() -> ctypes.CDLL | None:
    """libnvrtc, if this machine has it (CONDSPACE_NVRTC=path, the nvidia-cuda-nvrtc wheel, or the system)."""
    candidates = [os.environ.get("CONDSPACE_NVRTC")]
    try:
        import nvidia.cuda_nvrtc as pkg  # the wheel CuPy uses

        candidates += sorted(str(p) for p in pathlib.Path(list(pkg.__path__)[0], "lib").glob("libnvrtc.so*"))
    except ImportError:
        pass
    candidates.append(ctypes.util.find_library("nvrtc"))
    for path in filter(None, candidates):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["stg", "da"])
def test_nvrtc_compiles_the_generated_source(name, dtype):
    """NVRTC (CUDA's runtime compiler, what cupy.RawModule calls) builds the kernel for sm_90 with the
    launcher's options and no warnings. Needs only libnvrtc, no GPU; skipped where it is absent."""
    lib = _nvrtc()
    if lib is None:
        pytest.skip("libnvrtc not found (set CONDSPACE_NVRTC=/path/to/libnvrtc.so to run this without a GPU)")
    cell = cells.get(name)
    src = generate(cell, cell.protocol.get("dt", 0.05), dtype).source
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), b"condspace.cu", 0, None, None) == 0
    opts = [*cuda_mod.NVRTC_OPTIONS, "-arch=sm_90"]
    result = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts]))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    text = log.value.decode(errors="replace")
    assert result == 0, f"NVRTC failed ({result}):\n{text[-4000:]}"
    assert "warning" not in text.lower(), text[-4000:]
