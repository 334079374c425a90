import pytest
import torch
from torch import nn

from trustlab.core.exceptions import GradientsUnavailableError, InputError
from trustlab.models import BlackBoxClassifier, Classifier


class Recorder(nn.Module):
    """Identity-ish linear model that remembers what it was called with."""

    def __init__(self, features: int = 3, classes: int = 2) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []
        self.linear = nn.Linear(features, classes)

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.linear(x)


def test_batched_logits_equal_unbatched(tiny_cnn, images):
    whole = tiny_cnn.logits(images, batch_size=len(images))
    for size in (1, 7, 32):
        torch.testing.assert_close(tiny_cnn.logits(images, batch_size=size), whole, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        direct = tiny_cnn.module((images - 0.13) / 0.31)
    torch.testing.assert_close(whole, direct, rtol=1e-5, atol=1e-6)


def test_memory_is_bounded_by_batch_size(images):
    module = Recorder(features=28 * 28)
    classifier = Classifier(nn.Sequential(nn.Flatten(), module), input_shape=(1, 28, 28), num_classes=2, batch_size=16)
    module.seen.clear()
    classifier.logits(images)
    assert [len(s) for s in module.seen] == [16, 16, 16, 2]


def test_normalisation_happens_once_inside():
    module = Recorder()
    mean, std = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 8.0])
    classifier = Classifier(module, input_shape=(3,), num_classes=2, bounds=None, mean=mean, std=std)
    x = torch.tensor([[3.0, 6.0, 11.0], [1.0, 2.0, 3.0]])
    module.seen.clear()
    classifier.logits(x)
    assert len(module.seen) == 1
    torch.testing.assert_close(module.seen[0], torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))
    module.seen.clear()
    out = classifier.forward(x)  # the differentiable path normalises too, once
    torch.testing.assert_close(module.seen[0], torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(classifier.proba(x), torch.softmax(out, 1).detach())


def test_per_channel_statistics_broadcast():
    classifier = Classifier(
        nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), input_shape=(3, 2, 2), mean=[0.1, 0.2, 0.3], std=[1.0, 2.0, 4.0]
    )
    assert classifier.mean.shape == (3, 1, 1)
    with pytest.raises(InputError, match="mean must have 1, 3 or 12 values"):
        Classifier(nn.Linear(12, 2), input_shape=(3, 2, 2), mean=[0.1, 0.2])


def test_validation_messages(tiny_cnn):
    with pytest.raises(InputError, match=r"have shape \(5, 28, 28\), but \(N, 1, 28, 28\) is expected"):
        tiny_cnn.logits(torch.rand(5, 28, 28))
    bad = torch.rand(4, 1, 28, 28)
    bad[0, 0, 0, 0] = float("nan")
    bad[1, 0, 0, 0] = float("inf")
    with pytest.raises(InputError, match="contain 2 NaN or infinite values"):
        tiny_cnn.logits(bad)
    with pytest.raises(InputError, match=r"bounds \[0, 1\], found values in \[0, 2\]"):
        tiny_cnn.logits(torch.rand(2, 1, 28, 28) * 0 + torch.tensor([0.0, 2.0]).view(2, 1, 1, 1))
    with pytest.raises(InputError, match="torch tensor or numpy array, got list"):
        tiny_cnn.logits([[0.0]])


def test_numpy_inputs_and_integer_pixels_are_accepted(tiny_cnn, images):
    torch.testing.assert_close(tiny_cnn.logits(images.numpy()), tiny_cnn.logits(images))


def test_module_errors_become_one_line_input_errors():
    classifier = Classifier(nn.Linear(4, 2), input_shape=(4,), num_classes=2, bounds=None)
    classifier.input_shape = (5,)  # simulate a file that declared the wrong shape
    with pytest.raises(InputError, match=r"model failed on inputs of shape \(3, 5\)"):
        classifier.logits(torch.zeros(3, 5))


def test_num_classes_inferred_and_names_checked():
    classifier = Classifier(nn.Linear(4, 3), input_shape=(4,), bounds=None)
    assert classifier.num_classes == 3 and classifier.class_names == ("0", "1", "2")
    with pytest.raises(InputError, match="class_names has 2 names for 3 classes"):
        Classifier(nn.Linear(4, 3), input_shape=(4,), bounds=None, class_names=["a", "b"])


def test_eval_mode_makes_dropout_deterministic(images):
    module = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(784, 10)).train()
    classifier = Classifier(module, input_shape=(1, 28, 28))
    assert not module.training
    torch.testing.assert_close(classifier.logits(images), classifier.logits(images))


def test_black_box_classifier_gives_probabilities_but_no_gradients():
    weights = torch.tensor([[1.0, -1.0], [0.5, 0.5]])

    def proba_fn(x):
        return torch.softmax(x @ weights, dim=1)

    box = BlackBoxClassifier(proba_fn, input_shape=(2,), num_classes=2, bounds=None)
    x = torch.tensor([[0.2, 0.4], [1.0, -1.0]])
    torch.testing.assert_close(box.proba(x), proba_fn(x))
    with pytest.raises(GradientsUnavailableError, match="FGSM needs gradients"):
        box.require_gradients("FGSM")


def test_weights_digest_tracks_weights(tiny_cnn):
    before = tiny_cnn.weights_sha256()
    with torch.no_grad():
        tiny_cnn.module.fc2.bias[0] += 1
    assert tiny_cnn.weights_sha256() != before


def test_as_module_computes_the_same_logits_and_survives_a_deep_copy(tiny_cnn, images):
    import copy

    net = tiny_cnn.as_module()
    with torch.no_grad():
        torch.testing.assert_close(net(images), tiny_cnn.forward(images))
        torch.testing.assert_close(copy.deepcopy(net)(images), tiny_cnn.forward(images))
    assert net.inner is tiny_cnn.module  # shares the weights


def test_with_module_keeps_the_contract(tiny_cnn):
    import copy

    other = tiny_cnn.with_module(copy.deepcopy(tiny_cnn.module))
    assert other.describe() == tiny_cnn.describe() and other.batch_size == tiny_cnn.batch_size
    assert other.module is not tiny_cnn.module


def test_copy_is_independent_of_the_original(tiny_cnn):
    x = torch.rand(3, 1, 28, 28)
    copy = tiny_cnn.copy()
    assert torch.equal(copy.logits(x), tiny_cnn.logits(x)) and copy.module is not tiny_cnn.module
    with torch.no_grad():
        next(copy.module.parameters()).add_(1.0)
    assert not torch.equal(copy.logits(x), tiny_cnn.logits(x))  # the user's model is untouched
    assert copy.class_names == tiny_cnn.class_names and copy.batch_size == tiny_cnn.batch_size
