"""Protected groups: one protected attribute, or the intersection of several, as one label per
example ("Female", or "Female & Black" for sex x race), and the checks on user input that go with
them (a missing attribute, a single group, labels that are not binary)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trustlab.core.exceptions import InputError

SEPARATOR = " & "  # joins the categories of an intersectional group: "Female & Black"
ERR_NO_ATTRIBUTES = "name at least one protected attribute (e.g. --protected sex)"
ERR_SINGLE_GROUP = "{what} splits the data into a single group ({group!r}); fairness needs at least two groups"
ERR_UNKNOWN_PRIVILEGED = "privileged group {value!r} is not one of the groups: {groups}"
ERR_NOT_BINARY = "{name} must be binary (0 and 1 only), got the values {values}"
ERR_LENGTHS = "{name} has {got} entries but there are {expected} examples"


def protected_groups(data: Any, names: Sequence[str]) -> np.ndarray:
    """One group label per example of ``data`` (a trustlab Dataset): the category of the one
    protected attribute in ``names``, or the categories of several joined by ``" & "`` (their
    intersection, e.g. ``"Female & Black"``). A one-line :class:`InputError` for an attribute the
    data set does not have."""
    names = [names] if isinstance(names, str) else list(dict.fromkeys(names))
    if not names:
        raise InputError(ERR_NO_ATTRIBUTES)
    protected = data.keep_protected(names).protected  # a one-line error for an attribute it lacks
    labels = None
    for name in names:
        attribute = protected[name]
        categories = np.asarray(list(attribute.categories) + ["?"], dtype=object)
        codes = np.asarray(
            attribute.codes.detach().cpu().numpy() if hasattr(attribute.codes, "numpy") else attribute.codes
        )
        codes = np.where((codes >= 0) & (codes < len(attribute.categories)), codes, len(attribute.categories))
        part = categories[codes.astype(np.int64)]
        labels = part if labels is None else labels + SEPARATOR + part
    return labels.astype(str)


def encode_groups(groups: Any, *, what: str = "groups") -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer codes 0..G-1 per example and the G group labels (sorted), from any array of labels
    (strings or numbers). A one-line :class:`InputError` when there is only one group."""
    values = np.asarray(groups)
    if values.ndim != 1 or values.size == 0:
        raise InputError(f"{what} must be one label per example (a non-empty 1-D array), got shape {values.shape}")
    labels, codes = np.unique(values.astype(str), return_inverse=True)
    if len(labels) < 2:
        raise InputError(ERR_SINGLE_GROUP.format(what=what, group=str(labels[0])))
    return codes.astype(np.int64), tuple(str(label) for label in labels)


def binary(values: Any, name: str, expected: int | None = None) -> np.ndarray:
    """``values`` as an int64 array of 0s and 1s; a one-line :class:`InputError` naming ``name``
    for anything else (other values, a wrong length)."""
    array = np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values)
    if array.ndim != 1:
        raise InputError(f"{name} must be a 1-D array, got shape {array.shape}")
    if expected is not None and len(array) != expected:
        raise InputError(ERR_LENGTHS.format(name=name, got=len(array), expected=expected))
    if array.dtype == bool:
        return array.astype(np.int64)
    found = np.unique(array)
    if not np.isin(found, (0, 1)).all():
        shown = ", ".join(str(v) for v in found[:6]) + (", ..." if len(found) > 6 else "")
        raise InputError(ERR_NOT_BINARY.format(name=name, values=shown))
    return array.astype(np.int64)
