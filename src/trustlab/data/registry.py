"""The data set registry: ``load_dataset(name, split, root=...)``.

Each entry knows its splits, the files each split reads, where to download them and how to
turn them into a :class:`Dataset`. Image data sets come back in pixel space ([0, 1] float32,
N x 1 x H x W); tabular ones as raw float32 features.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from trustlab.core.exceptions import DataFormatError, UnknownNameError
from trustlab.core.files import sha256_file
from trustlab.data.dataset import Dataset, DatasetMetadata, FileRecord, ProtectedAttribute
from trustlab.data.download import RemoteFile, ensure_files
from trustlab.data.idx import read_idx
from trustlab.data.paths import resolve_data_dir
from trustlab.data.tabular import read_adult, read_adult_coarse, read_pima

SAMPLE_SPLIT = "sample"
_SAMPLE_PACKAGE = "trustlab.data.sample"
_CVDF = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_OSSCI = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_NOTMNIST = "https://github.com/davidflanagan/notMNIST-to-MNIST/raw/master/"
_FASHION_S3 = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_FASHION_GITHUB = "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"


def _mnist_file(name: str, *digests: str) -> RemoteFile:
    return RemoteFile(name, (_CVDF + name, _OSSCI + name), digests)


# Accepted digests: the official archive's first, then the reference data's re-compressed copy.
_MNIST_FILES = {
    "train": (
        _mnist_file(
            "train-images-idx3-ubyte.gz",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "92844db5e7e28e7ac93429ac2dd6e8d22ec59066bbf2251eff103e4a123109f1",
        ),
        _mnist_file(
            "train-labels-idx1-ubyte.gz",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "b2c2ef9d45711d55574171c373912175ea8ca30fa004a5671f96a03787772fdd",
        ),
    ),
    "test": (
        _mnist_file(
            "t10k-images-idx3-ubyte.gz",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "167310007f03058885c7e95e6c0b19c20de5c7fd3031f4cbdadc9014a523d80b",
        ),
        _mnist_file(
            "t10k-labels-idx1-ubyte.gz",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "fc607395669ec21321ea83e4b82c0544b7e8e63ff5b34337c06bc0a17cc0da3c",
        ),
    ),
}
_NOTMNIST_FILES = {
    "test": (
        RemoteFile(
            "t10k-images-idx3-ubyte.gz",
            (_NOTMNIST + "t10k-images-idx3-ubyte.gz",),
            ("70ae9e06201f2827e5b0a3781a3169d735dd2efc69996b9eeaee7f10ed4044d7",),
        ),
        RemoteFile(
            "t10k-labels-idx1-ubyte.gz",
            (_NOTMNIST + "t10k-labels-idx1-ubyte.gz",),
            ("1fa03836e01c862542f8eb83463bb951bebec6fcb3efa28dad748c6b38a9021b",),
        ),
    ),
}


def _fashion_file(name: str, digest: str) -> RemoteFile:
    return RemoteFile(name, (_FASHION_GITHUB + name, _FASHION_S3 + name), (digest,))  # https first


# sha256 of the official archives, as listed by tensorflow-datasets (url_checksums/fashion_mnist.txt)
# and torchvision (prototype/datasets/_builtin/mnist.py); the S3 and GitHub copies are identical.
_FASHION_MNIST_FILES = {
    "train": (
        _fashion_file("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        _fashion_file("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    ),
    "test": (
        _fashion_file("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        _fashion_file("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    ),
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_PIMA_FILE = RemoteFile(
    "diabetes.csv",
    ("https://raw.githubusercontent.com/plotly/datasets/master/diabetes.csv",),
    ("b78029447fae2743b3218bb2b76ef0d04afe8d7e55ce2faf4d1ec82d8f8ae8ac",),
)
_ADULT_FILE = RemoteFile(
    "adult.data",
    ("https://archive.ics.uci.edu/ml/machine-learning-databases/adult/adult.data",),
    ("a0351ccac2e50adb68d08c54a6ce37daae7714fac1423a7c09577ae0f55934ba",),
)
TABULAR_SPLITS = ("all", "train", "test")
TEST_FRACTION = 0.25  # of the deterministic stratified split used by digits, pima and adult


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set: its description, source and licence, its splits, the files each split
    reads and how to build a :class:`Dataset` from them."""

    name: str
    description: str
    source: str
    licence: str
    splits: tuple[str, ...]
    default_split: str
    files: Callable[[str], tuple[RemoteFile, ...]]  # files a split reads from the data directory
    build: Callable[[DatasetSpec, str, list[Path]], Dataset]
    folder: str = ""  # folder of the data directory its files live in; "" means its own name

    @property
    def directory(self) -> str:
        """The folder under the data directory that holds this data set's files (data sets built
        from the same files, like ``adult`` and ``adult_coarse``, share one)."""
        return self.folder or self.name


_REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the registry under its name (replacing any entry of that name)."""
    _REGISTRY[spec.name] = spec
    return spec


def list_datasets() -> list[DatasetSpec]:
    """Every registered data set, by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get_spec(name: str) -> DatasetSpec:
    """The registry entry of data set ``name``; an unknown name is a one-line error listing the known ones."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UnknownNameError(f"unknown dataset {name!r}; expected one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def _check_split(spec: DatasetSpec, split: str) -> None:
    if split not in spec.splits:
        raise UnknownNameError(
            f"dataset {spec.name!r} has no split {split!r}; expected one of: {', '.join(spec.splits)}"
        )


def load_dataset(name: str, split: str | None = None, *, root: str | os.PathLike | None = None) -> Dataset:
    """Load data set ``name``'s ``split`` (default: the data set's default split).

    Files are looked up in ``root`` > ``$TRUSTLAB_DATA`` > the user cache, under a folder named
    after the data set, and downloaded (sha256-verified) when missing and the network allows.
    The ``sample`` splits of ``mnist`` and ``notmnist`` ship inside the package and never need
    a data directory.
    """
    spec = get_spec(name)
    split = spec.default_split if split is None else split
    _check_split(spec, split)
    files = spec.files(split)
    if not files:
        return spec.build(spec, split, [])
    data_dir, origin = resolve_data_dir(root)
    paths = ensure_files(data_dir / spec.directory, files, where=f"data directory from {origin}")
    return spec.build(spec, split, paths)


def split_status(name: str, split: str, *, root: str | os.PathLike | None = None) -> str:
    """ "bundled", "available" or "missing: <files>" for the ``datasets`` listing (no download)."""
    spec = get_spec(name)
    _check_split(spec, split)
    files = spec.files(split)
    if not files:
        return "bundled"
    folder = resolve_data_dir(root)[0] / spec.directory
    missing = [f.name for f in files if not (folder / f.name).is_file()]
    return "available" if not missing else "missing: " + ", ".join(missing)


def _records(files: tuple[RemoteFile, ...], paths: list[Path]) -> tuple[FileRecord, ...]:
    records = []
    for remote, path in zip(files, paths):
        digest = sha256_file(path)
        records.append(FileRecord(remote.name, digest, remote.verified(digest)))
    return tuple(records)


def _stratified_split(y: np.ndarray, split: str, seed: int = 0) -> np.ndarray:
    """Indices of a deterministic stratified split (``TEST_FRACTION`` of each class to test)."""
    if split == "all":
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rng.shuffle(members)
        test.append(members[: int(round(TEST_FRACTION * len(members)))])
    test_mask = np.zeros(len(y), dtype=bool)
    test_mask[np.concatenate(test)] = True
    return np.flatnonzero(test_mask if split == "test" else ~test_mask)


# ---------------------------------------------------------------- images ----------------------


def _images_from_idx(image_path: Path, label_path: Path, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(image_path)
    labels = read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataFormatError(f"{image_path} should hold uint8 images N x H x W, found {images.dtype} {images.shape}")
    if labels.ndim != 1:
        raise DataFormatError(f"{label_path} should hold one label per image, found shape {labels.shape}")
    if len(images) != len(labels):
        raise DataFormatError(
            f"{image_path.name} has {len(images)} images but {label_path.name} has {len(labels)} labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataFormatError(f"{label_path} has labels outside 0..{num_classes - 1}")
    x = torch.from_numpy(images).to(torch.float32).div_(255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def _sample_paths(prefix: str) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(f"{prefix}-{kind}.gz", (), ()) for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"))


def _idx_builder(class_names: tuple[str, ...]) -> Callable[[DatasetSpec, str, list[Path]], Dataset]:
    def build(spec: DatasetSpec, split: str, paths: list[Path]) -> Dataset:
        if split == SAMPLE_SPLIT:
            folder = resources.files(_SAMPLE_PACKAGE)
            paths = [Path(str(folder.joinpath(f.name))) for f in _sample_paths(spec.name)]
            records = tuple(FileRecord(f"sample/{p.name}", sha256_file(p), True) for p in paths)
        else:
            records = _records(spec.files(split), paths)
        x, y = _images_from_idx(paths[0], paths[1], len(class_names))
        metadata = DatasetMetadata(
            source=spec.source, licence=spec.licence, description=spec.description, files=records
        )
        return Dataset(spec.name, split, x, y, class_names, (0.0, 1.0), metadata)

    return build


register(
    DatasetSpec(
        name="mnist",
        description="handwritten digits 0-9, 28x28 greyscale; 'sample': 1,000 test digits (100 per class)",
        source="MNIST, Y. LeCun, C. Cortes, C. J. C. Burges (files from the CVDF mirror)",
        licence="CC BY-SA 3.0",
        splits=("train", "test", SAMPLE_SPLIT),
        default_split="test",
        files=lambda split: _MNIST_FILES.get(split, ()),
        build=_idx_builder(tuple(str(i) for i in range(10))),
    )
)

register(
    DatasetSpec(
        name="notmnist",
        description="letters A-J, 28x28 greyscale, an out-of-distribution set for MNIST; 'sample': 500 letters",
        source="notMNIST, Y. Bulatov; IDX conversion by D. Flanagan",
        licence="notMNIST: public release by Y. Bulatov; IDX conversion MIT",
        splits=("test", SAMPLE_SPLIT),
        default_split="test",
        files=lambda split: _NOTMNIST_FILES.get(split, ()),
        build=_idx_builder(tuple("ABCDEFGHIJ")),
    )
)

register(
    DatasetSpec(
        name="fashion_mnist",
        description="Zalando article images in 10 clothing classes, 28x28 greyscale (also an OOD set for MNIST)",
        source="Fashion-MNIST, H. Xiao, K. Rasul, R. Vollgraf (Zalando Research)",
        licence="MIT",
        splits=("train", "test"),
        default_split="test",
        files=lambda split: _FASHION_MNIST_FILES.get(split, ()),
        build=_idx_builder(FASHION_MNIST_CLASSES),
    )
)


# ---------------------------------------------------------------- tabular / small ------------


def _build_digits(spec: DatasetSpec, split: str, paths: list[Path]) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0  # 0..16 counts -> [0, 1]
    labels = bunch.target.astype(np.int64)
    index = _stratified_split(labels, split)
    metadata = DatasetMetadata(
        source=spec.source,
        licence=spec.licence,
        description="8x8 digits, pixel counts 0-16 scaled to [0, 1]",
    )
    return Dataset(
        "digits",
        split,
        torch.from_numpy(images[index]).unsqueeze(1),
        torch.from_numpy(labels[index]),
        tuple(str(i) for i in range(10)),
        (0.0, 1.0),
        metadata,
    )


def _build_pima(spec: DatasetSpec, split: str, paths: list[Path]) -> Dataset:
    x, y, names = read_pima(paths[0])
    index = _stratified_split(y, split)
    metadata = DatasetMetadata(
        source=spec.source,
        licence=spec.licence,
        description="8 clinical measurements; outcome 1 = diabetes within 5 years. Zeros in "
        "Glucose/BloodPressure/SkinThickness/Insulin/BMI mark missing values.",
        files=_records((_PIMA_FILE,), paths),
    )
    return Dataset(
        "pima",
        split,
        torch.from_numpy(x[index]),
        torch.from_numpy(y[index]),
        ("no diabetes", "diabetes"),
        None,
        metadata,
        feature_names=names,
    )


def _adult_dataset(spec: DatasetSpec, split: str, paths: list[Path], read: Callable, description: str) -> Dataset:
    """An Adult data set read from ``adult.data`` by ``read`` (a reader of ``trustlab.data.tabular``),
    split as every tabular set is (so ``adult`` and ``adult_coarse`` hold the same rows per split)."""
    x, y, names, protected = read(paths[0])
    index = _stratified_split(y, split)
    metadata = DatasetMetadata(
        source=spec.source, licence=spec.licence, description=description, files=_records((_ADULT_FILE,), paths)
    )
    attrs = {k: ProtectedAttribute(torch.from_numpy(codes[index]), cats) for k, (codes, cats) in protected.items()}
    return Dataset(
        spec.name,
        split,
        torch.from_numpy(x[index]),
        torch.from_numpy(y[index]),
        ("<=50K", ">50K"),
        None,
        metadata,
        feature_names=names,
        protected=attrs,
    )


def _build_adult(spec: DatasetSpec, split: str, paths: list[Path]) -> Dataset:
    description = (
        "1994 US census; label 1 = income >50K. sex and race are protected attributes kept outside the features."
    )
    return _adult_dataset(spec, split, paths, read_adult, description)


def _build_adult_coarse(spec: DatasetSpec, split: str, paths: list[Path]) -> Dataset:
    """Adult preprocessed as AIF360's ``load_preproc_data_adult`` (see :func:`read_adult_coarse`).

    AIF360 reads ``adult.data`` and ``adult.test`` together (48,842 rows) and splits them at random
    in its tutorials; here only ``adult.data`` is read (32,561 rows), so counts and figures differ
    from AIF360's published ones by sampling, not by preprocessing.
    """
    description = (
        "1994 US census coarsened as AIF360's load_preproc_data_adult: age by decade (>=70 capped), education "
        "years grouped (<6, 6..12, >12), race (White = 1) and sex (Male = 1), all one-hot or 0/1; label 1 = "
        "income >50K. sex and race are protected attributes AND feature columns, as in AIF360. AIF360 uses "
        "adult.data + adult.test (48,842 rows); this reads adult.data only (32,561 rows)."
    )
    return _adult_dataset(spec, split, paths, read_adult_coarse, description)


register(
    DatasetSpec(
        name="digits",
        description="scikit-learn's 8x8 digits (always offline)",
        source="UCI optical recognition of handwritten digits, bundled with scikit-learn",
        licence="CC BY 4.0",
        splits=TABULAR_SPLITS,
        default_split="all",
        files=lambda split: (),
        build=_build_digits,
    )
)
register(
    DatasetSpec(
        name="pima",
        description="Pima Indians diabetes, 8 numeric features, binary outcome",
        source="Pima Indians Diabetes (NIDDK, via UCI)",
        licence="public",
        splits=TABULAR_SPLITS,
        default_split="all",
        files=lambda split: (_PIMA_FILE,),
        build=_build_pima,
    )
)
register(
    DatasetSpec(
        name="adult",
        description="UCI Adult income; protected attributes sex and race",
        source="UCI Adult, B. Becker & R. Kohavi",
        licence="CC BY 4.0",
        splits=TABULAR_SPLITS,
        default_split="all",
        files=lambda split: (_ADULT_FILE,),
        build=_build_adult,
    )
)
register(
    DatasetSpec(
        name="adult_coarse",
        description="UCI Adult coarsened as AIF360's load_preproc_data_adult (18 features: race, sex, age "
        "decade, education years); protected attributes sex and race, also in the features; reads adult/adult.data",
        source="UCI Adult, B. Becker & R. Kohavi; preprocessing of AIF360 (Calmon et al. 2017)",
        licence="CC BY 4.0",
        splits=TABULAR_SPLITS,
        default_split="all",
        files=lambda split: (_ADULT_FILE,),
        build=_build_adult_coarse,
        folder="adult",
    )
)
