"""How results appear: report sections, CLI summary lines and scorecard scores, one view per kind.

Each capability registers a :class:`View` for every result kind it produces (in its ``views``
module) with :func:`register_view`. The report, the CLI and the audit's scorecard read views
through this registry and never name a capability. Views only format: every number they show
is a field (or a method) of the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from trustlab.core.results import Result


@dataclass
class Table:
    """A table in a report section: header, rows of formatted cells, and a caption."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""
    foldable: bool = True  # long tables start folded in the report; a headline table stays open


@dataclass
class Figure:
    """A figure in a report section, saved as ``figures/<name>.png``."""

    name: str  # file stem in figures/
    caption: str
    png: bytes


@dataclass
class Section:
    """One section of the report (``key`` is its anchor): paragraphs, key facts, tables and figures."""

    key: str
    title: str
    paragraphs: list[Any] = field(default_factory=list)  # plain text, or markupsafe.Markup for trusted HTML
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


AXES = (
    "accuracy",
    "adversarial robustness",
    "OOD alarm",
    "explanation sanity",
    "backdoor",
    "fairness",
    "distribution shift",
)


@dataclass(frozen=True)
class Score:
    """One headline number for the trust scorecard: which axis it speaks for, the policy key its
    thresholds are found under, the figure with its unit and interval, which direction is good,
    and one sentence saying what it means in plain language."""

    axis: str  # one of AXES
    key: str  # the policy's name for it, e.g. "robustness.median_eps"
    name: str
    value: float | None
    unit: str
    higher_is_better: bool
    interval: tuple[float, float] | None = None
    sentence: str = ""


@dataclass(frozen=True)
class View:
    """How one result kind appears: its report section, CLI summary lines and scorecard scores."""

    kind: str
    order: int  # position of the section in the report (lower first)
    section: Callable[[str, Any], Section]
    summary: Callable[[Any], list[str]]
    scores: Callable[[Any], list[Score]]


_VIEWS: dict[str, View] = {}


def _nothing(_result: Any) -> list:
    return []


def register_view(
    result_type: type[Result],
    *,
    order: int,
    section: Callable[[str, Any], Section],
    summary: Callable[[Any], list[str]] | None = None,
    scores: Callable[[Any], list[Score]] | None = None,
) -> View:
    """Register how results of ``result_type`` appear (its section, summary lines and scores)."""
    kind = result_type.kind
    if not kind:
        raise TypeError(f"{result_type.__qualname__} has no result kind")
    view = View(kind, order, section, summary or _nothing, scores or _nothing)
    _VIEWS[kind] = view
    return view


def view_for(kind: str) -> View | None:
    """The view registered for ``kind``, or None."""
    return _VIEWS.get(kind)


def view_kinds() -> list[str]:
    """Result kinds that have a view, sorted."""
    return sorted(_VIEWS)


def render_sections(results: dict[str, Result]) -> list[Section]:
    """Sections for every result, in report order; a kind without a view is shown as raw JSON."""
    rendered = []
    for name, result in results.items():
        view = view_for(result.kind)
        if view is None:
            rendered.append((10_000, Section(name, f"{name} ({result.kind})", paragraphs=[result.to_json()])))
        else:
            rendered.append((view.order, view.section(name, result)))
    return [s for _, s in sorted(rendered, key=lambda pair: (pair[0], pair[1].key))]


def summary_lines(results: Iterable[Result]) -> list[str]:
    """The CLI's summary of each result, in the order given."""
    lines: list[str] = []
    for result in results:
        view = view_for(result.kind)
        if view is not None:
            lines += view.summary(result)
    return lines
