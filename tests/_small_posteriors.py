"""The small, fast STG posteriors of the noise and missed-spike tests: a ±20 % box around one
published set, 1,200 simulations, one small flow (about half a minute on one core).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from condspace import cells, inference


def around_example(example: str, protocol: inference.Protocol, **recording: Any) -> inference.Posterior:
    """A posterior on a ±20 % box around the STG set ``example``, simulated with ``protocol``.

    Args:
        example: Name of an STG example set.
        protocol: Simulation protocol of the training set (and of the posterior's checks).
        **recording: ``noise=`` and ``missed=`` of :func:`condspace.inference.make_prior`: which of
            the recording's parameters are inferred, with their upper bounds.
    """
    stg = cells.get("stg")
    ex = stg.examples[example]
    prior = inference.make_prior(stg, bounds={n: (0.8 * ex[n], 1.2 * ex[n]) for n in stg.inferred_names},
                                 **recording)
    ts = inference.training_set(stg, 1200, prior=prior, protocol=protocol, seed=0, use_cache=False, progress=False)
    # Batches of 128 at learning rate 1e-3: the standard 3e-3 was chosen for batches of 1024 (an
    # eighth of the steps per epoch); at 3e-3 with these small batches the missed-spike posterior
    # reproduced its thinned recording at 0.53 where the true set reaches 0.70 (measured 2026-12-02).
    settings = inference.EstimatorSettings(hidden_features=32, num_transforms=2, max_epochs=80, batch_size=128,
                                           learning_rate=1e-3, transform="logit", ensemble=1,
                                           class_restriction=False)
    return inference.train(ts.theta[ts.valid], ts.x[ts.valid], prior, settings=settings, seed=0, cell="stg",
                           info={"protocol": asdict(protocol)}, progress=False)


def samples_of(post: inference.Posterior, trains: list, duration: float, n: int = 300,
               seed: int = 1) -> list:
    """``n`` posterior samples (n, d) of each spike train (ms) observed over ``duration`` (ms)."""
    return [post.sample(n, inference.observe(train, duration)[0], seed=seed) for train in trains]
