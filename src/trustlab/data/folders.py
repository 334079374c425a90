"""Bring-your-own images: a folder with one sub-folder of PNG/JPEG files per class.

* classes are the sub-folders' names, sorted (their index is their position in that order);
* examples are ordered by class, then by file name (sorted), so the order never depends on the
  file system;
* greyscale (1 channel) when every image is single-channel (modes 1, L, LA, I, I;16: alpha is
  dropped), else RGB (3 channels; palettes and alpha converted by Pillow);
* pixels scaled to [0, 1] (8-bit: / 255, 16-bit: / 65535); the data set's bounds are (0, 1);
* every image must have the same size, unless ``image_size=(H, W)`` is given: then every image
  of another size is resized (bilinear) to it; never silently.

Hidden files (names starting with ".") are skipped; any other file that is not a PNG/JPEG, and
images lying beside the class sub-folders, are errors. The metadata holds one digest for the
folder: sha256 over the lines ``<class>/<file>:<sha256 of the file>`` in the order above, so a
manifest identifies exactly which bytes were read.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from trustlab.core.exceptions import DataFormatError, DataNotFoundError, InputError
from trustlab.data.dataset import ERR_NO_EXAMPLES, Dataset, DatasetMetadata, FileRecord, input_bounds

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N")
SIXTEEN_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")
IMAGE_BOUNDS = (0.0, 1.0)

ERR_FOLDER_EMPTY = "folder {path} is empty; expected one sub-folder of PNG/JPEG images per class"
ERR_NO_CLASS_FOLDERS = (
    "folder {path} has no class sub-folders: put its {count} file(s) into one sub-folder per class (sub-folder name = "
    "class name)"
)
ERR_LOOSE_FILES = (
    "folder {path} holds {count} file(s) beside its class sub-folders (e.g. {example}); move them into one"
)
ERR_NOT_IMAGES = "{count} file(s) in {path} are not PNG or JPEG images (e.g. {example})"
ERR_UNREADABLE = "cannot read image {path}: {reason}"
ERR_SIZES = (
    "images in {path} have {count} different sizes ({sizes}; e.g. {example}); give an image size (H, W) to resize "
    "them all to it"
)
ERR_IMAGE_SIZE = "image_size must be two positive integers (height, width), got {got!r}"
ERR_FOLDER_BOUNDS = "images from a folder are scaled to [0, 1], so bounds must be (0, 1) or None, got {got}"


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _image_size(value: tuple[int, int] | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        height, width = value
        ok = all(isinstance(v, int | np.integer) and not isinstance(v, bool) and v > 0 for v in (height, width))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(ERR_IMAGE_SIZE.format(got=value))
    return int(height), int(width)


def _files(root: Path) -> tuple[tuple[str, ...], list[tuple[int, Path]]]:
    """Class names and (class index, file) pairs, in the documented order."""
    entries = sorted(p for p in root.iterdir() if _visible(p))
    folders = [p for p in entries if p.is_dir()]
    loose = [p for p in entries if not p.is_dir()]
    if not entries:
        raise DataFormatError(ERR_FOLDER_EMPTY.format(path=root))
    if not folders:
        raise DataFormatError(ERR_NO_CLASS_FOLDERS.format(path=root, count=len(loose)))
    if loose:
        raise DataFormatError(ERR_LOOSE_FILES.format(path=root, count=len(loose), example=loose[0].name))
    files = []
    for index, folder in enumerate(folders):
        inside = sorted(p for p in folder.iterdir() if _visible(p))
        others = [p for p in inside if not (p.is_file() and _is_image(p))]
        if others:
            raise DataFormatError(ERR_NOT_IMAGES.format(count=len(others), path=folder, example=others[0].name))
        files += [(index, p) for p in inside]
    return tuple(p.name for p in folders), files


def _open(path: Path, data: bytes, *, decode: bool):
    """The image in ``data``; with ``decode`` False only its header is read (size and mode)."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
        if decode:
            image.load()
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for corrupt or hostile files
        reason = (str(exc).splitlines() or [""])[0] or type(exc).__name__
        raise DataFormatError(ERR_UNREADABLE.format(path=path, reason=reason)) from None
    return image


def _pixels(image, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """One image as float32 C x H x W in [0, 1], resized to ``size`` (H, W) when given and different."""
    from PIL import Image

    if channels == 1:
        if image.mode in SIXTEEN_BIT_MODES:
            image = image.convert("I")
            scale = 65535.0
        else:
            image = image.convert("L")
            scale = 255.0
    else:
        image = image.convert("RGB")
        scale = 255.0
    if size is not None and (image.height, image.width) != size:
        if image.mode == "I":
            image = image.convert("F")
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    pixels = np.clip(np.asarray(image, dtype=np.float32) / scale, 0.0, 1.0)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def dataset_from_folder(
    path: str | Path,
    *,
    image_size: tuple[int, int] | None = None,
    bounds: tuple[float, float] | None = None,
) -> Dataset:
    """Images from ``path``/<class>/<file>.png|jpg (see the module docstring); bounds (0, 1)."""
    path = Path(path)
    if not path.is_dir():
        raise DataNotFoundError(f"image folder {path} does not exist")
    name = path.resolve().name or str(path)
    if input_bounds(bounds) not in (None, IMAGE_BOUNDS):
        raise InputError(ERR_FOLDER_BOUNDS.format(got=tuple(bounds)))
    size = _image_size(image_size)
    class_names, files = _files(path)
    if not files:
        raise InputError(ERR_NO_EXAMPLES.format(name=name))
    # First pass: read each file once (digest), decode headers only to learn sizes and modes.
    digest = hashlib.sha256()
    blobs, sizes, grey = [], Counter(), True
    first_of_size: dict[tuple[int, int], Path] = {}
    for index, file in files:
        data = file.read_bytes()
        relative = f"{class_names[index]}/{file.name}"
        digest.update(f"{relative}:{hashlib.sha256(data).hexdigest()}\n".encode())
        image = _open(file, data, decode=False)
        shape = (image.height, image.width)
        sizes[shape] += 1
        first_of_size.setdefault(shape, file)
        grey &= image.mode in GREY_MODES
        blobs.append(data)
    if size is None and len(sizes) > 1:
        listed = ", ".join(f"{h}x{w}: {count}" for (h, w), count in sorted(sizes.items(), key=lambda kv: -kv[1]))
        rare = min(sizes, key=lambda s: sizes[s])
        raise DataFormatError(
            ERR_SIZES.format(path=path, count=len(sizes), sizes=listed, example=first_of_size[rare].relative_to(path))
        )
    height, width = size or next(iter(sizes))
    channels = 1 if grey else 3
    x = np.empty((len(files), channels, height, width), dtype=np.float32)
    for row, ((_, file), data) in enumerate(zip(files, blobs)):
        x[row] = _pixels(_open(file, data, decode=True), channels, size)
    resized = sum(count for shape, count in sizes.items() if shape != (height, width))
    description = (
        f"{len(files)} {'greyscale' if grey else 'RGB'} images in {len(class_names)} class folders, scaled to [0, 1]"
    )
    if resized:
        description += f"; {resized} resized to {height}x{width} (bilinear)"
    metadata = DatasetMetadata(
        source=str(path),
        licence="user data",
        description=description,
        files=(FileRecord(f"{name}/ ({len(files)} images)", digest.hexdigest(), False),),
    )
    labels = torch.tensor([index for index, _ in files], dtype=torch.int64)
    return Dataset(name, "folder", torch.from_numpy(x), labels, class_names, IMAGE_BOUNDS, metadata)
