"""condspace: degenerate conductance-based neuron populations, their inference from spike
times, dynamic input conductances (DICs) and neuromodulation.

The package follows the data flow of the book: cell declarations (:mod:`condspace.cells`) →
:func:`simulate` → :mod:`condspace.features` → :mod:`condspace.inference` →
:mod:`condspace.dics` → :mod:`condspace.populations` → :mod:`condspace.neuromodulation`.
"""

from condspace import cells
from condspace.backend import Backend, resolve
from condspace.simulate import SimulationResult, simulate

__version__ = "0.1.0"

__all__ = ["Backend", "SimulationResult", "__version__", "cells", "resolve", "simulate"]
