"""The demo: the audit of the shipped reference MNIST CNN on the bundled sample (offline).

The ``quick`` profile on 1,000 bundled test digits, with the model's training record; well under
a minute on 2 cores. Nothing is downloaded: the model, the sample and the notMNIST letters used
as out-of-distribution inputs ship with trustlab.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from trustlab.audit.plan import AuditContext, PlannedStep
from trustlab.audit.runner import prepare
from trustlab.data import load_dataset
from trustlab.models import load_reference_model
from trustlab.models.training import TrainingResult
from trustlab.report.run import RunDirectory

TITLE = "trustlab demo: audit of the reference MNIST CNN"
SOURCE = "reference model mnist_cnn"


def prepare_demo(
    out: str | Path, *, command: list[str] | None = None
) -> tuple[RunDirectory, AuditContext, list[PlannedStep]]:
    """The run directory (with the training record) and the planned quick audit."""
    classifier = load_reference_model("mnist_cnn")
    data = load_dataset("mnist", "sample")
    ctx, planned = prepare(classifier, data, profile="quick")
    run = RunDirectory(out, seed=0, command=command)
    record = json.loads(resources.files("trustlab.models.weights").joinpath("mnist_cnn.json").read_text())
    if "training" not in run.results:
        run.add("training", TrainingResult.from_dict(record["training"]))
    return run, ctx, planned


def run_demo(out: str | Path, *, command: list[str] | None = None):
    """Run the demo audit into ``out`` and return its outcome (run directory, scorecard, report)."""
    from trustlab.audit.runner import run_audit

    run, ctx, planned = prepare_demo(out, command=command)
    return run_audit(run, ctx, planned, source=SOURCE, title=TITLE)
