"""A TorchScript model's run-time error shows why it failed, on one line."""

import pytest
import torch
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.models import Classifier, load_model
from trustlab.models.classifier import error_reason

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


@pytest.mark.parametrize("compile_with", ["script", "trace"])
def test_wrong_shape_names_the_reason(compile_with, tmp_path):
    module = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    compiled = torch.jit.script(module) if compile_with == "script" else torch.jit.trace(module, torch.zeros(2, 784))
    torch.jit.save(compiled, tmp_path / "m.pt")
    with pytest.raises(InputError) as info:
        load_model(tmp_path / "m.pt", input_shape=(1, 27, 28))  # 756 features for a 784-feature layer
    message = str(info.value)
    assert message == (
        "model failed on inputs of shape (1, 1, 27, 28): "
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x756 and 784x10)"
    )


def test_wrong_shape_in_a_compiled_module_used_directly(tmp_path):
    torch.jit.save(torch.jit.script(nn.Linear(4, 2)), tmp_path / "lin.pt")
    model = Classifier(torch.jit.load(tmp_path / "lin.pt"), input_shape=(4,), num_classes=2, bounds=None)
    model.input_shape = (5,)  # as if declared wrongly: the module itself complains
    with pytest.raises(InputError, match=r"RuntimeError: mat1 and mat2 shapes cannot be multiplied \(3x5 and 4x2\)$"):
        model.logits(torch.zeros(3, 5))


def test_error_reason_keeps_ordinary_first_lines():
    assert error_reason(RuntimeError("shapes differ\nmore detail")) == "shapes differ"
    assert error_reason(RuntimeError("")) == "RuntimeError"
    header = "The following operation failed in the TorchScript interpreter."
    text = f"{header}\nTraceback of TorchScript:\n  File x, line 1\n    y = f(x)\n\nValueError: bad value\n"
    assert error_reason(RuntimeError(text)) == "ValueError: bad value"
