"""Reliability alarm: out-of-distribution detectors, conformal thresholds, a guarded classifier.

Names are re-exported lazily, so importing ``trustlab.ood`` loads no detector until one is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Detector": "trustlab.ood.base",
    "make_detector": "trustlab.ood.base",
    "list_detectors": "trustlab.ood.base",
    "save_detector": "trustlab.ood.base",
    "load_detector": "trustlab.ood.base",
    "ConformalThreshold": "trustlab.ood.calibration",
    "GuardedClassifier": "trustlab.ood.guard",
    "GuardedPrediction": "trustlab.ood.guard",
    "load_reference_detector": "trustlab.ood.reference",
    "detection_metrics": "trustlab.ood.metrics",
    "build_detectors": "trustlab.ood.evaluate",
    "evaluate_alarm": "trustlab.ood.evaluate",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'trustlab.ood' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
