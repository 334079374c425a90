"""How the model card, a training record and an accuracy result appear in the report and the CLI."""

from __future__ import annotations

from markupsafe import Markup

from trustlab.core import format as fmt
from trustlab.core.views import Figure, Score, Section, Table, register_view
from trustlab.models import figures
from trustlab.models.evaluation import AccuracyResult, ModelCard
from trustlab.models.training import TrainingResult


def _model_card(name: str, card: ModelCard) -> Section:
    norm = (
        "none"
        if card.mean is None and card.std is None
        else f"mean {fmt.numbers(card.mean)}, std {fmt.numbers(card.std)}"
    )
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
    return Section(name, "Model card", paragraphs=[card.description] if card.description else [], facts=facts)


def _training(name: str, result: TrainingResult) -> Section:
    facts = [
        ("data", f"{result.dataset} ({result.examples:,} examples)"),
        ("epochs", str(result.epochs)),
        ("batch size", str(result.batch_size)),
        ("learning rate", f"{result.learning_rate:g} (Adam, cosine)"),
        ("seed", str(result.seed)),
        ("wall time", fmt.seconds(result.seconds)),
    ]
    curve = figures.training_curve_figure(result.loss, result.accuracy)
    fig = Figure(f"{name}-curve", "Loss and training accuracy per epoch.", curve)
    return Section(name, "Training", facts=facts, figures=[fig])


def _training_summary(result: TrainingResult) -> list[str]:
    return [
        f"trained {result.architecture} on {result.dataset} ({result.examples:,} examples) in "
        f"{result.seconds:.1f} s: final loss {result.loss[-1]:.4f}, training accuracy {fmt.pct(result.accuracy[-1])}"
    ]


def _accuracy(name: str, result: AccuracyResult) -> Section:
    low, high = result.accuracy_interval
    paragraphs = [
        Markup("Accuracy on {}/{}: <b>{}</b> of {:,} examples (95% Wilson interval {} to {}).").format(
            result.dataset, result.split, fmt.pct(result.accuracy), result.examples, fmt.pct(low), fmt.pct(high)
        )
    ]
    per_class = Table(
        ["class", "examples", "accuracy"],
        [
            [c, f"{s:,}", fmt.pct(a)]
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
    title = f"Accuracy ({result.dataset}/{result.split})"
    return Section(name, title, paragraphs=paragraphs, tables=[per_class, confused], figures=figs)


def _accuracy_summary(result: AccuracyResult) -> list[str]:
    return [f"accuracy {fmt.pct(result.accuracy)} on {result.dataset}/{result.split} ({result.examples:,} examples)"]


def _accuracy_scores(result: AccuracyResult) -> list[Score]:
    worst = (
        min((a, c) for a, c in zip(result.per_class_accuracy, result.class_names) if a is not None)
        if result.examples
        else (None, "")
    )
    sentence = (
        f"{fmt.pct(result.accuracy)} of the {result.examples:,} examples of {result.dataset}/{result.split} are "
        f"classified correctly; the weakest class is {worst[1]} ({fmt.pct(worst[0])})."
    )
    return [
        Score(
            "accuracy", "accuracy", "accuracy", result.accuracy, "share of examples", True,
            tuple(result.accuracy_interval), sentence,
        )
    ]  # fmt: skip


register_view(ModelCard, order=0, section=_model_card)
register_view(TrainingResult, order=5, section=_training, summary=_training_summary)
register_view(AccuracyResult, order=10, section=_accuracy, summary=_accuracy_summary, scores=_accuracy_scores)
