"""Views only format: every number a section shows is the result's own field, formatted once.

Sections are rendered from the demo's run directory (one real result of most kinds) and from a
small robust-accuracy run; the tabular and robust-vs-natural sections are checked the same way
in their own test modules."""

from __future__ import annotations

import pytest
import torch

from shift_helpers import check_shift_section
from trustlab.capabilities import load_views
from trustlab.core import format as fmt
from trustlab.core.views import Section, render_sections, summary_lines, view_for
from trustlab.report.run import read_results


def _text(section: Section) -> str:
    parts = [str(p) for p in section.paragraphs] + [f"{k}: {v}" for k, v in section.facts]
    parts += [" | ".join(row) for table in section.tables for row in table.rows]
    return "\n".join(parts)


def _rows(section: Section, caption_start: str) -> list[list[str]]:
    (table,) = [t for t in section.tables if t.caption.startswith(caption_start)]
    return table.rows


def _check_model_card(section, card):
    assert f"{card.parameters:,}" in _text(section) and card.weights_sha256 in _text(section)


def _check_training(section, result):
    assert ("epochs", str(result.epochs)) in section.facts and ("seed", str(result.seed)) in section.facts


def _check_accuracy(section, result):
    assert f"<b>{fmt.pct(result.accuracy)}</b> of {result.examples:,}" in str(section.paragraphs[0])
    rows = _rows(section, "Accuracy per class")
    assert [r[2] for r in rows] == [fmt.pct(a) for a in result.per_class_accuracy]


def _check_robustness(section, result):
    shown = dict(section.facts)["median eps* of attackable examples (95% CI)"]
    assert shown.startswith(fmt.eps(result.median_eps_star)) and fmt.eps(result.median_interval[0]) in shown
    rows = _rows(section, "Per-class minimal eps")
    assert [r[4].split(" (")[0] for r in rows] == [fmt.eps(c.median) for c in result.per_class]
    assert [int(r[2]) for r in rows] == [c.clean_wrong for c in result.per_class]
    assert f"median minimal eps {fmt.eps(result.median_eps_star)}" in summary_lines([result])[0]


def _check_bracket(section, result):
    text = " ".join(str(p) for p in section.paragraphs)
    assert f"<b>{fmt.pct(result.certified_accuracy)}</b> of the examples are certified" in text
    assert dict(section.facts)["median bracket width (95% CI)"].startswith(fmt.eps(result.median_width))
    rows = _rows(section, "Per-class brackets")
    assert [r[5] for r in rows] == [fmt.eps(c.width_median) for c in result.per_class]


def _check_regions(section, result):
    assert f"<b>{fmt.pct(result.object_more_fragile)}</b>" in str(section.paragraphs[0])
    rows = _rows(section, "Per-class comparison")
    assert [r[3] for r in rows] == [fmt.eps(c.median_object) for c in result.per_class]
    assert [r[5] for r in rows] == [fmt.pct(c.object_more_fragile) for c in result.per_class]


def _check_alarm(section, result):
    calibration = _rows(section, "Calibration")
    assert [r[1] for r in calibration] == [f"{result.thresholds[d]:.5g}" for d in result.detectors]
    auroc = _rows(section, "AUROC")
    for row, detector in zip(auroc, result.detectors):
        assert row[1:] == [fmt.number(result.metrics[detector][s].auroc, 4) for s in result.sets]
    best, chosen = result.best(), result.most_reliable()
    headline = str(section.paragraphs[1])
    assert f"<b>{chosen}</b>, AUROC at least {fmt.number(result.worst_auroc(chosen), 4)}" in headline
    assert f"<b>{result.weakest_family(chosen)}</b>" in headline
    assert f"{best}, AUROC {fmt.number(result.metrics[best][result.focus].auroc, 4)}" in headline
    ranked = section.tables[0].rows  # the worst-case ranking opens the section
    assert [row[0] for row in ranked] == list(result.ranking())
    assert [row[1] for row in ranked] == [fmt.number(result.worst_auroc(d), 4) for d in result.ranking()]
    lines = summary_lines([result])
    assert (
        len(lines) == len(result.detectors)
        and fmt.pct(result.false_alarm_rate[best]) in lines[result.detectors.index(best)]
    )


def _check_attributions(section, result):
    rows = section.tables[0].rows
    assert [r[2] for r in rows] == [f"{result.gini[m]:.3f}" for m in result.methods]
    assert [r[3] for r in rows] == [f"{result.deletion_auc[m]:.3f}" for m in result.methods]


def _check_feature_visualisation(section, result):
    assert f"{min(result.probabilities):.3f}" in str(section.paragraphs[0])


def _check_attack_explanations(section, result):
    rows = section.tables[0].rows
    assert [r[1] for r in rows] == [fmt.pct(v) for v in result.recall_before]
    assert [r[2] for r in rows] == [fmt.pct(v) for v in result.recall_after]
    assert fmt.pct(result.accuracy_after) in str(section.paragraphs[0])


def _check_explanation_sanity(section, result):
    assert f"<b>{fmt.number(result.randomised_similarity)}</b>" in str(section.paragraphs[0])
    assert f"<b>{fmt.number(result.deletion_auc)}</b>" in str(section.paragraphs[1])
    assert [r[1] for r in section.tables[0].rows] == [fmt.number(v) for v in result.similarity]


def _check_scorecard(section, card):
    rows = section.tables[0].rows
    assert [r[1] for r in rows[: len(card.gates)]] == [g.name for g in card.gates]
    assert [str(r[4]) for r in rows[: len(card.gates)]] == [
        f'<span class="verdict {"na" if g.verdict == "n/a" else g.verdict}">{g.verdict}</span>' for g in card.gates
    ]
    for row, gate in zip(rows, card.gates):
        if gate.unit.startswith("share"):
            assert row[2].startswith(fmt.pct(gate.value))
        assert row[6] == gate.sentence


def _check_failure(section, failure):
    assert ("error", f"{failure.error}: {failure.message}") in section.facts


def _check_robust_accuracy(section, result):
    rows = section.tables[0].rows
    assert [r[1] for r in rows] == [fmt.pct(result.clean_accuracy)] + [fmt.pct(a) for a in result.accuracy]


def _check_backdoor_scan(section, result):
    rows = _rows(section, "Minimal trigger per candidate label")
    assert [r[1] for r in rows] == [f"{n:.1f}" for n in result.mean_norms]
    assert [r[-3] for r in rows] == [fmt.number(a, 2) for a in result.anomaly_index]
    assert [r[-1] == "yes" for r in rows] == [k in result.flagged for k in range(len(rows))]
    assert dict(section.facts)["median norm"] == f"{result.median_norm:.1f}"
    assert fmt.number(result.max_anomaly, 2) in str(section.paragraphs[0]) or result.flagged


CHECKS = {
    "model_card": _check_model_card,
    "training": _check_training,
    "accuracy": _check_accuracy,
    "robustness": _check_robustness,
    "robustness.bracket": _check_bracket,
    "robustness_regions": _check_regions,
    "alarm": _check_alarm,
    "attributions": _check_attributions,
    "feature_visualisation": _check_feature_visualisation,
    "attack_explanations": _check_attack_explanations,
    "robust_accuracy": _check_robust_accuracy,
    "explanation_sanity": _check_explanation_sanity,
    "scorecard": _check_scorecard,
    "backdoor.scan": _check_backdoor_scan,
    "audit.failure": _check_failure,
    "shift": check_shift_section,  # the demo's audit runs the shift step; the check lives with the capability
}
CHECKED_ELSEWHERE = {
    "tabular_explanations", "robust_vs_natural", "backdoor.repair", "fairness", "fairness.mitigation", "shift.transfer",
    "study.generalisation", "robustness.smoothing",
}  # fmt: skip


@pytest.fixture(scope="module")
def results(demo_run):
    from trustlab.audit.plan import CheckFailure
    from trustlab.data import load_dataset
    from trustlab.explain.featurevis import activation_maximisation
    from trustlab.models import load_reference_model
    from trustlab.studies.attack_explanations import explain_attack

    data = load_dataset("mnist", "sample").subset(slice(0, 40))
    model = load_reference_model()
    found = read_results(demo_run[0])  # the demo audit: most kinds, and the scorecard over them
    found["feature-visualisation"] = activation_maximisation(model, steps=5)
    found["attack-explanations"] = explain_attack(model, data.x, data.y, eps=0.1, gallery=2)
    found["failed-regions"] = CheckFailure("regions", "adversarial robustness", "RuntimeError", "boom", False, "x.py:1")
    return found


def test_every_result_kind_has_a_numbers_check():
    load_views()
    from trustlab.core.results import record_type, result_kinds

    kinds = {k for k in result_kinds() if record_type(k).__module__.startswith("trustlab.")}
    assert kinds == set(CHECKS) | CHECKED_ELSEWHERE


@pytest.fixture(scope="module")
def sections(results):
    return render_sections(results)  # figures are drawn once for the module


def test_every_section_shows_its_results_numbers(results, sections):
    sections = {s.key: s for s in sections}
    assert {r.kind for r in results.values()} == set(CHECKS)
    for name, result in results.items():
        CHECKS[result.kind](sections[name], result)


def test_scorecard_scores_are_the_results_own_figures(results):
    by_kind = {r.kind: r for r in results.values()}
    (median,) = view_for("robustness").scores(by_kind["robustness"])
    assert median.value == by_kind["robustness"].median_eps_star and median.higher_is_better
    assert median.interval == tuple(by_kind["robustness"].median_interval)
    (accuracy,) = view_for("accuracy").scores(by_kind["accuracy"])
    assert accuracy.value == by_kind["accuracy"].accuracy and accuracy.interval == by_kind["accuracy"].accuracy_interval
    alarm = by_kind["alarm"]
    auroc, false_alarms = view_for("alarm").scores(alarm)
    chosen = alarm.most_reliable()
    assert auroc.value == alarm.metrics[chosen][alarm.weakest_set(chosen)].auroc and auroc.higher_is_better
    assert auroc.value == max(min(alarm.metrics[d][s].auroc for s in alarm.sets) for d in alarm.detectors)
    assert false_alarms.value == alarm.false_alarm_rate[chosen] and not false_alarms.higher_is_better
    budgets = view_for("robust_accuracy").scores(by_kind["robust_accuracy"])
    # the demo's scorecard judged exactly the scores its checks' views give, value for value
    scored = [
        (s.key, s.name, s.value) for r in results.values() if r.kind != "scorecard" for s in view_for(r.kind).scores(r)
    ]
    assert sorted((g.key, g.name, g.value) for g in by_kind["scorecard"].gates) == sorted(scored)
    assert [s.value for s in budgets] == list(by_kind["robust_accuracy"].accuracy)
    for result in results.values():
        for score in view_for(result.kind).scores(result):
            assert score.unit and score.name


def test_sections_come_in_view_order(results, sections):
    keys = [s.key for s in sections]
    orders = [view_for(results[k].kind).order for k in keys]
    assert orders == sorted(orders) and keys[:2] == ["scorecard", "model_card"]


def test_a_view_fails_loudly_on_a_wrong_field(results):
    """The checks compare real values: a result with one changed figure no longer passes."""
    import dataclasses

    accuracy = next(r for r in results.values() if r.kind == "accuracy")
    changed = dataclasses.replace(accuracy, per_class_accuracy=tuple(torch.zeros(10).tolist()))
    (section,) = render_sections({"a": changed})
    with pytest.raises(AssertionError):
        _check_accuracy(section, accuracy)
