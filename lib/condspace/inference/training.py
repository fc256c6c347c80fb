"""Training a posterior (here or in worker processes) and the cached end-to-end :func:`trained_posterior`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from condspace import _buildrecord, _parallel
from condspace import cells as _cells
from condspace.channels import CellType
from condspace.features.summary import SUMMARY_NAMES
from condspace.inference.cache import TrainingSet, cache_key, default_cache_dir, training_set
from condspace.inference.estimators import (
    ClassRestriction,
    EstimatorSettings,
    FlowEnsemble,
    _build_ensemble,
    _build_estimator,
    _from_unbounded,
    _log_jacobian,
    _logistic_prior,
    _mlp,
    _NoTracker,
    _to_unbounded,
    torch_threads,
    train_restriction,
    versions,
)
from condspace.inference.persistence import POSTERIOR_FORMAT, load_posterior, save_posterior
from condspace.inference.posterior import Posterior
from condspace.inference.prior import Prior, make_prior
from condspace.inference.simulator import Protocol


def _train_flow(phi: np.ndarray, x: np.ndarray, prior: Prior, settings: EstimatorSettings, seed: int,
                progress: bool, epochs_done: Any = None, initial: Any = None) -> dict[str, Any]:
    """Train one flow with ``sbi``'s NPE (here or in a worker process).

    ``epochs_done``, if given, is a shared ``multiprocessing`` integer that receives the number of
    epochs trained after each epoch (the progress display of parallel training). ``initial``, if
    given, is a trained flow of the same settings to start from (fine-tuning: its weights and its
    z-scoring are kept; a copy is trained, the original is left as it was).

    Returns:
        Its ``state_dict`` (CPU tensors) and training summary: ``seed``, ``epochs``,
        ``best_validation_loss``, ``training_loss``, ``validation_loss``.
    """
    import torch  # noqa: PLC0415
    from sbi.inference import NPE  # noqa: PLC0415

    def build(theta_batch, x_batch):  # sbi calls this once, with the first batch (z-scoring statistics)
        if initial is not None:
            import copy  # noqa: PLC0415

            return copy.deepcopy(initial).train()
        return _build_estimator(settings, theta_batch, x_batch)

    class CountingNPE(NPE):
        def _maybe_show_progress(self, show: bool, epoch: int) -> None:  # sbi 0.27 calls it after each epoch
            super()._maybe_show_progress(show, epoch)
            if epochs_done is not None:
                epochs_done.value = int(epoch)

    # sbi prints "converged after N epochs" whatever show_progress_bars says: without a progress
    # display (parallel members, CONDSPACE_QUIET) that line would interleave with the caller's output.
    quiet = contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO())
    # Every torch operation, the conversions included, runs on one thread: in a forked worker whose
    # parent has already run a multithreaded torch operation (an OpenMP team; it happens between
    # the rounds of a refinement), a multithreaded op waits forever for the parent's threads, which
    # a fork does not copy.
    with torch_threads(1), torch.random.fork_rng(), quiet, warnings.catch_warnings():
        theta_t = torch.as_tensor(phi, dtype=torch.float32)
        x_t = torch.as_tensor(x, dtype=torch.float32)
        sbi_prior = _logistic_prior(prior.dim) if settings.transform == "logit" else prior.torch()
        # Reaching a capped max_epochs (FAST budgets) is recorded as "reached_max_epochs" in the
        # posterior's info instead of a warning that lands, with the library's path, in the book.
        warnings.filterwarnings("ignore", message="Maximum number of epochs", category=UserWarning)
        torch.manual_seed(seed)
        npe = CountingNPE(prior=sbi_prior, density_estimator=build,
                  tracker=_NoTracker(), show_progress_bars=progress)
        npe.append_simulations(theta_t, x_t)
        estimator = npe.train(training_batch_size=settings.batch_size, learning_rate=settings.learning_rate,
                              validation_fraction=settings.validation_fraction,
                              stop_after_epochs=settings.stop_after_epochs, max_num_epochs=settings.max_epochs,
                              show_train_summary=False)
        state = {k: v.detach().cpu().clone() for k, v in estimator.state_dict().items()}
    summ = npe.summary
    epochs = int(summ["epochs_trained"][-1])
    return {"state_dict": state,
            "seed": int(seed), "epochs": epochs,
            "reached_max_epochs": epochs >= settings.max_epochs,
            "best_validation_loss": float(summ["best_validation_loss"][-1]),
            "training_loss": [float(v) for v in summ["training_loss"]],
            "validation_loss": [float(v) for v in summ["validation_loss"]]}


def _train_members(phi: np.ndarray, x: np.ndarray, prior: Prior, settings: EstimatorSettings,
                   seeds: Sequence[int], workers: int, progress: bool,
                   initial: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """Train one flow per seed: in this process (with sbi's epoch counter) or in forked workers.

    ``initial``: optional trained flows, one per seed, to fine-tune instead of starting afresh.

    Forking after torch has run is safe here because each child trains on one torch thread
    (:func:`torch_threads`), as PyTorch's own DataLoader workers do; a spawned child would instead
    re-import the user's ``__main__`` script.
    """
    starts = list(initial) if initial is not None else [None] * len(seeds)
    if len(starts) != len(seeds):
        raise ValueError(f"initial: {len(starts)} flows to fine-tune for {len(seeds)} seeds")
    if workers <= 1 or len(seeds) == 1:
        return [_train_flow(phi, x, prior, settings, s, progress, initial=m)
                for s, m in zip(seeds, starts, strict=True)]
    import multiprocessing  # noqa: PLC0415

    from tqdm.std import tqdm  # noqa: PLC0415  (tqdm.auto warns in a kernel without ipywidgets, into the book)

    epochs = [multiprocessing.get_context("fork").RawValue("i", 0) for _ in seeds]  # shared with the workers
    results: list[dict[str, Any]] = [{}] * len(seeds)
    with tqdm(total=None, unit="epoch", disable=not progress,
              desc=f"training {len(seeds)} flows in {workers} processes, epochs (all flows)") as bar:
        def refresh() -> None:
            bar.n = sum(e.value for e in epochs)
            bar.set_postfix_str(" + ".join(str(e.value) for e in epochs), refresh=False)
            bar.refresh()

        def job(k: int, _: int) -> dict[str, Any]:  # runs in a forked child
            import torch  # noqa: PLC0415

            # For good, not only while training: sending the state_dict back pickles its tensors,
            # and a large copy would enter the OpenMP pool inherited from the parent, which
            # libgomp cannot use after fork (the child hangs: seen in tests/test_inference.py once
            # the inferred noise added a parameter to the flows).
            torch.set_num_threads(1)
            return _train_flow(phi, x, prior, settings, seeds[k], False, epochs[k], starts[k])

        for k, _, result in _parallel.run_chunks(job, [(k, k + 1) for k in range(len(seeds))], workers,
                                                 poll=refresh):
            results[k] = result
        refresh()
    return results


def train(theta: Any, x: Any, prior: Prior, *, settings: EstimatorSettings | None = None, seed: int = 0,
          feature_names: Sequence[str] = SUMMARY_NAMES, cell: str = "", info: Mapping[str, Any] | None = None,
          progress: bool | None = None, workers: int | None = None,
          initial: FlowEnsemble | None = None) -> Posterior:
    """Train q(θ | x), an ensemble of ``settings.ensemble`` flows, with ``sbi``'s NPE on valid (θ, x) pairs.

    Member k starts from seed ``seed + k`` (initialisation and batch order) and sees the same
    pairs. Rows with any non-finite x are dropped here too. Each flow trains on one torch thread
    (STYLE.md §6) with no ``sbi-logs`` tracker; the members train in parallel worker processes,
    with results identical to training them one after the other.

    Args:
        theta: (N, d) parameters in ``prior.names`` order.
        x: (N, F) features.
        prior: The prior the θ were drawn from.
        settings: Estimator settings (default :class:`EstimatorSettings`).
        seed: Torch seed of the first member.
        feature_names: Names of the F features.
        cell: Cell type name (stored with the posterior).
        info: Extra metadata to keep (e.g. the protocol and training-set key).
        progress: Progress display (default: on unless ``CONDSPACE_QUIET`` is set).
        workers: Processes training members at once (default: ``$CONDSPACE_WORKERS``, else one
            per core, at most one per member).
        initial: A trained ensemble of these settings to fine-tune (member k from member k of
            ``initial``; its z-scoring is kept) instead of training from a fresh initialisation
            (used by :func:`condspace.inference.refine`).

    Raises:
        ValueError: Shapes disagree or fewer than 10 valid rows.
    """
    settings = settings or EstimatorSettings()
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    x = np.atleast_2d(np.asarray(x, dtype=float))
    if theta.shape[0] != x.shape[0] or theta.shape[1] != prior.dim or x.shape[1] != len(feature_names):
        raise ValueError(f"train: theta {theta.shape} and x {x.shape} must be (N, {prior.dim}) and "
                         f"(N, {len(feature_names)})")
    keep = np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(theta), axis=1)
    if keep.sum() < 10:
        raise ValueError(f"train: only {int(keep.sum())} valid simulations; need at least 10")
    if initial is not None and len(initial) != settings.ensemble:
        raise ValueError(f"initial: an ensemble of {len(initial)} flows cannot start the {settings.ensemble} "
                         "members of these settings")
    if progress is None:
        progress = not os.environ.get("CONDSPACE_QUIET")
    phi = _to_unbounded(theta[keep], prior, settings.transform)
    seeds = [int(seed) + k for k in range(settings.ensemble)]
    n_proc = min(_parallel.worker_count(workers, len(seeds), 2), len(seeds))
    t0 = time.perf_counter()
    members = _train_members(phi, x[keep], prior, settings, seeds, n_proc, progress,
                             None if initial is None else initial.members)
    estimator = _build_ensemble(settings, prior.dim, x.shape[1], len(members))
    estimator.load_state_dict({f"{k}.{name}": v for k, m in enumerate(members) for name, v in m["state_dict"].items()})
    estimator.eval()
    per_member = {key: [m[key] for m in members]  # one entry per flow
                  for key in ("epochs", "reached_max_epochs", "best_validation_loss", "training_loss",
                              "validation_loss")}
    meta = {**dict(info or {}), "n_train": int(keep.sum()), "seed": int(seed), "member_seeds": seeds,
            "train_s": time.perf_counter() - t0, "train_processes": n_proc, "versions": versions(), **per_member}
    return Posterior(estimator, prior, settings, feature_names, cell, meta)




def estimator_code_hash() -> str:
    """Hash of the source of everything that trains or evaluates a posterior.

    Part of the posterior cache key: a change to the estimator code, made without a new package
    version, must not reuse a posterior trained by the old code (a stale cached posterior once
    served a different network under an unchanged key). Comments count too: a retraining too many
    is cheaper than a silently stale result.
    """
    import inspect  # noqa: PLC0415

    parts = (EstimatorSettings, _to_unbounded, _from_unbounded, _log_jacobian, _build_estimator, _logistic_prior,
             FlowEnsemble, _build_ensemble, _mlp, ClassRestriction, train_restriction, Posterior, _train_flow,
             _train_members, train)
    h = hashlib.sha256()
    for obj in parts:
        try:
            h.update(inspect.getsource(obj).encode())
        except (OSError, TypeError):  # no source shipped: fall back on the object's name
            h.update(obj.__qualname__.encode())
    return h.hexdigest()[:16]


def trained_posterior(cell: str | CellType, n: int | None = None, *, settings: EstimatorSettings | None = None,
                      prior: Prior | None = None, protocol: Protocol | None = None, seed: int = 0,
                      backend: str = "numpy", cache_dir: str | Path | None = None, use_cache: bool = True,
                      progress: bool | None = None) -> tuple[Posterior, TrainingSet]:
    """Training set + trained posterior for a cell, both cached (the posterior under a key that
    adds the estimator settings, library versions and :func:`estimator_code_hash` to the
    training-set key). ``n`` training simulations, by default the cell's ``inference_budget``.

    Returns:
        (posterior, training set). ``posterior.info["cached"]`` tells whether it was loaded.
    """
    cell = _cells.get(cell)
    n = cell.inference_budget if n is None else n
    settings = settings or EstimatorSettings()
    protocol = protocol or Protocol.for_cell(cell)
    prior = prior or make_prior(cell, noise=0 if protocol.noise_std > 0 else None)  # a fixed noise is not inferred
    ts = training_set(cell, n, prior=prior, protocol=protocol, seed=seed, backend=backend, cache_dir=cache_dir,
                      use_cache=use_cache, progress=progress)
    key = cache_key({"training_set": ts.key, "settings": asdict(settings), "seed": seed, "versions": versions(),
                     "format": POSTERIOR_FORMAT, "estimator_code": estimator_code_hash()})
    path = Path(cache_dir or default_cache_dir()) / f"posterior_{cell.name}_{key[:20]}.pt"
    if use_cache and path.exists():
        try:
            post = load_posterior(path)
            if post.info.get("key") != key:
                raise ValueError(f"posterior file {path} holds another key")
            post.info["cached"] = True
            _buildrecord.note("caches", "posterior hit", append=True)
            return post, ts
        except ValueError as err:
            warnings.warn(f"{err}; retraining", RuntimeWarning, stacklevel=2)
    info = {"protocol": asdict(protocol), "training_key": ts.key, "training": ts.info, "key": key, "cached": False}
    post = train(ts.theta[ts.valid], ts.x[ts.valid], prior, settings=settings, seed=seed, cell=cell.name,
                 info=info, progress=progress)
    if settings.class_restriction:
        t0 = time.perf_counter()
        post.restriction = train_restriction(ts.theta, ts.labels, prior, seed=seed)
        post.info.update({"restriction_accuracy": post.restriction.accuracy,
                          "restriction_train_s": time.perf_counter() - t0})
    if use_cache:
        save_posterior(path, post)
    _buildrecord.note("caches", "posterior built", append=True)  # the book's build-status page
    return post, ts


