"""Backdoor triggers: a mask (where) and a pattern (what), stamped as ``(1 - m) * x + m * p``.

The same form covers a BadNets patch (a binary mask over a few pixels, pattern at a fixed value),
a blended trigger (a constant mask equal to the blend ratio over a full-image pattern) and the
triggers Neural Cleanse reverse-engineers (a soft mask and a pattern). These exist to make test
subjects for the scan and the repair; they are not a library for attacking models.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trustlab.core.exceptions import DataFormatError, InputError
from trustlab.core.files import atomic_write_bytes

PATCH_SHAPES = ("square", "checker", "cross", "corner")
POSITIONS = ("bottom-right", "bottom-left", "top-right", "top-left", "centre")


@dataclass(frozen=True, eq=False)
class Trigger:
    """A stamp: ``mask`` (H x W, values in [0, 1], shared across channels) and ``pattern``
    (C x H x W, in the input bounds); ``description`` says in words what it is."""

    mask: torch.Tensor
    pattern: torch.Tensor
    description: str

    def __post_init__(self) -> None:
        if self.mask.ndim != 2 or self.pattern.ndim != 3 or self.pattern.shape[1:] != self.mask.shape:
            raise InputError(
                f"a trigger needs an H x W mask and a C x H x W pattern of the same H x W, "
                f"got {tuple(self.mask.shape)} and {tuple(self.pattern.shape)}"
            )

    @property
    def norm(self) -> float:
        """L1 norm of the mask: how many pixels' worth of the input the trigger replaces."""
        return float(self.mask.abs().sum())

    def stamp(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N x C x H x W) with the trigger stamped on every image (a new tensor)."""
        if tuple(x.shape[1:]) != tuple(self.pattern.shape):
            raise InputError(
                f"the trigger is for inputs of shape {tuple(self.pattern.shape)}, got {tuple(x.shape[1:])}"
            )
        mask = self.mask.to(x.device, x.dtype)
        return (1 - mask) * x + mask * self.pattern.to(x.device, x.dtype)


def _image_shape(input_shape: Any) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3:
        raise InputError(f"triggers are stamped on images of shape C x H x W, got inputs of shape {shape}")
    return shape  # type: ignore[return-value]


def _corner(position: str | tuple[int, int], size: int, height: int, width: int, margin: int) -> tuple[int, int]:
    if isinstance(position, tuple):
        row, col = position
    elif position in POSITIONS:
        row = margin if position.startswith("top") else height - margin - size
        col = margin if position.endswith("left") else width - margin - size
        if position == "centre":
            row, col = (height - size) // 2, (width - size) // 2
    else:
        raise InputError(f"unknown trigger position {position!r}; expected one of {', '.join(POSITIONS)} or (row, col)")
    if not (0 <= row <= height - size and 0 <= col <= width - size):
        raise InputError(f"a {size} x {size} patch at ({row}, {col}) does not fit a {height} x {width} image")
    return row, col


def patch_trigger(
    input_shape: Any,
    *,
    size: int = 4,
    shape: str = "square",
    position: str | tuple[int, int] = "bottom-right",
    value: float = 1.0,
    margin: int = 1,
) -> Trigger:
    """A BadNets patch: a ``size`` x ``size`` block at ``position`` (a named corner or the centre,
    ``margin`` pixels from the border, or a (row, col) of its top-left pixel) whose pixels in
    ``shape`` (a full square, a checkerboard, a cross, or an L-shaped corner) are set to ``value``."""
    channels, height, width = _image_shape(input_shape)
    if not 1 <= size <= min(height, width):
        raise InputError(f"patch size must be between 1 and {min(height, width)}, got {size}")
    if shape not in PATCH_SHAPES:
        raise InputError(f"unknown patch shape {shape!r}; expected one of {', '.join(PATCH_SHAPES)}")
    row, col = _corner(position, size, height, width, margin)
    i, j = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    block = {
        "square": torch.ones(size, size),
        "checker": ((i + j) % 2 == 0).float(),
        "cross": ((i == size // 2) | (j == size // 2)).float(),
        "corner": ((i == size - 1) | (j == size - 1)).float(),
    }[shape]
    mask = torch.zeros(height, width)
    mask[row : row + size, col : col + size] = block
    pattern = torch.full((channels, height, width), float(value))
    where = position if isinstance(position, str) else f"at {position}"
    return Trigger(mask, pattern, f"{shape} patch {size}x{size} {where}, value {value:g}")


def blend_trigger(
    input_shape: Any,
    *,
    ratio: float = 0.1,
    bounds: tuple[float, float] = (0.0, 1.0),
    seed: int = 0,
) -> Trigger:
    """A blended trigger (Chen et al. 2017): a fixed random full-image pattern in ``bounds``
    mixed into every pixel at ``ratio``."""
    channels, height, width = _image_shape(input_shape)
    if not 0 < ratio < 1:
        raise InputError(f"the blend ratio must be between 0 and 1, got {ratio}")
    low, high = bounds
    generator = torch.Generator().manual_seed(seed)
    pattern = low + (high - low) * torch.rand((channels, height, width), generator=generator)
    return Trigger(torch.full((height, width), float(ratio)), pattern, f"blended noise pattern, ratio {ratio:g}")


TRIGGER_FORMAT = "trustlab-trigger-1"


def save_trigger(trigger: Trigger, path: str | os.PathLike, *, target: int | str | None = None) -> Path:
    """Write ``trigger`` (and the target it was trained towards, when known) as one safetensors file."""
    from safetensors.torch import save

    metadata = {"format": TRIGGER_FORMAT, "description": trigger.description, "target": json.dumps(target)}
    tensors = {"mask": trigger.mask.contiguous().float(), "pattern": trigger.pattern.contiguous().float()}
    return atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_trigger(path: str | os.PathLike) -> tuple[Trigger, int | str | None]:
    """A trigger written by :func:`save_trigger` and its target; a one-line error for anything else."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise InputError(f"trigger file {path} does not exist")
    try:
        raw = path.read_bytes()
        tensors = load(raw)
        header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
        metadata = header.get("__metadata__") or {}
        if metadata.get("format") != TRIGGER_FORMAT:
            raise ValueError("not a trigger written by trustlab")
        trigger = Trigger(tensors["mask"], tensors["pattern"], metadata.get("description", path.stem))
        target = json.loads(metadata.get("target", "null"))
    except (SafetensorError, ValueError, KeyError) as exc:
        raise DataFormatError(f"{path} is not a trustlab trigger file ({exc})") from None
    return trigger, target
