"""Models: the Classifier wrapper, architectures, safe loading/saving and training."""

from trustlab.models.architectures import (
    MLP,
    MnistCNN,
    build_architecture,
    list_architectures,
    register_architecture,
)
from trustlab.models.artefacts import load_model, save_model
from trustlab.models.classifier import BlackBoxClassifier, Classifier
from trustlab.models.reference import load_reference_model
from trustlab.models.training import TrainingResult, train

__all__ = [
    "BlackBoxClassifier",
    "Classifier",
    "MLP",
    "MnistCNN",
    "TrainingResult",
    "build_architecture",
    "list_architectures",
    "load_model",
    "load_reference_model",
    "register_architecture",
    "save_model",
    "train",
]
