"""Evaluate detectors: fit, calibrate on one held-out in-distribution split, measure the realised
false-alarm rate on a second one, and score every OOD set. Produces one :class:`AlarmResult`.

Detectors are named by a short spec, ``name[:score][+ic]``: ``msp``, ``energy``, ``maxlogit``,
``mahalanobis``, ``knn``, ``vae:recon``, ``vae:nelbo``, ``wgan:delta_z``, ``wgan:recon``; ``+ic``
adds the input-complexity correction to a generative score with its slope fitted on the training
data (``vae:nelbo+ic``); ``+ic1`` uses slope 1, Serrà et al.'s S(x) exactly.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trustlab.core.exceptions import InputError
from trustlab.core.progress import progress
from trustlab.core.results import Record, Result
from trustlab.core.stats import wilson_interval
from trustlab.data.ood_sets import ood_family
from trustlab.models.classifier import Classifier
from trustlab.ood.base import Detector, detector_class, make_detector
from trustlab.ood.calibration import ConformalThreshold
from trustlab.ood.combined import CombinedDetector, parse_combination
from trustlab.ood.generative import ComplexityCorrected
from trustlab.ood.metrics import detection_metrics, roc_curve
from trustlab.ood.reference import REFERENCE_DETECTORS, load_reference_detector, reference_record

POSTHOC = ("msp", "energy", "maxlogit", "mahalanobis", "knn")
GENERATIVE = (
    "vae:recon",
    "vae:nelbo",
    "vae:regret",
    "ratio",
    "vae:nelbo+ic",
    "vae:nelbo+ic1",
    "wgan:delta_z",
    "wgan:recon",
    "wgan:regret",
    "wgan:delta_z+ic",
    "wgan:recon+ic",
)
ALL_DETECTORS = POSTHOC + GENERATIVE
HISTOGRAM_BINS = 40
ROC_POINTS = 101


@dataclass(frozen=True)
class DetectorSpec:
    """A parsed ``name[:score][+ic]`` detector spec (see module doc)."""

    label: str
    name: str
    score: str | None
    complexity: float | None | bool  # False: none; None: fitted slope; a number: that slope


def parse_detector(spec: str) -> DetectorSpec:
    """``name[:score][+ic]`` (or a combination ``rule[spec,spec,...]``, see
    :mod:`trustlab.ood.combined`) -> DetectorSpec, with one-line errors for unknown names or scores."""
    text = spec.strip()
    combination = parse_combination(text)
    if combination is not None:
        for part in combination[1]:
            parse_detector(part)  # each part a known detector
        return DetectorSpec(text, "combined", None, False)
    base, _, suffix = text.partition("+")
    if suffix not in ("", "ic", "ic1"):
        raise InputError(f"detector {spec!r}: the only suffixes are +ic (fitted slope) and +ic1 (slope 1)")
    complexity = {"": False, "ic": None, "ic1": 1.0}[suffix]
    name, _, score = base.partition(":")
    cls = detector_class(name)
    if cls.needs_classifier and (score or complexity is not False):
        raise InputError(f"detector {spec!r}: post-hoc detectors take no ':score' or '+ic'")
    if name == "complexity":
        raise InputError("write the complexity correction as a suffix: vae:nelbo+ic")
    return DetectorSpec(text, name, score or None, complexity)


@dataclass
class FittedDetector:
    """A detector ready to score, its fit time in seconds (None: unknown) and where it came from."""

    detector: Detector
    fit_seconds: float | None
    note: str


def build_detectors(
    specs: list[str] | tuple[str, ...],
    *,
    classifier: Classifier,
    train: Any,
    pretrained: bool = True,
    options: dict[str, dict[str, Any]] | None = None,
) -> dict[str, FittedDetector]:
    """Fit (or load) each detector in ``specs`` on the in-distribution training data ``train``.

    With ``pretrained``, ``vae`` and ``wgan`` are the shipped MNIST detectors (their fit time is
    the recorded training time); otherwise they are trained here. A generative model is built
    once and scored every requested way. ``options`` maps a detector name to constructor options.
    """
    options = options or {}
    parsed = [parse_detector(s) for s in specs]
    generative: dict[str, tuple[Detector, float | None, str]] = {}
    out: dict[str, FittedDetector] = {}

    def generative_part(spec: DetectorSpec) -> tuple[Detector, float | None, str]:
        if spec.name not in generative:
            generative[spec.name] = _generative(spec.name, train, pretrained, options.get(spec.name, {}))
        base, seconds, note = generative[spec.name]
        detector = base.rescored(spec.score) if spec.score else base
        if spec.complexity is not False:
            start = time.perf_counter()
            detector = ComplexityCorrected(base=detector, slope=spec.complexity).fit(train)
            seconds = (seconds or 0.0) + time.perf_counter() - start
        return detector, seconds, note

    for spec in progress(parsed, desc="alarm: fitting detectors", total=len(parsed), unit="detector"):
        if spec.name == "combined":
            rule, parts = parse_combination(spec.label)
            seconds = 0.0  # the shipped generative parts' recorded training time, plus the fit here
            components = []
            for part in map(parse_detector, parts):
                if detector_class(part.name).needs_classifier:
                    components.append(make_detector(part.name, classifier, **options.get(part.name, {})))
                else:
                    detector, part_seconds, _ = generative_part(part)
                    components.append(detector)
                    seconds += part_seconds or 0.0
            began = time.perf_counter()
            combined = CombinedDetector(classifier, components=components, rule=rule).fit(train)
            seconds += time.perf_counter() - began
            share = 1 - combined.reference_share
            note = f"{rule} combination; post-hoc parts fitted on {share:.0%} of the training data"
            out[spec.label] = FittedDetector(combined, seconds, note)
            continue
        if detector_class(spec.name).needs_classifier:
            start = time.perf_counter()
            detector = make_detector(spec.name, classifier, **options.get(spec.name, {})).fit(train)
            out[spec.label] = FittedDetector(detector, time.perf_counter() - start, "fitted on the training data")
            continue
        detector, seconds, note = generative_part(spec)
        out[spec.label] = FittedDetector(detector, seconds, note)
    return out


def _generative(name: str, train: Any, pretrained: bool, options: dict[str, Any]) -> tuple[Detector, float, str]:
    x = train.x if hasattr(train, "x") else torch.as_tensor(train)
    if pretrained and name in REFERENCE_DETECTORS:
        if tuple(x.shape[1:]) != (1, 28, 28):
            raise InputError(
                f"the shipped {name} detector was trained on MNIST (1 x 28 x 28); inputs here are "
                f"{tuple(x.shape[1:])}: train one on your images with --no-pretrained"
            )
        record = reference_record(name)
        return load_reference_detector(name), float(record["fit_seconds"]), "shipped weights (training time recorded)"
    start = time.perf_counter()
    detector = make_detector(name, **options).fit(train)
    return detector, time.perf_counter() - start, "trained on the training data"


@dataclass(frozen=True)
class DetectionMetrics(Record):
    """One detector on one OOD set (see :func:`trustlab.ood.metrics.detection_metrics`)."""

    kind = "alarm.metrics"
    auroc: float
    aupr_in: float
    aupr_out: float
    fpr_ood_accepted_at_95_id: float
    fpr_id_rejected_at_95_ood: float
    detection_rate: float | None  # share of OOD inputs raising the alarm at the calibrated threshold


@dataclass(frozen=True)
class ScoreHistogram(Record):
    """One detector's score counts on shared bins: in-distribution and each OOD set (edge bins hold the tails)."""

    kind = "alarm.histogram"
    log: bool  # log-spaced bins (positive scores spanning decades)
    edges: tuple[float, ...]
    in_distribution: tuple[int, ...]
    sets: dict[str, tuple[int, ...]]


def focus_set(sets: tuple[str, ...] | list[str]) -> str:
    """The OOD set headline figures are quoted on: notMNIST when present (the standard far-OOD
    pair for MNIST models), else the first set."""
    return "notmnist" if "notmnist" in sets else sets[0]


@dataclass(frozen=True)
class AlarmResult(Result):
    """Detection table for detectors x OOD sets, calibrated thresholds and realised false-alarm rates."""

    kind = "alarm"
    dataset: str  # in-distribution data the held-out splits come from
    train_dataset: str
    alpha: float
    calibration_examples: int
    evaluation_examples: int
    detectors: tuple[str, ...]
    score_labels: dict[str, str]
    sets: tuple[str, ...]
    set_sizes: dict[str, int]
    set_descriptions: dict[str, str]
    focus: str  # the OOD set headline figures are quoted on
    metrics: dict[str, dict[str, DetectionMetrics]]  # detector -> set
    thresholds: dict[str, float]
    false_alarm_rate: dict[str, float]
    false_alarm_interval: dict[str, tuple[float, float]]
    fit_seconds: dict[str, float | None]
    fit_notes: dict[str, str]
    score_ms_per_1000: dict[str, float]
    histograms: dict[str, ScoreHistogram]
    roc_grid: tuple[float, ...]
    roc: dict[str, dict[str, tuple[float, ...]]]  # detector -> set -> detection rate on roc_grid
    notes: tuple[str, ...] = ()  # what the reader should know, e.g. why some detectors were left out
    families: dict[str, str] = dataclasses.field(default_factory=dict)  # set -> family (a set alone: its own)

    def family(self, ood_set: str) -> str:
        """The family ``ood_set`` belongs to (see ``trustlab.data.ood_sets.OOD_FAMILIES``)."""
        return self.families.get(ood_set, ood_set)

    @property
    def family_names(self) -> tuple[str, ...]:
        """The families of the sets, in the sets' order."""
        return tuple(dict.fromkeys(self.family(s) for s in self.sets))

    def family_auroc(self, detector: str) -> dict[str, float]:
        """Per family, ``detector``'s worst AUROC over the family's sets."""
        out: dict[str, float] = {}
        for name in self.sets:
            family = self.family(name)
            out[family] = min(out.get(family, math.inf), self.metrics[detector][name].auroc)
        return out

    def weakest_family(self, detector: str) -> str:
        """The family on which ``detector`` has its lowest AUROC."""
        by_family = self.family_auroc(detector)
        return min(by_family, key=by_family.get)

    def worst_auroc(self, detector: str) -> float:
        """``detector``'s lowest AUROC over every OOD set (equivalently, every family)."""
        return min(self.metrics[detector][s].auroc for s in self.sets)

    def ranking(self) -> tuple[str, ...]:
        """Detectors from the best worst case to the worst: how to choose one when the kind of
        out-of-distribution input is not known in advance."""
        return tuple(sorted(self.detectors, key=lambda d: -self.worst_auroc(d)))

    def best(self, ood_set: str | None = None, metric: str = "auroc") -> str:
        """The detector with the highest ``metric`` on ``ood_set`` (default: the focus set)."""
        ood_set = ood_set or self.focus
        return max(self.detectors, key=lambda d: getattr(self.metrics[d][ood_set], metric))

    def weakest_set(self, detector: str) -> str:
        """The OOD set on which ``detector`` has its lowest AUROC."""
        return min(self.sets, key=lambda s: self.metrics[detector][s].auroc)

    def most_reliable(self) -> str:
        """The detector whose worst AUROC over all OOD sets is highest: the one to deploy when the
        kind of out-of-distribution input is not known in advance."""
        return self.ranking()[0]


def _histogram(in_scores: np.ndarray, sets: dict[str, np.ndarray]) -> ScoreHistogram:
    pooled = np.concatenate([in_scores, *sets.values()])
    lo, hi = np.quantile(pooled, [0.005, 0.995])
    lo, hi = min(lo, in_scores.min()), max(hi, np.quantile(in_scores, 0.999))
    if not hi > lo:
        hi = lo + 1.0
    log = bool(lo > 0 and hi / lo > 20)  # positive scores spanning decades: log-spaced bins
    edges = np.geomspace(lo, hi, HISTOGRAM_BINS + 1) if log else np.linspace(lo, hi, HISTOGRAM_BINS + 1)

    def counts(values: np.ndarray) -> tuple[int, ...]:
        return tuple(np.histogram(np.clip(values, lo, hi), bins=edges)[0].tolist())

    return ScoreHistogram(
        log=log,
        edges=tuple(edges.tolist()),
        in_distribution=counts(in_scores),
        sets={name: counts(v) for name, v in sets.items()},
    )


def evaluate_alarm(
    detectors: dict[str, FittedDetector],
    *,
    calibration: Any,
    evaluation: Any,
    ood_sets: dict[str, Any],
    alpha: float = 0.05,
    dataset: str = "",
    train_dataset: str = "",
    notes: tuple[str, ...] = (),
) -> AlarmResult:
    """Calibrate each detector on ``calibration`` (held-out in-distribution inputs), measure its
    false alarms on ``evaluation`` (a second held-out split) and its detection of each OOD set."""
    if not ood_sets:
        raise InputError("no OOD sets to evaluate against")
    cal_x = calibration.x if hasattr(calibration, "x") else calibration
    eval_x = evaluation.x if hasattr(evaluation, "x") else evaluation
    set_x = {name: s.x for name, s in ood_sets.items()}
    metrics, thresholds, far, far_ci, score_ms, histograms, roc = {}, {}, {}, {}, {}, {}, {}
    grid: list[float] = []
    for label, fitted in progress(detectors.items(), desc="alarm: scoring", total=len(detectors), unit="detector"):
        det = fitted.detector
        start = time.perf_counter()
        cal_scores, eval_scores = det.score(cal_x), det.score(eval_x)
        out_scores = {name: det.score(x).numpy() for name, x in set_x.items()}
        scored = len(cal_x) + len(eval_x) + sum(len(x) for x in set_x.values())
        score_ms[label] = 1000 * (time.perf_counter() - start) / scored * 1000
        threshold = ConformalThreshold.fit(cal_scores, alpha)
        thresholds[label] = threshold.threshold
        alarms = int(threshold.alarms(eval_scores).sum())
        far[label] = alarms / len(eval_scores)
        far_ci[label] = wilson_interval(alarms, len(eval_scores))
        in_scores = eval_scores.numpy()
        metrics[label] = {
            name: DetectionMetrics(**detection_metrics(in_scores, scores, threshold.threshold))
            for name, scores in out_scores.items()
        }
        histograms[label] = _histogram(in_scores, out_scores)
        roc[label] = {}
        for name, scores in out_scores.items():
            grid, tpr = roc_curve(in_scores, scores, points=ROC_POINTS)
            roc[label][name] = tuple(tpr)
    return AlarmResult(
        dataset=dataset,
        train_dataset=train_dataset,
        alpha=float(alpha),
        calibration_examples=len(cal_x),
        evaluation_examples=len(eval_x),
        detectors=tuple(detectors),
        score_labels={label: f.detector.score_label for label, f in detectors.items()},
        sets=tuple(ood_sets),
        focus=focus_set(tuple(ood_sets)),
        set_sizes={name: len(x) for name, x in set_x.items()},
        set_descriptions={name: getattr(s, "description", name) for name, s in ood_sets.items()},
        metrics=metrics,
        thresholds=thresholds,
        false_alarm_rate=far,
        false_alarm_interval=far_ci,
        fit_seconds={label: f.fit_seconds for label, f in detectors.items()},
        fit_notes={label: f.note for label, f in detectors.items()},
        score_ms_per_1000=score_ms,
        histograms=histograms,
        roc_grid=tuple(grid),
        roc=roc,
        notes=tuple(notes),
        families={name: ood_family(name) for name in ood_sets},
    )
