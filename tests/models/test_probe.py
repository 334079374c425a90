"""Layers found by probing (one forward pass with hooks), for every format trustlab loads."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trustlab.core.exceptions import InputError, UnknownNameError
from trustlab.explain import explain
from trustlab.models import Classifier, load_model, load_reference_model
from trustlab.models.probe import feature_layer, gradcam_layer, hookable, probe, relu_usage
from trustlab.models.scripted import HookableScript
from trustlab.ood.posthoc import KNN, Mahalanobis

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


class SmallCNN(nn.Module):
    """Not the reference architecture: other names, other widths, a second ReLU in the head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(6 * 11 * 11, 12),
            nn.ReLU(),
            nn.Linear(12, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@pytest.fixture(scope="module")
def small():
    return SmallCNN().eval()


@pytest.fixture(scope="module")
def x():
    return torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def python_model(small):
    return Classifier(small, input_shape=(1, 28, 28), num_classes=10, mean=0.13, std=0.31)


@pytest.fixture(scope="module")
def torchscript_model(small, x, tmp_path_factory):
    path = tmp_path_factory.mktemp("ts") / "small.pt"
    torch.jit.save(torch.jit.trace(small, x[:2]), path)
    return load_model(path, input_shape=(1, 28, 28), mean=0.13, std=0.31)


@pytest.fixture(scope="module")
def exported_model(small, x, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "small.pt2"
    program = torch.export.export(small, (x[:2],), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    torch.export.save(program, path)
    return load_model(path, mean=0.13, std=0.31)


def test_reference_cnn_layers_in_call_order():
    model = load_reference_model()
    found = probe(model)
    assert found.names() == [
        "features",
        "features.0",
        "features.1",
        "features.2",
        "features.3",
        "features.4",
        "features.5",
        "fc1",
        "act",
        "fc2",
    ]
    shapes = {layer.name: layer.output_shape for layer in found.layers}
    assert shapes["features.4"] == (1, 64, 14, 14) and shapes["fc1"] == (1, 1024)
    assert found.layers[-1].input_shape == (1, 1024)
    assert gradcam_layer(model) == "features.4"  # the ReLU after the last convolution, as before
    assert feature_layer(model) == "fc2"  # its input is the penultimate activation
    assert relu_usage(model) == (3, 3)  # every ReLU is a module


def test_torchscript_model_is_mirrored_with_the_same_names_and_weights(torchscript_model, python_model, x):
    assert isinstance(torchscript_model.module, HookableScript)
    assert torchscript_model.weights_sha256() == python_model.weights_sha256()
    torch.testing.assert_close(torchscript_model.logits(x), python_model.logits(x), rtol=0, atol=0)
    assert gradcam_layer(torchscript_model) == gradcam_layer(python_model) == "body.4"
    assert feature_layer(torchscript_model) == feature_layer(python_model) == "body.8"
    layers = {layer.name: layer for layer in probe(torchscript_model).layers}
    assert layers["body.3"].kind == "Conv2d" and layers["body.3"].output_shape == (1, 6, 11, 11)


def test_gradcam_and_feature_detectors_work_on_torchscript(torchscript_model, python_model, x):
    maps = explain(torchscript_model, x, method="gradcam", batch_size=4)
    assert maps.shape == (6, 1, 28, 28) and torch.isfinite(maps).all() and (maps >= 0).all()
    assert maps.flatten(1).sum(1).gt(0).any()
    # the same maps as Grad-CAM on the Python model it was traced from
    torch.testing.assert_close(maps, explain(python_model, x, method="gradcam"), rtol=1e-4, atol=1e-6)
    fit = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    scripted = Mahalanobis(torchscript_model).fit(fit)
    assert scripted.layer == "body.8" and scripted.means_.shape[1] == 12
    scores = scripted.score(x)
    assert scores.shape == (6,) and torch.isfinite(scores).all()
    torch.testing.assert_close(scores, Mahalanobis(python_model).fit(fit).score(x), rtol=1e-4, atol=1e-4)
    knn = KNN(torchscript_model, k=3).fit(fit).score(x)
    torch.testing.assert_close(knn, KNN(python_model, k=3).fit(fit).score(x), rtol=1e-4, atol=1e-5)


def test_a_compiled_script_module_given_directly_is_probed_through_its_mirror(small, x, tmp_path):
    torch.jit.save(torch.jit.trace(small, x[:2]), tmp_path / "small.pt")
    script = torch.jit.load(tmp_path / "small.pt")
    with pytest.raises(RuntimeError, match="not supported on ScriptModules"):
        script.register_forward_hook(lambda *a: None)
    model = Classifier(script, input_shape=(1, 28, 28), num_classes=10)
    assert model.module is script
    assert isinstance(hookable(model).module, HookableScript)
    assert gradcam_layer(model) == "body.4" and feature_layer(model) == "body.8"
    maps = explain(model, x[:2], method="gradcam")
    assert maps.shape == (2, 1, 28, 28) and torch.isfinite(maps).all()


def test_exported_program_keeps_the_module_names(exported_model, python_model, x):
    assert gradcam_layer(exported_model) == "body.4"
    assert feature_layer(exported_model) == "body.8"
    maps = explain(exported_model, x, method="gradcam")
    torch.testing.assert_close(maps, explain(python_model, x, method="gradcam"), rtol=1e-4, atol=1e-6)
    scores = Mahalanobis(exported_model).fit(x).score(x)
    assert torch.isfinite(scores).all()


def test_gradcam_layer_by_name_and_unknown_names(python_model, x):
    by_name = explain(python_model, x[:2], method="gradcam", layer="body.3")
    by_module = explain(python_model, x[:2], method="gradcam", layer=python_model.module.body[3])
    torch.testing.assert_close(by_name, by_module)
    assert not torch.equal(by_name, explain(python_model, x[:2], method="gradcam"))
    with pytest.raises(UnknownNameError, match="the model has no layer 'body.9'; its layers: body, body.0"):
        explain(python_model, x[:2], method="gradcam", layer="body.9")


def test_mlp_has_no_feature_map_but_has_features():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    model = Classifier(module, input_shape=(8,), num_classes=4, bounds=None)
    with pytest.raises(InputError) as info:
        gradcam_layer(model)
    message = str(info.value)
    assert message.startswith("no module of this model outputs a 4-D feature map")
    assert "pass --gradcam-layer NAME" in message and "modules: 0, 1, 2" in message
    assert "\n" not in message
    assert feature_layer(model) == "2"


def test_image_mlp_gives_the_gradcam_error_through_explain():
    module = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    model = Classifier(module, input_shape=(1, 4, 4), num_classes=3)
    with pytest.raises(InputError, match="no module of this model outputs a 4-D feature map; pass --gradcam-layer"):
        explain(model, torch.rand(2, 1, 4, 4), method="gradcam")


def test_feature_layer_prefers_the_linear_map_over_a_trailing_module():
    module = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3), nn.Identity())
    model = Classifier(module, input_shape=(5,), num_classes=3, bounds=None)
    assert feature_layer(model) == "2"


def test_gradcam_falls_back_to_the_convolution_when_relu_is_functional():
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.pool = nn.AdaptiveAvgPool2d(2)
            self.fc = nn.Linear(8, 3)

        def forward(self, x):
            return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))

    model = Classifier(Functional(), input_shape=(1, 6, 6), num_classes=3)
    assert gradcam_layer(model) == "conv"  # no activation module after it: the convolution itself
    assert relu_usage(model) == (1, 0)  # one ReLU operator, no ReLU module


def test_torchscript_copies_are_independent(torchscript_model, x):
    twin = torchscript_model.copy()
    assert isinstance(twin.module, HookableScript)
    torch.testing.assert_close(twin.logits(x), torchscript_model.logits(x), rtol=0, atol=0)
    with torch.no_grad():
        for p in twin.module.parameters():
            p.mul_(0.5)
    assert not torch.allclose(twin.logits(x), torchscript_model.logits(x))  # the compiled copy sees the change
    assert twin.module.script is not torchscript_model.module.script


class ScriptedFunctional(nn.Module):
    """Scripted (not traced): calls into torch.nn.functional and a branch on self.training."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.conv = nn.Conv2d(1, 3, 3)
        self.fc = nn.Linear(3 * 13 * 13, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        if self.training:
            x = x * 2.0
        return self.fc(x.flatten(1))


def test_scripted_model_with_functional_calls_is_mirrored(tmp_path, x):
    module = ScriptedFunctional().eval()
    torch.jit.save(torch.jit.script(module), tmp_path / "scripted.pt")
    model = load_model(tmp_path / "scripted.pt", input_shape=(1, 28, 28))
    assert isinstance(model.module, HookableScript)
    torch.testing.assert_close(model.logits(x), module(x).detach(), rtol=0, atol=0)
    assert gradcam_layer(model) == "conv" and feature_layer(model) == "fc"
    assert relu_usage(model) == (1, 0)
