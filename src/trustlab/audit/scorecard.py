"""The trust scorecard: every headline score the capabilities' views give, judged against a
policy (TOML, thresholds per score key), one verdict per gate; also as JSON and JUnit XML."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from trustlab.core.exceptions import InputError
from trustlab.core.results import Record, Result
from trustlab.core.views import AXES, Score, view_for

VERDICTS = ("green", "amber", "red", "n/a")


@dataclass(frozen=True)
class Gate(Record):
    """One score with its thresholds and verdict."""

    kind = "audit.gate"
    axis: str
    key: str
    name: str
    value: float | None
    unit: str
    higher_is_better: bool
    interval: tuple[float, float] | None
    sentence: str
    green: float | None  # thresholds from the policy (None: no verdict)
    red: float | None
    verdict: str  # green, amber, red, or n/a
    source: str  # the result it came from


@dataclass(frozen=True)
class Scorecard(Result):
    """Every gate of an audit with its verdict, the axes in order, why any axis has no figure, and the
    policy the thresholds came from."""

    kind = "scorecard"
    measures_model = False
    gates: tuple[Gate, ...]
    axes: tuple[str, ...]  # axes in scorecard order, including those no check spoke for
    skipped: dict[str, str]  # axis -> why no figure (check not applicable, failed, or not built yet)
    policy: str  # where the thresholds came from

    @property
    def failed(self) -> tuple[Gate, ...]:
        return tuple(g for g in self.gates if g.verdict == "red")

    def worst(self) -> str:
        """The worst verdict of any gate (n/a when none has a verdict)."""
        verdicts = [g.verdict for g in self.gates if g.verdict != "n/a"]
        return max(verdicts, key=("green", "amber", "red").index) if verdicts else "n/a"


def load_policy(path: str | Path | None = None) -> tuple[dict[str, dict[str, float]], str]:
    """Thresholds per score key from a TOML file (default: the shipped policy), and its name."""
    if path is None:
        text, name = resources.files("trustlab.audit").joinpath("policy.toml").read_text(), "trustlab default policy"
    else:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"policy file {path} does not exist")
        text, name = path.read_text(), str(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"policy {name} is not valid TOML: {exc}") from None
    policy = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict) or set(entry) - {"green", "red"} or not entry:
            raise InputError(f"policy {name}: [{key}] must hold green and/or red thresholds only")
        for which, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InputError(f"policy {name}: [{key}] {which} must be a finite number, got {value!r}")
        policy[key] = {k: float(v) for k, v in entry.items()}
    return policy, name


def verdict(score: Score, thresholds: dict[str, float] | None) -> str:
    """Green when ``score`` reaches the green threshold, red when it falls short of the red one (in the
    direction that is good), amber in between; n/a without thresholds or a value."""
    if thresholds is None or score.value is None or math.isnan(score.value):
        return "n/a"
    value, sign = score.value, 1.0 if score.higher_is_better else -1.0
    green, red = thresholds.get("green"), thresholds.get("red")
    if green is not None and sign * value >= sign * green:
        return "green"
    if red is not None and sign * value < sign * red:
        return "red"
    return "amber"


def scorecard(
    results: dict[str, Result], policy: dict[str, dict[str, float]], *, policy_name: str, skipped: dict[str, str]
) -> Scorecard:
    """Judge every score of ``results`` (from their views) against ``policy``."""
    gates = []
    for name, result in results.items():
        view = view_for(result.kind)
        for score in view.scores(result) if view else ():
            thresholds = policy.get(score.key)
            gates.append(
                Gate(
                    axis=score.axis,
                    key=score.key,
                    name=score.name,
                    value=score.value,
                    unit=score.unit,
                    higher_is_better=score.higher_is_better,
                    interval=score.interval,
                    sentence=score.sentence,
                    green=None if thresholds is None else thresholds.get("green"),
                    red=None if thresholds is None else thresholds.get("red"),
                    verdict=verdict(score, thresholds),
                    source=name,
                )
            )
    order = {axis: i for i, axis in enumerate(AXES)}
    gates.sort(key=lambda g: order.get(g.axis, len(AXES)))
    spoken = {g.axis for g in gates}
    return Scorecard(
        gates=tuple(gates),
        axes=AXES,
        skipped={axis: why for axis, why in skipped.items() if axis not in spoken},
        policy=policy_name,
    )


def junit_xml(card: Scorecard, *, suite: str = "trustlab audit") -> str:
    """One JUnit test case per gate: red fails, amber passes with its verdict in the output,
    axes without a figure are skipped with the reason."""
    cases = []
    for gate in card.gates:
        body = f"{gate.sentence} verdict: {gate.verdict}"
        attrs = f"classname={quoteattr(gate.axis)} name={quoteattr(gate.name)}"
        if gate.verdict == "red":
            message = quoteattr(f"{gate.name} = {gate.value} ({gate.unit}); red threshold {gate.red}")
            cases.append(f"  <testcase {attrs}><failure message={message}>{escape(body)}</failure></testcase>")
        else:
            cases.append(f"  <testcase {attrs}><system-out>{escape(body)}</system-out></testcase>")
    for axis, why in card.skipped.items():
        cases.append(
            f"  <testcase classname={quoteattr(axis)} name={quoteattr(axis)}><skipped message={quoteattr(why)}/>"
            "</testcase>"
        )
    failures = len(card.failed)
    header = (
        f'<testsuite name={quoteattr(suite)} tests="{len(cases)}" failures="{failures}" skipped="{len(card.skipped)}">'
    )
    return '<?xml version="1.0" encoding="utf-8"?>\n' + header + "\n" + "\n".join(cases) + "\n</testsuite>\n"
