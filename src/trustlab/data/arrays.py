"""Bring-your-own data: a ``.npz`` file with arrays ``x`` (inputs) and ``y`` (labels).

Optional arrays:

* ``class_names``: one string per class (a numpy string array, dtype ``<U..``); without it the
  classes are ``"0" .. str(max(y))``;
* ``protected_<name>``: integer codes, one per example, of a protected attribute ``<name>``
  (kept out of the features, as ``dataset.protected[name]``), with optional
  ``protected_<name>_categories``: one string per code (without it, ``"0" .. str(max code)``);
* ``bounds``: two floats, the valid input range (e.g. ``[0, 1]`` for images in pixel space).

Other arrays are ignored (and listed in the metadata). Read with ``allow_pickle=False``, so a
crafted file cannot run code; every problem with the file is a one-line :class:`DataFormatError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from trustlab.core.exceptions import DataFormatError, DataNotFoundError, InputError
from trustlab.core.files import sha256_file
from trustlab.core.validate import validate_inputs
from trustlab.data.dataset import (
    ERR_NO_EXAMPLES,
    MAX_CLASSES,
    Dataset,
    DatasetMetadata,
    FileRecord,
    ProtectedAttribute,
    input_bounds,
)

PROTECTED_PREFIX = "protected_"
CATEGORIES_SUFFIX = "_categories"
ERR_NPZ_UNREADABLE = "{path} is not a readable .npz file without pickles ({reason})"
ERR_NPZ_MISSING = "{path} lacks array(s) {missing}; expected 'x' and 'y'"
ERR_NPZ_X = "{path}: 'x' must be a numeric (not complex) array of N inputs, N x features or N x C x H x W, got {got}"
ERR_NPZ_Y = "{path}: 'y' must be {n} integer labels (one per row of 'x'), got {got}"
ERR_CODES_RANGE = "{path}: {what} must lie in 0..{high} ({count} {unit}{why}), found {low}..{top}"
ERR_TOO_MANY = "{path}: {what} go up to {top}, more than {limit} {unit}; give their names ({array}) or fix the codes"
ERR_NAMES = "{path}: '{array}' must be a 1-D array of distinct strings (numpy dtype '<U'), got {got}"
ERR_PROTECTED = "{path}: '{array}' must be {n} integer codes (one per example), got {got}"
ERR_NPZ_BOUNDS = "{path}: 'bounds' must be two finite floats low < high, got {got}"
ERR_BOUNDS_DISAGREE = "{path} declares bounds {file} but bounds {given} were asked for"


def _describe(array: np.ndarray) -> str:
    return f"{array.dtype} array of shape {array.shape}"


def _is_integer(array: np.ndarray) -> bool:
    return np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the archive, materialised; any failure to read is a DataFormatError."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # an .npy file: np.load returns the array itself
            raise DataFormatError(ERR_NPZ_UNREADABLE.format(path=path, reason="an .npy array, not an .npz archive"))
        with loaded:
            return {name: np.asarray(loaded[name]) for name in loaded.files}
    except DataFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - arbitrary bytes: zip, zlib, npy header and pickle refusals all land here
        reason = (str(exc).splitlines() or [""])[0] or type(exc).__name__
        raise DataFormatError(ERR_NPZ_UNREADABLE.format(path=path, reason=reason)) from None


def _names(path: Path, arrays: dict[str, np.ndarray], key: str) -> tuple[str, ...] | None:
    if key not in arrays:
        return None
    names = arrays[key]
    if names.dtype.kind != "U" or names.ndim != 1 or len(set(names.tolist())) != len(names):
        raise DataFormatError(ERR_NAMES.format(path=path, array=key, got=_describe(names)))
    return tuple(str(n) for n in names.tolist())


def _codes(
    path: Path, codes: np.ndarray, names: tuple[str, ...] | None, *, what: str, names_key: str, unit: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer codes checked against their names (or names "0".."max" when there are none)."""
    low, top = (int(codes.min()), int(codes.max())) if codes.size else (0, -1)
    if names is None:
        if top >= MAX_CLASSES:
            raise DataFormatError(
                ERR_TOO_MANY.format(path=path, what=what, top=top, limit=MAX_CLASSES, unit=unit, array=names_key)
            )
        names = tuple(str(i) for i in range(top + 1))
        why = f", {names_key} absent"
    else:
        why = f" named in {names_key}"
    if low < 0 or top >= len(names):
        raise DataFormatError(
            ERR_CODES_RANGE.format(
                path=path, what=what, high=len(names) - 1, count=len(names), unit=unit, why=why, low=low, top=top
            )
        )
    return codes.astype(np.int64), names


def _bounds(path: Path, arrays: dict[str, np.ndarray], given: tuple[float, float] | None) -> tuple[float, float] | None:
    given = input_bounds(given)
    if "bounds" not in arrays:
        return given
    raw = arrays["bounds"]
    ok = raw.shape == (2,) and np.issubdtype(raw.dtype, np.number) and not np.iscomplexobj(raw)
    if ok:
        low, high = (float(v) for v in raw.tolist())
        ok = np.isfinite(low) and np.isfinite(high) and low < high
    if not ok:
        raise DataFormatError(ERR_NPZ_BOUNDS.format(path=path, got=_describe(raw)))
    if given is not None and given != (low, high):
        raise InputError(ERR_BOUNDS_DISAGREE.format(path=path, file=[low, high], given=list(given)))
    return low, high


def dataset_from_npz(
    path: str | Path, *, class_names: tuple[str, ...] | None = None, bounds: tuple[float, float] | None = None
) -> Dataset:
    """Load ``x`` (float inputs in pixel or feature space), ``y`` (integer labels) and the optional
    arrays of the module docstring from an ``.npz`` file.

    ``class_names`` (an argument) takes precedence over the file's ``class_names`` array.
    ``bounds`` are the input range when the file has no ``bounds`` array (if it has one, the two
    must agree); ``x`` is checked to lie within them. Without either, ``bounds`` is None
    (unbounded, as for tabular data): never guessed. NaN or infinite inputs are refused.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"data file {path} does not exist")
    arrays = _read_arrays(path)
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataFormatError(ERR_NPZ_MISSING.format(path=path, missing=", ".join(missing)))
    x, y = arrays["x"], arrays["y"]
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise DataFormatError(ERR_NPZ_X.format(path=path, got=_describe(x)))
    n = x.shape[0]
    if n == 0:
        raise InputError(ERR_NO_EXAMPLES.format(name=path.stem))
    if not _is_integer(y) or y.ndim != 1 or len(y) != n:
        raise DataFormatError(ERR_NPZ_Y.format(path=path, n=n, got=_describe(y)))
    names = tuple(class_names) if class_names is not None else _names(path, arrays, "class_names")
    labels, names = _codes(path, y, names, what="labels", names_key="class_names", unit="classes")
    used = {"x", "y", "class_names", "bounds"}
    protected = {}
    for key in sorted(arrays):
        if not key.startswith(PROTECTED_PREFIX) or key.endswith(CATEGORIES_SUFFIX):
            continue
        name = key[len(PROTECTED_PREFIX) :]
        codes = arrays[key]
        if not name or not _is_integer(codes) or codes.shape != (n,):
            raise DataFormatError(ERR_PROTECTED.format(path=path, array=key, n=n, got=_describe(codes)))
        categories_key = key + CATEGORIES_SUFFIX
        codes, categories = _codes(
            path,
            codes,
            _names(path, arrays, categories_key),
            what=f"codes of '{key}'",
            names_key=categories_key,
            unit="categories",
        )
        protected[name] = ProtectedAttribute(torch.from_numpy(codes), categories)
        used |= {key, categories_key}
    ignored = sorted(set(arrays) - used)
    bounds = _bounds(path, arrays, bounds)
    inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    inputs = validate_inputs(inputs, tuple(inputs.shape[1:]), bounds, name=f"inputs of {path.name}")
    description = "arrays from an .npz file"
    if protected:
        description += f"; protected attributes: {', '.join(protected)}"
    if ignored:
        description += f"; ignored arrays: {', '.join(ignored)}"
    return user_file_dataset(path, inputs, torch.from_numpy(labels), names, bounds, description, protected=protected)


def user_file_dataset(
    path: Path,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    class_names: tuple[str, ...],
    bounds: tuple[float, float] | None,
    description: str,
    **fields: Any,
) -> Dataset:
    """A Dataset read from one user file, named after it, with the file's sha256 as provenance."""
    metadata = DatasetMetadata(
        source=str(path),
        licence="user data",
        description=description,
        files=(FileRecord(path.name, sha256_file(path), False),),
    )
    return Dataset(path.stem, "file", inputs, labels, class_names, bounds, metadata, **fields)
