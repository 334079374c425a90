"""Generative detectors shipped with trustlab, trained on the reference MNIST CNN's training data
(the 5,000-image MNIST training sample) by ``scripts/train_reference_detectors.py``."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from trustlab.core.exceptions import UnknownNameError
from trustlab.ood.base import Detector, load_detector

REFERENCE_DETECTORS = {
    "vae": "convolutional VAE trained on the 5,000-image MNIST training sample",
    "wgan": "WGAN-GP generator and inverter trained on the 5,000-image MNIST training sample",
}


def _resource(name: str, suffix: str) -> Path:
    if name not in REFERENCE_DETECTORS:
        raise UnknownNameError(
            f"no shipped {name!r} detector; shipped ones: {', '.join(REFERENCE_DETECTORS)} (others must be fitted)"
        )
    return Path(str(resources.files("trustlab.ood.weights").joinpath(f"{name}_mnist{suffix}")))


def load_reference_detector(name: str, **overrides: Any) -> Detector:
    """The shipped ``vae`` or ``wgan`` detector; ``overrides`` such as ``score="recon"``."""
    return load_detector(_resource(name, ".safetensors"), **overrides)


def reference_record(name: str) -> dict[str, Any]:
    """How the shipped detector was trained (settings, curve, wall time, digests)."""
    return json.loads(_resource(name, ".json").read_text())
