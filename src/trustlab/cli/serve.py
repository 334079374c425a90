"""``trustlab serve GUARD``: the HTTP alarm service (the ``serve`` extra)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from trustlab.serve.config import ServeConfig


def _db_url(value: str) -> str:
    """A SQLAlchemy URL as given, or a file path made into a SQLite URL."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


@click.command("serve")
@click.argument("guard", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind (non-loopback needs API keys)")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--api-keys-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="file with one API key per line (also read: $TRUSTLAB_API_KEYS, comma-separated)",
)
@click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True, help="inputs per model call")
@click.option(
    "--max-wait-ms", type=click.FloatRange(min=0), default=2.0, show_default=True,
    help="longest wait for more requests before a model call",
)  # fmt: skip
@click.option(
    "--queue-size", type=click.IntRange(min=1), default=256, show_default=True,
    help="requests waiting for the model; beyond: 503 with Retry-After",
)  # fmt: skip
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=4 * 1024 * 1024, show_default=True)
@click.option("--max-inputs", type=click.IntRange(min=1), default=256, show_default=True, help="inputs per request")
@click.option(
    "--timeout-s", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
    help="longest wait of one request for its answer (then 503)",
)  # fmt: skip
@click.option(
    "--db", default="trustlab-alarms.sqlite", show_default=True,
    help="alarm record: a SQLAlchemy URL (e.g. postgresql+psycopg://user@host/db) or a SQLite file path",
)  # fmt: skip
@click.option("--drift-window", type=click.IntRange(min=1), default=1000, show_default=True, help="inputs tested")
@click.option(
    "--drift-level", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.001, show_default=True,
    help="significance of the binomial drift test",
)  # fmt: skip
@click.option(
    "--threads", type=click.IntRange(min=1), default=None,
    help="torch threads of the model (default: half the CPUs, at least 1: the event loop needs the rest)",
)  # fmt: skip
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
@click.option("--access-log", is_flag=True, help="log every request (method, path, status)")
@click.option("--check", is_flag=True, help="print the effective configuration and exit")
def serve(
    guard, host, port, api_keys_file, max_batch, max_wait_ms, queue_size, max_body_bytes, max_inputs, timeout_s,
    db, drift_window, drift_level, threads, log_level, access_log, check,
) -> None:  # fmt: skip
    """Serve GUARD (written by `trustlab alarm fit`) over HTTP: predictions with their OOD alarm.

    POST /v1/predict (JSON {"inputs": [...]}, or a PNG / .npy file), GET /v1/model, /v1/drift,
    /healthz, /readyz, /metrics. Every alarm is stored in --db before its answer is sent.
    Without API keys the service only binds a loopback address.
    """
    from trustlab.serve.auth import load_api_keys

    digests, source = load_api_keys(api_keys_file)
    config = ServeConfig(
        guard=guard, host=host, port=port, api_key_digests=digests, api_keys_source=source, max_batch=max_batch,
        max_wait_ms=max_wait_ms, queue_size=queue_size, max_body_bytes=max_body_bytes, max_inputs=max_inputs,
        timeout_s=timeout_s, db=_db_url(db), drift_window=drift_window, drift_level=drift_level, log_level=log_level,
    )  # fmt: skip
    config.check_binding()

    from trustlab.ood.guard import GuardedClassifier

    loaded = GuardedClassifier.load(guard)  # a bad file fails here, in one line, before binding
    threads = threads or max(1, (os.cpu_count() or 2) // 2)
    if check:
        described = {**config.describe(), "torch_threads": threads}
        described["guard_summary"] = {
            "detector": loaded.detector.name,
            "alpha": loaded.alpha,
            "threshold": loaded.threshold.threshold,
            "calibration_size": loaded.threshold.n,
            "input_shape": list(loaded.classifier.input_shape),
        }
        click.echo(json.dumps(described, indent=2))
        return
    try:
        import fastapi  # noqa: F401
        import sqlalchemy  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise click.ClickException(
            f"the alarm service needs the serve extra ({exc.name} is missing): pip install 'trustlab[serve]'"
        ) from None
    from trustlab.serve.record import AlarmRecord

    record = AlarmRecord(config.db)  # an unusable database fails here, in one line, before binding
    try:
        record.create()
    finally:
        record.close()
    import torch

    torch.set_num_threads(threads)
    from trustlab.serve.server import run_server

    run_server(config, loaded, access_log=access_log)


COMMANDS = (serve,)
