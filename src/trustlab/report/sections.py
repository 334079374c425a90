"""Report sections: one renderer per result kind turns a result into tables and figures.

A later check adds its section by defining its result class and registering a renderer here
with ``@section("its_kind", order=...)``; the HTML template is generic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from markupsafe import Markup

from trustlab.core.results import Result
from trustlab.report import figures


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    name: str  # file stem in figures/
    caption: str
    png: bytes


@dataclass
class Section:
    key: str
    title: str
    order: int
    paragraphs: list[str] = field(default_factory=list)  # plain text, or Markup for trusted HTML
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


Renderer = Callable[[str, Result], Section]
_RENDERERS: dict[str, tuple[int, Renderer]] = {}


def section(kind: str, *, order: int) -> Callable[[Renderer], Renderer]:
    def register(fn: Renderer) -> Renderer:
        _RENDERERS[kind] = (order, fn)
        return fn

    return register


def render_sections(results: dict[str, Result]) -> list[Section]:
    """Sections for every result with a renderer, in report order (unknown kinds are listed raw)."""
    out = []
    for name, result in results.items():
        if result.kind in _RENDERERS:
            out.append(_RENDERERS[result.kind][1](name, result))
        else:
            out.append(Section(name, f"{name} ({result.kind})", 10_000, paragraphs=[result.to_json()]))
    return sorted(out, key=lambda s: (s.order, s.key))


def _numbers(values: tuple[float, ...] | None) -> str:
    if values is None:
        return "none"
    shown = ", ".join(f"{v:.4g}" for v in values[:8])
    return shown + (f", ... ({len(values)} values)" if len(values) > 8 else "")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


# Importing the producers registers their result kinds for deserialisation.
from trustlab.models.evaluation import AccuracyResult, ModelCard  # noqa: E402
from trustlab.models.training import TrainingResult  # noqa: E402
from trustlab.ood.evaluate import AlarmResult  # noqa: E402
from trustlab.robustness.evaluate import RobustAccuracyResult  # noqa: E402
from trustlab.robustness.profile import RobustnessResult  # noqa: E402
from trustlab.robustness.regions import RegionResult  # noqa: E402


@section("model_card", order=0)
def _model_card(name: str, card: ModelCard) -> Section:
    norm = "none" if card.mean is None and card.std is None else f"mean {_numbers(card.mean)}, std {_numbers(card.std)}"
    facts = [
        ("model", card.name),
        ("architecture", card.architecture or "custom"),
        ("parameters", f"{card.parameters:,}"),
        ("input shape", " x ".join(map(str, card.input_shape))),
        ("input bounds", "unbounded" if card.bounds is None else f"[{card.bounds[0]:g}, {card.bounds[1]:g}]"),
        ("normalisation (inside the model)", norm),
        ("classes", f"{len(card.class_names)}: {', '.join(card.class_names)}"),
        ("weights sha256", card.weights_sha256),
    ]
    return Section(name, "Model card", 0, paragraphs=[card.description] if card.description else [], facts=facts)


@section("training", order=5)
def _training(name: str, result: TrainingResult) -> Section:
    facts = [
        ("data", f"{result.dataset} ({result.examples:,} examples)"),
        ("epochs", str(result.epochs)),
        ("batch size", str(result.batch_size)),
        ("learning rate", f"{result.learning_rate:g} (Adam, cosine)"),
        ("seed", str(result.seed)),
        ("wall time", f"{result.seconds:.1f} s"),
    ]
    fig = Figure(
        f"{name}-curve",
        "Loss and training accuracy per epoch.",
        figures.training_curve_figure(result.loss, result.accuracy),
    )
    return Section(name, "Training", 5, facts=facts, figures=[fig])


@section("accuracy", order=10)
def _accuracy(name: str, result: AccuracyResult) -> Section:
    low, high = result.accuracy_interval
    paragraphs = [
        Markup("Accuracy on {}/{}: <b>{}</b> of {:,} examples (95% Wilson interval {} to {}).").format(
            result.dataset, result.split, _pct(result.accuracy), result.examples, _pct(low), _pct(high)
        )
    ]
    per_class = Table(
        ["class", "examples", "accuracy"],
        [
            [c, f"{s:,}", _pct(a)]
            for c, s, a in zip(result.class_names, result.per_class_support, result.per_class_accuracy)
        ],
        "Accuracy per class",
    )
    confused = Table(
        ["true class", "predicted as", "examples"],
        [[t, p, str(c)] for t, p, c in result.most_confused],
        "Most-confused pairs",
    )
    figs = [
        Figure(
            f"{name}-confusion",
            "Confusion matrix: rows are true classes, columns predictions.",
            figures.confusion_matrix_figure(result.confusion, result.class_names),
        ),
        Figure(
            f"{name}-per-class",
            "Accuracy per class.",
            figures.per_class_accuracy_figure(result.per_class_accuracy, result.class_names),
        ),
    ]
    return Section(
        name,
        f"Accuracy ({result.dataset}/{result.split})",
        10,
        paragraphs=paragraphs,
        tables=[per_class, confused],
        figures=figs,
    )


def _eps(value: float | None) -> str:
    if value is None or value != value:
        return "n/a"
    return "> eps_max" if value == float("inf") else f"{value:.4f}"


def _interval(interval: tuple[float, float] | None) -> str:
    return "n/a" if interval is None else f"{_eps(interval[0])} to {_eps(interval[1])}"


@section("robustness", order=20)
def _robustness(name: str, result: RobustnessResult) -> Section:
    attackable = len(result.labels) - result.clean_wrong
    finite = sorted(v for v in result.eps_star if 0 < v < float("inf"))
    median_all = finite[len(finite) // 2] if finite and result.censored < attackable / 2 else float("inf")
    paragraphs = [
        Markup(
            "Minimal {} perturbation flipping each prediction under <b>{}</b> on {}/{} ({:,} examples, region: {}). "
            "{:,} were already wrong (eps* = 0); {:,} were not flipped by eps_max = {:g} (censored, counted as "
            "robust up to eps_max); {:,} were non-monotonic (flipped at some eps, correct again at eps_max). "
            "Resolution {:.4g}."
        ).format(
            result.norm,
            result.attack_name,
            result.dataset,
            result.split,
            len(result.labels),
            result.region,
            result.clean_wrong,
            result.censored,
            result.eps_max,
            result.nonmonotonic,
            result.tol,
        ),
        Markup("Most sensitive classes: <b>{}</b>; most robust: <b>{}</b>.").format(
            ", ".join(result.most_sensitive), ", ".join(result.most_robust)
        ),
    ]
    facts = [
        ("attack", result.attack),
        ("median eps* of attackable examples", _eps(median_all)),
        ("model calls", f"{result.forward_calls:,} forward, {result.gradient_calls:,} gradient (per example)"),
        ("time", f"{result.seconds:.1f} s"),
    ]
    table = Table(
        ["class", "examples", "censored", "median eps* (95% CI)", "mean eps* (95% CI)"],
        [
            [
                r["class"],
                f"{r['examples']:,}",
                str(r["censored"]),
                f"{_eps(r['median'])} ({_interval(r['median_interval'])})",
                f"{'>= ' if r['mean_is_lower_bound'] else ''}{_eps(r['mean'])} ({_interval(r['mean_interval'])})",
            ]
            for r in result.per_class
        ],
        "Per-class minimal eps (censored examples enter the mean at eps_max: a lower bound, marked >=)",
    )
    figs = [
        Figure(
            f"{name}-per-class",
            "Median minimal eps per class, most sensitive first (hatched: median censored).",
            figures.per_class_eps_figure(
                result.class_names,
                [r["median"] for r in result.per_class],
                [r["median_interval"] or (float("nan"),) * 2 for r in result.per_class],
                result.eps_max,
                result.norm,
            ),
        ),
        Figure(
            f"{name}-distribution",
            "Distribution of minimal eps per class.",
            figures.eps_distribution_figure(
                result.eps_star, result.labels, result.class_names, result.eps_max, result.norm
            ),
        ),
        Figure(
            f"{name}-curve",
            "Robust accuracy derived from the per-example minimal eps (no re-attack).",
            figures.robust_accuracy_figure(
                [(result.attack_name, result.curve_eps, result.curve_accuracy)], result.norm
            ),
        ),
    ]
    return Section(
        name,
        f"Robustness: {result.attack_name} ({result.dataset}/{result.split})",
        20,
        paragraphs=paragraphs,
        facts=facts,
        tables=[table],
        figures=figs,
    )


@section("robustness_regions", order=25)
def _regions(name: str, result: RegionResult) -> Section:
    paragraphs = [
        Markup(
            "Grad-CAM towards the true class splits each image at its {:g} quantile into an object region (the top "
            "{:.0f}% of pixels) and a background region; minimal eps is searched with the perturbation restricted to "
            "each. On <b>{}</b> of attackable examples the object is more fragile than the background."
        ).format(result.quantile, 100 * (1 - result.quantile), _pct(result.object_more_fragile))
    ]
    table = Table(
        ["class", "examples", "median eps* whole", "object", "background", "object more fragile"],
        [
            [
                r["class"],
                str(r["examples"]),
                _eps(r["median_whole"]),
                _eps(r["median_object"]),
                _eps(r["median_background"]),
                _pct(r["object_more_fragile"]),
            ]
            for r in result.per_class
        ],
        "Per-class comparison (inf = more than half censored)",
    )
    medians = {
        region: [r[f"median_{region}"] for r in result.per_class] for region in ("whole", "object", "background")
    }
    fig = Figure(
        f"{name}-regions",
        "Median minimal eps per class when only one region may change.",
        figures.region_figure(result.class_names, medians, result.eps_max),
    )
    return Section(
        name,
        f"Object vs background ({result.dataset}/{result.split})",
        25,
        paragraphs=paragraphs,
        facts=[("attack", result.attack), ("time", f"{result.seconds:.1f} s")],
        tables=[table],
        figures=[fig],
    )


@section("robust_accuracy", order=22)
def _robust_accuracy(name: str, result: RobustAccuracyResult) -> Section:
    table = Table(
        ["eps", "robust accuracy"],
        [["0 (clean)", _pct(result.clean_accuracy)]]
        + [[f"{e:g}", _pct(a)] for e, a in zip(result.eps, result.accuracy)],
        "Robust accuracy at fixed budgets",
    )
    fig = Figure(
        f"{name}-curve",
        "Robust accuracy at each budget (attacked directly).",
        figures.robust_accuracy_figure(
            [(result.attack_name, (0.0, *result.eps), (result.clean_accuracy, *result.accuracy))], result.norm
        ),
    )
    facts = [("attack", result.attack), ("examples", f"{result.examples:,}"), ("time", f"{result.seconds:.1f} s")]
    return Section(
        name,
        f"Robust accuracy: {result.attack_name} ({result.dataset}/{result.split})",
        22,
        facts=facts,
        tables=[table],
        figures=[fig],
    )


def _matrix(result: AlarmResult, metric: str, caption: str, percent: bool = False) -> Table:
    def cell(value: float) -> str:
        return _pct(value) if percent else f"{value:.4f}"

    rows = [[d] + [cell(result.metrics[d][s][metric]) for s in result.sets] for d in result.detectors]
    return Table(["detector", *result.sets], rows, caption)


@section("alarm", order=30)
def _alarm(name: str, result: AlarmResult) -> Section:
    focus = "notmnist" if "notmnist" in result.sets else result.sets[0]
    best = result.best(focus)
    best_metrics = result.metrics[best][focus]
    paragraphs = [
        Markup(
            "Detectors learn the training data ({}); each is thresholded at a target false-alarm rate "
            "alpha = {:g} on {:,} held-out in-distribution inputs ({}), with the finite-sample conformal "
            "correction, and its realised false-alarm rate is measured on {:,} other held-out inputs. "
            "Scores: higher = more out-of-distribution."
        ).format(
            result.train_dataset,
            result.alpha,
            result.calibration_examples,
            result.dataset,
            result.evaluation_examples,
        ),
        Markup(
            "Best on <b>{}</b>: <b>{}</b>, AUROC {:.4f}, {} of OOD inputs accepted at 95% in-distribution accepted."
        ).format(focus, best, best_metrics["auroc"], _pct(best_metrics["fpr_ood_accepted_at_95_id"])),
    ]
    calibration = Table(
        ["detector", "threshold", "realised false alarms (95% CI)", "fit time", "scoring (ms / 1,000 inputs)", "fit"],
        [
            [
                d,
                f"{result.thresholds[d]:.5g}",
                f"{_pct(result.false_alarm_rate[d])} ({_pct(result.false_alarm_interval[d][0])} to "
                f"{_pct(result.false_alarm_interval[d][1])})",
                "n/a" if result.fit_seconds[d] is None else f"{result.fit_seconds[d]:.1f} s",
                f"{result.score_ms_per_1000[d]:.0f}",
                result.fit_notes[d],
            ]
            for d in result.detectors
        ],
        f"Calibration at alpha = {result.alpha:g}: threshold and false-alarm rate on the separate split",
    )
    full = Table(
        [
            "detector",
            "AUROC",
            "AUPR-in",
            "AUPR-out",
            "OOD accepted at 95% ID accepted",
            "ID rejected at 95% OOD caught",
            "detected at threshold",
        ],
        [
            [d]
            + [f"{result.metrics[d][focus][m]:.4f}" for m in ("auroc", "aupr_in", "aupr_out")]
            + [
                _pct(result.metrics[d][focus][m])
                for m in ("fpr_ood_accepted_at_95_id", "fpr_id_rejected_at_95_ood", "detection_rate")
            ]
            for d in result.detectors
        ],
        f"All metrics on {focus}",
    )
    sets = Table(
        ["OOD set", "inputs", "what it is"],
        [[s, f"{result.set_sizes[s]:,}", result.set_descriptions[s]] for s in result.sets],
        "Out-of-distribution sets",
    )
    auroc_rows = [[result.metrics[d][s]["auroc"] for s in result.sets] for d in result.detectors]
    figs = [
        Figure(
            f"{name}-auroc",
            "AUROC of every detector on every OOD set.",
            figures.auroc_heatmap_figure(result.detectors, result.sets, auroc_rows),
        ),
        Figure(
            f"{name}-histograms",
            "Score distributions with the calibrated threshold.",
            figures.score_histograms_figure(result.histograms, result.score_labels, result.thresholds, result.alpha),
        ),
        Figure(
            f"{name}-roc",
            "ROC curves (detection rate against false-alarm rate).",
            figures.roc_figure(result.roc_grid, result.roc),
        ),
    ]
    return Section(
        name,
        f"Reliability alarm ({result.dataset})",
        30,
        paragraphs=paragraphs,
        tables=[
            calibration,
            _matrix(result, "auroc", "AUROC (1 = perfect, 0.5 = chance)"),
            _matrix(
                result, "fpr_ood_accepted_at_95_id", "OOD inputs accepted when 95% of in-distribution is accepted", True
            ),
            _matrix(
                result,
                "detection_rate",
                f"OOD inputs raising the alarm at the alpha = {result.alpha:g} threshold",
                True,
            ),
            full,
            sets,
        ],
        figures=figs,
    )


# Sections of the explanation checks live in their own module; importing it registers them.
import trustlab.report.explain_sections  # noqa: E402, F401
