"""Bring-your-own table: a comma-separated file with a header row and a named label column.

* ``label_column`` (required) holds the labels; its distinct values, sorted (numerically when
  they are all numbers, else as text), are the classes, and each label becomes its class's
  index. Pass ``class_names`` to fix the classes and their order instead (e.g. a model's), so a
  file lacking a class does not shift the indices; labels not among them are then an error;
* ``protected`` columns are kept out of the features, as ``dataset.protected[column]``: integer
  codes of their sorted distinct values (as text);
* every other column is a feature and must be numeric (integers, floats or booleans), read as
  float32. Text columns are refused with their names rather than one-hot encoded: an encoding
  learnt from one file silently disagrees with another file's (a category missing from a test
  file shifts every column after it), so encode them yourself, or list them as protected;
* empty cells, NaN and infinities are refused, naming the column and the first data row (1 = the row after the header);
* tabular data has no input bounds (``bounds`` None) unless the caller gives some, which the
  features are then checked against.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trustlab.core.exceptions import DataFormatError, DataNotFoundError, InputError
from trustlab.core.validate import validate_inputs
from trustlab.data.arrays import user_file_dataset
from trustlab.data.dataset import (
    ERR_NO_EXAMPLES,
    Dataset,
    ProtectedAttribute,
    input_bounds,
)

MAX_LISTED = 12  # columns named in one error message
ERR_CSV_UNREADABLE = "{path} is not a readable CSV file ({reason})"
ERR_LABEL_REQUIRED = "a CSV data set needs its label column named (label_column / --label-column); {path} has {columns}"
ERR_COLUMN_ABSENT = "{path} has no {role} column {column!r}; its columns: {columns}"
ERR_PROTECTED_IS_LABEL = "column {column!r} of {path} cannot be both the label and a protected attribute"
ERR_NOT_NUMERIC = (
    "{path}: feature column(s) {columns} are not numeric (e.g. {value!r} in data row {row}); encode them as numbers "
    "or name them as protected"
)
ERR_MISSING_CELLS = "{path}: column {column!r} has {count} empty, NaN or infinite cell(s) (first in data row {row})"
ERR_CLASS_NAMES = "class_names must be distinct names, at least one, got {got}"
ERR_NO_FEATURES = "{path} has no feature columns besides the label{protected}"
ERR_UNKNOWN_LABELS = "{path}: label(s) {labels} in column {column!r} are not among the classes {classes}"


def _listed(names: Sequence[object]) -> str:
    shown = ", ".join(repr(str(n)) for n in list(names)[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def _read(path: Path) -> pd.DataFrame:
    """Every cell as text ("" when empty); rows with more cells than the header are an error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # extra cells would be dropped
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, na_filter=False, skipinitialspace=True, index_col=False
            )
    except (
        pd.errors.ParserError,
        pd.errors.ParserWarning,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        ValueError,
        csv.Error,
    ) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataFormatError(ERR_CSV_UNREADABLE.format(path=path, reason=reason)) from None
    frame.columns = [str(c) for c in frame.columns]
    return frame.fillna("")


def _numbers(text: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """The column as float64 numbers (booleans as 0/1; empty cells NaN), and a mask of the cells
    that are neither empty nor numbers."""
    lowered = text.str.lower()
    if len(text) and lowered.isin(["true", "false"]).all():
        return (lowered == "true").astype(np.float64), np.zeros(len(text), dtype=bool)
    values = pd.to_numeric(text.where(text != "", "nan"), errors="coerce")
    bad = values.isna() & (text != "") & ~lowered.isin(["nan", "+nan", "-nan"])
    return values, bad.to_numpy()


def _sorted_values(text: pd.Series) -> list[str]:
    """Distinct values, numerically sorted when all are numbers, else sorted as text."""
    distinct = list(pd.unique(text))
    numbers = pd.to_numeric(pd.Series(distinct, dtype=object), errors="coerce")
    if len(distinct) and not numbers.isna().any():
        return [v for _, v in sorted(zip(numbers.tolist(), distinct))]
    return sorted(distinct)


def _codes(path: Path, frame: pd.DataFrame, column: str, categories: Sequence[str]) -> np.ndarray:
    text = frame[column].str.strip()
    empty = text == ""
    if empty.any():
        first = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataFormatError(ERR_MISSING_CELLS.format(path=path, column=column, count=int(empty.sum()), row=first + 1))
    return pd.Categorical(text, categories=list(categories)).codes.astype(np.int64)


def dataset_from_csv(
    path: str | Path,
    *,
    label_column: str | None,
    protected: Sequence[str] = (),
    class_names: Sequence[str] | None = None,
    bounds: tuple[float, float] | None = None,
) -> Dataset:
    """A tabular data set from a CSV file (see the module docstring)."""
    path = Path(path)
    bounds = input_bounds(bounds)
    if not path.is_file():
        raise DataNotFoundError(f"data file {path} does not exist")
    frame = _read(path)
    columns = list(frame.columns)
    if label_column is None:
        raise InputError(ERR_LABEL_REQUIRED.format(path=path.name, columns=f"columns {_listed(columns)}"))
    if label_column not in columns:
        raise DataFormatError(
            ERR_COLUMN_ABSENT.format(path=path, role="label", column=label_column, columns=_listed(columns))
        )
    protected = list(dict.fromkeys([protected] if isinstance(protected, str) else protected))
    for column in protected:
        if column == label_column:
            raise InputError(ERR_PROTECTED_IS_LABEL.format(path=path, column=column))
        if column not in columns:
            raise DataFormatError(
                ERR_COLUMN_ABSENT.format(path=path, role="protected", column=column, columns=_listed(columns))
            )
    features = [c for c in columns if c != label_column and c not in protected]
    if not features:
        extra = f" and the protected columns {_listed(protected)}" if protected else ""
        raise DataFormatError(ERR_NO_FEATURES.format(path=path, protected=extra))
    if len(frame) == 0:
        raise InputError(ERR_NO_EXAMPLES.format(name=path.stem))
    # features: numeric, finite
    numeric, text_columns, example = {}, [], None
    for column in features:
        text = frame[column].str.strip()
        values, bad = _numbers(text)
        if bad.any():
            text_columns.append(column)
            if example is None:
                row = int(np.flatnonzero(bad)[0])
                example = (text.iloc[row], row + 1)
        else:
            numeric[column] = values
    if text_columns:
        raise DataFormatError(
            ERR_NOT_NUMERIC.format(path=path, columns=_listed(text_columns), value=example[0], row=example[1])
        )
    x = np.empty((len(frame), len(features)), dtype=np.float32)
    for j, column in enumerate(features):
        with np.errstate(over="ignore"):
            x[:, j] = numeric[column].to_numpy(dtype=np.float64).astype(np.float32)
        missing = ~np.isfinite(x[:, j])
        if missing.any():
            raise DataFormatError(
                ERR_MISSING_CELLS.format(
                    path=path, column=column, count=int(missing.sum()), row=int(np.flatnonzero(missing)[0]) + 1
                )
            )
    # labels
    labels_text = frame[label_column].str.strip()
    if class_names is None:
        names = tuple(_sorted_values(labels_text[labels_text != ""]))
    else:
        names = tuple(str(n) for n in class_names)
        if not names or len(set(names)) != len(names):
            raise InputError(ERR_CLASS_NAMES.format(got=list(names)))
        unknown = sorted(set(labels_text[labels_text != ""]) - set(names))
        if unknown:
            raise DataFormatError(
                ERR_UNKNOWN_LABELS.format(
                    path=path, labels=_listed(unknown), column=label_column, classes=_listed(names)
                )
            )
    y = _codes(path, frame, label_column, names)
    attributes = {}
    for column in protected:
        text = frame[column].str.strip()
        categories = tuple(_sorted_values(text[text != ""]))
        attributes[column] = ProtectedAttribute(torch.from_numpy(_codes(path, frame, column, categories)), categories)
    inputs = validate_inputs(torch.from_numpy(x), (len(features),), bounds, name=f"features of {path.name}")
    description = f"CSV file: {len(features)} numeric features, label column {label_column!r}"
    if attributes:
        description += f", protected attributes {', '.join(attributes)}"
    labels = torch.from_numpy(y)
    return user_file_dataset(
        path, inputs, labels, names, bounds, description, feature_names=tuple(features), protected=attributes
    )
