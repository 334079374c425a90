"""Running the app under uvicorn, with logs that never carry a traceback.

Uvicorn's own loggers and ``trustlab.serve`` share one formatter that prints the message only:
no ``exc_info`` and no stack (a traceback can quote request data or file paths). The service's
code logs exception *types*, never their text, where the text could hold request content.
On SIGINT/SIGTERM uvicorn stops accepting connections, lets open requests finish (the queue
drains: the batcher keeps running until they have), then the app's shutdown closes the batcher
and the alarm record.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from trustlab.serve.config import ServeConfig

LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "trustlab.serve")


class NoTracebackFormatter(logging.Formatter):
    """``time level name: message``, dropping any exception or stack information."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None, "stack_info": None})
        text = super().format(record)
        return text.splitlines()[0] if text else text


def log_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn and the service (see the module doc)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"()": NoTracebackFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
        "loggers": {name: {"handlers": ["stderr"], "level": level.upper(), "propagate": False} for name in LOGGERS},
    }


def run_server(config: ServeConfig, guard: Any = None, *, access_log: bool = False) -> None:
    """Serve ``guard`` (or the guard file of ``config``) until interrupted. Refuses to bind a
    non-loopback address without API keys."""
    import uvicorn

    from trustlab.serve.app import create_app

    config.check_binding()
    app = create_app(config, guard=guard)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_config=log_config(config.log_level),
            log_level=config.log_level,
            access_log=access_log,
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=int(config.timeout_s) + 5,
            lifespan="on",
        )
    )
    # Everything loaded so far (torch, the model, the web stack: hundreds of thousands of objects)
    # lives as long as the process. Freezing it keeps it out of the collector's full passes, which
    # otherwise stop every request for ~0.2 s every few seconds under load.
    gc.collect()
    gc.freeze()
    server.run()
