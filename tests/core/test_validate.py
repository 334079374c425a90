"""One validation path: class indices, positive integers, inputs."""

import numpy as np
import pytest
import torch

from trustlab.core.exceptions import InputError
from trustlab.core.validate import ERR_CLASSES, ERR_POSITIVE_INT, class_indices, positive_int


def test_class_indices_accept_integers_and_refuse_everything_else():
    assert class_indices([0, 2, 1], 3, 3).tolist() == [0, 2, 1]
    assert class_indices(np.array([1, 1], dtype=np.int32), 2, 3).dtype == torch.int64
    assert class_indices(2, 4, 3, scalar=True).tolist() == [2, 2, 2, 2]
    expected = ERR_CLASSES.format(name="labels", count=2, high=2, got="[0.0, 1.0]")
    with pytest.raises(InputError) as info:
        class_indices([0.0, 1.0], 2, 3)  # floats are refused, not truncated
    assert str(info.value) == expected
    for bad in ([0, 3], [-1, 0], [0], [[0, 1]], [True, False]):
        with pytest.raises(InputError, match="labels must be 2 class indices in 0..2"):
            class_indices(bad, 2, 3)
    with pytest.raises(InputError, match="target must be one index or 2 class indices"):
        class_indices(7, 2, 3, name="target", scalar=True)
    with pytest.raises(InputError, match="must be 2 class indices"):
        class_indices(1, 2, 3)  # a scalar only where scalar=True


def test_positive_int():
    assert positive_int(3, "n") == 3 and positive_int(np.int64(2), "n") == 2 and positive_int(4.0, "n") == 4
    for bad in (0, -1, 2.5, True, "3", None):
        with pytest.raises(InputError) as info:
            positive_int(bad, "batch_size")
        assert str(info.value) == ERR_POSITIVE_INT.format(name="batch_size", got=bad)


def test_batch_size_errors_are_one_text_everywhere(tiny_cnn):
    from trustlab.core.batching import run_batches
    from trustlab.explain import explain
    from trustlab.models import Classifier

    expected = ERR_POSITIVE_INT.format(name="batch_size", got=0)
    calls = [
        lambda: run_batches(lambda a, b: {}, 4, 0),
        lambda: Classifier(tiny_cnn.module, input_shape=(1, 28, 28), batch_size=0),
        lambda: explain(tiny_cnn, torch.zeros(1, 1, 28, 28), method="saliency", batch_size=0),
    ]
    for call in calls:
        with pytest.raises(InputError) as info:
            call()
        assert str(info.value) == expected
