"""Fixtures shared by the robustness tests."""

import pytest

from trustlab.models import load_reference_model


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every module here runs the model a lot (see ``one_thread``)."""


@pytest.fixture(scope="module")
def reference():
    """The shipped natural MNIST CNN."""
    return load_reference_model()
