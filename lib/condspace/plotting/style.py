"""The house style of every figure: style file, fixed colours, units on the axes.

The colours never change between chapters: :data:`DIC_COLORS` for the fast, slow and ultraslow
dynamic input conductances, :data:`CLASS_COLORS` for the activity classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

STYLE_PATH = Path(__file__).parent.with_name("condspace.mplstyle")  # lib/condspace/condspace.mplstyle

# Okabe-Ito colours (colour-blind safe). Fast = vermillion, slow = blue, ultraslow = green.
DIC_COLORS: dict[str, str] = {"fast": "#D55E00", "slow": "#0072B2", "ultraslow": "#009E73"}
DIC_SYMBOLS: dict[str, str] = {"fast": "g_f", "slow": "g_s", "ultraslow": "g_u"}

# Activity classes in their reading order; "invalid" = the simulation blew up (SimulationResult.ok False).
CLASS_COLORS: dict[str, str] = {"silent": "#999999", "spiking": "#56B4E9", "bursting": "#CC79A7", "invalid": "#000000"}
CLASS_ORDER: tuple[str, ...] = ("silent", "spiking", "bursting", "invalid")
HIGHLIGHT_COLOR = "#E69F00"  # orange: never a DIC or class colour

V_LABEL = "V (mV)"
T_LABEL = "t (ms)"
CONDUCTANCE_UNIT = "mS/cm²"
DIC_UNIT = "× g_leak"  # DICs are normalised by the leak conductance (SCIENCE.md §3)

# Units of quantities the chapters plot, by exact name. unit_label falls back to name rules.
# Feature names follow condspace.features.FEATURES ("–" = dimensionless).
UNITS: dict[str, str] = {
    "g_f": DIC_UNIT, "g_s": DIC_UNIT, "g_u": DIC_UNIT, "g_in": DIC_UNIT,
    "V_th": "mV", "V": "mV", "t": "ms",
    "cv_isi": "–", "duty_cycle": "–", "spikes_per_burst": "spikes", "n_spikes": "spikes",
    "n_bursts": "bursts", "burstiness": "Hz/s",
}


def use_style() -> None:
    """Apply the condspace matplotlib style (call once near the top of a chapter)."""
    plt.style.use(STYLE_PATH)


def class_color(label: str, fallback_index: int = 0) -> str:
    """Colour of an activity class; labels outside :data:`CLASS_COLORS` take a neutral cycle colour."""
    if label in CLASS_COLORS:
        return CLASS_COLORS[label]
    extra = ["#E69F00", "#F0E442", "#56B4E9", "#009E73"]
    return extra[fallback_index % len(extra)]


def unit_label(name: str, units: Mapping[str, str] | None = None) -> str:
    """Axis label ``"name (unit)"`` for a quantity.

    Looks the unit up in ``units`` first, then in :data:`UNITS`, then by name: ``g_*``
    conductances are mS/cm²; names with ``freq`` or ending in ``_hz`` are Hz; names ending in
    ``_ms``, starting with ``isi`` or containing ``duration``/``period`` are ms. Without a unit
    the bare name is returned, so a missing unit is visible on the figure rather than invented.

    Args:
        name: Quantity or column name (``"g_Na"``, ``"spiking_freq_hz"``).
        units: Optional name → unit overrides (``"–"`` for dimensionless).
    """
    unit = (units or {}).get(name, UNITS.get(name))
    low = name.lower()
    if unit is None:
        if name.startswith("g_"):
            unit = CONDUCTANCE_UNIT
        elif "freq" in low or low.endswith("_hz"):
            unit = "Hz"
        elif low.endswith("_ms") or low.startswith("isi") or "duration" in low or "period" in low:
            unit = "ms"
    return f"{name} ({unit})" if unit else name


def _figure(nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Figure, np.ndarray]:
    with plt.style.context(STYLE_PATH):
        fig, axes = plt.subplots(nrows, ncols, squeeze=False, **kw)
        # The first figure of a session loads the backend; in a notebook the inline backend then
        # switches interactive mode on. Leaving the style context would restore the old rcParams
        # and switch it off again, and no later figure would be shown: keep what was set here.
        interactive = plt.isinteractive()
    plt.interactive(interactive)
    return fig, axes


def _vector(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D array, got shape {arr.shape}")
    return arr




DIC_AXIS_LABELS: dict[str, str] = {"g_f": f"g_f ({DIC_UNIT})", "g_s": f"g_s ({DIC_UNIT})", "g_u": f"g_u ({DIC_UNIT})"}
