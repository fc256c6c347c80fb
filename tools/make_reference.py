"""Regenerate tests/reference/scipy_spikes.npz: SciPy LSODA spike times of every published set.

Usage: .venv/bin/python tools/make_reference.py [cell ...]   (about 10 minutes on 2 cores)

Each published example set of every registered cell type is integrated per neuron with
``scipy.integrate.solve_ivp`` (LSODA, rtol 1e-8, atol 1e-10) over the cell's literature
protocol (STG 6 s, DA 12 s, first 3 s discarded), spikes located by the event finder.
"""

import os
import sys
import tempfile
import time

import numpy as np
import scipy

from condspace import __version__, cells
from condspace.reference import simulate_scipy

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "reference", "scipy_spikes.npz")


def main() -> None:
    only = sys.argv[1:]  # optional cell names: regenerate only those, keep the other entries
    arrays = {}
    if only and os.path.exists(OUT):
        with np.load(OUT) as old:
            arrays = {k: old[k] for k in old.files if k.split("/")[0] not in only}
    for name in only or cells.available():
        cell = cells.get(name)
        for label, g in cell.examples.items():
            t0 = time.time()
            vec = [g[k] for k in cell.conductance_names]
            s = simulate_scipy(cell, vec, t_max=cell.protocol["t_max"], transient=cell.protocol["transient"],
                               method="LSODA", rtol=1e-8, atol=1e-10)
            arrays[f"{name}/{label}"] = s
            print(f"{name:4s} {label:16s} {len(s):4d} spikes  {time.time() - t0:6.1f} s", flush=True)
    arrays["_provenance"] = np.array(
        f"solve_ivp LSODA rtol=1e-8 atol=1e-10; condspace {__version__}; scipy {scipy.__version__}; "
        f"numpy {np.__version__}; python {sys.version.split()[0]}")
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(OUT), suffix=".npz")
    os.close(fd)
    np.savez(tmp, **arrays)
    os.replace(tmp, OUT)
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
