"""Running checks beyond one process: the Ray executor behind ``--backend ray`` (extra ``ray``).

Importing this package does not import Ray; making a :class:`RayExecutor` does, and says how to
install it when it is missing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from trustlab.core.batching import Executor, LocalExecutor, use_executor
from trustlab.core.exceptions import InputError
from trustlab.distributed.ray_executor import RAY_MISSING, RayExecutor, ShardRecord, WorkerLostError

BACKENDS = ("local", "ray")

__all__ = [
    "BACKENDS",
    "RAY_MISSING",
    "RayExecutor",
    "ShardRecord",
    "WorkerLostError",
    "backend",
    "make_executor",
]


def make_executor(name: str = "local", *, address: str | None = None, workers: int | None = None) -> Executor:
    """The executor of backend ``name`` (``local`` or ``ray``); ``address`` and ``workers`` are Ray's."""
    if name not in BACKENDS:
        raise InputError(f"--backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "local":
        if address is not None:
            raise InputError("--address is only used with --backend ray")
        if workers is not None:
            raise InputError("--workers is only used with --backend ray")
        return LocalExecutor()
    return RayExecutor(address, num_workers=workers)


@contextlib.contextmanager
def backend(name: str = "local", *, address: str | None = None, workers: int | None = None) -> Iterator[Executor]:
    """Run the ``with`` block's batch loops on backend ``name``; a Ray instance it started is shut down after."""
    executor = make_executor(name, address=address, workers=workers)
    try:
        with use_executor(executor):
            yield executor
    finally:
        if isinstance(executor, RayExecutor):
            executor.close()
