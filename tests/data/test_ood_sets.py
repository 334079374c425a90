from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trustlab.core.exceptions import DataNotFoundError, InputError, UnknownNameError
from trustlab.data import load_dataset
from trustlab.data.idx import write_idx
from trustlab.data.ood_sets import (
    OOD_DESCRIPTIONS,
    OOD_SET_NAMES,
    OODSet,
    _area_crops,
    _photo_tables,
    corrupted,
    gaussian_noise,
    natural_crops,
    ood_suite,
    uniform_noise,
)

FILE_SETS = ("notmnist", "fashion_mnist")
GENERATED = ("uniform_noise", "gaussian_noise", "natural_crops")
CORRUPTED = ("mnist_rotate90", "mnist_invert", "mnist_blur", "mnist_shift")


def _digits(n: int = 12) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(7))


def _write_idx_pair(folder: Path, n: int, seed: int) -> torch.Tensor:
    """A tiny synthetic test split in MNIST's file layout; returns its images in [0, 1]."""
    images = np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return torch.from_numpy(images).float().div(255).unsqueeze(1)


def _check(ood: OODSet, n: int, shape: tuple[int, ...] = (1, 28, 28)) -> None:
    assert ood.x.shape == (n, *shape) and ood.x.dtype == torch.float32 and len(ood) == n
    assert float(ood.x.min()) >= 0.0 and float(ood.x.max()) <= 1.0
    assert ood.description


# ---------------------------------------------------------------- generated sets --------------


@pytest.mark.parametrize("make", [uniform_noise, gaussian_noise, natural_crops])
def test_generated_sets_are_seeded_and_bounded(make):
    first = make(40, seed=3)
    _check(first, 40)
    assert first.name == make.__name__
    assert torch.equal(first.x, make(40, seed=3).x)
    assert not torch.equal(first.x, make(40, seed=4).x)


def test_generators_leave_the_global_random_state_alone():
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    uniform_noise(5)
    gaussian_noise(5)
    natural_crops(5)
    assert torch.equal(torch.get_rng_state(), state) and np.array_equal(np.random.get_state()[1], np_state)


def test_noise_statistics_and_shapes():
    u = uniform_noise(200, (3, 8, 8)).x
    assert u.shape == (200, 3, 8, 8) and float(u.mean()) == pytest.approx(0.5, abs=0.01)
    g = gaussian_noise(200, seed=1).x
    assert float(g.mean()) == pytest.approx(0.5, abs=0.01)
    assert float(g.std()) == pytest.approx(0.24, abs=0.01)  # std 0.25 before clipping
    assert float((g == 0).float().mean() + (g == 1).float().mean()) == pytest.approx(0.0455, abs=0.005)
    custom = gaussian_noise(10, (1, 4, 4), mean=0.2, std=0.0)
    assert torch.all(custom.x == 0.2) and "mean 0.2, std 0" in custom.description


def test_natural_crops_look_like_photos():
    crops = natural_crops(500, seed=0).x
    per_image_std = crops.std(dim=(1, 2, 3))
    assert float(per_image_std.min()) > 0.0  # no constant patch
    assert float(per_image_std.median()) > 0.02  # texture, not flat grey
    assert 0.2 < float(crops.mean()) < 0.7 and float(crops.std()) > 0.15
    assert len(torch.unique(crops.flatten(1), dim=0)) == 500
    # neighbouring pixels of photos are strongly correlated, unlike noise
    a, b = crops[..., :, :-1].flatten(), crops[..., :, 1:].flatten()
    assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) > 0.8
    assert natural_crops(3, size=10).x.shape == (3, 1, 10, 10)


def test_area_crops_match_adaptive_average_pooling():
    tables, sizes = _photo_tables()
    grey = tables.diff(dim=1).diff(dim=2)  # undo the summed-area table
    crops = [(0, 0, 0, 256), (1, 100, 300, 57), (0, 427 - 33, 640 - 33, 33), (1, 5, 7, 28), (0, 9, 11, 20)]
    photo, top, left, side = (torch.tensor(column) for column in zip(*crops))
    out = _area_crops(tables, photo, top, left, side, 28)
    for i, (k, t, lft, s) in enumerate(crops):
        expected = F.adaptive_avg_pool2d(grey[k, t : t + s, lft : lft + s][None, None], 28)[0, 0]
        assert torch.allclose(out[i], expected, atol=1e-9), crops[i]
    assert sizes == ((427, 640), (427, 640))


def test_generated_set_arguments_are_checked():
    with pytest.raises(InputError, match="n must be a positive integer number of examples, got 0"):
        uniform_noise(0)
    with pytest.raises(InputError, match=r"shape must be three positive integers \(C, H, W\), got \(28, 28\)"):
        uniform_noise(3, (28, 28))
    with pytest.raises(InputError, match=r"seed must be an integer in \[0, 2\*\*63\), got -1"):
        gaussian_noise(3, seed=-1)
    with pytest.raises(InputError, match="std must be a finite number"):
        gaussian_noise(3, std=float("nan"))
    with pytest.raises(InputError, match=r"max_side must be an integer in \[min_side=32, 427\], got 500"):
        natural_crops(3, max_side=500)


# ---------------------------------------------------------------- corrupted -------------------


def test_corrupted_applies_the_named_corruption():
    x = _digits(6)
    inverted = corrupted(x, "invert")
    assert inverted.name == "invert" and torch.allclose(inverted.x, 1 - x)
    assert corrupted(x.double(), "blur").x.dtype == torch.float32
    with pytest.raises(UnknownNameError, match="unknown corruption 'rot90'; expected one of: rotate90, invert, blur"):
        corrupted(x, "rot90")


# ---------------------------------------------------------------- the suite -------------------


def test_suite_with_the_reference_data(reference_data):
    test = load_dataset("mnist", "test", root=reference_data)
    mnist = test.x[:300]
    suite = ood_suite(mnist, n=50, root=reference_data, labels=test.y[:300])
    expected = [name for name in OOD_SET_NAMES if name != "fashion_mnist"]  # not in the reference data
    assert list(suite) == expected
    for name, ood in suite.items():
        assert ood.name == name and ood.description == OOD_DESCRIPTIONS[name]
        _check(ood, 50)
    notmnist = load_dataset("notmnist", "test", root=reference_data).x
    assert torch.equal(suite["notmnist"].x, notmnist[:50])
    assert torch.allclose(suite["mnist_invert"].x, 1 - mnist[:50])
    assert len(ood_suite(mnist, root=reference_data, include=["notmnist", "uniform_noise"])["uniform_noise"]) == 300


def test_suite_is_deterministic_and_seeded():
    x = _digits()
    with pytest.warns(UserWarning, match="OOD set 'notmnist' skipped: missing data files"):
        a = ood_suite(x)
    with pytest.warns(UserWarning):
        b = ood_suite(x)
    with pytest.warns(UserWarning):
        c = ood_suite(x, seed=1)
    # without labels the near-OOD sets built from labelled digits are left out
    from trustlab.data.near_ood import NEEDS_DIGITS

    assert list(a) == [name for name in OOD_SET_NAMES if name not in FILE_SETS and name not in NEEDS_DIGITS]
    for name in a:
        assert torch.equal(a[name].x, b[name].x), name
        assert torch.equal(a[name].x, c[name].x) == name.startswith("mnist_"), name
    # generated sets draw from independent streams
    assert not torch.equal(a["uniform_noise"].x, uniform_noise(len(x), seed=0).x)


def test_include_restricts_and_orders(tmp_path):
    x = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        suite = ood_suite(x, n=5, root=tmp_path, include=["mnist_shift", "uniform_noise", "mnist_shift"])
    assert list(suite) == ["mnist_shift", "uniform_noise"]
    assert len(suite["mnist_shift"]) == 5 and len(suite["uniform_noise"]) == 5
    with pytest.raises(UnknownNameError, match=r"unknown OOD set 'svhn'; expected one of: notmnist, fashion_mnist"):
        ood_suite(x, include=["uniform_noise", "svhn"])
    with pytest.raises(InputError, match="include must be a list of OOD set names"):
        ood_suite(x, include="uniform_noise")
    with pytest.raises(DataNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        ood_suite(x, root=tmp_path, include=["notmnist"])
    with pytest.raises(DataNotFoundError, match=r"OOD set 'fashion_mnist' needs its files in .*fashion_mnist"):
        ood_suite(x, root=tmp_path, include=["fashion_mnist"])


def test_suite_uses_fashion_mnist_only_when_its_files_are_present(tmp_path):
    x = _digits()
    notmnist = _write_idx_pair(tmp_path / "notmnist", 8, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fashion_mnist is skipped silently
        without = ood_suite(x, n=6, root=tmp_path)
    assert "fashion_mnist" not in without and torch.equal(without["notmnist"].x, notmnist[:6])

    fashion = _write_idx_pair(tmp_path / "fashion_mnist", 4, seed=2)
    suite = ood_suite(x, n=6, root=tmp_path, labels=torch.arange(len(x)) % 10)
    assert list(suite) == list(OOD_SET_NAMES)
    assert torch.equal(suite["fashion_mnist"].x, fashion)  # fewer than n: all of them
    assert len(suite["uniform_noise"]) == 6 and len(suite["mnist_blur"]) == 6


def test_suite_refuses_inputs_that_are_not_mnist_like():
    with pytest.raises(
        InputError, match=r"in_distribution_x must have shape \(N >= 1, 1, 28, 28\), got \(3, 1, 8, 8\)"
    ):
        ood_suite(torch.zeros(3, 1, 8, 8))
    with pytest.raises(InputError, match=r"in_distribution_x must lie in \[0, 1\]"):
        ood_suite(torch.full((2, 1, 28, 28), 2.0))
    with pytest.raises(InputError, match="n must be a positive integer"):
        ood_suite(_digits(), n=0, include=["uniform_noise"])


def test_oodset_checks_its_tensor():
    with pytest.raises(InputError, match=r"OODSet x must be a float32 tensor of shape \(N, ...\)"):
        OODSet("bad", torch.zeros(3), "one-dimensional")
    with pytest.raises(InputError, match="float32"):
        OODSet("bad", torch.zeros(3, 8, dtype=torch.float64), "double")
    assert len(OODSet("rows", torch.zeros(3, 8), "tabular")) == 3
