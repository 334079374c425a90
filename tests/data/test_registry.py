from pathlib import Path

import numpy as np
import pytest
import torch

from trustlab.core.exceptions import (
    DataFormatError,
    DataIntegrityError,
    DataNotFoundError,
    UnknownNameError,
)
from trustlab.core.files import sha256_bytes
from trustlab.data import download as download_module
from trustlab.data import load_dataset, resolve_data_dir, split_status
from trustlab.data.idx import encode_idx, write_idx


def test_unknown_dataset_and_split_name_the_choices():
    with pytest.raises(
        UnknownNameError,
        match=r"unknown dataset 'mnits'; expected one of: adult, adult_coarse, digits, fashion_mnist, mnist",
    ):
        load_dataset("mnits")
    with pytest.raises(UnknownNameError, match=r"no split 'validation'.*train, test, sample"):
        load_dataset("mnist", "validation")


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_dir(None) == (tmp_path / "cache" / "trustlab" / "data", "user cache")
    monkeypatch.setenv("TRUSTLAB_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(None) == (tmp_path / "env", "$TRUSTLAB_DATA")
    assert resolve_data_dir(tmp_path / "arg") == (tmp_path / "arg", "argument")


def test_missing_files_offline_name_files_and_folder(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("mnist", "test", root=tmp_path)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert str(tmp_path / "mnist") in message and "\n" not in message


def test_bundled_samples_need_no_data_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("TRUSTLAB_DATA", str(tmp_path / "empty"))
    mnist = load_dataset("mnist", "sample")
    assert mnist.x.shape == (1000, 1, 28, 28) and mnist.x.dtype == torch.float32
    assert mnist.y.bincount().tolist() == [100] * 10
    assert 0.0 <= float(mnist.x.min()) and float(mnist.x.max()) <= 1.0 and mnist.bounds == (0.0, 1.0)
    notmnist = load_dataset("notmnist", "sample")
    assert len(notmnist) == 500 and notmnist.class_names[0] == "A"
    assert split_status("mnist", "sample") == "bundled"


def _write_fake_mnist(folder: Path, n: int = 20) -> None:
    rng = np.random.default_rng(0)
    write_idx(folder / "mnist" / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    write_idx(folder / "mnist" / "t10k-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))


def test_reads_explicit_root_and_records_unverified_hashes(tmp_path):
    _write_fake_mnist(tmp_path)
    data = load_dataset("mnist", "test", root=tmp_path)
    assert len(data) == 20 and data.y.tolist()[:3] == [0, 1, 2]
    assert all(not f.verified for f in data.metadata.files)  # not the published files
    assert split_status("mnist", "test", root=tmp_path) == "available"


def test_mismatched_image_and_label_counts(tmp_path):
    _write_fake_mnist(tmp_path)
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.zeros(7, dtype=np.uint8))
    with pytest.raises(DataFormatError, match="20 images but t10k-labels-idx1-ubyte.gz has 7 labels"):
        load_dataset("mnist", "test", root=tmp_path)


def test_truncated_mnist_file_in_data_dir(tmp_path):
    _write_fake_mnist(tmp_path)
    images = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    import gzip

    images.write_bytes(gzip.compress(encode_idx(np.zeros((20, 28, 28), np.uint8))[:-50]))
    with pytest.raises(DataFormatError, match="truncated"):
        load_dataset("mnist", "test", root=tmp_path)


def test_download_verifies_sha256(monkeypatch, tmp_path):
    monkeypatch.delenv("TRUSTLAB_OFFLINE")
    good = b"Pregnancies,Glucose\n"
    remote = download_module.RemoteFile("f.csv", ("https://example.invalid/f.csv",), (sha256_bytes(good),))
    monkeypatch.setattr(download_module, "_fetch", lambda url: good)
    paths = download_module.ensure_files(tmp_path, (remote,), where="test")
    assert paths[0].read_bytes() == good

    monkeypatch.setattr(download_module, "_fetch", lambda url: b"tampered")
    with pytest.raises(DataIntegrityError, match="sha256"):
        download_module.ensure_files(tmp_path / "other", (remote,), where="test")
    assert not (tmp_path / "other" / "f.csv").exists()


def test_unreachable_network_names_missing_files(monkeypatch, tmp_path):
    import urllib.error

    monkeypatch.delenv("TRUSTLAB_OFFLINE")

    def unreachable(url):
        raise urllib.error.URLError("no route")

    monkeypatch.setattr(download_module, "_fetch", unreachable)
    with pytest.raises(DataNotFoundError, match=r"missing data files diabetes.csv .* network is unreachable"):
        load_dataset("pima", root=tmp_path)


def test_offline_never_fetches(monkeypatch, tmp_path):
    def forbidden(url):
        raise AssertionError("network used while TRUSTLAB_OFFLINE=1")

    monkeypatch.setattr(download_module, "_fetch", forbidden)
    with pytest.raises(DataNotFoundError, match="downloads are off"):
        load_dataset("adult", root=tmp_path)


def test_digits_splits_are_disjoint_stratified_and_offline():
    everything = load_dataset("digits", "all")
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert everything.x.shape == (1797, 1, 8, 8) and float(everything.x.max()) == 1.0
    assert len(train) + len(test) == len(everything)
    share = test.y.bincount().float() / everything.y.bincount().float()
    assert torch.all((share - 0.25).abs() < 0.01)
    assert torch.equal(load_dataset("digits", "test").y, test.y)  # deterministic


def test_subset_keeps_protected_attributes_aligned():
    from trustlab.data import Dataset, DatasetMetadata, ProtectedAttribute

    data = Dataset(
        "t",
        "all",
        torch.arange(10.0).reshape(5, 2),
        torch.tensor([0, 1, 0, 1, 1]),
        ("a", "b"),
        None,
        DatasetMetadata("s", "l", "d"),
        protected={"sex": ProtectedAttribute(torch.tensor([0, 0, 1, 1, 0]), ("F", "M"))},
    )
    part = data.subset([1, 3])
    assert part.x[:, 0].tolist() == [2.0, 6.0] and part.protected["sex"].codes.tolist() == [0, 1]


def test_fashion_mnist_reads_idx_files_from_its_folder(tmp_path):
    assert split_status("fashion_mnist", "test", root=tmp_path).startswith("missing: t10k-images-idx3-ubyte.gz")
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "fashion_mnist")):
        load_dataset("fashion_mnist", root=tmp_path)
    images = np.random.default_rng(1).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "fashion_mnist" / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "fashion_mnist" / "t10k-labels-idx1-ubyte.gz", np.array([0, 9, 1, 8, 2, 7], np.uint8))
    assert split_status("fashion_mnist", "test", root=tmp_path) == "available"
    assert split_status("fashion_mnist", "train", root=tmp_path).startswith("missing")
    data = load_dataset("fashion_mnist", root=tmp_path)  # default split: test
    assert data.split == "test" and data.x.shape == (6, 1, 28, 28) and data.bounds == (0.0, 1.0)
    assert torch.equal(data.x, torch.from_numpy(images).float().div(255).unsqueeze(1))
    assert [data.class_names[i] for i in data.y.tolist()[:2]] == ["T-shirt/top", "Ankle boot"]
    assert len(data.class_names) == 10 and not any(f.verified for f in data.metadata.files)


def test_fashion_mnist_downloads_are_sha256_verified(monkeypatch, tmp_path):
    from trustlab.data.registry import get_spec

    files = get_spec("fashion_mnist").files("test")
    assert files[0].urls[0].startswith("https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/")
    assert files[0].verified("346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073")
    monkeypatch.delenv("TRUSTLAB_OFFLINE")
    monkeypatch.setattr(download_module, "_fetch", lambda url: b"not the archive")
    with pytest.raises(DataIntegrityError, match="t10k-images-idx3-ubyte.gz .* refusing to use it"):
        load_dataset("fashion_mnist", "test", root=tmp_path)
    assert not (tmp_path / "fashion_mnist" / "t10k-images-idx3-ubyte.gz").exists()
