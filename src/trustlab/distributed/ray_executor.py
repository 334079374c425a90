"""The Ray executor: the shards of every ``run_batches`` call run as Ray tasks on a cluster.

How a run moves (see ``trustlab.core.batching`` for the seam):

* **the shard function, once per worker**: the driver serialises the batch function (the model
  and the data it closes over) *once* per ``run_batches`` call with ``ray.put``; each task gets
  a reference to it, and a worker process deserialises it on its first shard and keeps it for
  the next ones (the cache holds one function: the call in progress);
* **shards as tasks**: each task is one batch, ``fn(start, stop)`` over exactly the example
  range the local loop gives it, so its outputs are the local ones, whichever worker runs it
  (per-shard randomness is seeded inside the shard; workers use ``threads_per_worker`` torch
  threads). At most ``2 x workers`` tasks are in flight, so memory stays bounded however many
  shards there are;
* **results and checkpoints**: tasks are collected as they complete (``ray.wait``) and handed
  to the driver, which saves each to the run directory's checkpoint at once; a killed run
  therefore resumes from every completed shard, in any order;
* **lost workers**: a task whose worker process or node dies is re-run by Ray (``max_retries``);
  an exception raised by the shard itself is not retried (it would fail again) and reaches
  the caller as the original exception;
* **counters**: work counters the shard function closes over (forward and gradient calls of the
  search) are sent back as increments and added to the driver's, so they match a local run.

Ray is imported lazily: without it, making a ``RayExecutor`` is a one-line :class:`InputError`.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from trustlab.core.batching import (
    Executor,
    Shard,
    ShardFn,
    add_counts,
    closure_counters,
    counter_values,
)
from trustlab.core.exceptions import InputError, TrustlabError

RAY_MISSING = "the Ray backend needs Ray, which is not installed: pip install 'trustlab[ray]'"


class WorkerLostError(TrustlabError):
    """A shard's worker died more often than ``max_retries`` allows (the cluster, not the inputs)."""


@dataclass(frozen=True)
class ShardRecord:
    """Where and how long one shard ran (the executor keeps one per shard of its last ``map``)."""

    index: int
    start: int
    stop: int
    seconds: float  # time inside the shard function on the worker
    pid: int
    node: str


def import_ray() -> Any:
    """The ``ray`` module, or a one-line InputError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(RAY_MISSING) from None
    return ray


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse a HOST:PORT that does not accept connections (``ray.init`` would retry for minutes)."""
    if address == "auto":
        return  # Ray finds the local cluster's address itself, or says at once that there is none
    where = address.split("://", 1)[-1]
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--address must be 'auto' or HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InputError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


# ------------------------------------------------------------------ worker side ----------------
_CACHE: dict[str, ShardFn] = {}


def _run_shard(
    holder: list[Any], key: str, threads: int, start: int, stop: int
) -> tuple[dict[str, torch.Tensor], list[list[int]], float, int, str]:
    """One shard on a worker: the cached function (fetched on this worker's first shard of the
    call), its outputs, the increments of its counters, and where and how long it ran."""
    import ray

    fn = _CACHE.get(key)
    if fn is None:
        _CACHE.clear()  # the previous call's model and data
        fn = ray.get(holder[0])
        _CACHE[key] = fn
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    counters = closure_counters(fn)
    before = counter_values(counters)
    began = time.perf_counter()
    outputs = fn(start, stop)
    seconds = time.perf_counter() - began
    increments = [[a - b for a, b in zip(after, old)] for after, old in zip(counter_values(counters), before)]
    node = ray.get_runtime_context().get_node_id()
    return outputs, increments, seconds, os.getpid(), node


@functools.cache
def _remote(ray: Any) -> Any:
    return ray.remote(_run_shard)


# ------------------------------------------------------------------ driver side ----------------
class RayExecutor(Executor):
    """Run the shards of ``run_batches`` as Ray tasks (see the module docstring).

    ``address``: None starts a local Ray instance with ``num_workers`` workers (default: one per
    CPU) unless this process is already connected to one, which is then used; ``"auto"`` or
    ``"HOST:PORT"`` connects to a running cluster (every node needs the same trustlab and torch).
    ``num_workers`` also caps the shards running at once on a cluster. ``max_retries``: how often
    a shard whose worker died is re-run. Use as a context manager (``close`` shuts down a Ray
    instance this executor started, nothing else).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_workers: int | None = None,
        threads_per_worker: int = 1,
        max_retries: int = 3,
        object_store_memory: int | None = None,
    ) -> None:
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise InputError(f"--address must be 'auto' or HOST:PORT, got {address!r}")
        for name, value, least in (
            ("num_workers", num_workers, 1),
            ("threads_per_worker", threads_per_worker, 1),
            ("max_retries", max_retries, 0),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise InputError(f"{name} must be an integer >= {least}, got {value!r}")
        self.address = None if address is None else address.strip()
        self.num_workers = num_workers
        self.threads_per_worker = threads_per_worker
        self.max_retries = max_retries
        self.object_store_memory = object_store_memory
        self.shards: list[ShardRecord] = []  # of the last map() call
        self._ray = import_ray()
        if self.address is not None and not self._ray.is_initialized():
            _reachable(self.address)  # before the command does any work
        self._started = False
        self._slots: int | None = None

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r}, num_workers={self.num_workers})"

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---------------------------------------------------------------- connection ---------------
    def connect(self) -> RayExecutor:
        """Start or join Ray (done by the first ``map``; a command with no batches never starts it)."""
        ray = self._ray
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports from our runs
            options: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.ERROR,
                "log_to_driver": False,
            }
            if self.address is None:  # "local": a new instance even where RAY_ADDRESS names a cluster
                workers = self.num_workers or max(1, (os.cpu_count() or 1) // self.threads_per_worker)
                options["address"] = "local"
                options["num_cpus"] = workers * self.threads_per_worker
                if self.object_store_memory is not None:
                    options["object_store_memory"] = self.object_store_memory
            else:
                options["address"] = self.address
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = "a local Ray instance" if self.address is None else f"the Ray cluster at {self.address}"
                raise InputError(f"cannot start or reach {where}: {str(exc).splitlines()[0]}") from None
            self._started = True
        if self._slots is None:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            slots = max(1, cpus // self.threads_per_worker)
            self._slots = slots if self.num_workers is None else min(slots, self.num_workers)
        return self

    @property
    def workers(self) -> int:
        """Shards that run at once (after :meth:`connect`)."""
        return self.connect()._slots or 1

    def close(self) -> None:
        """Shut down the Ray instance this executor started (a joined one is left running)."""
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False
        self._slots = None

    # ---------------------------------------------------------------- the seam -----------------
    def map(self, fn: ShardFn, shards: Sequence[Shard]) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        self.shards = []
        if not shards:
            return
        ray = self._ray
        window = 2 * self.workers  # one shard running and one queued per worker
        try:
            fn_ref = ray.put(fn)
        except Exception as exc:  # pickling errors come as several types
            name = getattr(fn, "__qualname__", repr(fn))
            raise RuntimeError(f"the batch function {name} cannot be sent to Ray workers: {exc}") from exc
        counters = closure_counters(fn)
        key = uuid.uuid4().hex
        task = _remote(ray).options(num_cpus=self.threads_per_worker, max_retries=self.max_retries)
        queue = deque(shards)
        running: dict[Any, Shard] = {}
        try:
            while queue or running:
                while queue and len(running) < window:
                    shard = queue.popleft()
                    running[task.remote([fn_ref], key, self.threads_per_worker, shard.start, shard.stop)] = shard
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    shard = running.pop(ref)
                    outputs, increments, seconds, pid, node = self._get(ref, shard)
                    add_counts(counters, increments)
                    self.shards.append(ShardRecord(shard.index, shard.start, shard.stop, seconds, pid, node))
                    yield shard.index, outputs
        finally:  # an error or an interrupt in the driver: stop what is still pending
            for ref in running:
                try:
                    ray.cancel(ref)
                except Exception:  # already finished or gone
                    pass

    def _get(self, ref: Any, shard: Shard) -> Any:
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the shard function raised: the original exception
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from exc
            raise
        except ray.exceptions.RayError as exc:  # worker or node lost more often than max_retries
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WorkerLostError(
                f"batch {shard.index} (examples {shard.start}-{shard.stop}) failed {self.max_retries + 1} times on "
                f"Ray workers ({type(exc).__name__}: {first}); completed batches are kept, re-run to resume"
            ) from None
