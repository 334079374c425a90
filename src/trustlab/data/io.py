"""Reading what a user points at: a registered data set or an ``.npz`` file, and model inputs
from ``.npy``/``.npz`` arrays or image files. Arrays are read without pickles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trustlab.core.exceptions import InputError
from trustlab.data.arrays import dataset_from_npz
from trustlab.data.dataset import Dataset
from trustlab.data.registry import load_dataset


def open_dataset(
    name_or_file: str,
    split: str | None = None,
    *,
    root: str | Path | None = None,
    bounds: tuple[float, float] | None = None,
) -> Dataset:
    """A registered data set by name (``split`` or its default) or an ``.npz`` file with ``x`` and ``y``."""
    if str(name_or_file).endswith(".npz"):
        return dataset_from_npz(name_or_file, bounds=bounds)
    return load_dataset(name_or_file, split, root=root)


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
