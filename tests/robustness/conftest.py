"""Fixtures shared by the robustness tests."""

import pytest
import torch

from trustlab.models import load_reference_model


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: on a loaded 2-core machine, two spinning threads run ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference():
    """The shipped natural MNIST CNN."""
    return load_reference_model()
