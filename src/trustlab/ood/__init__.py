"""Reliability alarm: out-of-distribution detectors, conformal thresholds, a guarded classifier.

Names are re-exported lazily, so importing ``trustlab.ood`` loads no detector until one is used.
"""

from __future__ import annotations

from trustlab.core.lazy import lazy_exports

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
    "run_alarm": "trustlab.ood.checks",
    "fit_guard": "trustlab.ood.checks",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
