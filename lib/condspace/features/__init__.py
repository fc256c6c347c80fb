"""Spike times → activity classes, spike-train features and the summary features of inference.

* :mod:`condspace.features.spikes`: the class of every train and its spiking/bursting features
  (SCIENCE.md §5): :func:`extract`, :func:`classify`, :func:`from_simulation`.
* :mod:`condspace.features.summary`: the summary features that simulation-based inference
  conditions on (:func:`summary_features`, :data:`SUMMARY_NAMES`) and
  :func:`feature_cloud_distance`; they use the same flattened, checked trains as ``spikes``.

Data flow: cells → simulate → **features** → inference; nothing here imports to its right.

>>> import numpy as np
>>> from condspace import features
>>> df = features.extract([np.arange(0.0, 1000.0, 100.0), np.array([5.0])], duration=1000.0)
>>> df["label"].tolist(), df["rate_hz"].tolist()
(['spiking', 'silent'], [10.0, 1.0])
"""

from condspace.features.spikes import (
    COLUMNS,
    CV_THRESHOLD,
    FEATURES,
    LABELS,
    MIN_BURST_SPIKES,
    MIN_SPIKES,
    classify,
    extract,
    from_simulation,
)
from condspace.features.summary import (
    FEATURE_VERSION,
    SUMMARY_FEATURES,
    SUMMARY_NAMES,
    CloudDistance,
    feature_cloud_distance,
    summary_features,
    summary_frame,
)

__all__ = ["COLUMNS", "CV_THRESHOLD", "FEATURES", "FEATURE_VERSION", "LABELS", "MIN_BURST_SPIKES", "MIN_SPIKES",
           "SUMMARY_FEATURES", "SUMMARY_NAMES", "CloudDistance", "classify", "extract", "feature_cloud_distance",
           "from_simulation", "summary_features", "summary_frame"]
