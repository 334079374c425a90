"""The HTTP alarm service (the ``serve`` extra): a guard written by ``trustlab alarm fit``
behind FastAPI and uvicorn, with micro-batching, API keys, a durable alarm record, drift
detection and Prometheus metrics. See :mod:`trustlab.serve.app` for the endpoints.

Importing this package loads no web framework; ``create_app`` and ``run_server`` do.
"""

from __future__ import annotations

from trustlab.core.lazy import lazy_exports
from trustlab.serve.config import ServeConfig

_EXPORTS = {
    "create_app": "trustlab.serve.app",
    "run_server": "trustlab.serve.server",
    "load_api_keys": "trustlab.serve.auth",
}

__all__ = ["ServeConfig", *_EXPORTS]
__getattr__, _ = lazy_exports(__name__, _EXPORTS)
