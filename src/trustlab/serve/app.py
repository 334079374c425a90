"""The HTTP alarm service: ``create_app(config)`` returns a FastAPI app serving one guard.

Endpoints (JSON unless said otherwise):

``POST /v1/predict``
    Inputs as ``{"inputs": [...]}`` (``application/json``; a batch ``(N, *input_shape)`` or one
    input), or one uploaded file: a PNG image or an ``.npy`` array, sent as the raw body (any
    content type, e.g. ``image/png``, ``application/x-npy``) or as the field ``file`` of a
    ``multipart/form-data`` form. Answer: the request id, and per input the label, its class
    name, the class probabilities, the OOD score, the conformal p-value and the alarm flag.
    413: body or batch too large; 415: neither JSON, PNG nor NPY; 422: the message names the
    field and the problem (shape, dtype, NaN, bounds); 503 with Retry-After: the queue is full,
    the request timed out, the model is not ready yet or the alarm record is unavailable.
``GET /v1/model``
    The model card, the detector, alpha, the threshold, the calibration size, the limits.
``GET /v1/drift``
    The drift test over the rolling window (:mod:`trustlab.serve.drift`).
``GET /healthz`` / ``GET /readyz``
    The process is up / the model is loaded and warmed (503 until then and while stopping).
    These two are open; every other path needs an API key when keys are configured.
``GET /metrics``
    Prometheus text format (:mod:`trustlab.serve.metrics`).

The model is loaded (unless given) and warmed in the background after start-up, so the probes
answer at once; requests go through the micro-batcher (:mod:`trustlab.serve.batcher`), whose
threads run the model and commit the alarm record (:mod:`trustlab.serve.record`) before any
answer is sent. Shutdown refuses new requests and drains the queue.
"""

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from trustlab.core.exceptions import InputError, TrustlabError
from trustlab.serve.batcher import CommitFailed, Job, MicroBatcher, QueueFull
from trustlab.serve.config import ServeConfig, redact_url
from trustlab.serve.drift import DriftMonitor
from trustlab.serve.inputs import (
    NPY_MAGIC,
    PNG_MAGIC,
    RequestError,
    inputs_from_json,
    inputs_from_upload,
)
from trustlab.serve.metrics import ServiceMetrics, score_buckets
from trustlab.serve.middleware import FrontDoor
from trustlab.serve.record import AlarmRecord, alarm_rows

log = logging.getLogger("trustlab.serve")
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


class AlarmService:
    """The live parts of one app: guard, batcher, alarm record, drift monitor, metrics."""

    def __init__(self, config: ServeConfig, guard: Any = None) -> None:
        self.config = config
        self.guard = guard
        self.metrics = ServiceMetrics()
        self.batcher: MicroBatcher | None = None
        self.record: AlarmRecord | None = None
        self.drift: DriftMonitor | None = None
        self.card: dict[str, Any] = {}
        self.state = "starting"  # starting -> ready | failed -> stopping
        self._loading: asyncio.Task | None = None

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    # ------------------------------------------------------------------ lifecycle -------------
    async def start(self) -> None:
        self.batcher = MicroBatcher(
            self._predict,
            max_batch=self.config.max_batch,
            max_wait_s=self.config.max_wait_ms / 1000.0,
            queue_size=self.config.queue_size,
            commit=self._commit,
            needs_commit=lambda predictions: any(bool(p.alarms.any()) for p in predictions),
            observe=self._observe,
        )
        self.batcher.start()
        self._loading = asyncio.get_running_loop().create_task(self._load_and_warm())

    async def _load_and_warm(self) -> None:
        assert self.batcher is not None
        try:
            if self.guard is None:
                from trustlab.ood.guard import GuardedClassifier

                self.guard = await self.batcher.run_in_model_thread(GuardedClassifier.load, self.config.guard)
            guard = self.guard
            self.metrics.add_score_histogram(score_buckets(guard.threshold.scores, guard.threshold.threshold))
            self.drift = DriftMonitor(window=self.config.drift_window, alpha=guard.alpha, level=self.config.drift_level)
            self.card = await self.batcher.run_in_model_thread(self._describe)
            self.record = AlarmRecord(self.config.db)
            await asyncio.to_thread(self.record.create)
            await self.batcher.run_in_model_thread(self._warm)
        except Exception as exc:
            self.state = "failed"
            reason = str(exc).splitlines()[0] if isinstance(exc, TrustlabError) else type(exc).__name__
            log.error("the alarm service could not start: %s", reason)
            return
        self.state = "ready"
        self.metrics.ready.set(1)
        log.info(
            "ready: %s guard, alpha %g, threshold %.6g, %d calibration scores; alarms to %s",
            self.card["detector"]["name"], guard.alpha, guard.threshold.threshold, guard.threshold.n,
            redact_url(self.config.db),
        )  # fmt: skip

    async def stop(self) -> None:
        self.state = "stopping"
        self.metrics.ready.set(0)
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        if self.batcher is not None:
            await self.batcher.close(timeout=self.config.timeout_s)
        if self.record is not None:
            self.record.close()

    # ------------------------------------------------------------------ model side ------------
    def _predict(self, x: Any) -> Any:
        return self.guard.predict(x)

    def _warm(self) -> None:
        """One call at batch size 1 and one at ``max_batch``: first calls are slow (allocations)."""
        import torch

        classifier = self.guard.classifier
        low = classifier.bounds[0] if classifier.bounds is not None else 0.0
        for n in (1, self.config.max_batch):
            self.guard.predict(torch.full((n, *classifier.input_shape), float(low)))

    def _describe(self) -> dict[str, Any]:
        from trustlab.models.evaluation import model_card

        guard, config = self.guard, self.config
        card = model_card(guard.classifier, name=Path(config.guard).stem).to_dict()
        card.pop("kind", None)
        detector = guard.detector
        return {
            "guard": str(config.guard),
            "model": card,
            "detector": {"name": detector.name, "score": detector.score_label, "config": _jsonable(detector.config())},
            "alpha": guard.alpha,
            "threshold": guard.threshold.threshold,
            "calibration_size": guard.threshold.n,
            "limits": {
                "max_inputs_per_request": config.max_inputs,
                "max_body_bytes": config.max_body_bytes,
                "max_batch": config.max_batch,
                "max_wait_ms": config.max_wait_ms,
                "timeout_s": config.timeout_s,
            },
        }

    def _commit(self, jobs: list[Job], predictions: list[Any]) -> None:
        """Commit thread: the batch's alarms, durably, before any of its answers is sent."""
        assert self.record is not None
        rows = []
        for job, prediction in zip(jobs, predictions):
            rows += alarm_rows(job.request_id, job.x.numpy(), prediction)
        self.record.append(rows)

    def _observe(self, jobs: list[Job], predictions: list[Any]) -> None:
        """Event loop, after the commit: metrics and the drift test."""
        flags: list[bool] = []
        scores: list[float] = []
        for prediction in predictions:
            flags += prediction.alarms.tolist()
            scores += prediction.scores.tolist()
        self.metrics.observe_batch(sum(len(j) for j in jobs), scores, sum(flags))
        if self.drift is None:
            return
        status, changed = self.drift.update(flags)
        self.metrics.observe_drift(status)
        if changed and status.drifting:
            log.warning(
                "drift: %d alarms in the last %d inputs (rate %.4f, alpha %g): binomial p = %.3g <= %g",
                status.alarms, status.n, status.rate, status.alpha, status.p_value, status.level,
            )  # fmt: skip
        elif changed:
            log.info(
                "drift cleared: %d alarms in the last %d inputs (p = %.3g)", status.alarms, status.n, status.p_value
            )

    # ------------------------------------------------------------------ requests --------------
    def read_inputs(self, body: bytes, content_type: str) -> Any:
        classifier = self.guard.classifier
        shape, bounds, limit = tuple(classifier.input_shape), classifier.bounds, self.config.max_inputs
        magic = body.startswith(PNG_MAGIC) or body.startswith(NPY_MAGIC)
        if content_type in ("application/json", "") and not magic or content_type.endswith("+json"):
            return inputs_from_json(body, shape, bounds, limit)
        return inputs_from_upload(body, content_type, shape, bounds, limit)

    def answer(self, request_id: str, prediction: Any) -> dict[str, Any]:
        names = self.guard.classifier.class_names
        labels = prediction.labels.tolist()
        probabilities = prediction.probabilities.tolist()
        scores, p_values, alarms = prediction.scores.tolist(), prediction.p_values.tolist(), prediction.alarms.tolist()
        return {
            "request_id": request_id,
            "alarms": int(sum(alarms)),
            "predictions": [
                {
                    "label": labels[i],
                    "class": names[labels[i]],
                    "probabilities": probabilities[i],
                    "score": scores[i],
                    "p_value": p_values[i],
                    "alarm": alarms[i],
                }
                for i in range(len(labels))
            ],
        }


def create_app(config: ServeConfig, *, guard: Any = None):
    """The FastAPI app serving ``guard`` (loaded from ``config.guard`` when not given)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    service = AlarmService(config, guard)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="trustlab alarm service",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = service

    def refuse(request: Request, status: int, detail: str, *, retry: bool = False) -> JSONResponse:
        headers = {"Retry-After": str(config.retry_after_s)} if retry else None
        return JSONResponse({"detail": detail, "request_id": request.state.request_id}, status, headers=headers)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        return JSONResponse({"status": service.state}, 200 if service.ready else 503)

    @app.get("/v1/model")
    async def model(request: Request) -> JSONResponse:
        if not service.card:
            return refuse(request, 503, f"the model is not ready ({service.state})", retry=True)
        return JSONResponse(service.card)

    @app.get("/v1/drift")
    async def drift(request: Request) -> JSONResponse:
        if service.drift is None:
            return refuse(request, 503, f"the model is not ready ({service.state})", retry=True)
        return JSONResponse(service.drift.status.to_dict())

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        service.metrics.queue_depth.set(service.batcher.depth if service.batcher else 0)
        body, content_type = service.metrics.exposition(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    @app.post("/v1/predict")
    async def predict(request: Request) -> JSONResponse:
        request_id = request.state.request_id
        if not service.ready:
            return refuse(request, 503, f"the model is not ready ({service.state})", retry=True)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if content_type == "multipart/form-data":
                body, content_type = await _uploaded_file(request, config.max_body_bytes)
            else:
                body = await request.body()
            x = service.read_inputs(body, content_type)
            future = service.batcher.submit(x, request_id)
        except RequestError as exc:
            return refuse(request, exc.status, exc.message)
        except QueueFull as exc:
            service.metrics.rejected.labels("queue_full").inc()
            return refuse(request, 503, f"{exc}; retry later", retry=True)
        try:
            prediction = await asyncio.wait_for(future, config.timeout_s)
        except TimeoutError:
            service.metrics.rejected.labels("timeout").inc()
            return refuse(request, 503, f"no answer within {config.timeout_s:g} s; retry later", retry=True)
        except QueueFull as exc:
            return refuse(request, 503, f"{exc}; retry later", retry=True)
        except CommitFailed:
            return refuse(request, 503, "the alarm record is unavailable; retry later", retry=True)
        except InputError as exc:
            return refuse(request, 422, f"inputs: {str(exc).splitlines()[0]}")
        return JSONResponse(service.answer(request_id, prediction))

    app.add_middleware(
        FrontDoor,
        key_digests=config.api_key_digests,
        max_body_bytes=config.max_body_bytes,
        body_timeout_s=config.timeout_s,
        open_paths=OPEN_PATHS,
        observe=service.metrics.observe_request,
    )
    return app


async def _uploaded_file(request: Any, max_bytes: int) -> tuple[bytes, str]:
    """The one file of a multipart form (field ``file``) and its declared content type."""
    try:
        async with request.form(max_files=1, max_fields=1, max_part_size=max_bytes) as form:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise RequestError(422, "file: field required (a multipart form with one file named 'file')")
            data = await upload.read()
            return data, (upload.content_type or "").lower()
    except RequestError:
        raise
    except Exception:  # malformed multipart bodies: the parser's own errors vary by version
        raise RequestError(422, "file: malformed multipart/form-data body") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
