"""Post-hoc detectors against hand-written references."""

import numpy as np
import pytest
import torch
from torch import nn

from trustlab.core.exceptions import InputError, UnknownNameError
from trustlab.models import Classifier
from trustlab.ood.posthoc import KNN, Energy, Mahalanobis, MaxLogit, MaxSoftmax


def _tabular_classifier(hidden=16, dead=0, seed=0):
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))
    with torch.no_grad():
        if dead:  # features that are always zero: the covariance is singular
            module[0].weight[:dead] = 0.0
            module[0].bias[:dead] = -1.0
    return Classifier(module, input_shape=(4,), num_classes=3, bounds=None)


def _features(clf, x):
    return torch.relu(clf.module[0](x)).detach().double().numpy()


def test_logit_scores_by_formula():
    clf = _tabular_classifier()
    x = torch.randn(30, 4, generator=torch.Generator().manual_seed(1))
    logits = clf.logits(x).double()
    msp = MaxSoftmax(clf).fit(x)
    torch.testing.assert_close(msp.score(x), -torch.softmax(logits, 1).max(1).values)
    torch.testing.assert_close(MaxLogit(clf).fit(x).score(x), -logits.max(1).values)
    energy = Energy(clf, temperature=2.0).fit(x)
    torch.testing.assert_close(energy.score(x), -2.0 * torch.logsumexp(logits / 2.0, 1))


@pytest.mark.parametrize(("n", "dead", "singular"), [(200, 0, False), (6, 0, True), (60, 10, True)])
def test_mahalanobis_matches_numpy_even_when_rank_deficient(n, dead, singular):
    """n=6 examples in 16 dimensions, or 10 dead features: the sample covariance is singular."""
    clf = _tabular_classifier(dead=dead)
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(n, 4, generator=g), torch.arange(n) % 3
    detector = Mahalanobis(clf, shrinkage=0.05).fit(x, y)
    f = _features(clf, x)
    means = np.stack([f[y.numpy() == c].mean(0) for c in range(3)])
    centred = f - means[y.numpy()]
    cov = centred.T @ centred / n
    assert (np.linalg.matrix_rank(cov) < cov.shape[0]) == singular
    scale = np.trace(cov) / cov.shape[0]
    shrunk = 0.95 * cov + 0.05 * scale * np.eye(cov.shape[0])
    precision = np.linalg.inv(shrunk)
    new = torch.randn(25, 4, generator=g)
    h = _features(clf, new)
    expected = np.min([np.einsum("ij,jk,ik->i", h - m, precision, h - m) for m in means], axis=0)
    np.testing.assert_allclose(detector.score(new).numpy(), expected, rtol=2e-4)


def test_mahalanobis_survives_all_constant_features():
    clf = _tabular_classifier(hidden=8, dead=8)
    x = torch.randn(20, 4)
    scores = Mahalanobis(clf).fit(x, torch.arange(20) % 3).score(x)
    assert torch.isfinite(scores).all()


def test_mahalanobis_uses_predictions_without_labels():
    clf = _tabular_classifier()
    x = torch.randn(100, 4, generator=torch.Generator().manual_seed(5))
    with_predictions = Mahalanobis(clf).fit(x).score(x)
    explicit = Mahalanobis(clf).fit(x, clf.predict(x)).score(x)
    torch.testing.assert_close(with_predictions, explicit)


def test_knn_matches_brute_force():
    clf = _tabular_classifier()
    g = torch.Generator().manual_seed(3)
    x, new = torch.randn(80, 4, generator=g), torch.randn(15, 4, generator=g)
    detector = KNN(clf, k=5).fit(x)
    bank = _features(clf, x)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    h = _features(clf, new)
    h /= np.linalg.norm(h, axis=1, keepdims=True)
    distances = np.linalg.norm(h[:, None, :] - bank[None, :, :], axis=2)
    expected = np.sort(distances, axis=1)[:, 4]
    np.testing.assert_allclose(detector.score(new).numpy(), expected, atol=1e-5)


def test_feature_layer_is_explicit_when_needed():
    clf = _tabular_classifier()
    x = torch.randn(10, 4)
    assert KNN(clf, k=2).fit(x).layer == "2"  # the last nn.Linear: its input is the penultimate layer
    with pytest.raises(UnknownNameError, match="has no layer 'fc9'"):
        KNN(clf, k=2, layer="fc9").fit(x)
    conv_only = Classifier(
        nn.Sequential(nn.Conv2d(1, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()), input_shape=(1, 8, 8)
    )
    with pytest.raises(InputError, match=r"needs penultimate features: no module .* pass --feature-layer NAME"):
        KNN(conv_only, k=2).fit(torch.rand(5, 1, 8, 8))


def test_knn_bank_can_be_a_seeded_sample():
    clf = _tabular_classifier()
    g = torch.Generator().manual_seed(4)
    x, new = torch.randn(200, 4, generator=g), torch.randn(10, 4, generator=g)
    small = KNN(clf, k=3, bank_size=50, seed=1).fit(x)
    assert small.bank_.shape[0] == 50
    torch.testing.assert_close(small.score(new), KNN(clf, k=3, bank_size=50, seed=1).fit(x).score(new))
    full = KNN(clf, k=3).fit(x)
    assert (small.score(new) >= full.score(new) - 1e-6).all()  # fewer neighbours: never closer
    with pytest.raises(InputError, match="bank_size must be at least k=3"):
        KNN(clf, k=3, bank_size=2)
