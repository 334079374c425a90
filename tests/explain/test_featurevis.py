"""Activation maximisation: each class's image convinces the model of that class."""

import pytest
import torch

from trustlab.core.exceptions import InputError
from trustlab.core.results import Result
from trustlab.explain.featurevis import activation_maximisation, total_variation
from trustlab.models import load_reference_model


def test_every_class_image_is_recognised(one_thread):
    result = activation_maximisation(load_reference_model(), steps=150)
    assert result.classes == tuple(range(10))
    assert min(result.probabilities) > 0.9
    images = torch.tensor(result.images)
    assert images.shape == (10, 28, 28) and images.min() >= 0 and images.max() <= 1
    assert Result.from_json(result.to_json()) == result


def test_seeded_and_restricted_to_requested_classes(one_thread):
    model = load_reference_model()
    a = activation_maximisation(model, [3, 7], steps=10, seed=1)
    b = activation_maximisation(model, [3, 7], steps=10, seed=1)
    assert a.classes == (3, 7) and a.images == b.images


def test_total_variation_by_hand():
    x = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])
    assert total_variation(x).item() == 2.0


def test_bad_classes():
    with pytest.raises(InputError, match="classes must be indices in 0..9"):
        activation_maximisation(load_reference_model(), [10], steps=1)
