"""Which channels did a neuromodulator target? Ranking channel subsets from spike times.

Given spike times of neurons recorded before and after a neuromodulator, the hypotheses are every
single modulable channel and every pair of a cell (:mod:`.hypotheses`). Modulation experiments are
simulated (:mod:`.experiments`: random factors on prior draws, or a DIC path from
:mod:`condspace.neuromodulation`), a softmax classifier is trained by cross-entropy on their
(before, after) summary features (:mod:`.classifier`: amortized Bayesian model comparison), the
posteriors of several neurons are combined exactly and summarised per channel (:mod:`.evidence`),
and the DIC route of the poster serves as a baseline (:mod:`.dic_route`). Figures of chapter 5 are
in :mod:`.plots` (imported on demand).

Data flow: cells → simulate → features → inference → DICs → neuromodulation → **identification**
→ plots.

>>> from condspace import identification
>>> len(identification.hypotheses("stg")), identification.labels("stg")[7]
(28, 'Na+Kd')
"""

from condspace.identification.classifier import (
    Classifier,
    ClassifierSettings,
    load_classifier,
    pair_features,
    save_classifier,
    train_classifier,
)
from condspace.identification.evidence import (
    GROUP_THRESHOLD,
    auc,
    combine,
    confusion,
    draw_experiments,
    expected_calibration_error,
    group_top1,
    identifiability_groups,
    marginals,
    top_k,
)
from condspace.identification.experiments import (
    FACTOR_RANGE,
    NOISE_STD,
    ExperimentSet,
    apply_modulation,
    demonstration_modulation,
    dic_path_experiments,
    draw_modulations,
    example_subset,
    load_experiments,
    load_modulation,
    modulated_recordings,
    random_experiments,
    recording_protocol,
    save_experiments,
)
from condspace.identification.hypotheses import hypotheses, label, labels, membership, modulable_channels
from condspace.identification.model import DEFAULT_BUDGET, Identification, Identifier, identifier, identify

__all__ = [
    "DEFAULT_BUDGET", "FACTOR_RANGE", "GROUP_THRESHOLD", "NOISE_STD", "Classifier", "ClassifierSettings",
    "ExperimentSet", "Identification", "Identifier", "apply_modulation", "demonstration_modulation",
    "load_modulation",
    "example_subset", "modulated_recordings", "auc", "combine", "confusion",
    "dic_path_experiments", "draw_experiments", "draw_modulations", "expected_calibration_error", "group_top1",
    "hypotheses", "identifiability_groups", "identifier", "identify", "label", "labels", "load_classifier",
    "load_experiments", "marginals", "membership", "modulable_channels", "pair_features", "random_experiments",
    "recording_protocol", "save_classifier", "save_experiments", "top_k", "train_classifier",
]
