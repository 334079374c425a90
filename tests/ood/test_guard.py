"""The guarded classifier: answers, alarms, and its one-file artefact."""

import pytest
import torch
from safetensors.torch import load_file

from trustlab.core.exceptions import InputError, ModelLoadError, NotFittedError
from trustlab.models import load_reference_model
from trustlab.ood.base import make_detector
from trustlab.ood.guard import GuardedClassifier
from trustlab.ood.reference import load_reference_detector


@pytest.fixture(scope="module")
def knn_guard(reference, sample):
    fit_set, held_out = sample
    detector = make_detector("knn", reference, k=5).fit(fit_set)
    return GuardedClassifier.calibrate(reference, detector, held_out.subset(slice(0, 200)), alpha=0.1)


def test_predictions_carry_label_probabilities_score_p_value_and_alarm(knn_guard, reference, sample, noise):
    x = torch.cat([sample[1].x[200:240], noise[:40]])
    out = knn_guard.predict(x)
    assert len(out) == 80
    assert torch.equal(out.labels, reference.predict(x))
    torch.testing.assert_close(out.probabilities, reference.proba(x))
    torch.testing.assert_close(out.scores, knn_guard.detector.score(x))
    assert torch.equal(out.alarms, out.scores > knn_guard.threshold.threshold)
    assert torch.equal(out.alarms, out.p_values <= 0.1)
    assert out.alarms[40:].float().mean() > 0.9  # noise raises the alarm
    assert out.alarms[:40].float().mean() < 0.4
    record = out.records(reference.class_names)[0]
    assert set(record) == {"label", "class", "probability", "score", "p_value", "alarm"}


@pytest.mark.parametrize("kind", ["knn", "mahalanobis", "vae", "wgan"])
def test_save_and_load_give_identical_answers(kind, reference, sample, noise, tmp_path):
    fit_set, held_out = sample
    if kind in ("vae", "wgan"):
        detector = load_reference_detector(kind)
    else:
        detector = make_detector(kind, reference).fit(fit_set)
    guard = GuardedClassifier.calibrate(reference, detector, held_out.x[:100], alpha=0.1)
    path = guard.save(tmp_path / "guard.safetensors")
    assert set(load_file(path)) >= {"calibration_scores"}  # plain safetensors, no pickle
    loaded = GuardedClassifier.load(path)
    x = torch.cat([held_out.x[100:130], noise[:10]])
    before, after = guard.predict(x), loaded.predict(x)
    for field in ("labels", "probabilities", "scores", "p_values", "alarms"):
        assert torch.equal(getattr(before, field), getattr(after, field)), field
    assert loaded.alpha == 0.1 and loaded.threshold.threshold == guard.threshold.threshold


def test_guard_refuses_mismatched_parts(reference, sample):
    other = load_reference_model("mnist_cnn_robust")
    detector = make_detector("msp", reference).fit(sample[0])
    with pytest.raises(InputError, match="must read the classifier it guards"):
        GuardedClassifier.calibrate(other, detector, sample[1].x[:50])
    with pytest.raises(NotFittedError, match="not fitted"):
        GuardedClassifier.calibrate(reference, make_detector("knn", reference), sample[1].x[:50])


def test_guard_validates_inputs_and_files(knn_guard, tmp_path):
    with pytest.raises(InputError, match=r"bounds \[0, 1\]"):
        knn_guard.predict(torch.full((1, 1, 28, 28), -1.0))
    with pytest.raises(InputError, match="shape"):
        knn_guard.predict(torch.zeros(1, 28, 28))
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not a guard")
    with pytest.raises(ModelLoadError, match="damaged safetensors file"):
        GuardedClassifier.load(bogus)
    with pytest.raises(ModelLoadError, match="does not exist"):
        GuardedClassifier.load(tmp_path / "missing.safetensors")
