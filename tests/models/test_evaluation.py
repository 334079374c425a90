import json
from importlib import resources

import pytest
import torch

from trustlab.core.exceptions import InputError
from trustlab.core.stats import wilson_interval
from trustlab.data import load_dataset
from trustlab.models import load_reference_model
from trustlab.models.evaluation import accuracy_from_predictions, evaluate


def test_accuracy_by_hand():
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    p = torch.tensor([0, 1, 1, 1, 1, 2, 0, 2, 2])
    result = accuracy_from_predictions(y, p, ("a", "b", "c", "d"))
    assert result.accuracy == pytest.approx(6 / 9)
    assert result.confusion == ((1, 2, 0, 0), (0, 2, 0, 0), (1, 0, 3, 0), (0, 0, 0, 0))
    assert result.per_class_accuracy == (pytest.approx(1 / 3), 1.0, 0.75, None)
    assert result.per_class_support == (3, 2, 4, 0)
    assert result.most_confused == (("a", "b", 2), ("c", "a", 1))


def test_wilson_interval_matches_the_textbook_value():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    for n in (1, 10, 49, 1000, 9999):  # all right or all wrong: the interval still holds the estimate
        assert wilson_interval(n, n)[1] == 1.0 and wilson_interval(0, n)[0] == 0.0


def test_class_count_mismatch_is_a_clear_error(tiny_cnn):
    pima_like = load_dataset("digits", "test")
    with pytest.raises(InputError, match=r"inputs of dataset 'digits' have shape"):
        evaluate(tiny_cnn, pima_like, show_progress=False)


def test_reference_cnn_on_the_bundled_sample():
    classifier = load_reference_model()
    result = evaluate(classifier, load_dataset("mnist", "sample"), show_progress=False)
    assert result.examples == 1000 and result.accuracy >= 0.97


def test_shipped_record_matches_shipped_weights():
    record = json.loads(resources.files("trustlab.models.weights").joinpath("mnist_cnn.json").read_text())
    assert record["weights_sha256"] == load_reference_model().weights_sha256()
    assert record["test_examples"] == 10000


def test_reference_cnn_reaches_97_percent_on_the_official_test_split(reference_data):
    classifier = load_reference_model()
    result = evaluate(classifier, load_dataset("mnist", "test", root=reference_data), show_progress=False)
    assert result.examples == 10000
    assert result.accuracy >= 0.97, result.accuracy


def test_robust_reference_model_is_robust_on_the_sample():
    from trustlab.robustness.attacks import PGD
    from trustlab.robustness.evaluate import robust_accuracy

    model = load_reference_model("mnist_cnn_robust")
    data = load_dataset("mnist", "sample").subset(slice(0, 100))
    result = robust_accuracy(model, data.x, data.y, PGD(steps=40, step_size=0.01, early_stop=True), [0.2])
    assert result.clean_accuracy >= 0.95 and result.accuracy[0] >= 0.8, result
    record = json.loads(resources.files("trustlab.models.weights").joinpath("mnist_cnn_robust.json").read_text())
    assert record["weights_sha256"] == model.weights_sha256() and record["training"]["seconds"] < 20 * 60
