"""The HTTP endpoints in-process: answers, formats, limits, validation, keys, metrics, errors."""

import io
import json
import logging
import re

import numpy as np
import pytest
import torch
from PIL import Image

from trustlab.serve.auth import digest


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return buffer.getvalue()


def png_bytes(image: torch.Tensor, size=(56, 56)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((image[0].numpy() * 255).round().astype(np.uint8)).resize(size).save(buffer, format="PNG")
    return buffer.getvalue()


def test_predict_json_batch_matches_the_guard(client_factory, guard, alarming, calm):
    client = client_factory()
    x = torch.cat([calm[:3], alarming[:2]])
    response = client.post("/v1/predict", json={"inputs": x.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    expected = guard.predict(x)
    assert body["alarms"] == 2
    assert [p["label"] for p in body["predictions"]] == expected.labels.tolist()
    assert [p["alarm"] for p in body["predictions"]] == [False, False, False, True, True]
    for p, score, p_value, probabilities in zip(
        body["predictions"], expected.scores.tolist(), expected.p_values.tolist(), expected.probabilities.tolist()
    ):
        assert p["score"] == pytest.approx(score, abs=1e-6) and p["p_value"] == pytest.approx(p_value)
        assert p["probabilities"] == pytest.approx(probabilities, abs=1e-6)
        assert p["class"] == str(p["label"]) and sum(p["probabilities"]) == pytest.approx(1, abs=1e-5)
    one = client.post("/v1/predict", json={"inputs": calm[0].tolist()})  # one input, without the batch axis
    assert one.status_code == 200 and len(one.json()["predictions"]) == 1


def test_predict_uploads_npy_and_png(client_factory, guard, alarming, calm):
    client = client_factory()
    raw = client.post(
        "/v1/predict", content=npy_bytes(alarming[:4].numpy()), headers={"content-type": "application/x-npy"}
    )
    assert raw.status_code == 200 and raw.json()["alarms"] == 4
    form = client.post(
        "/v1/predict", files={"file": ("digit.npy", npy_bytes(calm[0].numpy()), "application/octet-stream")}
    )
    assert form.status_code == 200 and form.json()["alarms"] == 0
    png = png_bytes(calm[0])
    expected_image = torch.from_numpy(
        np.asarray(Image.open(io.BytesIO(png)).convert("L").resize((28, 28)), dtype=np.float32) / 255.0
    )[None, None]
    for response in (
        client.post("/v1/predict", content=png, headers={"content-type": "image/png"}),
        client.post("/v1/predict", files={"file": ("digit.png", png, "image/png")}),
    ):
        assert response.status_code == 200, response.text
        (prediction,) = response.json()["predictions"]
        assert prediction["label"] == int(guard.predict(expected_image).labels[0])
        assert prediction["score"] == pytest.approx(float(guard.predict(expected_image).scores[0]), abs=1e-6)


def test_model_card_and_probes(client_factory, guard):
    client = client_factory()
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    card = client.get("/v1/model").json()
    assert card["detector"]["name"] == "msp" and card["alpha"] == pytest.approx(0.1)
    assert card["threshold"] == pytest.approx(guard.threshold.threshold)
    assert card["calibration_size"] == 200
    assert card["model"]["architecture"] == "mnist_cnn" and card["model"]["input_shape"] == [1, 28, 28]
    assert card["model"]["weights_sha256"] == guard.classifier.weights_sha256()
    assert card["limits"]["max_inputs_per_request"] == 256


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"inputs": [[1.0, 2.0]]}, "inputs: shape must be (N, 1, 28, 28) or (1, 28, 28), got (1, 2)"),
        ({"inputs": "abc"}, "inputs: expected a (nested) list of numbers, got a JSON string"),
        ({"inputs": [[[["0.5"] * 28] * 28]]}, "inputs: dtype must be numbers"),
        ({"inputs": [[[[None] * 28] * 28]]}, "inputs: dtype must be numbers"),
        ({"inputs": [[[[0.5] * 28] * 27 + [[0.5] * 3]]]}, "ragged"),
        ({"inputs": [[[[2.0] * 28] * 28]]}, "inputs must lie in the input bounds [0, 1], found values in [2, 2]"),
        ({"inputs": []}, "inputs: at least one input is required"),
        ({"pixels": []}, "body: unknown field(s) 'pixels'"),
        ({}, "inputs: field required"),
        ([1, 2], "body: expected a JSON object with the field 'inputs', got a JSON array"),
    ],
)
def test_invalid_json_inputs_are_422_naming_the_field(client_factory, payload, fragment):
    client = client_factory()
    response = client.post("/v1/predict", json=payload)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["detail"]


def test_nan_and_bad_uploads_are_422(client_factory, calm):
    client = client_factory()
    text = json.dumps({"inputs": calm[:1].tolist()}).replace("0.0", "NaN", 2)
    response = client.post("/v1/predict", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"] == "inputs contain 2 NaN or infinite values"
    bad = calm[:2].numpy().copy()
    bad[1, 0, 3, 3] = np.inf
    response = client.post("/v1/predict", content=npy_bytes(bad), headers={"content-type": "application/x-npy"})
    assert response.status_code == 422 and response.json()["detail"] == "file contain 1 NaN or infinite values"
    cases = [
        (npy_bytes(np.zeros((2, 28, 28), np.float32)), "file: shape must be (N, 1, 28, 28)"),
        (npy_bytes(np.full((1, 1, 28, 28), 255, np.uint8)), "file must lie in the input bounds [0, 1]"),
        (npy_bytes(np.zeros((1, 1, 28, 28), complex)), "file: dtype must be integers or floats, got complex128"),
        (npy_bytes(np.array(["a"] * 784).reshape(1, 1, 28, 28)), "file: dtype must be integers or floats"),
        (npy_bytes(np.zeros((1, 1, 28, 28), np.float64) + 1e300), "file must lie in the input bounds"),
        (b"\x93NUMPY\x01\x00garbage", "file: not a readable .npy array"),
        (b"\x89PNG\r\n\x1a\ngarbage", "file: not a readable PNG image"),
    ]
    for content, fragment in cases:
        response = client.post("/v1/predict", content=content, headers={"content-type": "application/octet-stream"})
        assert response.status_code == 422, (fragment, response.text)
        assert fragment in response.json()["detail"], response.json()
    object_array = io.BytesIO()
    np.save(object_array, np.array([object()], dtype=object), allow_pickle=True)
    response = client.post(
        "/v1/predict", content=object_array.getvalue(), headers={"content-type": "application/x-npy"}
    )
    assert response.status_code == 422 and "file: dtype must be integers or floats, got object" in response.text
    response = client.post("/v1/predict", content=b"GIF89a....", headers={"content-type": "image/gif"})
    assert response.status_code == 415 and "expected a PNG image or an .npy array" in response.json()["detail"]
    response = client.post("/v1/predict", files={"other": ("a.npy", b"x", "application/octet-stream")})
    assert response.status_code == 422 and "file: field required" in response.json()["detail"]


def test_oversized_bodies_and_batches_are_413(client_factory, calm):
    client = client_factory(max_body_bytes=20_000, max_inputs=4)
    small = {"inputs": np.zeros((5, 1, 28, 28), np.float32).tolist()}  # 5 inputs, ~20 kB of JSON
    declared = client.post("/v1/predict", content=b"x" * 20_001, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "exceeds the limit of 20000 bytes" in declared.json()["detail"]

    def chunks():  # no Content-Length: the limit holds on the bytes actually read
        for _ in range(30):
            yield b"[" * 1000

    streamed = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and "exceeds the limit" in streamed.json()["detail"]
    assert len(json.dumps(small)) < 20_000
    too_many = client.post("/v1/predict", json=small)
    assert too_many.status_code == 413 and "inputs: 5 inputs exceed the limit of 4 per request" in too_many.text
    fine = client.post("/v1/predict", json={"inputs": np.zeros((4, 1, 28, 28), np.float32).tolist()})
    assert fine.status_code == 200 and len(fine.json()["predictions"]) == 4
    big = png_bytes(calm[0], size=(5000, 4000))
    client = client_factory(max_body_bytes=10_000_000)
    assert client.post("/v1/predict", content=big, headers={"content-type": "image/png"}).status_code == 413


def test_api_keys_are_required_except_for_probes(client_factory, calm, api_key):
    API_KEY = api_key
    client = client_factory(api_key_digests=(digest(API_KEY),), api_keys_source="test")
    body = {"inputs": calm[:1].tolist()}
    for headers in ({}, {"x-api-key": "wrong-key-0123456789"}, {"authorization": "Bearer nope"},
                    {"x-api-key": API_KEY[:-1]}):  # fmt: skip
        for method, path in (("post", "/v1/predict"), ("get", "/v1/model"), ("get", "/metrics"), ("get", "/v1/drift")):
            response = getattr(client, method)(path, headers=headers, **({"json": body} if method == "post" else {}))
            assert response.status_code == 401, (headers, path)
            assert response.json()["detail"] == "missing or invalid API key"
            assert API_KEY not in response.text
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
    assert client.post("/v1/predict", json=body, headers={"x-api-key": API_KEY}).status_code == 200
    assert client.get("/v1/model", headers={"authorization": f"Bearer {API_KEY}"}).status_code == 200
    # a huge body without a key is refused before it is read
    assert client.post("/v1/predict", content=b"[" * 5_000_000).status_code == 401


def test_metrics_name_the_promised_series(client_factory, alarming, calm):
    client = client_factory()
    client.post("/v1/predict", json={"inputs": torch.cat([calm[:3], alarming[:1]]).tolist()})
    client.post("/v1/predict", json={"inputs": [[0]]})
    text = client.get("/metrics").text
    for series in (
        'trustlab_request_duration_seconds_bucket{endpoint="/v1/predict",le="0.005"}',
        'trustlab_requests_total{endpoint="/v1/predict",status="200"} 1.0',
        'trustlab_requests_total{endpoint="/v1/predict",status="422"} 1.0',
        'trustlab_request_errors_total{endpoint="/v1/predict",status="422"} 1.0',
        "trustlab_inputs_scored_total 4.0",
        "trustlab_alarms_total 1.0",
        "trustlab_alarm_rate 0.25",
        "trustlab_ood_score_count 4.0",
        "trustlab_batch_inputs_count 1.0",
        "trustlab_drift 0.0",
        "trustlab_drift_p_value",
        "trustlab_queue_depth 0.0",
        "trustlab_ready 1.0",
    ):
        assert series in text, series
    buckets = re.findall(r'trustlab_ood_score_bucket\{le="([^"]+)"\}', text)
    assert len(buckets) >= 5  # calibration quantiles, the threshold and +Inf


def test_unexpected_errors_are_generic_500s_without_traceback(client_factory, guard, calm, caplog):
    class Broken(type(guard)):
        armed = False

        def predict(self, x):
            if self.armed:
                raise RuntimeError("/secret/path/model.py exploded at 0xdeadbeef")
            return super().predict(x)

    broken = Broken(guard.classifier, guard.detector, guard.threshold)
    client = client_factory(guard_override=broken)
    broken.armed = True
    with caplog.at_level(logging.DEBUG):
        response = client.post("/v1/predict", json={"inputs": calm[:1].tolist()})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error", "request_id": response.headers["x-request-id"]}
    logged = caplog.text
    assert "RuntimeError" in logged and "secret" not in logged and "Traceback" not in logged


def test_request_ids_are_client_tokens_or_new(client_factory, calm):
    client = client_factory()
    mine = client.post("/v1/predict", json={"inputs": calm[:1].tolist()}, headers={"x-request-id": "order-42.a_b"})
    assert mine.json()["request_id"] == "order-42.a_b" == mine.headers["x-request-id"]
    odd = client.post("/v1/predict", json={"inputs": calm[:1].tolist()}, headers={"x-request-id": "a b;<script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", odd.json()["request_id"])


def test_drift_fires_in_metrics_log_and_endpoint(client_factory, alarming, calm, caplog):
    client = client_factory(drift_window=20, drift_level=0.01)
    assert client.get("/v1/drift").json()["n"] == 0
    client.post("/v1/predict", json={"inputs": calm[:10].tolist()})
    status = client.get("/v1/drift").json()
    assert status["n"] == 10 and not status["drifting"]
    with caplog.at_level(logging.INFO, logger="trustlab.serve"):
        client.post("/v1/predict", json={"inputs": alarming[:10].tolist()})
    status = client.get("/v1/drift").json()
    assert status["window"] == 20 and status["n"] == 20 and status["alarms"] == 10 and status["rate"] == 0.5
    assert status["alpha"] == pytest.approx(0.1) and status["level"] == 0.01
    assert status["drifting"] and status["p_value"] < 1e-4 and status["since"] is not None
    assert "trustlab_drift 1.0" in client.get("/metrics").text
    assert "drift: 10 alarms in the last 20 inputs" in caplog.text
    client.post("/v1/predict", json={"inputs": calm[:16].tolist()})
    assert not client.get("/v1/drift").json()["drifting"]
    assert "trustlab_drift 0.0" in client.get("/metrics").text
