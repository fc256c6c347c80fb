"""Figures for the book: one style file, fixed colours, axis labels with units.

Plots sit at the end of the data flow: every helper takes plain NumPy arrays or a pandas
DataFrame (what the other modules return) and imports nothing from simulate, features,
inference, dics, populations or neuromodulation; only the cell declarations
(:mod:`condspace.cells`, with :mod:`condspace.channels` and :mod:`condspace.kinetics`) are read,
to tabulate and draw a cell's channels. Each helper returns the
:class:`matplotlib.figure.Figure`; captions belong in the notebook cell metadata, not in titles.

One module per concern, every public name re-exported here: :mod:`~condspace.plotting.style`
(style file, colours, units), :mod:`~condspace.plotting.cell` (channel table, gating),
:mod:`~condspace.plotting.activity` (traces, classes, features),
:mod:`~condspace.plotting.conductances` (conductance sets, degenerate pairs),
:mod:`~condspace.plotting.dynamic_conductances` (DIC curves, plane, maps),
:mod:`~condspace.plotting.modulation` (reachability, trajectories, costs) and
:mod:`~condspace.plotting.robustness` (the posterior on misspecified recordings).

The colours never change between chapters:

* :data:`DIC_COLORS` for the fast, slow and ultraslow dynamic input conductances;
* :data:`CLASS_COLORS` for the activity classes silent, spiking, bursting and invalid.

>>> from condspace import plotting
>>> plotting.use_style()
>>> fig = plotting.plot_dic_curves(V, gf, gs, gu, vth=-50.5)  # doctest: +SKIP
"""

from condspace.plotting.activity import plot_class_fractions, plot_feature_distributions, plot_traces
from condspace.plotting.cell import channel_table, plot_gating
from condspace.plotting.conductances import plot_conductance_pairs, plot_degenerate_pairs
from condspace.plotting.dynamic_conductances import plot_dic_curves, plot_dic_curves_grid, plot_dic_map, plot_dic_plane
from condspace.plotting.modulation import (
    FOLD_LABEL,
    REACHABILITY_CMAP,
    plot_costs,
    plot_modulation_scatter,
    plot_reachability_maps,
    plot_trajectories,
)
from condspace.plotting.robustness import ROBUSTNESS_PANELS, plot_robustness, robustness_panel_rows
from condspace.plotting.style import (
    CLASS_COLORS,
    CLASS_ORDER,
    CONDUCTANCE_UNIT,
    DIC_AXIS_LABELS,
    DIC_COLORS,
    DIC_SYMBOLS,
    DIC_UNIT,
    HIGHLIGHT_COLOR,
    STYLE_PATH,
    T_LABEL,
    UNITS,
    V_LABEL,
    class_color,
    unit_label,
    use_style,
)

__all__ = [
    "CLASS_COLORS", "CLASS_ORDER", "CONDUCTANCE_UNIT", "DIC_AXIS_LABELS", "DIC_COLORS", "DIC_SYMBOLS", "DIC_UNIT",
    "FOLD_LABEL", "HIGHLIGHT_COLOR", "REACHABILITY_CMAP", "ROBUSTNESS_PANELS", "STYLE_PATH", "T_LABEL", "UNITS",
    "V_LABEL",
    "channel_table", "class_color", "plot_class_fractions", "plot_conductance_pairs", "plot_costs",
    "plot_degenerate_pairs", "plot_dic_curves", "plot_dic_curves_grid", "plot_dic_map", "plot_dic_plane",
    "plot_feature_distributions", "plot_gating", "plot_modulation_scatter", "plot_reachability_maps",
    "plot_robustness", "plot_traces", "plot_trajectories", "robustness_panel_rows", "unit_label", "use_style",
]
