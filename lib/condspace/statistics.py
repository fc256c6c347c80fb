"""Statistics of sample clouds that the chapters report: spread and separability.

These summarise posterior samples (conductances or DICs) without assuming a shape: the
interquartile range per axis, the typical shrink of one cloud against another, and how well one
axis tells two clouds apart (the area under the ROC curve of a threshold on that axis).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["iqr", "separability", "spread_ratio"]


def iqr(samples: np.ndarray) -> np.ndarray:
    """Interquartile range of each column, NaN entries ignored.

    Args:
        samples: (n, k) samples (or (n,) for one axis); NaN marks a missing value (e.g. a
            conductance set without a threshold, whose DICs are undefined).

    Returns:
        (k,) the 75th minus the 25th percentile of each column, in the columns' units.
    """
    q25, q75 = np.nanpercentile(np.asarray(samples, dtype=float), [25, 75], axis=0)
    return q75 - q25


def spread_ratio(samples: np.ndarray, reference: np.ndarray) -> float:
    """The typical per-axis shrink factor of ``samples`` against ``reference``.

    The geometric mean over the columns of IQR(samples) / IQR(reference): below 1 when the samples
    are narrower than the reference (a posterior against its prior), 1 when as wide. Geometric, so
    that a cloud twice as narrow on one axis and twice as wide on another counts as unchanged.

    Args:
        samples: (n, k) samples; NaN entries ignored.
        reference: (m, k) samples of the same k quantities.

    Returns:
        The shrink factor (dimensionless, > 0).

    Raises:
        ValueError: the two do not have the same number of columns, or a reference column has
            zero spread (the ratio would be undefined).
    """
    a, ref = iqr(samples), iqr(reference)
    if np.shape(a) != np.shape(ref):
        raise ValueError(f"spread_ratio: samples have {np.size(a)} columns, reference {np.size(ref)}: "
                         "pass the same quantities in the same order")
    if np.any(~(ref > 0)):
        raise ValueError("spread_ratio: a column of the reference has zero (or undefined) interquartile "
                         "range; drop constant columns before comparing spreads")
    return float(np.exp(np.mean(np.log(a / ref))))


def separability(a: np.ndarray, b: np.ndarray) -> float:
    """max(P(x > y), P(x < y)) for x drawn from ``a`` and y from ``b`` (ties count half).

    The area under the ROC curve of a threshold on this one axis, read in its better direction:
    0.5 when the two samples are identically distributed, 1 when they do not overlap. Computed from
    the Mann-Whitney U statistic, so it costs a sort, not n·m comparisons.

    Args:
        a: (n,) samples of one quantity; non-finite entries dropped.
        b: (m,) samples of the same quantity from the other cloud; non-finite entries dropped.

    Returns:
        The separability, in [0.5, 1].

    Raises:
        ValueError: one of the samples has no finite value.
    """
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        raise ValueError(f"separability: needs finite samples on both sides, got {a.size} and {b.size}")
    p = stats.mannwhitneyu(a, b).statistic / (a.size * b.size)
    return float(max(p, 1.0 - p))
