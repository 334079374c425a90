"""Reference weights shipped inside trustlab, built reproducibly by scripts in ``scripts/``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from trustlab.core.exceptions import UnknownNameError
from trustlab.models.architectures import build_architecture
from trustlab.models.artefacts import load_model
from trustlab.models.classifier import Classifier

MNIST_CNN_CONFIG = {"channels": [32, 64], "hidden": 1024}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

REFERENCE_MODELS = {
    "mnist_cnn": "MNIST CNN trained on the 5,000-image MNIST training sample (scripts/train_reference_cnn.py)",
    "mnist_cnn_robust": (
        "MNIST CNN adversarially trained (PGD-7, eps 0.3) on the same sample (scripts/train_robust_cnn.py)"
    ),
    "mnist_cnn_certified": (
        "MNIST CNN trained with interval bound propagation (IBP, train eps 0.4 for test eps 0.3) on the same "
        "sample (scripts/train_certified_cnn.py)"
    ),
    "mnist_cnn_oe": (
        "MNIST CNN trained with outlier exposure to synthetic near-OOD digits on the same sample "
        "(scripts/train_oe_cnn.py)"
    ),
    "mnist_cnn_noise": (
        "MNIST CNN trained under Gaussian noise (sigma 0.25, unclipped) on the same sample, the base "
        "classifier for randomised smoothing (scripts/train_smoothing_cnn.py)"
    ),
}


def reference_path(name: str) -> Path:
    """Path of the shipped weights of reference model ``name``."""
    if name not in REFERENCE_MODELS:
        raise UnknownNameError(f"unknown reference model {name!r}; expected one of: {', '.join(REFERENCE_MODELS)}")
    return Path(str(resources.files("trustlab.models.weights").joinpath(f"{name}.safetensors")))


def load_reference_model(name: str = "mnist_cnn", *, batch_size: int = 256) -> Classifier:
    """Load a shipped reference model by name (default: the natural MNIST CNN)."""
    return load_model(reference_path(name), batch_size=batch_size)


def open_classifier(
    name_or_file: str,
    *,
    arch: str | None = None,
    allow_pickle: bool = False,
    input_shape: tuple[int, ...] | None = None,
    batch_size: int = 256,
    mean: Any = None,
    std: Any = None,
) -> tuple[Classifier, str]:
    """A shipped reference model by name, or a model file (see :func:`load_model`); also returns
    a description of where it came from, for manifests. ``mean``/``std`` override the recorded
    normalisation (a reference model's too)."""
    overrides = {k: v for k, v in (("mean", mean), ("std", std)) if v is not None}
    if name_or_file in REFERENCE_MODELS and not Path(name_or_file).exists():
        classifier = load_model(reference_path(name_or_file), batch_size=batch_size, **overrides)
        return classifier, f"reference model {name_or_file}"
    classifier = load_model(
        name_or_file,
        architecture=arch,
        allow_pickle=allow_pickle,
        input_shape=input_shape,
        batch_size=batch_size,
        **overrides,
    )
    return classifier, str(name_or_file)


def untrained_mnist_cnn(*, seed: int = 0) -> Classifier:
    """The reference MNIST CNN before training (architecture, normalisation, class names), as the
    scripts that build the shipped weights start from it."""
    module = build_architecture("mnist_cnn", seed=seed, **MNIST_CNN_CONFIG)
    return Classifier(
        module,
        input_shape=(1, 28, 28),
        num_classes=10,
        mean=MNIST_MEAN,
        std=MNIST_STD,
        class_names=tuple(str(i) for i in range(10)),
        architecture="mnist_cnn",
        config=MNIST_CNN_CONFIG,
    )
