"""Bring-your-own data: a ``.npz`` file with arrays ``x`` (inputs) and ``y`` (labels).

Read with ``allow_pickle=False``, so a crafted file cannot run code.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from trustlab.core.exceptions import DataFormatError, DataNotFoundError
from trustlab.core.files import sha256_file
from trustlab.data.dataset import Dataset, DatasetMetadata, FileRecord


def dataset_from_npz(
    path: str | Path, *, class_names: tuple[str, ...] | None = None, bounds: tuple[float, float] | None = None
) -> Dataset:
    """Load ``x`` (float inputs in pixel space) and ``y`` (integer labels) from an ``.npz`` file."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"data file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("x", "y") if k not in archive.files]
            if missing:
                raise DataFormatError(f"{path} lacks array(s) {', '.join(missing)}; expected 'x' and 'y'")
            x, y = archive["x"], archive["y"]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataFormatError(f"{path} is not a readable .npz file without pickles ({exc})") from None
    if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1 or len(y) != len(x):
        raise DataFormatError(f"{path}: 'y' must be {len(x)} integer labels, got {y.dtype} {y.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise DataFormatError(f"{path}: 'x' must be numeric, got {x.dtype}")
    num_classes = int(y.max()) + 1 if y.size else 0
    names = class_names or tuple(str(i) for i in range(num_classes))
    metadata = DatasetMetadata(
        source=str(path),
        licence="user data",
        description="arrays from an .npz file",
        files=(FileRecord(path.name, sha256_file(path), False),),
    )
    return Dataset(
        path.stem,
        "file",
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy(y.astype(np.int64)),
        tuple(names),
        bounds,
        metadata,
    )
