"""scikit-learn estimators saved with skops (extra ``sklearn``), as probability-only classifiers.

skops stores an estimator without pickle and refuses, on loading, every type it does not trust
by default; trustlab loads such a file only when the user passes ``allow_pickle`` (the CLI's
``--allow-pickle``), the same opt-in as for a full pickle. The estimator gives probabilities
only, so checks that need gradients say they are skipped and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from trustlab.core.exceptions import ModelLoadError
from trustlab.core.files import sha256_file
from trustlab.models.classifier import BlackBoxClassifier

ERR_MISSING = 'reading .skops files needs skops: pip install "trustlab[sklearn]"'
ERR_UNTRUSTED = (
    "{path} holds types skops does not trust by default ({types}); if you trust the file, pass "
    "--allow-pickle (allow_pickle=True) to load it"
)
ERR_NOT_CLASSIFIER = "{path} holds a {kind}, not a classifier with predict_proba and n_features_in_"


class EstimatorClassifier(BlackBoxClassifier):
    """A scikit-learn classifier behind the Classifier contract: tabular inputs, probabilities
    only; identified by its file's sha256 (it has no tensors to digest)."""

    def __init__(self, estimator: Any, *, digest: str, batch_size: int = 256, **kwargs: Any) -> None:
        self.estimator = estimator
        self._digest = digest

        def proba(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(estimator.predict_proba(x.cpu().numpy().astype(np.float64))).float()

        super().__init__(
            proba,
            input_shape=(int(estimator.n_features_in_),),
            num_classes=len(estimator.classes_),
            bounds=None,
            class_names=kwargs.pop("class_names", None) or tuple(str(c) for c in estimator.classes_),
            batch_size=batch_size,
            architecture=f"sklearn:{type(estimator).__name__}",
            **kwargs,
        )

    def weights_sha256(self) -> str:
        return self._digest


def read_skops(path: Path, *, allow_untrusted: bool) -> Any:
    """The estimator in a skops file; types skops does not trust need ``allow_untrusted``. Every failure
    is a one-line ModelLoadError."""
    try:
        import skops.io as sio
    except ImportError:
        raise ModelLoadError(ERR_MISSING) from None
    try:
        untrusted = sio.get_untrusted_types(file=path)
        if untrusted and not allow_untrusted:
            raise ModelLoadError(ERR_UNTRUSTED.format(path=path, types=", ".join(untrusted)))
        return sio.load(path, trusted=untrusted or None)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: one line, never a traceback
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise ModelLoadError(f"{path} is not a readable skops file ({line})") from None


def load_skops(path: Path, *, allow_untrusted: bool, batch_size: int, kwargs: dict[str, Any]) -> EstimatorClassifier:
    """A skops file as a probability-only classifier, identified by the file's sha256; only
    ``class_names`` is taken from ``kwargs``."""
    estimator = read_skops(path, allow_untrusted=allow_untrusted)
    if not (hasattr(estimator, "predict_proba") and hasattr(estimator, "n_features_in_")):
        raise ModelLoadError(ERR_NOT_CLASSIFIER.format(path=path, kind=type(estimator).__name__))
    kwargs = {k: v for k, v in kwargs.items() if k in ("class_names",)}
    return EstimatorClassifier(estimator, digest=sha256_file(path), batch_size=batch_size, **kwargs)
