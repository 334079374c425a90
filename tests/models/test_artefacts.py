import os
import pickle
from pathlib import Path

import pytest
import torch

from trustlab.core.exceptions import InputError, ModelLoadError, PickleRefusedError
from trustlab.models import Classifier, build_architecture, load_model, save_model
from trustlab.models.architectures import MnistCNN


class _TouchOnUnpickle:
    """Unpickling this creates a file: the canary for code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_safetensors_artefact_round_trip(tmp_path, tiny_cnn, images):
    path = save_model(tiny_cnn, tmp_path / "m.safetensors")
    loaded = load_model(path)
    assert loaded.describe() == tiny_cnn.describe()
    assert torch.equal(loaded.logits(images), tiny_cnn.logits(images))
    assert loaded.weights_sha256() == tiny_cnn.weights_sha256()


def test_unregistered_modules_cannot_be_saved_as_artefacts(tmp_path):
    classifier = Classifier(torch.nn.Linear(2, 2), input_shape=(2,), bounds=None)
    with pytest.raises(InputError, match="registered architecture"):
        save_model(classifier, tmp_path / "x.safetensors")


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_round_trip(tmp_path, tiny_cnn, images):
    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.trace(tiny_cnn.module, images[:2]), path)
    loaded = load_model(path, input_shape=(1, 28, 28), mean=0.13, std=0.31)
    torch.testing.assert_close(loaded.logits(images), tiny_cnn.logits(images))
    with pytest.raises(ModelLoadError, match="does not say what input shape"):
        load_model(path)


def test_torch_export_round_trip_and_fixed_batch(tmp_path, tiny_cnn, images):
    batch = torch.export.Dim("batch")
    program = torch.export.export(tiny_cnn.module, (images[:2],), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, tmp_path / "m.pt2")
    loaded = load_model(tmp_path / "m.pt2", mean=0.13, std=0.31)
    assert loaded.input_shape == (1, 28, 28)
    torch.testing.assert_close(loaded.logits(images), tiny_cnn.logits(images))
    torch.export.save(torch.export.export(tiny_cnn.module, (images[:2],)), tmp_path / "fixed.pt2")
    with pytest.raises(ModelLoadError, match="fixed batch size of 2"):
        load_model(tmp_path / "fixed.pt2")


def test_state_dict_needs_architecture(tmp_path, tiny_cnn, images):
    torch.save(tiny_cnn.module.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ModelLoadError, match="weights only; name their architecture with --arch"):
        load_model(tmp_path / "sd.pt", input_shape=(1, 28, 28))
    loaded = load_model(
        tmp_path / "sd.pt",
        architecture="mnist_cnn",
        config=tiny_cnn.config,
        input_shape=(1, 28, 28),
        mean=0.13,
        std=0.31,
    )
    assert torch.equal(loaded.logits(images), tiny_cnn.logits(images))
    with pytest.raises(ModelLoadError, match="do not fit the architecture"):
        load_model(tmp_path / "sd.pt", architecture="mnist_cnn", input_shape=(1, 28, 28))


def test_full_pickle_refused_unless_opted_in(tmp_path, tiny_cnn, images):
    torch.save(tiny_cnn.module, tmp_path / "full.pt")
    with pytest.raises(PickleRefusedError, match="--allow-pickle"):
        load_model(tmp_path / "full.pt", input_shape=(1, 28, 28))
    loaded = load_model(tmp_path / "full.pt", input_shape=(1, 28, 28), allow_pickle=True, mean=0.13, std=0.31)
    assert isinstance(loaded.module, MnistCNN)
    assert torch.equal(loaded.logits(images), tiny_cnn.logits(images))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_malicious_pickle_never_runs(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"weights": _TouchOnUnpickle(marker)}
    if writer == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path)
    with pytest.raises(PickleRefusedError):
        load_model(path, input_shape=(1, 28, 28))
    assert not marker.exists()


def test_protocol_zero_pickle_is_refused_not_misread(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil0.pkl"
    path.write_bytes(pickle.dumps(_TouchOnUnpickle(marker), protocol=0))
    with pytest.raises(PickleRefusedError):
        load_model(path, input_shape=(1,))
    assert not marker.exists()


def test_garbage_and_missing_files(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(64) + b"not a model")
    with pytest.raises(ModelLoadError, match="not a model file trustlab can read"):
        load_model(junk)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "absent.safetensors")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes((20).to_bytes(8, "little") + b'{"a": {"dtype": "F32"')
    with pytest.raises(ModelLoadError, match="damaged safetensors"):
        load_model(broken)


def test_architecture_registry_errors():
    from trustlab.core.exceptions import UnknownNameError

    with pytest.raises(UnknownNameError, match="unknown architecture 'resnet'; expected one of: mlp, mnist_cnn"):
        build_architecture("resnet")
    with pytest.raises(UnknownNameError, match="bad config for architecture 'mlp'"):
        build_architecture("mlp", width=3)


def test_seeded_build_does_not_touch_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = build_architecture("mlp", seed=5, in_features=4)
    after = torch.rand(3)
    b = build_architecture("mlp", seed=5, in_features=4)
    assert torch.equal(expected, after)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
