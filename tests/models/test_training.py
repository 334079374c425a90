import pytest
import torch

from trustlab.core.exceptions import InputError
from trustlab.data import load_dataset
from trustlab.models import Classifier, build_architecture, train
from trustlab.models.training import random_translate


def _digits_classifier(seed: int = 0) -> Classifier:
    config = {"in_channels": 1, "image_size": 8, "channels": [8, 16], "hidden": 32}
    module = build_architecture("mnist_cnn", seed=seed, **config)
    return Classifier(
        module, input_shape=(1, 8, 8), num_classes=10, mean=0.3, std=0.4, architecture="mnist_cnn", config=config
    )


def test_same_seed_gives_identical_weights_and_different_seed_does_not():
    data = load_dataset("digits", "train")
    runs = []
    for seed in (0, 0, 1):
        classifier = _digits_classifier()
        result = train(
            classifier,
            data.x[:400],
            data.y[:400],
            epochs=2,
            batch_size=32,
            seed=seed,
            augment_shift=1,
            show_progress=False,
        )
        runs.append((classifier.module.state_dict(), result.loss))
    same = all(torch.equal(runs[0][0][k], runs[1][0][k]) for k in runs[0][0])
    assert same and runs[0][1] == runs[1][1]
    assert not all(torch.equal(runs[0][0][k], runs[2][0][k]) for k in runs[0][0])


def test_training_learns_digits():
    train_set, test_set = load_dataset("digits", "train"), load_dataset("digits", "test")
    classifier = _digits_classifier()
    result = train(
        classifier, train_set.x, train_set.y, epochs=8, batch_size=32, learning_rate=3e-3, show_progress=False
    )
    accuracy = (classifier.predict(test_set.x) == test_set.y).float().mean().item()
    assert accuracy > 0.93, accuracy
    assert result.loss[-1] < result.loss[0] and len(result.accuracy) == 8
    assert not classifier.module.training


def test_random_translate_moves_a_pixel_by_its_offset():
    x = torch.zeros(64, 1, 5, 5)
    x[:, 0, 2, 2] = 1.0
    shifted = random_translate(x, 2, torch.Generator().manual_seed(0))
    positions = shifted[:, 0].flatten(1).argmax(1)
    rows, cols = positions // 5, positions % 5
    assert torch.all(shifted.flatten(1).sum(1) == 1)  # nothing lost: a shift of <= 2 keeps the centre pixel
    assert set(rows.tolist()) == {0, 1, 2, 3, 4} and set(cols.tolist()) == {0, 1, 2, 3, 4}


def test_bad_training_arguments():
    classifier = _digits_classifier()
    with pytest.raises(InputError, match=r"labels must be 2 class indices in 0\.\.9 \(integers\), got .* 0\.\.12"):
        train(classifier, torch.zeros(2, 1, 8, 8), torch.tensor([0, 12]), epochs=1, show_progress=False)
    with pytest.raises(InputError, match="must be positive"):
        train(classifier, torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), epochs=0, show_progress=False)
