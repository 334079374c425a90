"""The demo: an offline audit of the shipped reference MNIST CNN on the bundled sample.

Accuracy, an FGSM minimal-eps profile, object vs background, the reliability alarm (eight
detectors) and a small explanation section, into one run directory; about 20 s on 2 cores.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from trustlab.core.results import Result
from trustlab.data import load_dataset
from trustlab.explain.checks import run_attributions, run_feature_visualisation
from trustlab.models import load_reference_model
from trustlab.models.checks import run_accuracy
from trustlab.models.training import TrainingResult
from trustlab.ood.calibration import split_holdout
from trustlab.ood.checks import run_alarm
from trustlab.report.run import RunDirectory
from trustlab.robustness.attacks import FGSM
from trustlab.robustness.checks import run_robustness
from trustlab.studies.checks import run_attack_explanations

TITLE = "trustlab demo: reference MNIST CNN"
DETECTORS = ("msp", "energy", "mahalanobis", "knn", "vae:recon", "vae:nelbo", "wgan:delta_z", "wgan:recon")
OOD_SETS = (
    "notmnist",
    "uniform_noise",
    "gaussian_noise",
    "natural_crops",
    "mnist_rotate90",
    "mnist_invert",
    "mnist_blur",
    "mnist_shift",
)
ATTRIBUTION_METHODS = ("saliency", "guided_backprop", "gradcam", "smoothgrad", "integrated_gradients")


def run_demo(out: str | Path, *, command: list[str] | None = None) -> tuple[RunDirectory, list[Result]]:
    """Run the demo into ``out``; return the run directory and the results, in the order run."""
    classifier = load_reference_model("mnist_cnn")
    data = load_dataset("mnist", "sample")
    run = RunDirectory(out, seed=0, command=command)
    record = json.loads(resources.files("trustlab.models.weights").joinpath("mnist_cnn.json").read_text())
    results: list[Result] = [run.add("training", TrainingResult.from_dict(record["training"]))]
    results.append(run_accuracy(run, classifier, data, source="mnist_cnn"))
    results += run_robustness(run, classifier, data, FGSM(), eps_max=0.5, tol=1 / 512)
    first = data.subset(slice(0, 300))
    results += run_robustness(run, classifier, first, FGSM(), search=False, eps_max=1.0, tol=1 / 256, regions=True)
    results.append(_alarm(run, classifier, data))
    results.append(run_attributions(run, classifier, data.subset(slice(0, 4)), methods=ATTRIBUTION_METHODS))
    results.append(run_feature_visualisation(run, classifier, steps=150))
    results.append(run_attack_explanations(run, classifier, first, eps=0.1, gallery=4, name="mnist/sample"))
    return run, results


def _alarm(run: RunDirectory, classifier, data) -> Result:
    """Post-hoc detectors fit on 400 digits, the shipped VAE and WGAN; thresholds calibrated on
    300 other digits, false alarms measured on the last 300."""
    fit_idx, rest = split_holdout(len(data), fraction=0.4, seed=0)
    calibration_idx, evaluation_idx = rest[: len(rest) // 2], rest[len(rest) // 2 :]
    return run_alarm(
        run,
        classifier,
        data.subset(fit_idx),
        data.subset(calibration_idx),
        data.subset(evaluation_idx),
        detectors=DETECTORS,
        alpha=0.05,
        limit=300,
        notmnist_split="sample",
        include=list(OOD_SETS),
    )
