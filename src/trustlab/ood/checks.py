"""Reliability-alarm checks: fit detectors on the training data, calibrate them on one half of a
held-out split, measure false alarms on the other half and detection on OOD sets (a run
directory's alarm result); or fit one guard for deployment."""

from __future__ import annotations

from typing import Any

from trustlab.core.exceptions import InputError, UnknownNameError
from trustlab.data.ood_sets import MNIST_SHAPE, ood_suite
from trustlab.models.classifier import Classifier
from trustlab.models.probe import feature_layer, hookable
from trustlab.ood.calibration import split_holdout
from trustlab.ood.evaluate import ALL_DETECTORS, POSTHOC, AlarmResult, build_detectors, evaluate_alarm, parse_detector
from trustlab.ood.guard import GuardedClassifier


def holdout_halves(holdout: Any, *, seed: int = 0) -> tuple[Any, Any]:
    """Two disjoint, seeded halves of a held-out split: calibration, then evaluation."""
    first, second = split_holdout(len(holdout), seed=seed)
    return holdout.subset(first), holdout.subset(second)


LOGIT_DETECTORS = ("msp", "energy", "maxlogit")


def features_unavailable(classifier: Classifier) -> str | None:
    """Why the feature-space detectors (Mahalanobis, KNN) cannot read this classifier's
    penultimate features, in one sentence for a report note; None when they can."""
    try:
        feature_layer(hookable(classifier))
    except (InputError, UnknownNameError) as exc:
        return f"feature-space detectors (mahalanobis, knn) left out: {exc}"
    return None


# ~30 decoder (generator) passes forward and back per input: asked for by name, not run by default
EXPENSIVE = ("vae:regret", "wgan:regret")


def default_detectors(classifier: Classifier) -> tuple[str, ...]:
    """Every detector for MNIST-like images (1 x 28 x 28, which the shipped generative detectors
    learned) except the expensive ones (``EXPENSIVE``); the post-hoc ones, which read the classifier,
    for anything else. Where the classifier's features cannot be read (:func:`features_unavailable`
    says why), the post-hoc ones are the logit-based ones only (msp, energy, maxlogit)."""
    posthoc = POSTHOC if features_unavailable(classifier) is None else LOGIT_DETECTORS
    generative = tuple(d for d in ALL_DETECTORS if d not in POSTHOC and d not in EXPENSIVE)
    return posthoc + generative if tuple(classifier.input_shape) == MNIST_SHAPE else posthoc


def default_guard_detector(classifier: Classifier) -> str:
    """The detector a guard uses when none is named and none can be compared on OOD sets (inputs
    other than 1 x 28 x 28): Mahalanobis where features can be read, else MSP."""
    return "mahalanobis" if features_unavailable(classifier) is None else "msp"


CHOICE_LIMIT = 1000  # inputs per OOD set when comparing detectors for a guard
# the combination with the best worst case in benchmarks/near_ood.py (0.931; the best single detector 0.857)
GUARD_COMBINATIONS = ("fisher[energy,knn,vae:recon]",)


def choose_guard_detector(
    classifier: Classifier,
    train: Any,
    calibration: Any,
    evaluation: Any,
    *,
    pretrained: bool = True,
    data_dir: Any = None,
    seed: int = 0,
    limit: int = CHOICE_LIMIT,
) -> tuple[str, AlarmResult | None]:
    """The detector with the best worst case over the built-in OOD families (far and near) for
    1 x 28 x 28 models, and the comparison it was chosen from; for other inputs (no built-in OOD
    sets) :func:`default_guard_detector` and None. Candidates: every default detector and
    ``GUARD_COMBINATIONS`` with the shipped generative ones (``pretrained``, features readable), the
    post-hoc ones otherwise."""
    if tuple(classifier.input_shape) != MNIST_SHAPE:
        return default_guard_detector(classifier), None
    if pretrained:
        combinations = GUARD_COMBINATIONS if features_unavailable(classifier) is None else ()
        candidates = default_detectors(classifier) + combinations
    else:
        candidates = tuple(d for d in default_detectors(classifier) if d in POSTHOC)
    sets = ood_suite(evaluation.x, n=limit, root=data_dir, seed=seed, labels=getattr(evaluation, "y", None))
    fitted = build_detectors(candidates, classifier=classifier, train=train, pretrained=pretrained)
    result = evaluate_alarm(fitted, calibration=calibration, evaluation=evaluation, ood_sets=sets)
    return result.most_reliable(), result


def run_alarm(
    run: Any,
    classifier: Classifier,
    train: Any,
    calibration: Any,
    evaluation: Any,
    *,
    detectors: list[str] | tuple[str, ...] | None = None,
    alpha: float = 0.05,
    pretrained: bool = True,
    include: list[str] | None = None,
    limit: int | None = None,
    data_dir: Any = None,
    seed: int = 0,
    notmnist_split: str = "test",
    extra_sets: dict[str, Any] | None = None,
    fitted_detectors: dict[str, Any] | None = None,
    notes: tuple[str, ...] = (),
) -> AlarmResult:
    """Fit, calibrate and evaluate ``detectors`` (default: :func:`default_detectors`) into ``run``.
    The built-in OOD suite is used for 1 x 28 x 28 inputs; ``extra_sets`` are the user's own;
    ``fitted_detectors`` (label -> FittedDetector) are detectors the user trained already."""
    detectors = list(detectors or default_detectors(classifier))
    for spec in detectors:
        parse_detector(spec)  # a typo fails before anything is fitted
    sets = {}
    if tuple(evaluation.input_shape) == MNIST_SHAPE:
        sets = ood_suite(
            evaluation.x, n=limit, root=data_dir, seed=seed, include=include, notmnist_split=notmnist_split,
            labels=getattr(evaluation, "y", None),
        )  # fmt: skip
    elif not extra_sets:
        raise InputError(
            f"the built-in OOD sets are 1 x 28 x 28 images and this data is {tuple(evaluation.input_shape)}: "
            "pass your own out-of-distribution inputs with --ood-file"
        )
    sets.update(extra_sets or {})
    key = f"alarm-{evaluation.name}"
    with run.timed(key):
        fitted = build_detectors(detectors, classifier=classifier, train=train, pretrained=pretrained)
        fitted.update(fitted_detectors or {})
        result = evaluate_alarm(
            fitted,
            calibration=calibration,
            evaluation=evaluation,
            ood_sets=sets,
            alpha=alpha,
            dataset=f"{evaluation.name}/{evaluation.split} (held out)",
            train_dataset=f"{train.name}/{train.split}",
            notes=notes,
        )
    return run.add(key, result)


def fit_guard(
    classifier: Classifier,
    train: Any,
    calibration: Any,
    evaluation: Any,
    *,
    detector: str = "vae:recon",
    alpha: float = 0.05,
    pretrained: bool = True,
) -> tuple[GuardedClassifier, float]:
    """A guarded classifier: ``detector`` fitted on ``train``, thresholded at ``alpha`` on
    ``calibration``; also returns its realised false-alarm rate on ``evaluation``."""
    fitted = build_detectors([detector], classifier=classifier, train=train, pretrained=pretrained)[detector.strip()]
    guard = GuardedClassifier.calibrate(classifier, fitted.detector, calibration, alpha=alpha)
    realised = guard.predict(evaluation.x).alarms.double().mean().item()
    return guard, realised
