"""Robustness: how small a perturbation flips each prediction, per example and per class.

* ``attacks``: FGSM, PGD, APGD-CE, FMN, Square behind one ``Attack.attack(model, x, y, eps=..., mask=...)``;
* ``search.minimal_eps``: batched per-example bisection for the minimal eps;
* ``profile``: per-class statistics with bootstrap intervals, and the JSON result;
* ``regions``: object vs background perturbation via Grad-CAM;
* ``evaluate.robust_accuracy``: robust accuracy at fixed budgets;
* ``smoothing``: randomised smoothing (Cohen et al. 2019), a certified L2 lower bound;
* ``checks``: the above written into a run directory (what the CLI and the audit call).
"""

from trustlab.core.lazy import lazy_exports

_EXPORTS = {
    **{name: "trustlab.robustness.attacks" for name in ("APGD", "FGSM", "FMN", "PGD", "Square", "Attack")},
    "AttackResult": "trustlab.robustness.attacks",
    "make_attack": "trustlab.robustness.attacks",
    "minimal_eps": "trustlab.robustness.search",
    "MinimalEps": "trustlab.robustness.search",
    "robustness_result": "trustlab.robustness.profile",
    "RobustnessResult": "trustlab.robustness.profile",
    "region_search": "trustlab.robustness.regions",
    "region_result": "trustlab.robustness.regions",
    "RegionResult": "trustlab.robustness.regions",
    "robust_accuracy": "trustlab.robustness.evaluate",
    "RobustAccuracyResult": "trustlab.robustness.evaluate",
    "run_robustness": "trustlab.robustness.checks",
    **{name: "trustlab.robustness.smoothing" for name in ("certify", "smoothed_predict")},
    **{name: "trustlab.robustness.smoothing" for name in ("SmoothingResult", "SmoothedPrediction")},
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
