"""The generated matrix exponential of the ``exact`` Numba kernels (a kinetic scheme's propagator).

Python (Numba) source of ``cs_expm<n>``, the routine the C/CUDA kernel gets from
:func:`condspace._codegen.c_source._expm_c`, line for line: scaling and squaring with a Padé
approximant of the degree the norm calls for, then a solve by Gaussian elimination with partial
pivoting. Generated per scheme size ``n`` by :func:`condspace._codegen.numba_source.generate_numba`.
"""

from __future__ import annotations

from condspace._codegen.c_source import _THETA, _chain, _pade, _pade13_parts
from condspace._codegen.trace import literal


def _expm_py(n: int) -> str:
    """Python (Numba) source of ``cs_expm<n>(A, work)``: the routine of :func:`_expm_c`, line for line.

    ``A`` (n·n, row-major) is overwritten; ``work`` is an (8, ≥ n·n) scratch array; the result
    is returned as a view of ``work[7]``.
    """
    nn = n * n
    th = {m: literal(v) for m, v in _THETA.items()}

    def eye(e: str) -> str:
        return f"(1.0 if ({e} % {n + 1}) == 0 else 0.0)"

    def part(m: int, powers: tuple[str, ...], odd: bool) -> str:
        b = _pade(m)
        terms = [f"({b[2 * k + odd]} * {p}[e])" for k, p in reversed(list(enumerate(powers, start=1)))]
        terms.append(f"({b[int(odd)]} * {eye('e')})")
        return _chain(terms, "+", "0.0")

    def both(m: int, powers: tuple[str, ...], pad: str) -> str:
        return (f"{pad}for e in range({nn}):\n{pad}    T[e] = {part(m, powers, True)}\n"
                f"{pad}    Vv[e] = {part(m, powers, False)}")

    hi_odd, hi_even, lo_odd, lo_even = _pade13_parts(eye("e"))
    return f'''

@numba.njit(cache=True, inline="always")
def cs_matmul{n}(X, Y, Z):
    for i in range({n}):
        for j in range({n}):
            acc = 0.0
            for k in range({n}):
                acc += X[i * {n} + k] * Y[k * {n} + j]
            Z[i * {n} + j] = acc


@numba.njit(cache=True, error_model="numpy")
def cs_expm{n}(A, work):
    A2, A4, A6, U, Vv, T, W, E = work[0], work[1], work[2], work[3], work[4], work[5], work[6], work[7]
    nrm = 0.0  # 1-norm
    for j in range({n}):
        c = 0.0
        for i in range({n}):
            c += fabs(A[i * {n} + j])
        if c > nrm:
            nrm = c
    if not (nrm <= 1e300):
        for e in range({nn}):
            E[e] = nrm - nrm
        return E
    s = 0
    if nrm > {th[13]}:
        s = int(math.ceil(math.log2(nrm / {th[13]})))
        sc = math.ldexp(1.0, -s)
        for e in range({nn}):
            A[e] = A[e] * sc
    cs_matmul{n}(A, A, A2)
    if nrm <= {th[3]}:
{both(3, ("A2",), " " * 8)}
    else:
        cs_matmul{n}(A2, A2, A4)
        if nrm <= {th[5]}:
{both(5, ("A2", "A4"), " " * 12)}
        else:
            cs_matmul{n}(A4, A2, A6)
            if nrm <= {th[7]}:
{both(7, ("A2", "A4", "A6"), " " * 16)}
            elif nrm <= {th[9]}:
                cs_matmul{n}(A4, A4, W)  # A^8
{both(9, ("A2", "A4", "A6", "W"), " " * 16)}
            else:
                for e in range({nn}):
                    U[e] = {hi_odd}
                    W[e] = {hi_even}
                cs_matmul{n}(A6, U, T)
                cs_matmul{n}(A6, W, Vv)
                for e in range({nn}):
                    T[e] = (T[e] + {lo_odd})
                    Vv[e] = (Vv[e] + {lo_even})
    cs_matmul{n}(A, T, U)  # U: odd part, Vv: even part
    for e in range({nn}):
        A2[e] = Vv[e] - U[e]
        E[e] = Vv[e] + U[e]
    # Solve (Vv - U) E = (Vv + U): Gaussian elimination with partial pivoting.
    for c in range({n}):
        p = c
        best = fabs(A2[c * {n} + c])
        for r in range(c + 1, {n}):
            if fabs(A2[r * {n} + c]) > best:
                best = fabs(A2[r * {n} + c])
                p = r
        if p != c:
            for k in range({n}):
                t = A2[c * {n} + k]
                A2[c * {n} + k] = A2[p * {n} + k]
                A2[p * {n} + k] = t
                t = E[c * {n} + k]
                E[c * {n} + k] = E[p * {n} + k]
                E[p * {n} + k] = t
        for r in range(c + 1, {n}):
            fct = A2[r * {n} + c] / A2[c * {n} + c]
            for k in range(c, {n}):
                A2[r * {n} + k] -= fct * A2[c * {n} + k]
            for k in range({n}):
                E[r * {n} + k] -= fct * E[c * {n} + k]
    for c in range({n} - 1, -1, -1):
        for k in range({n}):
            acc = E[c * {n} + k]
            for r in range(c + 1, {n}):
                acc -= A2[c * {n} + r] * E[r * {n} + k]
            E[c * {n} + k] = acc / A2[c * {n} + c]
    for q in range(s):  # undo the scaling: square s times
        cs_matmul{n}(E, E, T)
        for e in range({nn}):
            E[e] = T[e]
    return E
'''
