"""Reading and writing IDX files (the MNIST format), optionally gzip-compressed.

IDX layout: two zero bytes, a type code, the number of dimensions, then one big-endian
uint32 per dimension, then the data in C order. Files are checked strictly: a wrong magic
number, a truncated payload or trailing bytes are errors, never silently reshaped data.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from trustlab.core.exceptions import DataFormatError
from trustlab.core.files import atomic_write_bytes

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype: code for code, dtype in _DTYPES.items()}


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(f"IDX file {path} does not exist") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(f"IDX file {path} is a corrupt or truncated gzip file ({exc})") from None
    return raw


def parse_idx(raw: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file into an array."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataFormatError(f"{source} is not an IDX file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in _DTYPES:
        raise DataFormatError(f"{source} has unknown IDX data type code 0x{code:02x}")
    if ndim == 0:
        raise DataFormatError(f"{source} declares zero dimensions")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataFormatError(f"{source} is truncated inside its header")
    shape = struct.unpack(f">{ndim}I", raw[4:header_len])
    dtype = _DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header_len
    if found < expected:
        raise DataFormatError(
            f"{source} is truncated: header promises shape {tuple(shape)} ({expected} bytes of data), "
            f"found {found} bytes"
        )
    if found > expected:
        raise DataFormatError(f"{source} has {found - expected} unexpected bytes after its data")
    array = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header_len)
    return array.reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a native-endian numpy array."""
    path = Path(path)
    return parse_idx(_read_bytes(path), source=str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of ``array`` (big-endian, uncompressed); the inverse of :func:`parse_idx`."""
    array = np.asarray(array)
    base = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if base not in _CODES:
        raise ValueError(f"cannot store dtype {array.dtype} in IDX")
    header = bytes([0, 0, _CODES[base], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=base).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write an IDX file atomically; gzip it when the name ends in ``.gz`` (reproducible mtime=0)."""
    data = encode_idx(array)
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    return atomic_write_bytes(path, data)
