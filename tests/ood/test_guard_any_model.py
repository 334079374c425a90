"""A guard for any model trustlab can load: the model travels inside the guard file."""

import json
import struct

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.models import Classifier, load_model
from trustlab.models.scripted import HookableScript
from trustlab.ood.base import make_detector
from trustlab.ood.guard import ARCHIVE, GuardedClassifier

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
FIELDS = ("labels", "probabilities", "scores", "p_values", "alarms")


def _metadata(path):
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length])["__metadata__"]


def _round_trip(classifier, detector_name, sample, noise, tmp_path):
    fit_set, held_out = sample
    detector = make_detector(detector_name, classifier).fit(fit_set.subset(slice(0, 300)))
    guard = GuardedClassifier.calibrate(classifier, detector, held_out.x[:100], alpha=0.1)
    path = guard.save(tmp_path / "guard.safetensors")
    loaded = GuardedClassifier.load(path)
    x = torch.cat([held_out.x[100:130], noise[:10]])
    before, after = guard.predict(x), loaded.predict(x)
    for field in FIELDS:
        assert torch.equal(getattr(before, field), getattr(after, field)), field
    assert loaded.detector.config() == guard.detector.config()
    assert loaded.threshold.threshold == guard.threshold.threshold
    return path, loaded


@pytest.mark.parametrize("detector_name", ["mahalanobis", "knn", "energy"])
def test_torchscript_guard_round_trip(detector_name, reference, sample, noise, tmp_path):
    x = sample[0].x[:2]
    torch.jit.save(torch.jit.trace(reference.module, x), tmp_path / "model.pt")
    scripted = load_model(tmp_path / "model.pt", input_shape=(1, 28, 28), mean=reference.mean, std=reference.std)
    assert scripted.architecture is None
    path, loaded = _round_trip(scripted, detector_name, sample, noise, tmp_path)
    (tmp_path / "model.pt").unlink()  # the guard does not need the model file
    assert _metadata(path)["classifier_archive"] == "torchscript"
    assert load_file(path)[ARCHIVE].dtype == torch.uint8  # the model's bytes, beside the detector's tensors
    again = GuardedClassifier.load(path)
    assert isinstance(again.classifier.module, HookableScript)
    assert again.classifier.describe() == scripted.describe()
    assert torch.equal(again.classifier.logits(sample[1].x[:20]), reference.logits(sample[1].x[:20]))


def test_plain_module_guard_is_stored_as_an_exported_program(reference, sample, noise, tmp_path):
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 4, 5, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 12 * 12, 10))
    plain = Classifier(module, input_shape=(1, 28, 28), num_classes=10, mean=0.1307, std=0.3081)
    path, loaded = _round_trip(plain, "mahalanobis", sample, noise, tmp_path)
    assert _metadata(path)["classifier_archive"] == "torch.export"
    assert loaded.detector.layer == "3"  # the module names survive the archive


def test_exported_program_guard_round_trip(reference, sample, noise, tmp_path):
    x = sample[0].x[:2]
    program = torch.export.export(reference.module, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    torch.export.save(program, tmp_path / "model.pt2")
    exported = load_model(tmp_path / "model.pt2", mean=reference.mean, std=reference.std)
    path, loaded = _round_trip(exported, "knn", sample, noise, tmp_path)
    assert _metadata(path)["classifier_archive"] == "torch.export"
    assert loaded.detector.layer == "fc2"


def test_registered_architectures_still_store_weights(reference, sample, tmp_path):
    detector = make_detector("msp", reference).fit(sample[0].subset(slice(0, 50)))
    path = GuardedClassifier.calibrate(reference, detector, sample[1].x[:50]).save(tmp_path / "g.safetensors")
    assert "classifier_archive" not in _metadata(path)


class _Noisy(nn.Module):
    """Different outputs on every call: no archive can reproduce them."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x) + torch.randn_like(self.fc(x))


def test_a_model_no_archive_reproduces_is_refused(tmp_path):
    model = Classifier(_Noisy(), input_shape=(4,), num_classes=2, bounds=None)
    x = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    detector = make_detector("maxlogit", model).fit(x)
    guard = GuardedClassifier.calibrate(model, detector, x)
    with pytest.raises(InputError, match=r"^this model cannot be stored \(torch.export does not reproduce"):
        guard.save(tmp_path / "g.safetensors")
    assert not (tmp_path / "g.safetensors").exists()
