"""The trained identifier of a cell and what it says about a set of before/after recordings."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from condspace import _buildrecord
from condspace import cells as _cells
from condspace import inference as _inf
from condspace.channels import CellType
from condspace.identification import evidence as _ev
from condspace.identification import experiments as _ex
from condspace.identification.classifier import (
    Classifier,
    ClassifierSettings,
    load_classifier,
    pair_features,
    save_classifier,
    train_classifier,
)
from condspace.identification.hypotheses import hypotheses, label, membership, modulable_channels

DEFAULT_BUDGET = 20_000
"""Prior draws of the standard random-modulation training set (≈ 19,000 usable experiments STG)."""


@dataclass
class Identifier:
    """A classifier over a cell's hypotheses with what it was trained on.

    Attributes:
        cell: Cell type name.
        scenario: Training scenario (``"random"`` or ``"dic_path"``).
        classifier: The trained :class:`Classifier`.
        z_train: (M, F) a sample of training inputs (the feature cloud of the out-of-cloud check).
        info: Training-set and training records.
    """

    cell: str
    scenario: str
    classifier: Classifier
    z_train: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """Hypothesis labels (``"CaS+H"``) in class order."""
        return [label(h) for h in hypotheses(self.cell)]

    @property
    def channels(self) -> tuple[str, ...]:
        """Modulable channels, the columns of the direction head and of the marginals."""
        return modulable_channels(self.cell)

    def log_posterior(self, x_before: Any, x_after: Any) -> np.ndarray:
        """(n, H) log q(S | before, after) per neuron (x_after NaN where silent after)."""
        return self.classifier.log_posterior(pair_features(x_before, x_after))

    def direction_logit(self, x_before: Any, x_after: Any) -> np.ndarray:
        """(n, C) log-odds that each channel went up, were it modulated."""
        return self.classifier.direction_logit(pair_features(x_before, x_after))


def _training_arrays(es: _ex.ExperimentSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keep = es.usable
    z = pair_features(es.x_before[keep], es.x_after[keep])
    lf = es.log_factor[keep]
    up = np.where(lf > 0, 1.0, np.where(lf < 0, 0.0, np.nan))
    return z, es.hypothesis[keep], up


def identifier(cell: str | CellType, n: int | None = None, *, scenario: str = "random", seed: int = 0,
               settings: ClassifierSettings | None = None, noise_std: float = _ex.NOISE_STD, backend: str = "numpy",
               cache_dir: str | Path | None = None, use_cache: bool = True, progress: bool | None = None,
               client: Any = None) -> tuple[Identifier, _ex.ExperimentSet]:
    """Simulate (or load) the training experiments and train (or load) the classifier.

    Args:
        cell: Cell type or its name.
        n: Prior draws (random) or population size (dic_path); default :data:`DEFAULT_BUDGET`.
        scenario: ``"random"`` or ``"dic_path"``.
        seed: Seed of the experiments and of the training.
        settings: Classifier settings (default :class:`ClassifierSettings`).
        noise_std: Noise current of the recordings (µA/cm²).
        backend: Simulation backend.
        cache_dir: Cache folder.
        use_cache: Read and write the caches (experiments and classifier).
        progress: Progress bars (simulation and training).
        client: ``distributed.Client`` for the simulations.

    Returns:
        (identifier, training experiments).
    """
    cell = _cells.get(cell)
    n = DEFAULT_BUDGET if n is None else int(n)
    settings = settings or ClassifierSettings()
    kw = {"seed": seed, "noise_std": noise_std, "backend": backend, "cache_dir": cache_dir, "use_cache": use_cache,
          "progress": progress, "client": client}
    if scenario == "random":
        es = _ex.random_experiments(cell, n, **kw)
    elif scenario == "dic_path":
        es = _ex.dic_path_experiments(cell, n, **kw)
    else:
        raise ValueError(f"scenario: expected 'random' or 'dic_path', got {scenario!r}")
    key = _inf.cache_key({"experiments": es.key, "settings": asdict(settings), "seed": int(seed),
                          "code": _classifier_code_hash(), "versions": _inf.versions()})
    path = Path(cache_dir or _inf.default_cache_dir()) / f"ident_classifier_{cell.name}_{key[:20]}.npz"
    clf = None
    if use_cache and path.exists():
        try:
            clf = load_classifier(path, key)
        except ValueError as err:
            import warnings  # noqa: PLC0415

            warnings.warn(f"{err}; retraining it", RuntimeWarning, stacklevel=2)
    z, y, up = _training_arrays(es)
    if clf is None:
        clf = train_classifier(z, y, len(hypotheses(cell)), up=up, settings=settings, seed=seed,
                               progress=bool(progress))
        clf.info["cached"] = False
        if use_cache:
            save_classifier(path, clf, {"key": key})
    _buildrecord.note("caches", f"identification classifier {'loaded' if clf.info.get('cached') else 'trained'}",
                      append=True)  # the book's build-status page
    sample = np.random.default_rng(0).permutation(z.shape[0])[:5000]
    info = {"experiments": es.info, "classifier": clf.info, "n_experiments": int(z.shape[0])}
    return Identifier(cell.name, scenario, clf, z[sample], info), es


def _classifier_code_hash() -> str:
    """Hash of the source that trains the classifier and builds its inputs (part of its cache key)."""
    import hashlib  # noqa: PLC0415

    from condspace.identification import classifier  # noqa: PLC0415

    h = hashlib.sha256(Path(classifier.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:20]


@dataclass
class Identification:
    """What :func:`identify` returns for one experiment (n neurons, one drug).

    Attributes:
        ranking: DataFrame (subset, probability, rank) for every hypothesis, best first.
        channels: DataFrame (channel, probability_targeted, direction, p_up).
        per_neuron: (n, H) log posteriors of the neurons used.
        used: IDs of the neurons used; ``skipped``: ID → reason (silent in both recordings).
        out_of_cloud: IDs whose (before, after) input lies outside the simulated feature cloud.
        seconds: Ranking wall time (s).
    """

    ranking: pd.DataFrame
    channels: pd.DataFrame
    per_neuron: np.ndarray
    used: list[str]
    skipped: dict[str, str]
    out_of_cloud: list[str]
    seconds: float

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The k best subsets with their probabilities."""
        return [(r.subset, float(r.probability)) for r in self.ranking.head(k).itertuples()]


CLOUD_PERCENTILE = 99.0
"""A neuron whose Mahalanobis distance to the training inputs exceeds this percentile of the training
inputs' own distances is flagged as outside the simulated feature cloud."""


def identify(model: Identifier, x_before: Any, x_after: Any, ids: Any = None) -> Identification:
    """Rank the hypotheses for n neurons recorded before and after one drug.

    Neurons silent before but firing after are used (x_before NaN is encoded like silence after
    is not: they are skipped, see below); neurons silent in both recordings carry no information
    and are skipped. Neurons silent before only are skipped too (the training experiments
    keep only neurons active before).

    Args:
        model: A trained :class:`Identifier`.
        x_before: (n, 11) summary features before (NaN rows: silent).
        x_after: (n, 11) summary features after (NaN rows: silent).
        ids: n neuron IDs (default 0..n−1).
    """
    t0 = time.perf_counter()
    xb, xa = np.atleast_2d(np.asarray(x_before, float)), np.atleast_2d(np.asarray(x_after, float))
    ids = [str(i) for i in (range(xb.shape[0]) if ids is None else ids)]
    active_b = np.all(np.isfinite(xb), axis=1)
    active_a = np.all(np.isfinite(xa), axis=1)
    skipped = {i: ("silent in both recordings" if not a else "silent before the drug (the identifier is trained "
                   "on neurons active before)") for i, b, a in zip(ids, active_b, active_a, strict=True) if not b}
    use = active_b
    labels, names = model.labels, model.channels
    if not use.any():
        raise ValueError("no neuron fires before the drug: nothing to identify (all were skipped)")
    z = pair_features(xb[use], xa[use])
    lp = model.classifier.log_posterior(z)
    post = np.exp(_ev.combine(lp, model.classifier.log_prior))
    order = np.argsort(-post, kind="stable")
    ranking = pd.DataFrame({"subset": np.asarray(labels)[order], "probability": post[order],
                            "rank": np.arange(1, len(labels) + 1)})
    marg = _ev.marginals(post, membership(model.cell))
    dlog = model.classifier.direction_logit(z).sum(axis=0)  # consistent direction across neurons
    p_up = 1.0 / (1.0 + np.exp(-dlog))
    channels = pd.DataFrame({"channel": names, "probability_targeted": marg, "p_up": p_up,
                             "direction": np.where(p_up >= 0.5, "up", "down")})
    channels = channels.sort_values("probability_targeted", ascending=False, kind="stable").reset_index(drop=True)
    used = [i for i, u in zip(ids, use, strict=True) if u]
    return Identification(ranking, channels, lp, used, skipped, _outside(model, z, used), time.perf_counter() - t0)


def _outside(model: Identifier, z: np.ndarray, ids: list[str]) -> list[str]:
    ref = (model.z_train - model.classifier.mean) / model.classifier.std
    cov = np.cov(ref, rowvar=False) + 1e-6 * np.eye(ref.shape[1])
    inv = np.linalg.pinv(cov)
    mu = ref.mean(axis=0)

    def dist(a):
        d = a - mu
        return np.sqrt(np.einsum("ij,jk,ik->i", d, inv, d))

    limit = np.percentile(dist(ref), CLOUD_PERCENTILE)
    d_obs = dist((z - model.classifier.mean) / model.classifier.std)
    return [i for i, d in zip(ids, d_obs, strict=True) if d > limit]
