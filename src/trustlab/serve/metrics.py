"""Prometheus metrics of one service instance.

Built on ``prometheus_client`` with a registry per app (never the process-global one), so two
apps in one process (tests) never share counters. The library was preferred to a hand-written
exposition because histograms are easy to get subtly wrong (cumulative ``le`` buckets, ``+Inf``,
``_sum``/``_count``, escaping, the OpenMetrics variants a scraper may negotiate); it is small and
pure Python.

The OOD-score histogram's buckets are the guard's own calibration-score quantiles plus its
threshold: scores of different detectors live on unrelated scales (MSP in [-1, 0], energy
around -10, Mahalanobis in the thousands), and the quantiles put buckets where in-distribution
scores fall, so a shift of the score distribution shows up bucket by bucket.
"""

from __future__ import annotations

from typing import Any

import torch

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
SCORE_QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)
ENDPOINTS = ("/v1/predict", "/v1/model", "/v1/drift", "/healthz", "/readyz", "/metrics")


def score_buckets(calibration_scores: torch.Tensor, threshold: float) -> tuple[float, ...]:
    """Calibration-score quantiles and the threshold, sorted and distinct (see module doc)."""
    scores = calibration_scores.double().flatten()
    points = [float(threshold)]
    if scores.numel():
        points += torch.quantile(scores, torch.tensor(SCORE_QUANTILES, dtype=torch.float64)).tolist()
    return tuple(sorted({round(p, 12) for p in points}))


def endpoint_label(path: str) -> str:
    """A bounded label for a request path: the known endpoints, else ``other``."""
    return path if path in ENDPOINTS else "other"


class ServiceMetrics:
    """The service's series (``trustlab_*``) in their own registry."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram(
            "trustlab_request_duration_seconds", "Time from request to response, by endpoint.", ["endpoint"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.requests = Counter(
            "trustlab_requests", "HTTP requests answered, by endpoint and status code.", ["endpoint", "status"],
            registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "trustlab_request_errors", "HTTP requests answered with a 4xx or 5xx status, by endpoint and status.",
            ["endpoint", "status"], registry=r,
        )  # fmt: skip
        self.inputs = Counter("trustlab_inputs_scored", "Inputs scored by the guard.", registry=r)
        self.alarms = Counter("trustlab_alarms", "Inputs that raised the alarm.", registry=r)
        self.alarm_rate = Gauge(
            "trustlab_alarm_rate", "Alarm rate over the drift window (the last scored inputs).", registry=r
        )
        self.scores: Any = None  # created once the guard is loaded: its buckets come from the guard
        self.batch_size = Histogram(
            "trustlab_batch_inputs", "Inputs per model call (micro-batching at work).", buckets=BATCH_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge("trustlab_queue_depth", "Requests waiting for the model.", registry=r)
        self.rejected = Counter(
            "trustlab_rejected", "Requests refused because the queue was full or they timed out.", ["reason"],
            registry=r,
        )  # fmt: skip
        self.drift = Gauge("trustlab_drift", "1 while the drift test fires, else 0.", registry=r)
        self.drift_p_value = Gauge(
            "trustlab_drift_p_value", "P-value of the one-sided binomial test of the window's alarm rate.", registry=r
        )
        self.drift_p_value.set(1.0)
        self.ready = Gauge("trustlab_ready", "1 once the model is loaded and warmed, else 0.", registry=r)

    def add_score_histogram(self, buckets: tuple[float, ...]) -> None:
        from prometheus_client import Histogram

        if self.scores is None:
            self.scores = Histogram(
                "trustlab_ood_score", "OOD scores of scored inputs (buckets: calibration quantiles and threshold).",
                buckets=buckets, registry=self.registry,
            )  # fmt: skip

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        endpoint = endpoint_label(path)
        self.latency.labels(endpoint).observe(seconds)
        self.requests.labels(endpoint, str(status)).inc()
        if status >= 400:
            self.errors.labels(endpoint, str(status)).inc()

    def observe_batch(self, n_inputs: int, scores: list[float], alarms: int) -> None:
        self.batch_size.observe(n_inputs)
        self.inputs.inc(len(scores))
        self.alarms.inc(alarms)
        if self.scores is not None:
            for s in scores:
                self.scores.observe(s)

    def observe_drift(self, status: Any) -> None:
        self.alarm_rate.set(status.rate)
        self.drift.set(1.0 if status.drifting else 0.0)
        self.drift_p_value.set(status.p_value)

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The metrics text and its content type (OpenMetrics when the scraper asks for it)."""
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
