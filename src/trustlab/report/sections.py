"""Report sections: one renderer per result kind turns a result into tables and figures.

A later check adds its section by defining its result class and registering a renderer here
with ``@section("its_kind", order=...)``; the HTML template is generic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from markupsafe import Markup

from trustlab.report import figures
from trustlab.report.results import Result


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
