"""Micro-batching: many small requests, few model calls, and an event loop that never runs the model.

Requests put a job (their validated inputs and a future) on a bounded queue and await the
future. One worker task takes the oldest job and keeps adding queued jobs until the batch holds
``max_batch`` inputs or ``max_wait`` has passed since the oldest job was queued (under load the
queue already holds the jobs that arrived while the previous batch ran, and nothing waits;
``max_wait = 0`` is pure continuous batching); a job that would overflow the batch starts the
next one. The batch runs in a single model thread (``run_in_executor``): torch releases the GIL,
so the loop keeps accepting and parsing requests meanwhile.

Each batch's results then go through ``commit`` in a second single thread (the durable alarm
record) *before* any of the batch's futures is resolved, so no answer leaves the service before
its alarms are stored; the next batch is already running on the model thread while the previous
one commits (at most ``MAX_COMMITTING`` batches wait for their commit). ``observe`` (metrics,
drift) runs on the loop once a batch is committed.

A full queue is refused at once (:class:`QueueFull`: the app answers 503 with Retry-After).
A job whose request gave up (timeout, client gone) is skipped, not scored. If a batch fails,
its jobs are retried one by one so that one bad request cannot fail its neighbours. ``close``
refuses new jobs and drains those queued: graceful shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

log = logging.getLogger("trustlab.serve")
MAX_COMMITTING = 2


class QueueFull(Exception):
    """The queue of waiting requests is full (or the service is shutting down)."""


class CommitFailed(Exception):
    """The batch's alarms could not be stored; its answers must not be given."""


@dataclass(eq=False)
class Job:
    """One request's inputs waiting in the queue, and the future its answer is delivered on."""

    x: torch.Tensor
    request_id: str
    future: asyncio.Future
    queued_at: float = field(default_factory=time.monotonic)

    def __len__(self) -> int:
        return int(self.x.shape[0])


def slice_prediction(prediction: Any, start: int, stop: int) -> Any:
    """The answers for inputs ``start:stop`` of a batched prediction (a GuardedPrediction)."""
    fields = ("labels", "probabilities", "scores", "p_values", "alarms")
    return type(prediction)(**{name: getattr(prediction, name)[start:stop] for name in fields})


class MicroBatcher:
    """Collects jobs into batches for ``predict`` (see the module doc).

    ``predict(x) -> prediction`` runs on the model thread; ``commit(jobs, predictions)`` on the
    commit thread and must return only once the batch's record is durable (skipped, with its
    thread hop, when ``needs_commit(predictions)`` says there is nothing to store); ``observe(jobs,
    predictions)`` on the event loop afterwards.
    """

    def __init__(
        self,
        predict: Callable[[torch.Tensor], Any],
        *,
        max_batch: int,
        max_wait_s: float,
        queue_size: int,
        commit: Callable[[list[Job], list[Any]], None] | None = None,
        needs_commit: Callable[[list[Any]], bool] | None = None,
        observe: Callable[[list[Job], list[Any]], None] | None = None,
    ) -> None:
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue_size = queue_size
        self.commit = commit
        self.needs_commit = needs_commit
        self.observe = observe
        self.model_calls = 0
        self._queue: asyncio.Queue[Job | None] | None = None
        self._worker: asyncio.Task | None = None
        self._finishing: set[asyncio.Task] = set()
        self._committing: asyncio.Semaphore | None = None
        self._closing = False
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trustlab-model")
        self._commit_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trustlab-record")

    # ------------------------------------------------------------------ lifecycle -------------
    def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._committing = asyncio.Semaphore(MAX_COMMITTING)
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="trustlab-batcher")

    async def close(self, *, timeout: float | None = None) -> None:
        """Refuse new jobs, finish the queued ones (within ``timeout`` seconds), stop the threads."""
        self._closing = True
        if self._worker is not None and self._queue is not None:
            await self._queue.put(None)  # after every queued job
            try:
                await asyncio.wait_for(asyncio.shield(self._worker), timeout)
            except TimeoutError:
                self._worker.cancel()
            if self._finishing:
                await asyncio.wait(set(self._finishing), timeout=timeout)
        self._model_thread.shutdown(wait=True, cancel_futures=True)
        self._commit_thread.shutdown(wait=True, cancel_futures=True)

    @property
    def depth(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    async def run_in_model_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` where the model runs (loading and warming it, for instance)."""
        return await asyncio.get_running_loop().run_in_executor(self._model_thread, fn, *args)

    # ------------------------------------------------------------------ requests --------------
    def submit(self, x: torch.Tensor, request_id: str) -> asyncio.Future:
        """Queue ``x`` (validated inputs); the future resolves to its prediction. QueueFull at once
        when the queue is full or the service is closing."""
        if self._closing or self._queue is None:
            raise QueueFull("the service is shutting down")
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(Job(x, request_id, future))
        except asyncio.QueueFull:
            raise QueueFull("the queue of waiting requests is full") from None
        return future

    # ------------------------------------------------------------------ worker ----------------
    async def _run(self) -> None:
        assert self._queue is not None and self._committing is not None
        loop = asyncio.get_running_loop()
        carry: Job | None = None
        stopping = False
        while not (stopping and carry is None):
            first = carry if carry is not None else await self._queue.get()
            carry = None
            if first is None:
                break
            if first.future.done():  # its request gave up while queued
                continue
            jobs, total = [first], len(first)
            deadline = first.queued_at + self.max_wait_s
            while total < self.max_batch and not stopping:
                job = await self._next_job(deadline)
                if job is _EMPTY:
                    break
                if job is None:
                    stopping = True
                    break
                if job.future.done():
                    continue
                if total + len(job) > self.max_batch:
                    carry = job
                    break
                jobs.append(job)
                total += len(job)
            try:
                results = await loop.run_in_executor(self._model_thread, self._predict_jobs, jobs)
            except RuntimeError:  # the model thread was shut down (close timed out)
                for job in jobs:
                    _fail(job, QueueFull("the service is shutting down"))
                break
            await self._committing.acquire()
            task = loop.create_task(self._finish(jobs, results))
            self._finishing.add(task)
            task.add_done_callback(self._finished)

    async def _next_job(self, deadline: float) -> Job | None | object:
        assert self._queue is not None
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            pass
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _EMPTY
        try:
            return await asyncio.wait_for(self._queue.get(), remaining)
        except TimeoutError:
            return _EMPTY

    def _finished(self, task: asyncio.Task) -> None:
        self._finishing.discard(task)
        assert self._committing is not None
        self._committing.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("batch finishing failed: %s", type(task.exception()).__name__)

    def _predict_jobs(self, jobs: list[Job]) -> list[Any]:
        """Model thread: one call for the batch; if it fails, one call per job (the failing job
        gets its exception, the others their answers)."""
        self.model_calls += 1
        try:
            x = jobs[0].x if len(jobs) == 1 else torch.cat([job.x for job in jobs])
            prediction = self.predict(x)
        except Exception as exc:
            if len(jobs) == 1:
                return [exc]
            return [self._predict_one(job) for job in jobs]
        results, start = [], 0
        for job in jobs:
            results.append(slice_prediction(prediction, start, start + len(job)))
            start += len(job)
        return results

    def _predict_one(self, job: Job) -> Any:
        self.model_calls += 1
        try:
            return self.predict(job.x)
        except Exception as exc:
            return exc

    async def _finish(self, jobs: list[Job], results: list[Any]) -> None:
        scored = [(job, r) for job, r in zip(jobs, results) if not isinstance(r, BaseException)]
        needed = self.needs_commit is None or self.needs_commit([r for _, r in scored])
        if self.commit is not None and scored and needed:
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._commit_thread, self.commit, [j for j, _ in scored], [r for _, r in scored]
                )
            except Exception as exc:
                log.error("alarm record unavailable (%s): %d request(s) answered 503", type(exc).__name__, len(scored))
                results = [CommitFailed(type(exc).__name__) if not isinstance(r, BaseException) else r for r in results]
                scored = []
        if self.observe is not None and scored:
            try:
                self.observe([j for j, _ in scored], [r for _, r in scored])
            except Exception as exc:  # metrics must never cost an answer
                log.error("observing a batch failed: %s", type(exc).__name__)
        for job, result in zip(jobs, results):
            if isinstance(result, BaseException):
                _fail(job, result)
            elif not job.future.done():
                job.future.set_result(result)


_EMPTY = object()


def _fail(job: Job, exc: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(exc)
