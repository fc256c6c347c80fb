"""Scores of a trained posterior that the book's claims rest on: predictive checks and coverage.

Chapter 2 states that the posterior reproduces the shipped recordings and that its credible
regions have the coverage they claim. ``tools/science_check.py`` (``make check``) and
``benchmarks/inference_ablation.py`` measure exactly these two things, with the same code and the
same thresholds, so that a claim, its guard and its ablation cannot drift apart.

Thresholds, and why:

- ``PREDICTIVE_MIN``: a posterior whose samples reproduce the recording less often than four times
  in five is not a usable degenerate set of that recording (SCIENCE.md §6: the quality of an
  inferred set is the fraction of its samples whose simulated activity matches).
- ``COVERAGE_TOLERANCE``: with ≈ 1000 held-out simulations the binomial standard error at the
  50 % level is ≈ 0.016, so a band of ±0.1 flags a real miscalibration, not noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from condspace import inference

PREDICTIVE_MIN = 0.8
COVERAGE_TOLERANCE = 0.1
COVERAGE_LEVELS = (0.5, 0.9)


@dataclass
class PosteriorScores:
    """What :func:`score_posterior` measured.

    Attributes:
        predictive: Recording name → fraction of its simulated posterior samples that reproduce it.
        coverage: Nominal level → empirical joint-HPD coverage on held-out simulations.
        n_check: Posterior samples simulated per recording.
        n_test: Held-out simulations the coverage was measured on.
        classes: Recording name → its observed class.
        notes: Recording name → why its predictive fraction is NaN (no samples could be drawn), and
            ``"coverage"`` → how many held-out simulations had no posterior sample in the box.
    """

    predictive: dict[str, float]
    coverage: dict[float, float]
    n_check: int
    n_test: int
    classes: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def verdicts(self) -> list[dict[str, Any]]:
        """One row per check: ``check``, ``value``, ``requirement``, ``passed`` (a NaN value never passes)."""
        rows = [{"check": f"predictive check, {name} ({self.classes.get(name, '?')})", "value": value,
                 "requirement": f">= {PREDICTIVE_MIN}", "passed": bool(value >= PREDICTIVE_MIN)}
                for name, value in self.predictive.items()]
        rows += [{"check": f"coverage at nominal {level:g}", "value": value,
                  "requirement": f"{level:g} ± {COVERAGE_TOLERANCE}",
                  "passed": bool(abs(value - level) <= COVERAGE_TOLERANCE)}
                 for level, value in self.coverage.items()]
        return rows

    @property
    def passed(self) -> bool:
        """True when every check of :meth:`verdicts` passed."""
        return all(row["passed"] for row in self.verdicts())


def score_posterior(posterior: Any, trains: Mapping[str, Any], duration: float, test: Any, *, n_check: int,
                    levels: Sequence[float] = COVERAGE_LEVELS, n_samples: int = 1000, seed: int = 0,
                    backend: str = "numpy") -> PosteriorScores:
    """Predictive check of every recording and coverage on held-out simulations.

    Args:
        posterior: A trained :class:`condspace.inference.Posterior`.
        trains: Recording name → spike times (ms).
        duration: Length of the recordings (ms).
        test: Held-out :class:`condspace.inference.TrainingSet` (``theta``, ``x``, ``valid``).
        n_check: Posterior samples simulated per recording (≥ 1).
        levels: Nominal credibility levels of the coverage, in (0, 1).
        n_samples: Posterior samples per held-out simulation for the coverage.
        seed: Seed of the posterior draws and of the simulation noise.
        backend: Simulation backend.

    Raises:
        ValueError: ``n_check`` < 1 or no valid held-out simulation.
    """
    if int(n_check) < 1:
        raise ValueError(f"n_check: need at least one posterior sample per recording, got {n_check}")
    valid = np.asarray(test.valid, dtype=bool)
    if not valid.any():
        raise ValueError("test: no valid held-out simulation to measure coverage on; use a larger n_test")
    predictive, classes, notes = {}, {}, {}
    for name, spikes in trains.items():
        classes[name] = str(inference.observe(spikes, duration)[1]["label"])
        try:
            check = inference.predictive_check(posterior, spikes, int(n_check), duration=duration, seed=seed,
                                               backend=backend)
        except RuntimeError as err:  # the flow puts (almost) no mass in the box on this class: nothing to check
            predictive[name], notes[name] = float("nan"), str(err).split(";")[0]
            continue
        predictive[name] = check.fraction
    cov = inference.expected_coverage(posterior, test.theta[valid], test.x[valid], levels=list(levels),
                                      n_samples=n_samples, seed=seed)
    coverage = {float(a): float(e) for a, e in zip(cov["nominal"], cov["empirical"], strict=True)}
    empty = int(np.isnan(cov.attrs["ranks"]).sum())  # no posterior sample inside the box: nothing covers θ
    if empty:
        notes["coverage"] = f"{empty} of {int(valid.sum())} held-out simulations had no posterior sample inside " \
                            "the prior box (counted as not covered)"
    return PosteriorScores(predictive, coverage, int(n_check), int(valid.sum()), classes, notes)


__all__ = ["COVERAGE_LEVELS", "COVERAGE_TOLERANCE", "PREDICTIVE_MIN", "PosteriorScores", "score_posterior"]


def _hardest(kind: str, strength: float) -> str:
    """A perturbation of the robustness table in words."""
    return {"integrator": "the reference integrator", "noise": f"noise of σ = {strength:g} µA/cm² before filtering",
            "jitter": f"a jitter of ±{strength:g} ms", "missed": f"{strength:.0%} of the spikes missed",
            "duration": f"a recording of {strength:g} s"}.get(kind, f"{kind} {strength:g}")


def robustness_sentence(table: Any, about: Mapping[str, str]) -> str:
    """What ``benchmarks/robustness.py``'s table shows, in words computed from it (chapter 2).

    Args:
        table: The benchmark's table (pandas DataFrame, one row per misspecified recording).
        about: Its ``#`` header lines (``refinement`` says why no refined fractions are present).
    """
    mean = table.groupby(["kind", "strength"])["predictive"].mean()
    base, ref = mean.get(("baseline", 0.0), np.nan), mean.get(("integrator", 0.0), np.nan)
    noise = table[table["kind"] == "noise"]
    by_std = noise.groupby("noise_std")["predictive"].mean()
    perturbed = table[~table["kind"].isin(["baseline"])].groupby(["kind", "strength"])["predictive"].mean()
    parts = [f"Averaged over the sets, the amortised posterior's predictive check is {base:.2f} on recordings of the "
             f"training simulator and {ref:.2f} on the reference integrator's"]
    if len(by_std):
        tonic = noise[noise["class"] == "spiking"].groupby("noise_std")["predictive"].mean()
        parts.append(f"; under the strongest noise (std {by_std.index.max():.2g} µA/cm² after filtering) it is "
                     f"{by_std.iloc[-1]:.2f}, and {tonic.iloc[-1]:.2f} for the tonic sets alone")
    parts.append(f". The hardest perturbation is {_hardest(*perturbed.idxmin())} ({perturbed.min():.2f}). ")
    scored = table[table["hpd_rank"].notna()]
    inside = (scored["hpd_rank"] < 0.9).groupby(scored["kind"] == "baseline").mean()
    parts.append(f"The true conductances lie in the 90 % HPD region for {inside.get(True, np.nan):.0%} of the "
                 f"training simulator's recordings and {inside.get(False, np.nan):.0%} of the perturbed ones")
    considered = table["predictive_refined"].notna()
    if considered.any():
        refined = int(table.loc[considered, "refined"].eq(True).sum())
        low = table.loc[considered, "predictive_refined"].min()
        parts.append(f"; after refinement the worst recording reaches {low:.2f} ({refined} refined, "
                     f"{'all' if low >= PREDICTIVE_MIN else 'not all'} of the {int(considered.sum())} considered "
                     f"at or above {PREDICTIVE_MIN})")
    else:
        parts.append(f"; no refined fractions in this file (refinement: {about.get('refinement', 'not recorded')})")
    return "".join(parts) + "."


LEGACY_LEARNING_RATE = 1e-3
"""The Adam learning rate of benchmark files whose header records none (the standard until 2026-12-02)."""


def learning_rate_note(about: Mapping[str, str]) -> str:
    """A sentence on the learning rate a benchmark file's flows were trained at, if not this build's.

    ``benchmarks/inference_ablation.py`` and ``benchmarks/robustness.py`` record the standard
    learning rate in their header (``# learning_rate: …``); files written before that trained at
    :data:`LEGACY_LEARNING_RATE`. Their rows come from their own posteriors, so a reader should
    know when those were trained otherwise than the page's.

    Args:
        about: The header of the file (``recordings.read_annotated_csv``).

    Returns:
        ``""`` when the file's rate is the standard one, else one sentence (with a leading space).
    """
    now = inference.standard_settings().learning_rate
    recorded = about.get("learning_rate")
    rate = LEGACY_LEARNING_RATE if recorded is None else float(recorded)
    if rate == now:
        return ""
    when = " (the standard when the file was written; its header predates the field)" if recorded is None else ""
    return (f" Its posteriors were trained at Adam learning rate {rate:g}{when}; the posterior of this page "
            f"at {now:g}, which converges in about half the epochs.")
