"""Reading a request's inputs: a JSON batch, an ``.npy`` array or a PNG image, strictly.

Every refusal is a :class:`RequestError` whose message names the field (``inputs`` for JSON,
``file`` for uploads) and says what was expected and what came: its shape, dtype, NaN or
infinite values, values outside the model's bounds, too many inputs. The checks of shape,
finiteness and bounds are the library's own (:func:`trustlab.core.validate.validate_inputs`),
so the service refuses exactly what ``GuardedClassifier.predict`` would.

Accepted shapes: a batch ``(N, *input_shape)`` or one input ``input_shape``. Numbers only: JSON
strings, booleans and nulls are refused rather than coerced; arrays must hold real numbers
(integers or floats; never objects, so ``.npy`` files are read without pickles). A PNG is
converted to the model's channels (greyscale or RGB), resized to its height and width and scaled
to [0, 1], as ``trustlab alarm predict`` reads images; its pixel count is checked before it is
decoded (no decompression bombs).
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import torch

from trustlab.core.exceptions import InputError
from trustlab.core.validate import validate_inputs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
MAX_IMAGE_PIXELS = 4096 * 4096


class RequestError(Exception):
    """A request the service refuses, with its HTTP status (413, 415 or 422) and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _unprocessable(message: str) -> RequestError:
    return RequestError(422, message)


def inputs_from_json(body: bytes, input_shape: tuple[int, ...], bounds, max_inputs: int) -> torch.Tensor:
    """``{"inputs": [...]}``: nested lists of numbers, a batch or one input."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise _unprocessable('body: expected a JSON object {"inputs": [...]}, got invalid JSON') from None
    if not isinstance(document, dict):
        raise _unprocessable(f"body: expected a JSON object with the field 'inputs', got a JSON {_json_kind(document)}")
    unknown = sorted(set(document) - {"inputs"})
    if unknown:
        raise _unprocessable(f"body: unknown field(s) {', '.join(map(repr, unknown[:5]))}; expected only 'inputs'")
    if "inputs" not in document:
        raise _unprocessable("inputs: field required (a list of inputs, each of shape " + _shape(input_shape) + ")")
    value = document["inputs"]
    if not isinstance(value, list):
        raise _unprocessable(f"inputs: expected a (nested) list of numbers, got a JSON {_json_kind(value)}")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, RecursionError, OverflowError, MemoryError):
        raise _unprocessable(
            f"inputs: expected nested lists of numbers of shape (N, {', '.join(map(str, input_shape))}); "
            "the lists are ragged or nested too deeply"
        ) from None
    if array.dtype.kind not in "iuf":
        what = {"b": "booleans", "U": "strings", "O": "nulls, objects or mixed values"}.get(array.dtype.kind, "values")
        raise _unprocessable(f"inputs: dtype must be numbers (integers or floats), got {what} ({array.dtype})")
    return _checked(array, "inputs", input_shape, bounds, max_inputs)


def inputs_from_npy(data: bytes, input_shape: tuple[int, ...], bounds, max_inputs: int) -> torch.Tensor:
    """An ``.npy`` file (no pickles): a batch or one input of real numbers. The header is read
    first: an array declaring more data than the body holds is refused before any allocation."""
    from numpy.lib import format as npy_format

    try:
        stream = io.BytesIO(data)
        version = npy_format.read_magic(stream)
        read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
        declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    except Exception:  # numpy's header parser raises many kinds (ValueError, SyntaxError, TokenError...)
        raise _unprocessable("file: not a readable .npy array of numbers") from None
    if dtype.kind not in "iuf":
        raise _unprocessable(f"file: dtype must be integers or floats, got {dtype}")
    if declared > len(data):
        raise _unprocessable(f"file: the .npy header declares shape {tuple(shape)}, more data than the file holds")
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception:  # a damaged body: whatever numpy raises, the file is unreadable
        raise _unprocessable("file: not a readable .npy array of numbers") from None
    if not isinstance(array, np.ndarray):
        raise _unprocessable("file: expected one .npy array")
    if array.dtype.kind not in "iuf":
        raise _unprocessable(f"file: dtype must be integers or floats, got {array.dtype}")
    return _checked(array, "file", input_shape, bounds, max_inputs)


def inputs_from_png(data: bytes, input_shape: tuple[int, ...], bounds) -> torch.Tensor:
    """A PNG image as one input (module doc)."""
    from PIL import Image

    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise RequestError(415, f"file: this model's inputs ({_shape(input_shape)}) are not images; send JSON or .npy")
    channels, height, width = input_shape
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise RequestError(413, f"file: image of {image.width} x {image.height} pixels exceeds the limit")
            image = image.convert("L" if channels == 1 else "RGB").resize((width, height))
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    except RequestError:
        raise
    except Exception:  # a damaged image: whatever Pillow raises (OSError, SyntaxError, ...), it is unreadable
        raise _unprocessable("file: not a readable PNG image") from None
    pixels = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    return _checked(np.ascontiguousarray(pixels)[None], "file", input_shape, bounds, 1)


def inputs_from_upload(
    data: bytes, content_type: str, input_shape: tuple[int, ...], bounds, max_inputs: int
) -> torch.Tensor:
    """An uploaded file, told apart by its first bytes (PNG or NPY), whatever its declared type."""
    if data.startswith(PNG_MAGIC):
        return inputs_from_png(data, input_shape, bounds)
    if data.startswith(NPY_MAGIC):
        return inputs_from_npy(data, input_shape, bounds, max_inputs)
    raise RequestError(415, f"file: expected a PNG image or an .npy array, got {content_type or 'unknown'} content")


def _checked(array: np.ndarray, field: str, input_shape: tuple[int, ...], bounds, max_inputs: int) -> torch.Tensor:
    if array.ndim >= 1 and array.shape[0] == 0:
        raise _unprocessable(f"{field}: at least one input is required, got none")
    if array.shape == tuple(input_shape):
        array = array[None]
    if array.ndim != len(input_shape) + 1 or tuple(array.shape[1:]) != tuple(input_shape):
        raise _unprocessable(
            f"{field}: shape must be (N, {', '.join(map(str, input_shape))}) or {_shape(input_shape)}, "
            f"got {tuple(array.shape)}"
        )
    if array.shape[0] > max_inputs:
        raise RequestError(413, f"{field}: {array.shape[0]} inputs exceed the limit of {max_inputs} per request")
    if array.dtype.kind in "iu":  # torch reads few unsigned types; float64 holds every value exactly enough
        array = array.astype(np.float64)
    try:  # checked before float32 conversion, so that 1e300 is out of bounds, not infinite
        x = validate_inputs(torch.from_numpy(np.ascontiguousarray(array)), tuple(input_shape), bounds, name=field)
    except InputError as exc:
        raise _unprocessable(str(exc)) from None
    x = x.to(torch.float32).contiguous()
    if array.dtype.itemsize > 4 and not torch.isfinite(x).all():
        raise _unprocessable(f"{field}: values beyond the float32 range (about 3.4e38)")
    return x


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )
