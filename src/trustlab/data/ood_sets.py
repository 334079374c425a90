"""Out-of-distribution (OOD) test sets for judging an MNIST model's reliability alarm.

An alarm should fire on inputs unlike the training data. :func:`ood_suite` gathers the standard
sets for an MNIST-like model, from far OOD (noise, photos) to near OOD (other 28x28 glyph data
sets, corrupted digits); the builders below make each one on its own. Every set is an
:class:`OODSet`: float32 images N x C x H x W in [0, 1] and a one-line description. Generated
sets are deterministic given ``seed`` and never touch the global random state.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from trustlab.core.exceptions import DataNotFoundError, InputError, UnknownNameError
from trustlab.data.corruptions import CORRUPTION_DESCRIPTIONS, CORRUPTIONS, check_images
from trustlab.data.near_ood import NEAR_OOD_DESCRIPTIONS, NEEDS_DIGITS, near_ood_set
from trustlab.data.paths import resolve_data_dir
from trustlab.data.registry import load_dataset, split_status

MNIST_SHAPE = (1, 28, 28)
GAUSSIAN_MEAN = 0.5
GAUSSIAN_STD = 0.25  # mean +- 2 std spans [0, 1]: about 4.6% of pixels are clipped to 0 or 1
PHOTO_NAMES = ("china.jpg", "flower.jpg")  # scikit-learn's bundled sample photos (427 x 640 RGB)
LUMA_601 = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of R, G, B
CROP_SIDES = (32, 256)  # smallest and largest crop side in photo pixels
_MAX_SEED = 2**63

OOD_DESCRIPTIONS: dict[str, str] = {
    "notmnist": "notMNIST test split: letters A-J from many fonts, 28x28 greyscale (near OOD)",
    "fashion_mnist": "Fashion-MNIST test split: clothing in MNIST's 28x28 format (only if its files are present)",
    "uniform_noise": "independent uniform noise on [0, 1] per pixel",
    "gaussian_noise": (
        f"independent Gaussian noise per pixel, mean {GAUSSIAN_MEAN:g}, std {GAUSSIAN_STD:g}, clipped to [0, 1]"
    ),
    "natural_crops": (
        f"greyscale square crops ({CROP_SIDES[0]}-{CROP_SIDES[1]} px) of scikit-learn's sample photos "
        f"{' and '.join(PHOTO_NAMES)}, area-downsampled"
    ),
    **{f"mnist_{name}": f"in-distribution images {text}" for name, text in CORRUPTION_DESCRIPTIONS.items()},
    **NEAR_OOD_DESCRIPTIONS,
}
OOD_SET_NAMES: tuple[str, ...] = tuple(OOD_DESCRIPTIONS)

# Families group the sets by kind of difference: a detector is judged by its worst family, and the
# leave-one-family-out protocol tunes nothing on the family it is tested on. Far: differ in texture,
# brightness or style; near: MNIST's white pen strokes, centred like MNIST, but not digits.
FAR_FAMILIES = ("notmnist", "fashion", "noise", "photos", "corruptions")
NEAR_FAMILIES = tuple(name.removeprefix("near_") for name in NEAR_OOD_DESCRIPTIONS)
OOD_FAMILIES: dict[str, str] = {
    "notmnist": "notmnist",
    "fashion_mnist": "fashion",
    "uniform_noise": "noise",
    "gaussian_noise": "noise",
    "natural_crops": "photos",
    **{f"mnist_{name}": "corruptions" for name in CORRUPTION_DESCRIPTIONS},
    **{name: name.removeprefix("near_") for name in NEAR_OOD_DESCRIPTIONS},
}


def ood_family(name: str) -> str:
    """The family of a built-in OOD set (see ``OOD_FAMILIES``); a user's own set is its own family."""
    return OOD_FAMILIES.get(name, name)


@dataclass(frozen=True, eq=False)
class OODSet:
    """One OOD test set: inputs ``x`` (float32, N x ...: images N x C x H x W in [0, 1] for the
    built-in sets, or a user's own inputs of any shape) and what they are."""

    name: str
    x: torch.Tensor
    description: str

    def __post_init__(self) -> None:
        if not isinstance(self.x, torch.Tensor) or self.x.ndim < 2 or self.x.dtype != torch.float32:
            got = f"{self.x.dtype} {tuple(self.x.shape)}" if isinstance(self.x, torch.Tensor) else type(self.x).__name__
            raise InputError(f"OODSet x must be a float32 tensor of shape (N, ...), got {got}")

    def __len__(self) -> int:
        return int(self.x.shape[0])


# ---------------------------------------------------------------- argument checks -------------


def _check_count(n: object, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise InputError(f"{name} must be a positive integer number of examples, got {n!r}")
    return int(n)


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < _MAX_SEED:
        raise InputError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def _check_shape(shape: object) -> tuple[int, int, int]:
    try:
        dims = tuple(shape)  # type: ignore[arg-type]
    except TypeError:
        dims = ()
    if len(dims) != 3 or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in dims):
        raise InputError(f"shape must be three positive integers (C, H, W), got {shape!r}")
    return int(dims[0]), int(dims[1]), int(dims[2])


def _check_float(value: object, name: str, low: float, high: float) -> float:
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if not ok or not low <= float(value) <= high:
        raise InputError(f"{name} must be a finite number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- generated sets --------------


def uniform_noise(n: int, shape: tuple[int, int, int] = MNIST_SHAPE, *, seed: int = 0) -> OODSet:
    """``n`` images of independent uniform noise on [0, 1): the farthest-from-data OOD baseline."""
    n, shape, seed = _check_count(n), _check_shape(shape), _check_seed(seed)
    x = torch.rand((n, *shape), generator=_generator(seed), dtype=torch.float32)
    return OODSet("uniform_noise", x, OOD_DESCRIPTIONS["uniform_noise"])


def gaussian_noise(
    n: int,
    shape: tuple[int, int, int] = MNIST_SHAPE,
    *,
    mean: float = GAUSSIAN_MEAN,
    std: float = GAUSSIAN_STD,
    seed: int = 0,
) -> OODSet:
    """``n`` images of independent Gaussian noise per pixel, clipped to [0, 1].

    The defaults (mean 0.5, std 0.25) fill the pixel range with mid-grey speckle, which has the
    brightness of nothing in MNIST (mostly black, some white), with about 4.6% of pixels clipped.
    """
    n, shape, seed = _check_count(n), _check_shape(shape), _check_seed(seed)
    mean = _check_float(mean, "mean", 0.0, 1.0)
    std = _check_float(std, "std", 0.0, math.inf)
    x = torch.randn((n, *shape), generator=_generator(seed), dtype=torch.float32).mul_(std).add_(mean).clamp_(0, 1)
    description = (
        OOD_DESCRIPTIONS["gaussian_noise"]
        if (mean, std) == (GAUSSIAN_MEAN, GAUSSIAN_STD)
        else f"independent Gaussian noise per pixel, mean {mean:g}, std {std:g}, clipped to [0, 1]"
    )
    return OODSet("gaussian_noise", x, description)


@lru_cache(maxsize=1)
def _photo_tables() -> tuple[torch.Tensor, tuple[tuple[int, int], ...]]:
    """Summed-area tables of the greyscale sample photos (float64, zero-padded to a common size,
    with a leading zero row and column) and each photo's (H, W). Loaded once per process."""
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    photos = {Path(name).name: image for name, image in zip(bunch.filenames, bunch.images)}
    missing = [name for name in PHOTO_NAMES if name not in photos]
    if missing:
        raise DataNotFoundError(f"scikit-learn's sample images lack {', '.join(missing)}")
    greys = [np.asarray(photos[name], dtype=np.float64) @ np.asarray(LUMA_601) / 255.0 for name in PHOTO_NAMES]
    sizes = tuple((int(g.shape[0]), int(g.shape[1])) for g in greys)
    height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
    tables = torch.zeros(len(greys), height + 1, width + 1, dtype=torch.float64)
    for i, grey in enumerate(greys):
        tables[i, 1 : grey.shape[0] + 1, 1 : grey.shape[1] + 1] = torch.from_numpy(grey).cumsum(0).cumsum(1)
    return tables, sizes


def _area_crops(
    tables: torch.Tensor, photo: torch.Tensor, top: torch.Tensor, left: torch.Tensor, side: torch.Tensor, size: int
) -> torch.Tensor:
    """Mean-pool square crops (photo index, top, left, side; 1-D int64 tensors) to size x size.

    Same bins as ``F.adaptive_avg_pool2d`` (= ``F.interpolate(mode="area")``): output cell i
    averages source rows floor(i s / size) .. ceil((i + 1) s / size) - 1. Every crop at once,
    through four look-ups per cell in the summed-area tables.
    """
    i = torch.arange(size, dtype=torch.int64)
    start = (i[None, :] * side[:, None]) // size  # (n, size)
    end = -((-(i[None, :] + 1) * side[:, None]) // size)
    r0, r1 = (top[:, None] + start)[:, :, None], (top[:, None] + end)[:, :, None]  # (n, size, 1)
    c0, c1 = (left[:, None] + start)[:, None, :], (left[:, None] + end)[:, None, :]  # (n, 1, size)
    _, height, width = tables.shape
    flat = tables.reshape(-1)
    base = (photo * height * width)[:, None, None]

    def at(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return flat[base + r * width + c]

    sums = at(r1, c1) - at(r0, c1) - at(r1, c0) + at(r0, c0)
    return sums / ((r1 - r0) * (c1 - c0))


def natural_crops(
    n: int, size: int = 28, *, seed: int = 0, min_side: int = CROP_SIDES[0], max_side: int = CROP_SIDES[1]
) -> OODSet:
    """``n`` greyscale size x size patches of natural photos (1 channel), values in [0, 1].

    Each patch is a square crop of china.jpg or flower.jpg (scikit-learn's sample images, chosen
    with equal chance) with a side drawn uniformly from ``min_side``..``max_side`` pixels at a
    uniform position, converted to grey with ITU-R BT.601 luma weights and area-averaged down to
    ``size`` (the bins of ``F.interpolate(mode="area")``). Textures and edges, but no digits.
    """
    n, seed = _check_count(n), _check_seed(seed)
    size = _check_count(size, "size")
    tables, sizes = _photo_tables()
    limit = min(min(hw) for hw in sizes)
    min_side = _check_count(min_side, "min_side")
    if isinstance(max_side, bool) or not isinstance(max_side, numbers.Integral) or not min_side <= max_side <= limit:
        raise InputError(f"max_side must be an integer in [min_side={min_side}, {limit}], got {max_side!r}")
    rng = np.random.default_rng(seed)
    photo = rng.integers(0, len(sizes), n)
    side = rng.integers(min_side, int(max_side) + 1, n)
    heights, widths = np.asarray(sizes).T
    top = rng.integers(0, heights[photo] - side + 1)
    left = rng.integers(0, widths[photo] - side + 1)
    as_t = torch.from_numpy
    x = _area_crops(tables, as_t(photo), as_t(top), as_t(left), as_t(side), size)
    description = OOD_DESCRIPTIONS["natural_crops"]
    if (min_side, max_side) != CROP_SIDES:
        description = description.replace(f"{CROP_SIDES[0]}-{CROP_SIDES[1]}", f"{min_side}-{max_side}")
    return OODSet("natural_crops", x.to(torch.float32).clamp_(0, 1).unsqueeze(1), description)


def corrupted(x: torch.Tensor, name: str) -> OODSet:
    """``x`` after corruption ``name`` (a key of ``CORRUPTIONS``, with its default setting)."""
    if not isinstance(name, str) or name not in CORRUPTIONS:
        raise UnknownNameError(f"unknown corruption {name!r}; expected one of: {', '.join(CORRUPTIONS)}")
    out = CORRUPTIONS[name](x)
    return OODSet(name, out.to(torch.float32), CORRUPTION_DESCRIPTIONS[name])


# ---------------------------------------------------------------- the suite -------------------


def _selected(include: Iterable[str] | None) -> list[str]:
    if include is None:
        return list(OOD_SET_NAMES)
    if isinstance(include, str) or not isinstance(include, Iterable):
        raise InputError(f"include must be a list of OOD set names, got {include!r}")
    names = list(dict.fromkeys(include))
    unknown = [name for name in names if name not in OOD_DESCRIPTIONS]
    if unknown:
        raise UnknownNameError(
            f"unknown OOD set {', '.join(map(repr, unknown))}; expected one of: {', '.join(OOD_SET_NAMES)}"
        )
    return names


def _derived_seed(seed: int, name: str) -> int:
    """An independent seed per generated set, so the sets share no random stream."""
    entropy = [seed, *name.encode()]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _file_set(name: str, count: int, root: str | os.PathLike | None, split: str = "test") -> OODSet:
    data = load_dataset(name, split, root=root)
    x = data.x[:count].clone() if count < len(data) else data.x
    return OODSet(name, x, OOD_DESCRIPTIONS[name])


def ood_suite(
    in_distribution_x: torch.Tensor,
    *,
    n: int | None = None,
    root: str | os.PathLike | None = None,
    seed: int = 0,
    include: Iterable[str] | None = None,
    notmnist_split: str = "test",
    labels: torch.Tensor | None = None,
) -> dict[str, OODSet]:
    """The standard OOD sets for a model of 1 x 28 x 28 MNIST-like images, by name.

    ``in_distribution_x`` (N x 1 x 28 x 28 in [0, 1]) are held-out in-distribution inputs; their
    corruptions form the ``mnist_*`` sets. ``notmnist_split`` is "test" or the bundled "sample".
    ``n`` caps every set: file-based and corrupted sets
    keep their first ``n`` examples, generated sets have exactly ``n`` (default
    ``len(in_distribution_x)``). Generated sets draw from seeds derived from ``seed`` and their
    name. ``include`` restricts the suite to the listed names (see ``OOD_SET_NAMES``), in that order.
    ``labels`` (the in-distribution digits' classes) are needed by the near-OOD sets built from
    digits (flipped, overlays, fragments); without them those sets are left out (an error when named
    in ``include``).

    Data files are looked up like ``load_dataset`` (``root`` > ``$TRUSTLAB_DATA`` > cache).
    "notmnist" is loaded (downloaded if allowed); when its files cannot be had it is skipped with
    a warning. "fashion_mnist" is used only when its files are already there (never
    downloaded) and is skipped silently otherwise. Either one named in ``include`` is required:
    a missing one raises DataNotFoundError.
    """
    x = check_images(in_distribution_x, "in_distribution_x")
    if tuple(x.shape[1:]) != MNIST_SHAPE or x.shape[0] == 0:
        raise InputError(f"in_distribution_x must have shape (N >= 1, 1, 28, 28), got {tuple(x.shape)}")
    names = _selected(include)
    explicit = include is not None
    count = x.shape[0] if n is None else _check_count(n)
    seed = _check_seed(seed)
    suite: dict[str, OODSet] = {}
    for name in names:
        if name == "notmnist":
            try:
                suite[name] = _file_set(name, count, root, notmnist_split)
            except DataNotFoundError as exc:
                if explicit:
                    raise
                warnings.warn(f"OOD set 'notmnist' skipped: {exc}", stacklevel=2)
        elif name == "fashion_mnist":
            status = split_status(name, "test", root=root)
            if status == "available":
                suite[name] = _file_set(name, count, root)
            elif explicit:
                folder = resolve_data_dir(root)[0] / name
                raise DataNotFoundError(
                    f"OOD set 'fashion_mnist' needs its files in {folder} ({status}); ood_suite never "
                    "downloads it: run load_dataset('fashion_mnist') online once, or copy the files there"
                )
        elif name == "uniform_noise":
            suite[name] = uniform_noise(count, MNIST_SHAPE, seed=_derived_seed(seed, name))
        elif name == "gaussian_noise":
            suite[name] = gaussian_noise(count, MNIST_SHAPE, seed=_derived_seed(seed, name))
        elif name == "natural_crops":
            suite[name] = natural_crops(count, MNIST_SHAPE[-1], seed=_derived_seed(seed, name))
        elif name in NEAR_OOD_DESCRIPTIONS:
            if name in NEEDS_DIGITS and labels is None:
                if explicit:
                    raise InputError(f"OOD set {name!r} is built from labelled digits: pass labels")
                continue
            images = near_ood_set(name, count, seed=_derived_seed(seed, name), digits=x, labels=labels)
            suite[name] = OODSet(name, images, OOD_DESCRIPTIONS[name])
        else:  # mnist_<corruption>
            corruption = name.removeprefix("mnist_")
            suite[name] = replace(corrupted(x[:count], corruption), name=name, description=OOD_DESCRIPTIONS[name])
    return suite
