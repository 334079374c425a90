"""Checks against the reference data (skipped without it, required in CI)."""

import torch

from trustlab.data import load_dataset

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_splits(reference_data):
    test = load_dataset("mnist", "test", root=reference_data)
    assert test.x.shape == (10000, 1, 28, 28) and test.y.bincount().tolist() == MNIST_TEST_COUNTS
    assert all(f.verified for f in test.metadata.files)
    train = load_dataset("mnist", "train", root=reference_data)
    assert len(train) == 5000 and train.y.bincount().tolist() == [500] * 10


def test_sample_is_the_first_hundred_test_digits_per_class(reference_data):
    test = load_dataset("mnist", "test", root=reference_data)
    sample = load_dataset("mnist", "sample")
    first = torch.cat([torch.nonzero(test.y == c).flatten()[:100] for c in range(10)]).sort().values
    assert torch.equal(sample.x, test.x[first]) and torch.equal(sample.y, test.y[first])


def test_notmnist(reference_data):
    data = load_dataset("notmnist", "test", root=reference_data)
    assert len(data) == 10000 and data.class_names == tuple("ABCDEFGHIJ")


def test_pima(reference_data):
    data = load_dataset("pima", root=reference_data)
    assert data.x.shape == (768, 8) and data.y.bincount().tolist() == [500, 268]
    assert data.feature_names[1] == "Glucose" and data.bounds is None


def test_adult_keeps_protected_attributes_out_of_the_features(reference_data):
    data = load_dataset("adult", "all", root=reference_data)
    assert len(data) == 32561
    assert set(data.protected) == {"sex", "race"}
    assert data.protected["sex"].categories == ("Female", "Male")
    assert len(data.protected["race"].categories) == 5
    assert not any(name.startswith(("sex", "race")) for name in data.feature_names)
    # every one-hot block sums to one per row
    for prefix in ("workclass=", "occupation=", "native-country="):
        cols = [i for i, n in enumerate(data.feature_names) if n.startswith(prefix)]
        assert torch.all(data.x[:, cols].sum(1) == 1)
    assert int(data.y.sum()) == 7841  # >50K rows in adult.data
    train, test = (
        load_dataset("adult", "train", root=reference_data),
        load_dataset("adult", "test", root=reference_data),
    )
    assert len(train) + len(test) == 32561 and train.protected["race"].codes.shape == (len(train),)
