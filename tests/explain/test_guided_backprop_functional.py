"""Guided backpropagation must not silently equal saliency on models that apply ReLU as a function."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.explain import explain
from trustlab.models import Classifier, load_model, load_reference_model

FUNCTIONAL = (
    "needs nn.ReLU modules; this model applies ReLU as a function, where the method would silently equal saliency"
)


class FunctionalReLU(nn.Module):
    def __init__(self, module_relu_in_head: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc1 = nn.Linear(4 * 6 * 6, 8)
        self.head_relu = nn.ReLU() if module_relu_in_head else None
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        x = F.relu(self.conv(x)).flatten(1)  # always functional
        x = self.fc1(x)
        x = self.head_relu(x) if self.head_relu is not None else torch.relu(x)
        return self.fc2(x)


@pytest.fixture()
def x():
    return torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.filterwarnings("ignore::UserWarning")  # Captum's notes about hooks and input gradients
@pytest.mark.parametrize("method", ["guided_backprop", "guided_gradcam"])
@pytest.mark.parametrize("mixed", [False, True])
def test_functional_relu_is_refused(method, mixed, x):
    model = Classifier(FunctionalReLU(module_relu_in_head=mixed), input_shape=(1, 8, 8), num_classes=3)
    if not mixed:  # what the refusal prevents: Captum's map is exactly the saliency map
        from captum.attr import GuidedBackprop

        captum_map = GuidedBackprop(model.as_module()).attribute(x, target=0)
        torch.testing.assert_close(captum_map, explain(model, x, 0, method="saliency"), rtol=0, atol=0)
    with pytest.raises(InputError) as info:
        explain(model, x, method=method)
    assert str(info.value) == f"{method} {FUNCTIONAL}"


def test_a_model_without_relu_is_refused(x):
    module = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(72, 3))
    model = Classifier(module, input_shape=(1, 8, 8), num_classes=3)
    with pytest.raises(InputError, match="guided_backprop needs nn.ReLU modules; this model has no ReLU"):
        explain(model, x, method="guided_backprop")


def test_relu_modules_give_a_map_unlike_saliency():
    model = load_reference_model()
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    guided = explain(model, x, method="guided_backprop")
    assert guided.shape == x.shape
    assert not torch.allclose(guided, explain(model, x, model.predict(x), method="saliency"))


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_relu_modules_are_hooked_through_the_mirror(tmp_path):
    """A traced model's ReLU modules become nn.ReLU in its mirror: guided maps as for the original."""
    model = load_reference_model()
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    torch.jit.save(torch.jit.trace(model.module, x), tmp_path / "ref.pt")
    scripted = load_model(tmp_path / "ref.pt", input_shape=(1, 28, 28), mean=model.mean, std=model.std)
    torch.testing.assert_close(
        explain(scripted, x, method="guided_backprop"), explain(model, x, method="guided_backprop")
    )
