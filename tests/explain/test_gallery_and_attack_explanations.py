"""Explaining attacks and the attribution gallery."""

import pytest
import torch

import trustlab.explain.views  # noqa: F401  (registers the sections)
import trustlab.studies.views  # noqa: F401
from trustlab.core.results import Result
from trustlab.core.views import render_sections
from trustlab.data import load_dataset
from trustlab.explain.gallery import attribution_gallery
from trustlab.models import load_reference_model
from trustlab.robustness.attacks import FGSM
from trustlab.studies.attack_explanations import explain_attack


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("mnist", "sample")
    return data.x[:200], data.y[:200]


def test_attack_explanations_count_recall_and_show_flipped_examples(digits, one_thread):
    x, y = digits
    model = load_reference_model()
    result = explain_attack(model, x, y, attack=FGSM(), eps=0.15, gallery=3)
    adversarial = FGSM().attack(model, x, y, eps=0.15).adversarials
    predicted = model.predict(adversarial)
    for c in range(10):
        members = y == c
        expected = (predicted[members] == c).double().mean().item()
        assert result.recall_after[c] == pytest.approx(expected)
    assert result.accuracy_after < result.accuracy_before
    assert len(result.gallery_clean) == 3
    assert all(a != b for a, b in zip(result.gallery_clean_pred, result.gallery_adv_pred))
    assert Result.from_json(result.to_json()) == result
    (section,) = render_sections({"attack": result})
    assert section.figures and section.figures[0].png.startswith(b"\x89PNG")


def test_gallery_renders_every_method(digits, one_thread):
    x, y = digits
    result = attribution_gallery(load_reference_model(), x[:3], y[:3], methods=("saliency", "gradcam"))
    assert set(result.maps) == {"saliency", "gradcam"} and len(result.maps["gradcam"]) == 3
    assert torch.tensor(result.maps["saliency"]).shape == (3, 28, 28)
    (section,) = render_sections({"gallery": result})
    assert section.figures[0].png.startswith(b"\x89PNG")
