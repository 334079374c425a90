"""Fuzzing the readers of user files: whatever the bytes or arrays, a reader either returns a
consistent data set or raises a TrustlabError (a one-line message), never another exception."""

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from trustlab.core.exceptions import TrustlabError
from trustlab.core.validate import BOUNDS_TOLERANCE
from trustlab.data.io import open_dataset

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _open(name: str, content: bytes, **kwargs):
    """open_dataset on a file holding ``content``: the data set, or None after a TrustlabError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        try:
            data = open_dataset(path, **kwargs)
        except TrustlabError as exc:
            assert "\n" not in str(exc), str(exc)
            return None
    _check_consistent(data)
    return data


def _check_consistent(data) -> None:
    assert len(data) > 0 and data.x.dtype == torch.float32 and data.y.dtype == torch.int64
    assert torch.isfinite(data.x).all()
    assert int(data.y.min()) >= 0 and int(data.y.max()) < data.num_classes
    for attr in data.protected.values():
        assert attr.codes.shape == (len(data),) and int(attr.codes.max()) < len(attr.categories)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


VALID_NPZ = _npz_bytes({"x": np.random.default_rng(0).random((3, 2)), "y": np.array([0, 1, 1])})


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_as_npz(content):
    _open("data.npz", content)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_after_a_zip_header_as_npz(content):
    _open("data.npz", b"PK\x03\x04" + content)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID_NPZ) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_corrupted_valid_npz(edits):
    content = bytearray(VALID_NPZ)
    for position, value in edits:
        content[position] = value
    _open("data.npz", bytes(content))


def test_npz_whose_member_is_not_an_array():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", b"\x93NUMPY\x01\x00garbage header")
        archive.writestr("y.npy", b"")
    assert _open("data.npz", buffer.getvalue()) is None


DTYPES = st.sampled_from(["float32", "float64", "int8", "uint8", "int64", "uint64", "bool", "complex64", "<U3"])


def _arrays(max_dims: int = 4):
    shapes = hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=4)
    return DTYPES.flatmap(lambda dtype: hnp.arrays(np.dtype(dtype), shapes))


@FUZZ
@given(
    x=_arrays(),
    y=_arrays(max_dims=2),
    extras=st.dictionaries(
        st.sampled_from(["class_names", "bounds", "protected_sex", "protected_sex_categories", "protected_", "other"]),
        _arrays(max_dims=2),
        max_size=3,
    ),
)
def test_random_small_arrays_in_an_npz(x, y, extras):
    data = _open("data.npz", _npz_bytes({"x": x, "y": y, **extras}))
    if data is not None:
        assert data.x.shape == x.shape and data.y.tolist() == y.astype(np.int64).tolist()


@FUZZ
@given(
    x=hnp.arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 3)), elements=st.floats(-2, 2, width=32)),
    labels=st.lists(st.integers(-1, 4), min_size=1, max_size=5),
    names=st.none() | st.lists(st.text(max_size=3), max_size=4),
    bounds=st.none() | st.tuples(st.floats(-3, 3), st.floats(-3, 3)),
)
def test_npz_labels_names_and_bounds(x, labels, names, bounds):
    y = np.resize(np.array(labels), len(x))
    arrays = {"x": x, "y": y}
    if names is not None:
        arrays["class_names"] = np.array(names, dtype="<U3")
    data = _open("data.npz", _npz_bytes(arrays), bounds=bounds)
    if data is not None:
        assert data.y.tolist() == y.tolist()
        if bounds is not None:
            low, high = data.bounds
            assert (low, high) == bounds and low < high
            assert low - BOUNDS_TOLERANCE <= float(data.x.min()) and float(data.x.max()) <= high + BOUNDS_TOLERANCE


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_as_csv(content):
    _open("data.csv", content, label_column="a")


CELLS = st.sampled_from(["", "1", "-2.5", "1e3", "1e40", "nan", "inf", "true", "False", "x", " y ", '"q,r"', '"', "é"])


@FUZZ
@given(
    header=st.lists(st.sampled_from(["a", "b", "c", "", "a "]), min_size=1, max_size=4),
    rows=st.lists(st.lists(CELLS, min_size=0, max_size=5), max_size=6),
    protected=st.lists(st.sampled_from(["b", "c", "a"]), max_size=2),
)
def test_random_small_csv_tables(header, rows, protected):
    text = "\n".join([",".join(header), *(",".join(row) for row in rows)]) + "\n"
    data = _open("data.csv", text.encode(), label_column="a", protected=protected)
    if data is not None:
        assert data.x.shape[1] == len(data.feature_names) and "a" not in data.feature_names


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_as_an_image(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "set" / "cat" / "x.png"
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
        with pytest.raises(TrustlabError):
            open_dataset(path.parent.parent)
