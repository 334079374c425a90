import gzip

import numpy as np
import pytest

from trustlab.core.exceptions import DataFormatError
from trustlab.data.idx import encode_idx, read_idx, write_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    path = write_idx(tmp_path / f"a.idx{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(back, array)


def test_header_is_big_endian_mnist_layout():
    raw = encode_idx(np.zeros((2, 28, 28), dtype=np.uint8))
    assert raw[:4] == bytes([0, 0, 0x08, 3])
    assert raw[4:16] == (2).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")
    assert len(raw) == 16 + 2 * 28 * 28


def test_truncated_payload_is_rejected(tmp_path):
    raw = encode_idx(np.ones((10, 28, 28), dtype=np.uint8))
    path = tmp_path / "short.idx"
    path.write_bytes(raw[:-100])
    with pytest.raises(DataFormatError, match=r"truncated.*\(10, 28, 28\)"):
        read_idx(path)


def test_truncated_gzip_is_rejected(tmp_path):
    data = gzip.compress(encode_idx(np.ones((10, 28, 28), dtype=np.uint8)))
    path = tmp_path / "short.idx.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="corrupt or truncated gzip"):
        read_idx(path)


def test_truncated_header_bad_magic_and_trailing_bytes(tmp_path):
    raw = encode_idx(np.ones((3, 4), dtype=np.uint8))
    cases = {"header": raw[:6], "magic": b"\x01" + raw[1:], "trailing": raw + b"\x00\x00"}
    messages = {"header": "inside its header", "magic": "bad magic", "trailing": "unexpected bytes"}
    for name, payload in cases.items():
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(DataFormatError, match=messages[name]):
            read_idx(path)
