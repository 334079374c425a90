"""Default detectors fall back to logit-based ones where a model's features cannot be read."""

import pytest
import torch
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.explain import explain
from trustlab.models import Classifier, load_model
from trustlab.ood.checks import EXPENSIVE, LOGIT_DETECTORS, default_detectors, features_unavailable
from trustlab.ood.evaluate import ALL_DETECTORS, GENERATIVE, POSTHOC

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


class Looped(nn.Module):
    """A loop in forward: scripted, its graph has a prim::Loop, which the Python mirror cannot replay."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 26 * 26, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(2):
            x = x * 1.0
        return self.fc(torch.relu(self.conv(x)).flatten(1))


@pytest.fixture(scope="module")
def opaque(tmp_path_factory):
    path = tmp_path_factory.mktemp("opaque") / "looped.pt"
    torch.jit.save(torch.jit.script(Looped()), path)
    return load_model(path, input_shape=(1, 28, 28))


def test_features_readable_keeps_every_detector(reference):
    assert features_unavailable(reference) is None
    assert default_detectors(reference) == tuple(d for d in ALL_DETECTORS if d not in EXPENSIVE)
    assert "vae:regret" in ALL_DETECTORS and "vae:regret" not in default_detectors(reference)
    tabular = Classifier(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), input_shape=(4,), bounds=None)
    assert default_detectors(tabular) == POSTHOC


def test_opaque_torchscript_falls_back_to_logit_detectors(opaque):
    reason = features_unavailable(opaque)
    assert reason.startswith("feature-space detectors (mahalanobis, knn) left out: cannot look inside this model")
    assert "prim::Loop" in reason and "\n" not in reason
    assert default_detectors(opaque) == LOGIT_DETECTORS + tuple(d for d in GENERATIVE if d not in EXPENSIVE)
    assert LOGIT_DETECTORS == ("msp", "energy", "maxlogit")
    logits = opaque.logits(torch.rand(2, 1, 28, 28))  # the model itself still runs
    assert logits.shape == (2, 10)


def test_opaque_torchscript_gradcam_says_why(opaque):
    with pytest.raises(InputError, match="cannot look inside this model: it is a TorchScript module and its"):
        explain(opaque, torch.rand(1, 1, 28, 28), method="gradcam")


def test_no_linear_map_to_the_logits_falls_back():
    module = nn.Sequential(nn.Conv2d(1, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = Classifier(module, input_shape=(1, 8, 8))
    assert "pass --feature-layer NAME" in features_unavailable(model)
    assert default_detectors(model) == LOGIT_DETECTORS
