"""How the scorecard and a failed check appear: the scorecard opens the report."""

from __future__ import annotations

from markupsafe import Markup

from trustlab.audit.plan import CheckFailure
from trustlab.audit.scorecard import Gate, Scorecard
from trustlab.core import format as fmt
from trustlab.core.views import Section, Table, register_view


def _light(verdict: str) -> Markup:
    return Markup('<span class="verdict {}">{}</span>').format("na" if verdict == "n/a" else verdict, verdict)


def _value(gate: Gate) -> str:
    if gate.value is None:
        return "n/a"
    shown = fmt.pct(gate.value) if gate.unit.startswith("share") else f"{gate.value:.4g}"
    if gate.interval is not None and all(v == v for v in gate.interval):
        low, high = gate.interval
        shown += (
            f" ({fmt.pct(low)} to {fmt.pct(high)})" if gate.unit.startswith("share") else f" ({low:.4g} to {high:.4g})"
        )
    return shown


def _threshold(gate: Gate) -> str:
    if gate.green is None and gate.red is None:
        return "none set"
    better = ">=" if gate.higher_is_better else "<="
    worse = "<" if gate.higher_is_better else ">"
    parts = []
    if gate.green is not None:
        parts.append(f"green {better} {gate.green:g}")
    if gate.red is not None:
        parts.append(f"red {worse} {gate.red:g}")
    return ", ".join(parts)


def _scorecard(name: str, card: Scorecard) -> Section:
    rows = [
        [gate.axis, gate.name, _value(gate), gate.unit, _light(gate.verdict), _threshold(gate), gate.sentence]
        for gate in card.gates
    ]
    rows += [[axis, "not measured", "n/a", "", _light("n/a"), "", why] for axis, why in card.skipped.items()]
    covered = {g.axis for g in card.gates} | set(card.skipped)
    rows += [
        [axis, "not measured", "n/a", "", _light("n/a"), "", "no check for this axis has run"]
        for axis in card.axes
        if axis not in covered
    ]
    header = ["axis", "figure", "value (95% CI)", "unit", "verdict", "policy", "what it means"]
    table = Table(header, rows, foldable=False)
    worst = card.worst()
    paragraphs = [
        Markup("Overall: <b>{}</b> ({} of {} gates red; thresholds from {}).").format(
            _light(worst), len(card.failed), sum(g.verdict != "n/a" for g in card.gates), card.policy
        )
    ]
    return Section(name, "Trust scorecard", paragraphs=paragraphs, tables=[table])


def _scorecard_summary(card: Scorecard) -> list[str]:
    lines = [f"{g.verdict:>5}  {g.axis}: {g.name} = {_value(g)} {g.unit}" for g in card.gates]
    lines += [f"  n/a  {axis}: {why}" for axis, why in card.skipped.items()]
    return lines + [f"overall: {card.worst()} ({len(card.failed)} red)"]


def _failure(name: str, failure: CheckFailure) -> Section:
    kind = "an error in the model, data or options" if failure.user_error else "a bug in trustlab; please report it"
    facts = [("check", failure.step), ("axis", failure.axis), ("error", f"{failure.error}: {failure.message}")]
    if failure.where:
        facts.append(("where", failure.where))
    paragraphs = [f"This check failed ({kind}); the audit went on without it."]
    return Section(name, f"Check failed: {failure.step}", paragraphs=paragraphs, facts=facts)


def _failure_summary(failure: CheckFailure) -> list[str]:
    return [f"check {failure.step} failed: {failure.error}: {failure.message}"]


register_view(Scorecard, order=-10, section=_scorecard, summary=_scorecard_summary)
register_view(CheckFailure, order=1, section=_failure, summary=_failure_summary)
