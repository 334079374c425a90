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
    "vae_background": "the same VAE trained on those images with 20% of pixels replaced by noise (background model)",
    "ratio": "likelihood ratio of the shipped VAE to its background model",
    "wgan": "WGAN-GP generator and inverter trained on the 5,000-image MNIST training sample",
}


def _resource(name: str, suffix: str) -> Path:
    if name not in REFERENCE_DETECTORS:
        raise UnknownNameError(
            f"no shipped {name!r} detector; shipped ones: {', '.join(REFERENCE_DETECTORS)} (others must be fitted)"
        )
    return Path(str(resources.files("trustlab.ood.weights").joinpath(f"{name}_mnist{suffix}")))


def load_reference_detector(name: str, **overrides: Any) -> Detector:
    """The shipped ``vae``, ``vae_background`` or ``wgan`` detector (``overrides`` such as
    ``score="recon"``), or ``ratio``: the VAE's likelihood ratio to its background model."""
    if name == "ratio":
        from trustlab.ood.generative.ratio import LikelihoodRatio

        foreground, background = load_reference_detector("vae"), load_reference_detector("vae_background")
        ratio = LikelihoodRatio(foreground=foreground, background=background)
        ratio.set_fitted(foreground.input_shape_, foreground.bounds_)
        return ratio
    return load_detector(_resource(name, ".safetensors"), **overrides)


def reference_record(name: str) -> dict[str, Any]:
    """How the shipped detector was trained (settings, curve, wall time, digests); for ``ratio``,
    its two models' training time added up."""
    if name == "ratio":
        parts = [reference_record("vae"), reference_record("vae_background")]
        return {"detector": "ratio", "fit_seconds": sum(p["fit_seconds"] for p in parts), "parts": parts}
    return json.loads(_resource(name, ".json").read_text())
