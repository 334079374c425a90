"""How backdoor results appear: report sections, CLI summary lines and the scorecard's backdoor row."""

from __future__ import annotations

from trustlab.backdoor.cleanse import BackdoorScanResult
from trustlab.backdoor.figures import norms_figure, pruning_figure, triggers_figure
from trustlab.backdoor.repair import RepairResult
from trustlab.core import format as fmt
from trustlab.core.views import Figure, Score, Section, Table, register_view


def _verdict(result: BackdoorScanResult) -> str:
    if not result.flagged:
        return (
            f"No label's minimal trigger is abnormally small: the largest anomaly index below the median is "
            f"{fmt.number(result.max_anomaly, 2)} (flagged above {result.threshold:g})."
        )
    names = ", ".join(
        f"{result.class_names[k]} (mask L1 {result.mean_norms[k]:.1f} of {result.pixels} pixels, "
        f"anomaly index {fmt.number(result.anomaly_index[k], 2)})"
        for k in result.flagged
    )
    return f"Backdoor suspected: a trigger far smaller than the others sends inputs to {names}."


def _scan(name: str, result: BackdoorScanResult) -> Section:
    spread = result.norm_spread
    many = len(result.seeds) > 1
    header = ["label", "mean norm", *(["range over seeds"] if many else []), "anomaly index", "success", "flagged"]
    rows = [
        [
            result.class_names[k],
            f"{result.mean_norms[k]:.1f}",
            *([f"{spread[k][0]:.1f}-{spread[k][1]:.1f}"] if many else []),
            fmt.number(result.anomaly_index[k], 2),
            fmt.pct(result.success[0][k]) + ("" if result.reached[0][k] else " (threshold not reached)"),
            "yes" if k in result.flagged else "",
        ]
        for k in range(len(result.mean_norms))
    ]
    settings = result.settings
    paragraphs = [
        _verdict(result),
        f"Neural Cleanse (Wang et al. 2019): for every label, the smallest mask and pattern that send "
        f"{fmt.pct(settings.success_threshold, 0)} of {result.examples:,} clean inputs to it, all labels in one "
        f"batched optimisation; the anomaly index is |norm - median| / (1.4826 x MAD), and a label is flagged "
        f"when it exceeds {result.threshold:g} with a norm below the median. Blended (full-image) and all-to-all "
        "triggers are known blind spots of the method.",
    ]
    if many and any(set(f) != set(result.flagged) for f in result.flagged_per_seed):
        paragraphs.append(
            "The seeds disagree: flagged per seed "
            + "; ".join(
                f"seed {s}: {', '.join(result.class_names[k] for k in f) or 'none'}"
                for s, f in zip(result.seeds, result.flagged_per_seed)
            )
            + "."
        )
    return Section(
        name,
        f"Backdoor scan ({result.dataset})",
        paragraphs=paragraphs,
        facts=[
            ("seeds", ", ".join(str(s) for s in result.seeds)),
            ("median norm", f"{result.median_norm:.1f}"),
            ("epochs (max)", str(settings.epochs)),
            ("optimisation steps", f"{result.steps:,}"),
            ("time", fmt.seconds(result.seconds)),
        ],
        tables=[Table(header, rows, "Minimal trigger per candidate label", foldable=False)],
        figures=[
            Figure(f"{name}-norms", "Mask L1 norm of each label's minimal trigger.", norms_figure(result)),
            Figure(
                f"{name}-triggers", "The reversed triggers: where (mask) and what is stamped.", triggers_figure(result)
            ),
        ],
    )


def _scan_summary(result: BackdoorScanResult) -> list[str]:
    return [
        _verdict(result),
        "minimal trigger norms: "
        + ", ".join(f"{c} {n:.1f}" for c, n in zip(result.class_names, result.mean_norms))
        + f" (median {result.median_norm:.1f}; {fmt.seconds(result.seconds)})",
    ]


def _scan_scores(result: BackdoorScanResult) -> list[Score]:
    return [
        Score(
            "backdoor",
            "backdoor.anomaly_index",
            "largest anomaly index of a small trigger (Neural Cleanse)",
            result.max_anomaly,
            "MAD units",
            False,
            sentence=_verdict(result),
        )
    ]


def _asr(value: float | None) -> str:
    return "n/a" if value is None else fmt.pct(value)


def _repair(name: str, result: RepairResult) -> Section:
    targets = ", ".join(result.class_names[k] for k in result.targets)
    rows = [
        ["clean accuracy", fmt.pct(result.accuracy_before), fmt.pct(result.accuracy_after)],
        ["attack success, reversed trigger", fmt.pct(result.asr_reversed_before), fmt.pct(result.asr_reversed_after)],
        ["attack success, true trigger", _asr(result.asr_true_before), _asr(result.asr_true_after)],
    ]
    if result.method == "unlearning":
        how = (
            f"Fine-tuned for {result.epochs} epoch(s) at learning rate {result.learning_rate:g} on "
            f"{result.repair_examples:,} clean examples plus {result.stamped_examples:,} copies stamped with the "
            "reversed trigger and kept at their true labels."
        )
    else:
        how = (
            f"Cut {result.pruned:,} of {result.features:,} penultimate features "
            f"({fmt.pct(result.pruned / max(1, result.features), 1)}), "
            f"ranked by how much more they fire on {result.repair_examples:,} stamped than clean inputs."
        )
    paragraphs = [
        f"Removing the trigger of {targets} by {result.method}. {how} Measured on {result.evaluation_examples:,} "
        f"clean examples the repair did not use: clean accuracy {fmt.pct(result.accuracy_before)} -> "
        f"{fmt.pct(result.accuracy_after)} ({result.accuracy_drop:+.2f} points lost), attack success "
        f"{_asr(result.asr_true_before if result.asr_true_before is not None else result.asr_reversed_before)} -> "
        f"{fmt.pct(result.asr_after)}."
    ]
    facts = [("time", fmt.seconds(result.seconds))]
    if result.true_trigger:
        facts.append(("true trigger", result.true_trigger))
    if result.artefact:
        facts.append(("repaired model", result.artefact))
    figures = []
    if result.pruning_curve:
        figures.append(Figure(f"{name}-pruning", "Accuracy and attack success while pruning.", pruning_figure(result)))
    return Section(
        name,
        f"Backdoor repair: {result.method} ({result.dataset})",
        paragraphs=paragraphs,
        facts=facts,
        tables=[Table(["", "before", "after"], rows, "Before and after the repair", foldable=False)],
        figures=figures,
    )


def _repair_summary(result: RepairResult) -> list[str]:
    return [
        f"{result.method}: clean accuracy {fmt.pct(result.accuracy_before)} -> {fmt.pct(result.accuracy_after)}, "
        f"attack success (reversed trigger) {fmt.pct(result.asr_reversed_before)} -> "
        f"{fmt.pct(result.asr_reversed_after)}"
        + (
            ""
            if result.asr_true_after is None
            else f", true trigger {_asr(result.asr_true_before)} -> {_asr(result.asr_true_after)}"
        )
    ]


register_view(BackdoorScanResult, order=47, section=_scan, summary=_scan_summary, scores=_scan_scores)
register_view(RepairResult, order=48, section=_repair, summary=_repair_summary)
