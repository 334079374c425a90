"""``run_audit``: plan, run, judge and report, into one run directory (see ``audit.plan``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trustlab.audit.plan import PROFILES, AuditContext, PlannedStep, eps_grid, plan, run_plan, seconds_per_forward
from trustlab.audit.scorecard import Scorecard, junit_xml, load_policy, scorecard
from trustlab.capabilities import load_views
from trustlab.core.exceptions import InputError
from trustlab.core.files import atomic_write_json, atomic_write_text
from trustlab.models.classifier import Classifier

SCORECARD_FILE = "scorecard.json"
JUNIT_FILE = "scorecard.junit.xml"


@dataclass
class AuditOutcome:
    """What ``run_audit`` leaves: the run directory, the plan it followed, the scorecard and the report path."""

    run: Any  # the RunDirectory
    planned: list[PlannedStep]
    scorecard: Scorecard
    report: Path


def prepare(
    classifier: Classifier,
    data: Any,
    *,
    profile: str = "standard",
    eps: Sequence[float] | None = None,
    ood_sets: dict[str, Any] | None = None,
    detector_files: Sequence[Any] = (),
    data_dir: Any = None,
    seed: int = 0,
) -> tuple[AuditContext, list[PlannedStep]]:
    """Check every option against the model and data, and plan the steps, before anything runs."""
    if profile not in PROFILES:
        raise InputError(f"--profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    if len(data) == 0:
        raise InputError(f"{data.name}/{data.split} has no examples")
    classifier.validate(data.x[:1])  # shape and bounds match the model
    classifier.validate_labels(data.y, len(data))
    for name, ood in (ood_sets or {}).items():
        classifier.validate(ood.x, name=f"OOD inputs {name}")
    for path in detector_files:  # a detector file that does not load, or does not fit the data, fails here
        from trustlab.ood.base import load_detector

        load_detector(path, classifier=classifier).validate(data.x[:1])
    ctx = AuditContext(
        classifier=classifier,
        data=data,
        profile=PROFILES[profile],
        ood_sets=dict(ood_sets or {}),
        eps=eps_grid(classifier, eps),
        detector_files=tuple(detector_files),
        data_dir=data_dir,
        seed=seed,
    )
    return ctx, plan(ctx, seconds_per_forward=seconds_per_forward(classifier, data.x))


def run_audit(
    run: Any,
    ctx: AuditContext,
    planned: list[PlannedStep],
    *,
    source: str,
    policy: str | Path | None = None,
    title: str = "trustlab audit",
    on_step: Callable[[PlannedStep, str], None] | None = None,
) -> AuditOutcome:
    """Run the plan into ``run``, then the scorecard (``scorecard.json``, JUnit XML) and the report."""
    from trustlab.report.html import write_report

    thresholds, policy_name = load_policy(policy)  # a bad policy fails before any check runs
    load_views()
    run.describe_model(ctx.classifier, source=source)
    run.describe_data(ctx.data)
    skipped = run_plan(run, ctx, planned, on_step=on_step)
    checks = {name: result for name, result in run.results.items() if result.kind != Scorecard.kind}
    card = run.add("scorecard", scorecard(checks, thresholds, policy_name=policy_name, skipped=skipped))
    atomic_write_json(run.path / SCORECARD_FILE, json.loads(card.to_json()))
    atomic_write_text(run.path / JUNIT_FILE, junit_xml(card))
    return AuditOutcome(run, list(planned), card, write_report(run.path, title=title))
