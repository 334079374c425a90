import pytest
import torch

from trustlab.core.exceptions import InputError
from trustlab.data import load_dataset
from trustlab.data.augment import random_translate
from trustlab.models import Classifier, build_architecture, train


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


def test_focal_loss_matches_a_hand_computed_value_and_is_cross_entropy_at_gamma_zero():
    import math

    from trustlab.models.training import focal_loss, loss_function

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0])
    p = [math.exp(2) / (math.exp(2) + 1), 1 / (1 + math.e)]
    expected = sum(-((1 - q) ** 2) * math.log(q) for q in p) / 2
    assert float(focal_loss(logits, labels, 2.0)) == pytest.approx(expected, rel=1e-6)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert float(focal_loss(logits, labels, 0.0)) == pytest.approx(float(ce), rel=1e-6)
    smooth = loss_function("cross_entropy", label_smoothing=0.1)(logits, labels)
    # label smoothing 0.1 over 2 classes: target (0.95, 0.05)
    log_p = torch.log_softmax(logits, 1)
    assert float(smooth) == pytest.approx(float(-(0.95 * log_p[:, 0] + 0.05 * log_p[:, 1]).mean()), rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"loss": "hinge"}, "unknown loss"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"loss": "focal", "focal_gamma": -1.0}, "focal_gamma"),
        ({"optimiser": "rmsprop"}, "unknown optimiser"),
    ],
)
def test_bad_training_options_are_one_line_errors(kwargs, needle):
    data = load_dataset("digits", "train")
    with pytest.raises(InputError, match=needle):
        train(_digits_classifier(), data.x[:10], data.y[:10], epochs=1, show_progress=False, **kwargs)


def test_batch_norm_and_dropout_options_train_and_round_trip(tmp_path):
    from trustlab.data.augment import Augmentation
    from trustlab.models import load_model, save_model

    data = load_dataset("digits", "train")
    config = {"in_channels": 1, "image_size": 8, "channels": [4, 8], "hidden": 16, "batch_norm": True, "dropout": 0.5}
    module = build_architecture("mnist_cnn", seed=0, **config)
    classifier = Classifier(module, input_shape=(1, 8, 8), num_classes=10, architecture="mnist_cnn", config=config)
    result = train(
        classifier, data.x[:64], data.y[:64], epochs=1, batch_size=32, optimiser="adamw", loss="focal",
        augment=Augmentation(rotate_degrees=10, noise_sigma=0.1), show_progress=False,
    )  # fmt: skip
    assert result.optimiser == "adamw" and result.loss_name == "focal" and "rotation" in result.augmentation
    save_model(classifier, tmp_path / "bn.safetensors")
    again = load_model(tmp_path / "bn.safetensors")
    assert torch.equal(again.logits(data.x[:16]), classifier.logits(data.x[:16]))
