"""Saving and loading posteriors as plain tensors behind a checksum (no pickles).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from condspace import _io
from condspace.inference.estimators import (
    RESTRICTION_CLASSES,
    ClassRestriction,
    EstimatorSettings,
    _build_ensemble,
    _mlp,
    versions,
)
from condspace.inference.posterior import Posterior
from condspace.inference.prior import Prior

CACHE_FORMAT = "condspace.training_set/1"
POSTERIOR_FORMAT = "condspace.posterior/2"  # 2: an ensemble of flows


# ----- saving and loading ------------------------------------------------------------------------
def _plain(obj: Any) -> Any:
    """Convert numpy scalars/arrays inside dicts/lists into plain Python (for weights_only loading)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, str):
        return str(obj)  # str subclasses (TorchVersion) are not plain
    return obj


def save_posterior(path: str | Path, posterior: Posterior) -> Path:
    """Save a posterior as plain tensors and dicts (``torch.save``), atomically, behind a checksum.

    Stores the estimator's ``state_dict``, the builder settings, the prior bounds and names, the
    feature names, the cell name, the training metadata and package versions, and the class
    restriction (classifier) if any; no pickled objects, so :func:`load_posterior` can use
    ``weights_only=True``. The file is a SHA-256 header line followed by the ``torch.save`` bytes
    (:func:`condspace._io.write_checked`): a one-byte change anywhere is detected on load.
    """
    import torch  # noqa: PLC0415

    blob = {
        "format": POSTERIOR_FORMAT,
        "members": len(posterior.estimator),
        "state_dict": {k: v.detach().cpu().clone() for k, v in posterior.estimator.state_dict().items()},
        "settings": _plain(asdict(posterior.settings)),
        "prior": posterior.prior.to_dict(),
        "feature_names": list(posterior.feature_names),
        "cell": posterior.cell,
        "info": _plain(posterior.info),
        "versions": versions(),
        "restriction": None if posterior.restriction is None else {
            "state_dict": {k: v.detach().cpu().clone() for k, v in posterior.restriction.net.state_dict().items()},
            "hidden": posterior.restriction.hidden, "layers": posterior.restriction.layers,
            "accuracy": float(posterior.restriction.accuracy)},
    }
    buf = io.BytesIO()
    torch.save(blob, buf)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return _io.write_checked(path, buf.getvalue())


def load_posterior(path: str | Path) -> Posterior:
    """Rebuild a posterior saved by :func:`save_posterior` (``torch.load(weights_only=True)``).

    Raises:
        ValueError: A damaged file (fails its checksum; :class:`condspace._io.ChecksumError`), a
            file without a checksum (older format), another format, or a state dict that does not
            fit the settings; the message names the file.
    """
    import torch  # noqa: PLC0415

    try:
        payload = _io.read_checked(path)  # ChecksumError (a ValueError) names a damaged file
    except OSError as err:
        raise ValueError(f"posterior file {path} is unreadable ({err.strerror or err})") from err
    try:
        blob = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, unpickling refused, ...
        raise ValueError(f"posterior file {path} is unreadable ({type(err).__name__}: {err})") from err
    if not isinstance(blob, dict) or blob.get("format") != POSTERIOR_FORMAT:
        raise ValueError(f"posterior file {path} is not a {POSTERIOR_FORMAT} file")
    missing = [k for k in ("members", "state_dict", "settings", "prior", "feature_names", "cell") if k not in blob]
    if missing:
        raise ValueError(f"posterior file {path} lacks {missing}")
    members = blob["members"]
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ValueError(f"posterior file {path}: no valid number of flows ('members': {members!r})")
    settings = EstimatorSettings(**blob["settings"])
    prior = Prior.from_dict(blob["prior"])
    names = blob["feature_names"]
    estimator = _build_ensemble(settings, prior.dim, len(names), members)
    try:
        estimator.load_state_dict(blob["state_dict"], strict=True)
    except RuntimeError as err:
        raise ValueError(f"posterior file {path}: the saved weights do not fit the saved settings ({err})") from err
    estimator.eval()
    restriction = None
    if blob.get("restriction") is not None:
        r = blob["restriction"]
        net = _mlp(prior.dim, int(r["hidden"]), int(r["layers"]), len(RESTRICTION_CLASSES))
        try:
            net.load_state_dict(r["state_dict"], strict=True)
        except RuntimeError as err:
            raise ValueError(f"posterior file {path}: the saved restriction does not fit its settings ({err})") from err
        net.eval()
        restriction = ClassRestriction(net, prior, int(r["hidden"]), int(r["layers"]), float(r["accuracy"]))
    return Posterior(estimator, prior, settings, names, blob["cell"], blob.get("info", {}), restriction)


