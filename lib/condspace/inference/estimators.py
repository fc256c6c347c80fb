"""The density estimators: settings, bounded ↔ unbounded transforms, flow ensembles, class restriction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from condspace.inference.prior import Prior


# ----- the density estimator ----------------------------------------------------------------------
@dataclass(frozen=True)
class EstimatorSettings:
    """Builder and training settings of the neural posterior estimator.

    The default is a neural spline flow (NSF, Durkan et al. 2019): on this problem a masked
    autoregressive flow (MAF) is the more overconfident of the two (SCIENCE.md §6); the
    comparison is rerun by ``benchmarks/inference_ablation.py`` and shown in chapter 2.

    ``transform="none"`` is the default although it leaks mass outside the prior box (rejected
    when sampling, reported by :func:`leakage`): with ``"logit"`` (no leakage by construction)
    the flow becomes overconfident for conductances near the edges of the box, where the logit
    stretches the space most. Batches of 1024 make an epoch several times cheaper than sbi's
    default of 256 (at 5e-4) without changing calibration, and at Adam learning rate 3e-3 the
    flows converge in about half the epochs they take at 1e-3, to a lower validation loss:
    measured on the STG standard training set (29,525 simulations, one flow per run, two runs at a
    time on two cores, patience 20): 1e-3 216 and 301 epochs (the second stopped by the cap of
    300), best validation loss 25.71 and 25.33, 605 s for the pair; 2e-3 172 epochs, 25.21, 313 s;
    3e-3 108 and 120 epochs, 25.29 and 25.20, 198 and 245 s; 4e-3 129 epochs, 25.15, 262 s
    (``benchmarks/training_rate.py``; the 1e-3 pair is the standard posterior of a book build).

    ``ensemble=2``: the posterior is the equal mixture of two flows trained on the same simulations
    from different initialisations and batch orders (Lakshminarayanan et al. 2017; recommended
    against the overconfidence of single NPE flows by Hermans et al. 2022): a single flow's credible
    regions are too narrow, and a mixture widens them where the members disagree. Chapter 2 and
    ``make check`` report the coverage this buys; the ablation compares one flow with two. The
    members train in parallel processes (one per core), so on two cores a pair costs the wall time
    of one flow.

    Attributes:
        model: ``"nsf"`` or ``"maf"`` (``sbi`` nflows builders).
        hidden_features: Width of the conditioner networks.
        num_transforms: Number of flow layers.
        num_bins: Spline bins (NSF only).
        tail_bound: The splines act on [−tail_bound, tail_bound] (z-scored units) and are the
            identity outside (NSF only); the base density is Gaussian, so the tails beyond are
            Gaussian too.
        transform: ``"none"`` trains on θ (z-scored) and rejects samples outside the box;
            ``"logit"`` trains on logit((θ − low)/(high − low)), so that every sample lies inside.
        batch_size: Training batch size.
        learning_rate: Adam learning rate.
        validation_fraction: Held out for early stopping.
        stop_after_epochs: Patience of early stopping.
        max_epochs: Upper bound on epochs (small in FAST mode).
        class_restriction: Multiply the flow by P(observed class | θ) (:class:`ClassRestriction`,
            trained by :func:`trained_posterior` on the same simulations).
        ensemble: Number of flows in the mixture (member k is trained with seed ``seed + k``).
    """

    model: str = "nsf"
    hidden_features: int = 64
    num_transforms: int = 5
    num_bins: int = 10
    tail_bound: float = 3.0
    transform: str = "none"
    batch_size: int = 1024
    learning_rate: float = 3e-3
    validation_fraction: float = 0.1
    stop_after_epochs: int = 20
    max_epochs: int = 300
    class_restriction: bool = True
    ensemble: int = 2

    def __post_init__(self) -> None:
        if self.model not in ("nsf", "maf"):
            raise ValueError(f"model must be 'nsf' or 'maf', got {self.model!r}")
        if self.transform not in ("logit", "none"):
            raise ValueError(f"transform must be 'logit' or 'none', got {self.transform!r}")
        if self.max_epochs < 1 or self.batch_size < 1 or self.hidden_features < 1:
            raise ValueError("max_epochs, batch_size and hidden_features must be ≥ 1")
        if isinstance(self.ensemble, bool) or int(self.ensemble) != self.ensemble or self.ensemble < 1:
            raise ValueError(f"ensemble must be a positive integer (number of flows), got {self.ensemble!r}")


def standard_settings(max_epochs: int | None = None) -> EstimatorSettings:
    """The estimator used with a cell's ``inference_budget`` (optionally with fewer epochs)."""
    base = EstimatorSettings()
    return base if max_epochs is None else EstimatorSettings(**{**asdict(base), "max_epochs": int(max_epochs)})


class _NoTracker:
    """An ``sbi`` tracker that records nothing (otherwise NPE writes ``sbi-logs/`` in the cwd)."""

    log_dir = None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:  # noqa: D102
        pass

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:  # noqa: D102
        pass

    def log_params(self, params: dict) -> None:  # noqa: D102
        pass

    def add_figure(self, name: str, figure: Any, step: int | None = None) -> None:  # noqa: D102
        pass

    def flush(self) -> None:  # noqa: D102
        pass


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads (1 on a shared 2-core machine), then restore."""
    import torch  # noqa: PLC0415

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


_EPS = 1e-6  # keeps logit finite for draws that sit exactly on a bound


def _to_unbounded(theta: np.ndarray, prior: Prior, transform: str) -> np.ndarray:
    if transform == "none":
        return theta
    u = np.clip((theta - prior.low) / (prior.high - prior.low), _EPS, 1 - _EPS)
    return np.log(u) - np.log1p(-u)


def _from_unbounded(phi: np.ndarray, prior: Prior, transform: str) -> np.ndarray:
    if transform == "none":
        return phi
    return prior.low + (prior.high - prior.low) / (1.0 + np.exp(-phi))


def _log_jacobian(theta: np.ndarray, prior: Prior, transform: str) -> np.ndarray:
    """log |dφ/dθ| summed over dimensions (0 without transform)."""
    if transform == "none":
        return np.zeros(theta.shape[:-1])
    width = prior.high - prior.low
    u = np.clip((theta - prior.low) / width, _EPS, 1 - _EPS)
    return np.sum(-np.log(u) - np.log1p(-u) - np.log(width), axis=-1)


def _build_estimator(settings: EstimatorSettings, theta_t, x_t):
    """Build the (untrained) flow; z-scoring statistics come from the batch given."""
    from sbi.neural_nets.net_builders.flow import build_maf, build_nsf  # noqa: PLC0415

    kw = {"hidden_features": settings.hidden_features, "num_transforms": settings.num_transforms,
          "z_score_x": "independent", "z_score_y": "independent"}
    if settings.model == "nsf":
        return build_nsf(theta_t, x_t, num_bins=settings.num_bins, tail_bound=settings.tail_bound, **kw)
    return build_maf(theta_t, x_t, **kw)


def _logistic_prior(d: int):
    """Pushforward of U(0, 1)^d under logit: the prior NPE sees in the unbounded space."""
    import torch  # noqa: PLC0415
    from torch.distributions import Independent, SigmoidTransform, TransformedDistribution, Uniform  # noqa: PLC0415

    base = Uniform(torch.zeros(d), torch.ones(d))
    return Independent(TransformedDistribution(base, [SigmoidTransform().inv]), 1)


class FlowEnsemble:
    """Equal-weight mixture of K trained conditional flows: q(θ | x) = (1/K) Σ_k q_k(θ | x).

    Offers the part of the ``sbi`` estimator interface that :class:`Posterior` uses (``sample``,
    ``log_prob``, ``eval``, ``state_dict``, ``load_state_dict``), with the members' parameters
    stored under the prefixes ``"0."``, ``"1."``, ...

    Args:
        members: The K flows (``sbi`` conditional density estimators on the same space).
    """

    def __init__(self, members: Sequence[Any]) -> None:
        if len(members) < 1:
            raise ValueError("members: an ensemble needs at least one flow")
        self.members = list(members)

    def __len__(self) -> int:
        return len(self.members)

    def sample(self, sample_shape: tuple[int, ...], condition: Any) -> Any:
        """(n, B, d) draws: each draw picks a member uniformly at random (torch's RNG), then samples it."""
        import torch  # noqa: PLC0415

        n = int(sample_shape[0])
        if len(self.members) == 1:
            return self.members[0].sample((n,), condition=condition)
        which = torch.randint(len(self.members), (n,))
        out = None
        for k, member in enumerate(self.members):
            rows = torch.nonzero(which == k).squeeze(1)
            if len(rows) == 0:
                continue
            draws = member.sample((len(rows),), condition=condition)
            if out is None:
                out = draws.new_empty((n, *draws.shape[1:]))
            out[rows] = draws
        return out

    def log_prob(self, theta: Any, condition: Any) -> Any:
        """log of the mixture density: logsumexp_k log q_k(θ | x) − log K (shape as the members')."""
        import torch  # noqa: PLC0415

        if len(self.members) == 1:
            return self.members[0].log_prob(theta, condition=condition)
        logs = torch.stack([m.log_prob(theta, condition=condition) for m in self.members])
        return torch.logsumexp(logs, dim=0) - float(np.log(len(self.members)))

    def eval(self) -> FlowEnsemble:
        """Put every member in evaluation mode."""
        for member in self.members:
            member.eval()
        return self

    def state_dict(self) -> dict[str, Any]:
        """The members' parameters and buffers, keys prefixed with the member index."""
        return {f"{k}.{name}": v for k, m in enumerate(self.members) for name, v in m.state_dict().items()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Load a :meth:`state_dict` (a missing or unexpected member raises ``RuntimeError``)."""
        parts: dict[int, dict[str, Any]] = {}
        for key, value in state.items():
            index, _, name = key.partition(".")
            if not index.isdigit() or int(index) >= len(self.members):
                raise RuntimeError(f"unexpected key {key!r} for an ensemble of {len(self.members)} flows")
            parts.setdefault(int(index), {})[name] = value
        if strict and len(parts) != len(self.members):
            raise RuntimeError(f"the state holds {len(parts)} flows, the ensemble has {len(self.members)}")
        for k, member_state in parts.items():
            self.members[k].load_state_dict(member_state, strict=strict)


def _build_ensemble(settings: EstimatorSettings, prior_dim: int, n_features: int, members: int) -> FlowEnsemble:
    """Untrained ensemble of ``members`` flows of the right shapes (z-scoring buffers come from a state dict)."""
    import torch  # noqa: PLC0415

    dummy_theta = torch.stack([torch.zeros(prior_dim), torch.ones(prior_dim)])
    dummy_x = torch.stack([torch.zeros(n_features), torch.ones(n_features)])
    return FlowEnsemble([_build_estimator(settings, dummy_theta, dummy_x) for _ in range(members)])


RESTRICTION_CLASSES = ("silent", "spiking", "bursting")


def _mlp(d_in: int, hidden: int, layers: int, d_out: int):
    import torch  # noqa: PLC0415

    mods, width = [], d_in
    for _ in range(layers):
        mods += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
        width = hidden
    return torch.nn.Sequential(*mods, torch.nn.Linear(width, d_out))


class ClassRestriction:
    """P(activity class | θ), a small classifier that restricts a posterior to the observed class.

    The class of a spike train (tonic or bursting, SCIENCE.md §5) is a function of its features,
    so the true posterior of a tonic recording has no mass where the simulator bursts. A flow is
    smooth and cannot represent that hard boundary; it spills mass across it. Multiplying q(θ | x)
    by P(observed class | θ) removes the spill (the restriction idea of Deistler et al. 2022,
    applied to the class instead of simulation validity). Trained on the same simulations.

    Attributes:
        net: MLP from θ scaled to [0, 1]^d to logits over :data:`RESTRICTION_CLASSES`.
        prior: Gives the scaling.
        hidden, layers: Architecture (stored to rebuild the net on loading).
        accuracy: Validation accuracy (fraction of held-back draws classified correctly).
    """

    def __init__(self, net: Any, prior: Prior, hidden: int, layers: int, accuracy: float = float("nan")) -> None:
        self.net, self.prior, self.hidden, self.layers, self.accuracy = net, prior, hidden, layers, accuracy

    def probability(self, theta: Any, label: str) -> np.ndarray:
        """P(label | θ) for θ (..., d); ``label`` is "spiking" or "bursting"."""
        import torch  # noqa: PLC0415

        theta = np.asarray(theta, dtype=float)
        u = (theta - self.prior.low) / (self.prior.high - self.prior.low)
        with torch.no_grad(), torch_threads(1):
            logits = self.net(torch.as_tensor(u.reshape(-1, theta.shape[-1]), dtype=torch.float32))
            prob = torch.softmax(logits, dim=-1)[:, RESTRICTION_CLASSES.index(label)].double().numpy()
        return prob.reshape(theta.shape[:-1])


def train_restriction(theta: Any, labels: Any, prior: Prior, *, seed: int = 0, hidden: int = 128, layers: int = 3,
                      epochs: int = 60, batch_size: int = 512) -> ClassRestriction:
    """Train :class:`ClassRestriction` on simulated (θ, class) pairs (invalid runs are ignored).

    Raises:
        ValueError: Fewer than 20 usable rows or a class missing from ``labels``.
    """
    import torch  # noqa: PLC0415

    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    labels = np.asarray(labels).astype(str)
    keep = np.isin(labels, RESTRICTION_CLASSES)
    missing = [c for c in RESTRICTION_CLASSES[1:] if not np.any(labels[keep] == c)]
    if keep.sum() < 20 or missing:
        raise ValueError(f"train_restriction: need ≥ 20 simulations with every active class; got {int(keep.sum())}, "
                         f"missing {missing}")
    u = torch.as_tensor((theta[keep] - prior.low) / (prior.high - prior.low), dtype=torch.float32)
    y = torch.as_tensor([RESTRICTION_CLASSES.index(c) for c in labels[keep]])
    n_val = max(1, len(y) // 10)
    with torch_threads(1), torch.random.fork_rng():
        torch.manual_seed(seed)
        net = _mlp(prior.dim, hidden, layers, len(RESTRICTION_CLASSES))
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        for _ in range(epochs):
            perm = torch.randperm(len(y) - n_val) + n_val
            for i in range(0, len(perm), batch_size):
                b = perm[i:i + batch_size]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(u[b]), y[b]).backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            acc = float((net(u[:n_val]).argmax(1) == y[:n_val]).float().mean())
    return ClassRestriction(net, prior, hidden, layers, acc)




def versions() -> dict[str, str]:
    """Versions of the packages that determine a trained posterior."""
    import sbi  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from condspace import __version__  # noqa: PLC0415

    # str(): torch.__version__ is a TorchVersion, which weights_only loading refuses to unpickle.
    return {"condspace": str(__version__), "sbi": str(sbi.__version__), "torch": str(torch.__version__),
            "numpy": str(np.__version__)}


