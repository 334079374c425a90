"""ONNX files as differentiable classifiers (extra ``onnx``)."""

import io
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trustlab.core.exceptions import ModelLoadError
from trustlab.models import load_model
from trustlab.models.onnx_reader import ERR_MISSING
from trustlab.models.probe import feature_layer, gradcam_layer


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3), nn.ReLU()
        )
        self.fc1 = nn.Linear(8 * 12 * 12, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(self.features(x).flatten(1))))


class ShapeArithmetic(nn.Module):
    """What exporters write for view(x.size(0), -1), batch norm, average pooling and a softmax."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.conv = nn.Conv2d(1, 3, 3, stride=2)
        self.bn = nn.BatchNorm2d(3)
        self.bn.running_mean.uniform_(-0.2, 0.2)
        self.bn.running_var.uniform_(0.5, 2.0)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(3 * 6 * 6, 4)

    def forward(self, x):
        x = self.pool(torch.sigmoid(self.bn(self.conv(x))))
        return torch.log_softmax(self.fc(x.view(x.size(0), -1)), dim=1)


def _export(module, shape, path):
    """torch's TorchScript-based exporter (the dynamo one needs onnxscript), dynamic batch."""
    module = module.eval()
    try:
        torch.onnx.export(
            module,
            (torch.rand(2, *shape),),
            str(path),
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )
    except Exception as exc:  # a torch build without the legacy exporter
        pytest.skip(f"torch.onnx.export does not work here ({type(exc).__name__}: {exc})")
    return path


@pytest.fixture()
def onnx():
    return pytest.importorskip("onnx", reason='ONNX support needs the extra: pip install "trustlab[onnx]"')


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("net", [SmallCNN, ShapeArithmetic])
def test_exported_model_matches_torch_and_differentiates(onnx, net, tmp_path):
    torch_model = net().eval()
    path = _export(torch_model, (1, 28, 28), tmp_path / "m.onnx")
    model = load_model(path, mean=0.1307, std=0.3081)
    assert model.input_shape == (1, 28, 28) and model.num_classes == (10 if net is SmallCNN else 4)
    x = torch.rand(7, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    expected = torch_model((x - 0.1307) / 0.3081)
    torch.testing.assert_close(model.logits(x), expected.detach(), rtol=0, atol=1e-5)
    # gradients flow to the input: the same input gradient as the torch model's
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.forward(xg)[:, 0].sum(), xg)
    xt = x.clone().requires_grad_(True)
    (grad_torch,) = torch.autograd.grad(torch_model((xt - 0.1307) / 0.3081)[:, 0].sum(), xt)
    assert grad.abs().sum() > 0
    torch.testing.assert_close(grad, grad_torch, rtol=1e-4, atol=1e-6)
    from trustlab.robustness.attacks import FGSM

    y = model.predict(x)
    result = FGSM().attack(model, x, y, eps=0.3)
    assert result.gradient_calls > 0 and result.success.any()
    assert not torch.equal(result.adversarials, x)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_layers_are_found_and_match_onnxruntime(onnx, tmp_path):
    torch_model = SmallCNN().eval()
    path = _export(torch_model, (1, 28, 28), tmp_path / "m.onnx")
    model = load_model(path)
    assert gradcam_layer(model) == "features_4"  # /features/features.4/Relu: the ReLU after the last conv
    assert feature_layer(model) == "fc2"
    runtime = pytest.importorskip("onnxruntime")
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    session = runtime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (reference,) = session.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(model.logits(x).numpy(), reference, rtol=0, atol=1e-5)


def _hand_built(onnx, tmp_path):
    """A graph written with onnx.helper: Reshape (constant shape), MatMul + Add or Gemm (transB=0), Relu, Softmax."""
    from onnx import TensorProto, helper, numpy_helper

    g = np.random.default_rng(0)
    w1 = g.normal(size=(12, 6)).astype(np.float32)
    b1 = g.normal(size=(6,)).astype(np.float32)
    w2 = g.normal(size=(6, 3)).astype(np.float32)
    b2 = g.normal(size=(1, 3)).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "shape"),
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(b2, "b2"),
    ]
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "w1"], ["mm"], name="hidden"),
        helper.make_node("Add", ["mm", "b1"], ["h"], name="hidden_bias"),
        helper.make_node("Relu", ["h"], ["a"], name="act"),
        helper.make_node("Gemm", ["a", "w2", "b2"], ["z"], name="out", alpha=2.0),
        helper.make_node("Softmax", ["z"], ["p"], name="softmax", axis=1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 2, 2])
    p = helper.make_tensor_value_info("p", TensorProto.FLOAT, ["n", 3])
    model = helper.make_model(
        helper.make_graph(nodes, "hand", [x], [p], inits), opset_imports=[helper.make_opsetid("", 17)]
    )
    onnx.save(model, tmp_path / "hand.onnx")

    def reference(t):
        h = torch.relu(t.reshape(t.shape[0], -1) @ torch.from_numpy(w1) + torch.from_numpy(b1))
        return torch.softmax(2.0 * h @ torch.from_numpy(w2) + torch.from_numpy(b2), dim=1)

    return tmp_path / "hand.onnx", reference


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_guard_carries_an_onnx_model(onnx, tmp_path):
    from trustlab.ood.base import make_detector
    from trustlab.ood.guard import GuardedClassifier

    model = load_model(_export(SmallCNN(), (1, 28, 28), tmp_path / "m.onnx"), mean=0.1307, std=0.3081)
    x = torch.rand(60, 1, 28, 28, generator=torch.Generator().manual_seed(6))
    detector = make_detector("mahalanobis", model).fit(x[:40])
    guard = GuardedClassifier.calibrate(model, detector, x[40:], alpha=0.2)
    loaded = GuardedClassifier.load(guard.save(tmp_path / "guard.safetensors"))
    (tmp_path / "m.onnx").unlink()
    new = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(7))
    before, after = guard.predict(new), loaded.predict(new)
    assert torch.equal(before.scores, after.scores) and torch.equal(before.probabilities, after.probabilities)
    assert loaded.detector.layer == "fc2"


def test_hand_built_graph(onnx, tmp_path):
    path, reference = _hand_built(onnx, tmp_path)
    model = load_model(path, input_shape=(3, 2, 2), bounds=None)  # the file does not fix its shape
    names = [n for n, _ in model.module.named_modules() if n]
    assert names == ["flatten", "hidden", "hidden_bias", "act", "out", "softmax"]
    x = torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model.logits(x), reference(x), rtol=0, atol=1e-5)
    assert feature_layer(model) == "out"  # the Gemm, not the softmax after it


def test_unsupported_operators_are_named(onnx, tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])
    graph = helper.make_graph([helper.make_node("Erf", ["x"], ["y"])], "erf", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "erf.onnx")
    with pytest.raises(ModelLoadError, match=r"uses ONNX operators trustlab cannot convert: Erf \(supported: "):
        load_model(tmp_path / "erf.onnx", input_shape=(4,))
    (tmp_path / "bad.onnx").write_bytes(b"\xff\xfe not protobuf")
    with pytest.raises(ModelLoadError, match="is not a readable ONNX model"):
        load_model(tmp_path / "bad.onnx", input_shape=(4,))


def test_without_the_extra_the_error_says_how_to_install(tmp_path, monkeypatch):
    (tmp_path / "m.onnx").write_bytes(io.BytesIO(b"\x08\x07").getvalue())
    monkeypatch.setitem(sys.modules, "onnx", None)  # any import of onnx fails
    with pytest.raises(ModelLoadError) as info:
        load_model(tmp_path / "m.onnx", input_shape=(4,))
    assert str(info.value) == ERR_MISSING == 'reading ONNX models needs the onnx package: pip install "trustlab[onnx]"'
