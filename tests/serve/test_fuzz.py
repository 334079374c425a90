"""Malformed requests from a property-based fuzzer never produce a 5xx: the service answers every
body it can be sent with 200 or a 4xx whose message it wrote itself."""

import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustlab.serve.inputs import NPY_MAGIC, PNG_MAGIC

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
OK = {200, 400, 401, 404, 405, 408, 413, 415, 422}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=30,
)
# near-valid batches: the right rank or nearly, odd sizes, values in and out of bounds, NaN
near_shapes = st.tuples(
    st.integers(0, 3), st.sampled_from([0, 1, 2, 3]), st.sampled_from([1, 27, 28]), st.sampled_from([1, 28, 29])
)
content_types = st.sampled_from(
    ["application/json", "image/png", "application/x-npy", "application/octet-stream", "text/plain", "",
     "multipart/form-data; boundary=xyz", "multipart/form-data", "application/json; charset=utf-8"]
)  # fmt: skip


@pytest.fixture(scope="module")
def app_client(guard, tmp_path_factory, start_service):
    with start_service(guard, tmp_path_factory.mktemp("fuzz"), max_body_bytes=200_000, max_inputs=3) as client:
        yield client


def check(response):
    assert response.status_code in OK, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text


@FUZZ
@given(value=json_values, wrap=st.booleans())
def test_json_documents(app_client, value, wrap):
    body = {"inputs": value} if wrap else value
    check(app_client.post("/v1/predict", content=json.dumps(body), headers={"content-type": "application/json"}))


@FUZZ
@given(shape=near_shapes, fill=st.sampled_from([0.5, -0.1, 1.0, 2.0, float("nan"), float("inf"), 1e300]))
def test_near_valid_batches(app_client, shape, fill):
    x = np.full(shape, 0.25)
    if x.size:
        x.flat[x.size // 2] = fill
    check(app_client.post("/v1/predict", content=json.dumps({"inputs": x.tolist()}),
                          headers={"content-type": "application/json"}))  # fmt: skip
    buffer = io.BytesIO()
    np.save(buffer, x)
    check(app_client.post("/v1/predict", content=buffer.getvalue(), headers={"content-type": "application/x-npy"}))


@FUZZ
@given(
    prefix=st.sampled_from([b"", PNG_MAGIC, NPY_MAGIC, NPY_MAGIC + b"\x01\x00", b"{", b'{"inputs": [', b"--xyz\r\n"]),
    data=st.binary(max_size=600),
    content_type=content_types,
)
def test_random_bytes(app_client, prefix, data, content_type):
    headers = {"content-type": content_type} if content_type else {}
    check(app_client.post("/v1/predict", content=prefix + data, headers=headers))


@FUZZ
@given(
    data=st.binary(max_size=400),
    flips=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
    field=st.sampled_from(["file", "x"]),
    name=st.text(max_size=12),
    as_png=st.booleans(),
)
def test_uploads_and_damaged_files(app_client, data, flips, field, name, as_png):
    buffer = io.BytesIO()
    if as_png:
        from PIL import Image

        Image.fromarray(np.zeros((4, 4), np.uint8)).save(buffer, format="PNG")
    else:
        np.save(buffer, np.zeros((1, 1, 28, 28), np.float32))
    damaged = bytearray(buffer.getvalue())
    for position, value in flips:
        damaged[position % len(damaged)] = value
    upload = bytes(damaged) + data
    check(app_client.post("/v1/predict", files={field: (name or "f", upload, "application/octet-stream")}))
    check(app_client.post("/v1/predict", content=upload, headers={"content-type": "application/octet-stream"}))


@FUZZ
@given(
    path=st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="?#%"), max_size=20),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
)
def test_other_paths_and_methods(app_client, path, method):
    check(app_client.request(method, "/" + path, content=b"{}"))
