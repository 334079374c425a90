"""Fixtures shared by the OOD tests: the reference CNN, the bundled MNIST sample, noise."""

import pytest
import torch

from trustlab.data import load_dataset
from trustlab.models import load_reference_model


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every module here runs the model a lot (see ``one_thread``)."""


@pytest.fixture(scope="module")
def reference():
    return load_reference_model()


@pytest.fixture(scope="module")
def sample():
    """The bundled 1,000 MNIST test digits: 600 to fit on, 400 held out."""
    data = load_dataset("mnist", "sample")
    return data.subset(slice(0, 600)), data.subset(slice(600, 1000))


@pytest.fixture(scope="module")
def noise():
    return torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(1))
