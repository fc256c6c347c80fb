"""Simulation-based inference of maximal conductances from spike times (the ``sbi`` glue).

Neural posterior estimation (NPE, Papamakarios & Murray 2016; Greenberg et al. 2019; the ``sbi``
package, Tejero-Cantero et al. 2020) as applied to the STG neuron by Gonçalves et al. (2020):

1. :func:`make_prior`: a uniform prior on the inferred conductances and the noise strength
   (``noise_std``, µA/cm²; training simulations include the noise current), names attached.
2. :func:`summary_features`: spike times → :data:`SUMMARY_NAMES`, defined for every train with
   ≥ 3 spikes and independent of the recording length.
3. :func:`simulate_features`: a batch of conductance vectors → one :func:`condspace.simulate`
   call → features and a validity mask (silent and numerically invalid runs excluded, counted).
4. :func:`training_set`: prior draws and their features, cached on disk under a hash of
   everything that determines them (:func:`cache_key`), written atomically, verified on load.
5. :func:`train`: a neural spline flow q(ḡ | x) (``sbi`` NPE) → :class:`Posterior`, which
   samples and evaluates densities in conductance units, restricted to the prior box and (with
   :func:`train_restriction`) to the observed activity class; :func:`trained_posterior` does
   it all with caching; :func:`save_posterior` / :func:`load_posterior` keep a posterior as
   plain tensors (no pickles).
6. Checks: :func:`predictive_check` (simulated posterior samples, each with its inferred noise,
   reproduce the observation; tolerances justified by :func:`feature_spread`),
   :func:`expected_coverage` (joint-HPD calibration on held-out simulations), :func:`leakage`,
   :func:`feature_cloud_distance` (is the observation inside the simulated feature cloud?).
7. Per recording: :func:`refine_if_failing` sharpens the posterior of a recording that fails the
   predictive check with truncated sequential NPE (:func:`refine`, :func:`sequential_npe`).

The package, one module per concern: :mod:`~condspace.inference.prior`,
:mod:`~condspace.inference.simulator`, :mod:`~condspace.inference.cache` (training sets on disk),
:mod:`~condspace.inference.estimators` (settings, transforms, flows, class restriction),
:mod:`~condspace.inference.posterior`, :mod:`~condspace.inference.training`,
:mod:`~condspace.inference.persistence` (saving posteriors),
:mod:`~condspace.inference.refine` (per-recording truncated sequential NPE),
:mod:`~condspace.inference.demonstration` (synthetic recordings) and
:mod:`~condspace.inference.diagnostics`; the summary features live in
:mod:`condspace.features.summary` and are re-exported here. Every public name is importable from
``condspace.inference``.

Data flow: cells → simulate → features → **inference**; this package imports nothing to its
right (no DICs, no plotting).

>>> from condspace import inference
>>> prior = inference.make_prior("stg")
>>> prior.names[:3], prior.high[2]
(('g_Na', 'g_Kd', 'g_CaT'), 15.0)
"""


from __future__ import annotations

import warnings


def _quiet_tqdm_auto() -> None:
    """Import ``tqdm.auto`` once with its "IProgress not found" warning silenced.

    sbi draws its progress bars with ``tqdm.auto``; imported in a Jupyter kernel without
    ipywidgets (the book's chapters: we draw no widgets), it warns once, with the absolute path of
    the installation, into the notebook's output. Its bars fall back to text, which is what we want.
    """
    try:
        from tqdm import TqdmWarning  # noqa: PLC0415
    except ImportError:  # pragma: no cover  (tqdm is a dependency)
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
        import tqdm.auto  # noqa: F401, PLC0415


_quiet_tqdm_auto()

from condspace.features import MIN_SPIKES  # noqa: E402  (tqdm.auto is quieted before sbi is imported)
from condspace.features.summary import (  # noqa: E402
    FEATURE_VERSION,
    SUMMARY_FEATURES,
    SUMMARY_NAMES,
    CloudDistance,
    feature_cloud_distance,
    summary_features,
    summary_frame,
)
from condspace.inference.cache import (  # noqa: E402
    CACHE_FORMAT,
    TrainingSet,
    array_checksum,
    atomic_write,
    cache_key,
    cached_simulations,
    cell_fingerprint,
    default_cache_dir,
    held_out,
    load_training_set,
    save_training_set,
    training_set,
)
from condspace.inference.demonstration import (  # noqa: E402
    RECORDING_DECIMALS,
    RecordingSet,
    demonstration_recordings,
    load_ground_truth,
    load_recordings,
    synthetic_recordings,
)
from condspace.inference.diagnostics import (  # noqa: E402
    CV_TOLERANCE,
    CV_TONIC_LIKE,
    PERIOD_TOLERANCE,
    RATE_TOLERANCE,
    SPB_TOLERANCE,
    PredictiveCheck,
    expected_coverage,
    feature_spread,
    hpd_ranks,
    leakage,
    observe,
    predictive_check,
    reproduces,
    truth_pass_fraction,
)
from condspace.inference.estimators import (  # noqa: E402
    RESTRICTION_CLASSES,
    ClassRestriction,
    EstimatorSettings,
    FlowEnsemble,
    standard_settings,
    torch_threads,
    train_restriction,
    versions,
)
from condspace.inference.persistence import POSTERIOR_FORMAT, load_posterior, save_posterior  # noqa: E402
from condspace.inference.posterior import Posterior  # noqa: E402
from condspace.inference.prior import (  # noqa: E402
    MISSED_NAME,
    NOISE_NAME,
    OBSERVATION_NAMES,
    Prior,
    conductances,
    make_prior,
)
from condspace.inference.refine import (  # noqa: E402
    DEFAULT_PER_ROUND,
    DEFAULT_ROUNDS,
    HPR_QUANTILE,
    REFINE_CHECK,
    REFINE_THRESHOLD,
    Refinement,
    RefinementRound,
    TruncatedDraws,
    refine,
    refine_if_failing,
    sequential_npe,
    truncated_prior_sample,
)
from condspace.inference.simulator import Protocol, SimulatedFeatures, miss_spikes, simulate_features  # noqa: E402
from condspace.inference.training import estimator_code_hash, train, trained_posterior  # noqa: E402

__all__ = [
    "CACHE_FORMAT", "CV_TOLERANCE", "CV_TONIC_LIKE", "ClassRestriction", "CloudDistance", "EstimatorSettings",
    "FEATURE_VERSION", "FlowEnsemble", "MIN_SPIKES", "NOISE_NAME", "PERIOD_TOLERANCE", "POSTERIOR_FORMAT",
    "Posterior", "PredictiveCheck", "Prior", "Protocol", "RATE_TOLERANCE", "RECORDING_DECIMALS",
    "RESTRICTION_CLASSES", "RecordingSet", "SPB_TOLERANCE", "SUMMARY_FEATURES", "SUMMARY_NAMES", "SimulatedFeatures",
    "TrainingSet", "array_checksum", "atomic_write", "cache_key", "cached_simulations", "cell_fingerprint",
    "conductances", "default_cache_dir", "demonstration_recordings", "estimator_code_hash", "expected_coverage",
    "feature_cloud_distance", "feature_spread", "held_out", "hpd_ranks", "leakage", "load_ground_truth",
    "load_posterior", "load_recordings", "load_training_set", "make_prior", "observe", "predictive_check",
    "reproduces", "save_posterior", "save_training_set", "simulate_features", "standard_settings", "summary_features",
    "summary_frame", "synthetic_recordings", "torch_threads", "train", "train_restriction", "trained_posterior",
    "training_set", "truth_pass_fraction", "versions",
]
# per-recording refinement (condspace.inference.refine)
__all__ += ["DEFAULT_PER_ROUND", "DEFAULT_ROUNDS", "HPR_QUANTILE", "REFINE_CHECK", "REFINE_THRESHOLD", "Refinement",
            "RefinementRound", "TruncatedDraws", "refine", "refine_if_failing", "sequential_npe",
            "truncated_prior_sample"]
# the recording's parameters: noise strength and missed spikes (condspace.inference.prior, .simulator)
__all__ += ["MISSED_NAME", "OBSERVATION_NAMES", "miss_spikes"]
