"""A classifier guarded by a calibrated OOD alarm, saved and loaded as one artefact.

``predict(x)`` returns, per input, the label and class probabilities, the detector's score,
its conformal p-value and the alarm flag (p-value at most alpha: the input is too unlike the
training data to trust the answer). The wrapped classifier is never modified. Post-hoc
detectors share the classifier's forward pass, so their alarm costs almost nothing extra.

Artefact: one safetensors file holding the classifier, the detector's learned tensors
(``detector.*``) and the calibration scores, with the descriptions as JSON metadata. No pickles.

The classifier is stored in one of two ways. A classifier built from a registered architecture
is stored as its weights (``classifier.*``), rebuilt from the registry. Any other model trustlab
can load (TorchScript, ``torch.export``, ONNX, a plain module) is stored *inside* the guard as
the bytes of a TorchScript archive or ``torch.export`` program (``classifier_archive``, see
:mod:`trustlab.models.portable`), checked to reproduce the model's outputs before it is written.
Embedding the model was chosen over storing the model file's path and sha256: a guard is what
gets deployed, so it must stay one self-contained file that works when moved to another machine,
and cannot silently pair its calibrated threshold with a model file that changed or vanished.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_save

from trustlab.core.exceptions import InputError, ModelLoadError
from trustlab.core.files import atomic_write_bytes
from trustlab.models.artefacts import classifier_from_description, classifier_state
from trustlab.models.classifier import Classifier
from trustlab.models.portable import module_archive, module_from_archive
from trustlab.ood.base import (
    Detector,
    PosthocDetector,
    detector_class,
    detector_from_metadata,
    detector_metadata,
    read_artefact,
)
from trustlab.ood.calibration import ConformalThreshold

FORMAT = "trustlab-guard/1"
ARCHIVE = "classifier_archive"  # the embedded model's bytes, for classifiers outside the registry


@dataclass(frozen=True, eq=False)
class GuardedPrediction:
    """Per-input answers of a guarded classifier (tensors of length N)."""

    labels: torch.Tensor
    probabilities: torch.Tensor
    scores: torch.Tensor
    p_values: torch.Tensor
    alarms: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def records(self, class_names: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """One JSON-able dict per input."""
        out = []
        for i in range(len(self)):
            label = int(self.labels[i])
            out.append(
                {
                    "label": label,
                    "class": class_names[label] if class_names else str(label),
                    "probability": float(self.probabilities[i, label]),
                    "score": float(self.scores[i]),
                    "p_value": float(self.p_values[i]),
                    "alarm": bool(self.alarms[i]),
                }
            )
        return out


class GuardedClassifier:
    """A ``Classifier``, a fitted ``Detector`` and a conformal threshold at false-alarm rate alpha."""

    def __init__(self, classifier: Classifier, detector: Detector, threshold: ConformalThreshold) -> None:
        if not isinstance(classifier, Classifier):
            raise InputError(f"classifier must be a trustlab Classifier, got {type(classifier).__name__}")
        if not detector.fitted:
            raise InputError(f"the {detector.name} detector is not fitted; call fit() before guarding a classifier")
        if isinstance(detector, PosthocDetector) and detector.classifier is not classifier:
            raise InputError("a post-hoc detector must read the classifier it guards (pass the same Classifier)")
        if tuple(detector.input_shape_) != tuple(classifier.input_shape):
            raise InputError(
                f"the detector expects inputs of shape {detector.input_shape_}, the classifier {classifier.input_shape}"
            )
        self.classifier = classifier
        self.detector = detector
        self.threshold = threshold

    @classmethod
    def calibrate(
        cls, classifier: Classifier, detector: Detector, calibration_inputs: Any, *, alpha: float = 0.05
    ) -> GuardedClassifier:
        """Threshold ``detector`` at false-alarm rate ``alpha`` on held-out in-distribution inputs
        (not those it was fitted on: their scores are optimistically low)."""
        x = calibration_inputs.x if hasattr(calibration_inputs, "x") else calibration_inputs
        return cls(classifier, detector, ConformalThreshold.fit(detector.score(x), alpha))

    @property
    def alpha(self) -> float:
        return self.threshold.alpha

    def __repr__(self) -> str:
        return (
            f"GuardedClassifier({self.classifier!r}, detector={self.detector!r}, alpha={self.alpha:g}, "
            f"threshold={self.threshold.threshold:.6g})"
        )

    def predict(self, x: Any) -> GuardedPrediction:
        """Inputs are validated by the first call that reads them (the detector or the classifier:
        both expect the same shape and bounds), not once more here."""
        if isinstance(self.detector, PosthocDetector):
            logits, scores = self.detector.score_with_logits(x)
        else:
            logits, scores = self.classifier.logits(x), self.detector.score(x)
        probabilities = torch.softmax(logits, dim=1)
        return GuardedPrediction(
            labels=probabilities.argmax(dim=1),
            probabilities=probabilities,
            scores=scores,
            p_values=self.threshold.p_values(scores),
            alarms=self.threshold.alarms(scores),
        )

    # ------------------------------------------------------------------ artefact --------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write classifier, detector and calibration as one safetensors file (atomically). A
        classifier outside the architecture registry travels as an embedded archive (module doc)."""
        metadata = {"format": FORMAT, "classifier": json.dumps(self.classifier.describe())}
        if self.classifier.architecture is not None:
            tensors = {f"classifier.{k}": v for k, v in classifier_state(self.classifier).items()}
        else:
            kind, data = module_archive(self.classifier)
            tensors = {ARCHIVE: torch.frombuffer(bytearray(data), dtype=torch.uint8)}
            metadata["classifier_archive"] = kind
        tensors.update({f"detector.{k}": v.detach().cpu().contiguous() for k, v in self.detector.state().items()})
        tensors.update(self.threshold.state())
        metadata.update({**detector_metadata(self.detector), "calibration": json.dumps(self.threshold.describe())})
        return atomic_write_bytes(path, safetensors_save(tensors, metadata=metadata))

    @classmethod
    def load(cls, path: str | os.PathLike, *, batch_size: int = 256) -> GuardedClassifier:
        tensors, metadata = read_artefact(path, FORMAT)

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        described = json.loads(metadata["classifier"])
        if "classifier_archive" in metadata:
            if ARCHIVE not in tensors:
                raise ModelLoadError(f"{path} names a stored model but holds none ({ARCHIVE} is missing)")
            shape = tuple(described["input_shape"])
            module = module_from_archive(metadata["classifier_archive"], tensors[ARCHIVE].numpy().tobytes(), shape)
            classifier = classifier_from_description(described, {}, Path(path), batch_size, module=module)
        else:
            classifier = classifier_from_description(described, part("classifier."), Path(path), batch_size)
        spec = json.loads(metadata["detector"])
        reads_classifier = detector_class(spec["name"]).needs_classifier
        detector = detector_from_metadata(spec, part("detector."), classifier if reads_classifier else None)
        threshold = ConformalThreshold.from_state(tensors, json.loads(metadata["calibration"]))
        return cls(classifier, detector, threshold)
