"""Resumable batch loops: a long check saves each completed batch and skips it on resume.

Each batch's outputs are written atomically as one safetensors file. A ``meta.json``
fingerprint (model digest, data digest, batch size, ...) guards against resuming with other
inputs, which would silently mix results.

The executor seam: :func:`run_batches` hands the batches still to compute (*shards*: index,
start, stop) to an :class:`Executor`, which calls ``fn(start, stop)`` for each and yields
``(index, outputs)`` as each completes, in any order. The driver (here) saves each one as it
arrives and concatenates in index order, so the result does not depend on the executor. The
default :class:`LocalExecutor` runs them in order, in process; ``trustlab.distributed`` has a
Ray one. A check never names its executor: the command sets the *current* one for everything it
runs with :func:`use_executor`, and every ``run_batches`` call inside picks it up.

Contract for shard functions (what lets an executor run them elsewhere): ``fn(start, stop)``
depends only on its arguments and what it closes over (no state carried from one shard to
the next; randomness seeded per shard), returns a dict of tensors whose first dimension is
``stop - start``, and its only side effect is counting work in counters it closes over
(dataclass instances whose fields are all ints, like the attacks' ``Counter``); see
:func:`closure_counters`.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import load_file, save

from trustlab.core.exceptions import RunDirectoryError
from trustlab.core.files import atomic_write_bytes, atomic_write_json
from trustlab.core.progress import progress
from trustlab.core.validate import positive_int


class BatchCheckpoint:
    """Folder of per-batch outputs for one check; see module docstring."""

    def __init__(self, folder: str | Path, *, fingerprint: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.fingerprint = json.loads(json.dumps(fingerprint))  # normalise tuples to lists
        meta = self.folder / "meta.json"
        if meta.is_file():
            stored = json.loads(meta.read_text())
            if stored != self.fingerprint:
                changed = sorted(
                    k for k in set(stored) | set(self.fingerprint) if stored.get(k) != self.fingerprint.get(k)
                )
                raise RunDirectoryError(
                    f"checkpoint {self.folder} was made with different {', '.join(changed)}; "
                    "use a new run directory or delete the checkpoint"
                )
        else:
            atomic_write_json(meta, self.fingerprint)

    def _path(self, index: int) -> Path:
        return self.folder / f"batch-{index:06d}.safetensors"

    def has(self, index: int) -> bool:
        return self._path(index).is_file()

    def load(self, index: int) -> dict[str, torch.Tensor]:
        return load_file(self._path(index))

    def save(self, index: int, outputs: dict[str, torch.Tensor]) -> None:
        tensors = {k: v.detach().cpu().contiguous() for k, v in outputs.items()}
        atomic_write_bytes(self._path(index), save(tensors))

    def completed(self) -> int:
        return len(list(self.folder.glob("batch-*.safetensors")))

    def clear(self) -> None:
        """Delete the saved batches (once the check's result is stored), and the parent if empty."""
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.folder.parent.rmdir()
        except OSError:
            pass


ShardFn = Callable[[int, int], dict[str, torch.Tensor]]


class Shard(NamedTuple):
    """One batch of a :func:`run_batches` call: its position and its example range ``[start, stop)``."""

    index: int
    start: int
    stop: int


class Executor(abc.ABC):
    """Runs the shards of one :func:`run_batches` call (see the module docstring for the contract)."""

    @abc.abstractmethod
    def map(self, fn: ShardFn, shards: Sequence[Shard]) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """Call ``fn(shard.start, shard.stop)`` for every shard and yield ``(shard.index, outputs)``
        once for each, as each completes, in any order. Closing the iterator early (an error or an
        interrupt in the driver) must stop the work still pending."""


class LocalExecutor(Executor):
    """Today's loop: every shard in order, in this process, one at a time."""

    def map(self, fn: ShardFn, shards: Sequence[Shard]) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        for shard in shards:
            yield shard.index, fn(shard.start, shard.stop)

    def __repr__(self) -> str:
        return "LocalExecutor()"


# A context variable rather than a parameter threaded through every check: every run_batches call
# a command makes (accuracy, minimal-eps search, and any later check) runs on the executor the
# command chose without a single check's signature changing; the variable is per thread and
# per asyncio task, so a server running checks concurrently keeps them apart.
_CURRENT: ContextVar[Executor | None] = ContextVar("trustlab_executor", default=None)


def current_executor() -> Executor:
    """The executor :func:`run_batches` uses when none is passed (a :class:`LocalExecutor` by default)."""
    executor = _CURRENT.get()
    return LocalExecutor() if executor is None else executor


@contextlib.contextmanager
def use_executor(executor: Executor) -> Iterator[Executor]:
    """Make ``executor`` the current one inside the ``with`` block (restored afterwards)."""
    if not isinstance(executor, Executor):
        raise TypeError(f"expected an Executor, got {type(executor).__name__}")
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)


def closure_counters(fn: Callable[..., Any]) -> list[Any]:
    """The work counters ``fn`` closes over, in closure order: dataclass instances whose fields are
    all ints. An executor that runs ``fn`` in another process sends back how much each grew during
    a shard (:func:`counter_values`) and adds it to the driver's (:func:`add_counts`), so counts
    such as the minimal-eps search's forward and gradient calls match a local run."""
    found = []
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = dataclasses.fields(value)
            if fields and all(type(getattr(value, f.name)) is int for f in fields):
                found.append(value)
    return found


def counter_values(counters: Sequence[Any]) -> list[list[int]]:
    """The current values of ``counters`` (see :func:`closure_counters`)."""
    return [[getattr(c, f.name) for f in dataclasses.fields(c)] for c in counters]


def add_counts(counters: Sequence[Any], increments: Sequence[Sequence[int]]) -> None:
    """Add ``increments`` (one list per counter, as :func:`counter_values` gives) to ``counters``."""
    for counter, values in zip(counters, increments, strict=True):
        for field, value in zip(dataclasses.fields(counter), values, strict=True):
            setattr(counter, field.name, getattr(counter, field.name) + int(value))


def run_batches(
    fn: ShardFn,
    n: int,
    batch_size: int,
    *,
    checkpoint: BatchCheckpoint | None = None,
    desc: str = "batches",
    show_progress: bool = True,
    executor: Executor | None = None,
) -> dict[str, torch.Tensor]:
    """Call ``fn(start, stop)`` for each batch of ``range(n)`` and concatenate its outputs.

    With a checkpoint, batches already saved are loaded instead of recomputed and each new
    batch is saved as soon as it completes (in whatever order the executor finishes them).
    The batches run on ``executor``, by default the current one (see :func:`use_executor`);
    the result is concatenated in batch order whichever executor ran them.
    """
    batch_size = positive_int(batch_size, "batch_size")
    executor = current_executor() if executor is None else executor
    chunks: dict[int, dict[str, torch.Tensor]] = {}
    pending: list[Shard] = []
    for index, start in enumerate(range(0, n, batch_size)):
        if checkpoint is not None and checkpoint.has(index):
            chunks[index] = checkpoint.load(index)
        else:
            pending.append(Shard(index, start, min(start + batch_size, n)))
    expected = {shard.index for shard in pending}
    results = executor.map(fn, pending)
    done = progress(results, desc=desc, total=len(pending), unit="batch", enabled=show_progress and bool(pending))
    try:
        for index, outputs in done:
            if index not in expected or index in chunks:
                raise RuntimeError(f"{executor!r} returned batch {index}, which was not pending or came twice")
            if checkpoint is not None:
                checkpoint.save(index, outputs)
            chunks[index] = outputs
    finally:  # an error or Ctrl-C here stops the executor's pending work; what was saved stays
        done.close()
        close = getattr(results, "close", None)
        if close is not None:
            close()
    missing = expected - set(chunks)
    if missing:
        raise RuntimeError(f"{executor!r} never returned batches {sorted(missing)[:10]}")
    if not chunks:
        return {}
    ordered = [chunks[index] for index in sorted(chunks)]
    return {key: torch.cat([c[key] for c in ordered]) for key in ordered[0]}
