"""Reading what a user points at: a registered data set, an ``.npz`` file, a ``.csv`` file or a
folder of images (one sub-folder per class); and model inputs from ``.npy``/``.npz`` arrays or
image files. Arrays are read without pickles."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from trustlab.core.exceptions import DataFormatError, DataNotFoundError, InputError, UnknownNameError
from trustlab.data.arrays import dataset_from_npz
from trustlab.data.csv import dataset_from_csv
from trustlab.data.dataset import Dataset, require_examples
from trustlab.data.folders import dataset_from_folder
from trustlab.data.registry import list_datasets, load_dataset

FORMATS = "a registered data set name, an .npz file, a .csv file or a folder with one sub-folder of images per class"
ERR_UNKNOWN_FORMAT = "cannot read {path}: unknown data format {suffix!r}; expected " + FORMATS
ERR_UNKNOWN = "unknown dataset {name!r}: not a registered data set ({names}) nor an existing file or folder"
ERR_NOT_FOUND = "data {kind} {path} does not exist"
ERR_OPTION = "{option} applies to {formats} only, not to {what}"


def _registered() -> list[str]:
    return [spec.name for spec in list_datasets()]


def _has_separator(text: str) -> bool:
    return os.sep in text or (os.altsep is not None and os.altsep in text)


def _is_path(name_or_path: str | os.PathLike) -> bool:
    """Whether the argument names a file or folder rather than a registered data set."""
    if not isinstance(name_or_path, str):
        return True
    return name_or_path not in _registered() or _has_separator(name_or_path)


def _refuse(what: str, **options: object) -> None:
    """An option given for a format it does not apply to is an error, not silently ignored."""
    applies = {
        "label_column": ".csv files",
        "protected": ".csv files (columns) and data sets that carry protected attributes (a choice of them)",
        "class_names": ".npz and .csv files",
        "image_size": "image folders",
    }
    for option, value in options.items():
        given = value is not None and not (isinstance(value, list | tuple) and not value)
        if given:
            flag = "--" + option.replace("_", "-")
            raise InputError(ERR_OPTION.format(option=f"{option} ({flag})", formats=applies[option], what=what))


def _chosen_protected(data: Dataset, protected: Sequence[str]) -> Dataset:
    """A registered set or an .npz file carries its protected attributes; ``protected`` picks some."""
    return data.keep_protected(protected) if protected else data


def open_dataset(
    name_or_path: str | os.PathLike,
    split: str | None = None,
    *,
    root: str | Path | None = None,
    bounds: tuple[float, float] | None = None,
    label_column: str | None = None,
    protected: Sequence[str] = (),
    class_names: Sequence[str] | None = None,
    image_size: tuple[int, int] | None = None,
) -> Dataset:
    """The data set a user points at, with at least one example (else a one-line InputError).

    * a registered name (see ``trustlab datasets``): its ``split`` (default: the set's default)
      from ``root`` > ``$TRUSTLAB_DATA`` > the cache. A registered name always means the registered
      set; write ``./mnist`` for a local folder of that name;
    * ``*.npz``: arrays ``x``, ``y`` and optionally ``class_names``, ``protected_<name>``,
      ``bounds`` (see :mod:`trustlab.data.arrays`);
    * for a registered set or an ``.npz`` file, ``protected`` keeps only the named protected
      attributes it carries (an absent one is an error);
    * ``*.csv``: a header row, the labels in ``label_column`` (required), ``protected`` columns
      kept out of the features, every other column a numeric feature (see :mod:`trustlab.data.csv`);
    * a folder: one sub-folder of PNG/JPEG images per class, scaled to [0, 1]; all one size
      unless ``image_size=(H, W)`` (see :mod:`trustlab.data.folders`).

    ``bounds`` is the input range of ``.npz`` and ``.csv`` data, checked against the inputs
    (None: unbounded; an ``.npz`` may declare its own); image folders are always [0, 1] and
    registered sets carry their own bounds (the argument is not used for them). ``split`` is not
    used for files and folders. ``class_names`` fixes the classes of an ``.npz`` or ``.csv`` file
    (e.g. to a model's). An option that does not apply to the format is an error.
    """
    if not _is_path(name_or_path):
        _refuse(
            f"the registered data set {name_or_path!r}",
            label_column=label_column,
            class_names=class_names,
            image_size=image_size,
        )
        return _chosen_protected(require_examples(load_dataset(name_or_path, split, root=root)), protected)
    path = Path(name_or_path).expanduser()
    suffix = path.suffix.lower()
    if path.is_dir():
        _refuse(
            f"an image folder ({path})",
            label_column=label_column,
            protected=protected,
            class_names=class_names,
        )
        data = dataset_from_folder(path, image_size=image_size, bounds=bounds)
    elif suffix == ".npz":
        _refuse(f"an .npz file ({path.name})", label_column=label_column, image_size=image_size)
        data = dataset_from_npz(path, class_names=None if class_names is None else tuple(class_names), bounds=bounds)
        data = _chosen_protected(data, protected)
    elif suffix == ".csv":
        _refuse(f"a .csv file ({path.name})", image_size=image_size)
        data = dataset_from_csv(
            path, label_column=label_column, protected=protected, class_names=class_names, bounds=bounds
        )
    elif path.is_file():
        raise DataFormatError(ERR_UNKNOWN_FORMAT.format(path=path, suffix=path.suffix or "(no suffix)"))
    elif suffix or not isinstance(name_or_path, str) or _has_separator(name_or_path):
        raise DataNotFoundError(ERR_NOT_FOUND.format(kind="file" if suffix else "file or folder", path=path))
    else:
        raise UnknownNameError(ERR_UNKNOWN.format(name=name_or_path, names=", ".join(_registered())))
    return require_examples(data)


def read_inputs(paths: tuple[Path, ...] | list[Path], input_shape: tuple[int, ...]) -> tuple[torch.Tensor, list[str]]:
    """Inputs from ``.npy``/``.npz`` (array ``x``) files, or image files resized to ``input_shape``
    (C, H, W; 1 channel: greyscale, 3: RGB), scaled to [0, 1]; and one name per input."""
    batches, names = [], []
    for path in map(Path, paths):
        if path.suffix.lower() in (".npy", ".npz"):
            array = _read_array(path)
            if array.shape == tuple(input_shape):
                array = array[None]
            batches.append(torch.from_numpy(array))
            names += [f"{path.name}[{i}]" for i in range(array.shape[0])]
        else:
            batches.append(_read_image(path, input_shape)[None])
            names.append(path.name)
    return torch.cat(batches), names


def _read_array(path: Path) -> np.ndarray:
    try:
        loaded = np.load(path, allow_pickle=False)
        array = loaded["x"] if path.suffix.lower() == ".npz" else loaded
        return np.asarray(array, dtype=np.float32)
    except (ValueError, KeyError, OSError) as exc:
        raise InputError(f"cannot read inputs from {path}: {str(exc).splitlines()[0]}") from None


def _read_image(path: Path, input_shape: tuple[int, ...]) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    channels, height, width = input_shape
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB").resize((width, height))
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read image {path}: {str(exc).splitlines()[0]}") from None
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    pixels = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(pixels))


def ood_sets_from_files(paths: Sequence[Path], input_shape: tuple[int, ...]) -> dict:
    """The user's own out-of-distribution inputs, one OOD set per file (named by the file's stem)."""
    from trustlab.data.ood_sets import OODSet

    sets = {}
    for path in map(Path, paths):
        x, _ = read_inputs((path,), input_shape)
        sets[path.stem] = OODSet(path.stem, x.float(), f"your inputs from {path.name}")
    return sets
