"""Resumable batch loops: a long check saves each completed batch and skips it on resume.

Each batch's outputs are written atomically as one safetensors file. A ``meta.json``
fingerprint (model digest, data digest, batch size, ...) guards against resuming with other
inputs, which would silently mix results.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def run_batches(
    fn: Callable[[int, int], dict[str, torch.Tensor]],
    n: int,
    batch_size: int,
    *,
    checkpoint: BatchCheckpoint | None = None,
    desc: str = "batches",
    show_progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Call ``fn(start, stop)`` for each batch of ``range(n)`` and concatenate its outputs.

    With a checkpoint, batches already saved are loaded instead of recomputed and each new
    batch is saved as soon as it completes.
    """
    batch_size = positive_int(batch_size, "batch_size")
    chunks: list[dict[str, torch.Tensor]] = []
    starts = range(0, n, batch_size)
    for index, start in enumerate(progress(starts, desc=desc, total=len(starts), unit="batch", enabled=show_progress)):
        if checkpoint is not None and checkpoint.has(index):
            chunks.append(checkpoint.load(index))
            continue
        outputs = fn(start, min(start + batch_size, n))
        if checkpoint is not None:
            checkpoint.save(index, outputs)
        chunks.append(outputs)
    if not chunks:
        return {}
    return {key: torch.cat([c[key] for c in chunks]) for key in chunks[0]}
