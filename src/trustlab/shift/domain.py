"""A second digit domain: an MNIST model on scikit-learn's 8 x 8 digits (UCI optical digits), zero-shot
and after fine-tuning on a few labelled examples per class.

The ``digits`` data set stores 8 x 8 images in [0, 1] (the UCI pixel counts 0..16 divided by 16), ink
high: white digits on black, as MNIST. :func:`upsample_digits` maps them to MNIST's convention:
1 x 28 x 28 in [0, 1], the digit's frame resized to 20 x 20 and placed in the middle with a 4-pixel
black border (MNIST fits each digit's bounding box in 20 x 20 in the middle of 28 x 28).

:func:`domain_transfer` measures a classifier on the upsampled test split as it is (zero-shot), then
for each number of labelled examples per class (``None``: the whole training split) and each mode
fine-tunes a copy of it (never the user's classifier) with the project's training loop
(:func:`trustlab.models.training.train`):

* ``last_layer``: only the last ``nn.Linear`` of the module learns, everything before it is frozen;
* ``full``: every weight learns.

Each (shots, mode) is repeated over ``seeds``: the seed draws the examples per class and orders the
training batches. Interval: a percentile bootstrap over seeds x test examples (each resample draws
seeds and test digits with replacement and takes the mean accuracy over the drawn cells), so it
covers both the run-to-run variation (which examples, which batch order) and the finite test set.
The zero-shot accuracy, a single proportion, gets its 95% Wilson interval.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.core.progress import progress
from trustlab.core.results import Record, Result
from trustlab.core.stats import percentile_interval, seeds_by_examples_draws, wilson_interval
from trustlab.models.classifier import Classifier
from trustlab.models.training import train

MNIST_SIZE, MNIST_BOX = 28, 20  # MNIST digits sit in a 20 x 20 box inside 28 x 28 (a 4-pixel border)
MODES = ("last_layer", "full")
ZERO_SHOT = "zero-shot"
DEFAULT_RESAMPLES = 1000
ERR_MODE = "modes must be among {known}, got {got!r}"
ERR_SHOTS = "shots must be positive integers or None (all examples), got {got!r}"
ERR_SHAPE = "upsample_digits expects 8 x 8 greyscale digits (N x 1 x 8 x 8 or N x 8 x 8) in [0, 1], got {got}"


# ------------------------------------------------------------------------ the domain -------------
def upsample_digits(data: Any) -> Any:
    """The ``digits`` images (a Dataset, or a tensor N x 1 x 8 x 8 / N x 8 x 8 in [0, 1]) in MNIST's
    convention: N x 1 x 28 x 28 float32 in [0, 1], white digit on black, the 8 x 8 frame resized
    bilinearly (antialiased, ``torch.nn.functional.interpolate``) to 20 x 20 and padded with a 4-pixel
    black border. The 8 x 8 digits already fill their frame, so the frame stands for MNIST's bounding
    box; MNIST's further shift by the centre of mass is not applied. A Dataset comes back as a Dataset
    (same labels and split, bounds (0, 1)); a tensor as a tensor."""
    x = data.x if hasattr(data, "x") else data
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 8, 8):
        raise InputError(ERR_SHAPE.format(got=f"shape {tuple(x.shape)}"))
    x = x.float()
    if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
        raise InputError(ERR_SHAPE.format(got=f"values in [{float(x.min()):g}, {float(x.max()):g}]"))
    box = F.interpolate(x, size=(MNIST_BOX, MNIST_BOX), mode="bilinear", align_corners=False, antialias=True)
    border = (MNIST_SIZE - MNIST_BOX) // 2
    out = F.pad(box.clamp(0.0, 1.0), (border,) * 4, value=0.0).contiguous()
    if not hasattr(data, "x"):
        return out
    from dataclasses import replace

    return replace(data, name=f"{data.name} (28x28)", x=out, bounds=(0.0, 1.0))


def last_linear(module: nn.Module) -> nn.Linear:
    """The module's last ``nn.Linear`` in registration order (its output layer in every architecture
    trustlab builds); an InputError when it has none."""
    found = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not found:
        raise InputError("last-layer fine-tuning needs a module with an nn.Linear output layer; this one has none")
    return found[-1]


def few_shot_indices(labels: torch.Tensor, shots: int | None, seed: int, num_classes: int) -> torch.Tensor:
    """``shots`` indices per class drawn without replacement with ``seed`` (all of a class that has
    fewer; every index for ``None``), sorted."""
    if shots is None:
        return torch.arange(labels.shape[0])
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in range(num_classes):  # ten classes, not a per-example loop
        members = torch.nonzero(labels == label).flatten()
        chosen.append(members[torch.randperm(members.numel(), generator=generator)[:shots]])
    return torch.cat(chosen).sort().values


def fine_tune_copy(
    classifier: Classifier,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    mode: str,
    seed: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
) -> Classifier:
    """A fine-tuned copy of ``classifier`` (its module deep-copied; the original is never touched)."""
    tuned = classifier.copy()
    if mode == "last_layer":
        head = last_linear(tuned.module)
        for parameter in tuned.module.parameters():
            parameter.requires_grad_(False)
        for parameter in head.parameters():
            parameter.requires_grad_(True)
    train(
        tuned, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
        show_progress=False,
    )  # fmt: skip
    for parameter in tuned.module.parameters():
        parameter.requires_grad_(True)
    return tuned


# ------------------------------------------------------------------------ the result -------------
@dataclass(frozen=True)
class TransferRow(Record):
    """One setting of the transfer study: zero-shot (``shots`` 0, ``mode`` "zero-shot"), or fine-tuned
    on ``shots`` examples per class (None: the whole training split) in ``mode``, once per seed.
    ``correct``: test digits classified correctly, one count per seed (one count for zero-shot).
    ``accuracy_low``/``accuracy_high``: 95% interval of the mean accuracy (bootstrap over seeds x test
    digits; Wilson for zero-shot)."""

    kind = "shift.transfer.row"
    shots: int | None
    mode: str
    seeds: tuple[int, ...]
    train_examples: int  # labelled examples fine-tuned on (per seed; 0 for zero-shot)
    examples: int  # test digits
    correct: tuple[int, ...]
    accuracy_low: float
    accuracy_high: float
    seconds: float

    @property
    def accuracy(self) -> float:
        """Mean test accuracy over the seeds."""
        return sum(self.correct) / (len(self.correct) * self.examples) if self.examples and self.correct else math.nan

    @property
    def seed_accuracies(self) -> tuple[float, ...]:
        return tuple(c / self.examples for c in self.correct) if self.examples else ()

    @property
    def interval(self) -> tuple[float, float]:
        return (self.accuracy_low, self.accuracy_high)

    @property
    def per_class(self) -> float:
        """Labelled examples per class fine-tuned on (the mean over classes for ``shots`` None)."""
        return self.train_examples / 10 if self.shots is None else float(self.shots)


@dataclass(frozen=True)
class TransferResult(Result):
    """A classifier trained on MNIST, measured on the upsampled 8 x 8 digits zero-shot and after
    fine-tuning a copy of it. ``rows[0]`` is zero-shot; the rest follow ``shots`` x ``modes``."""

    kind = "shift.transfer"
    model: str  # what the source model is, e.g. "reference model mnist_cnn"
    source: str  # the domain it was trained on
    target: str  # the domain it is moved to
    rows: tuple[TransferRow, ...]
    epochs: int
    batch_size: int
    learning_rate: float
    resamples: int
    seconds: float
    notes: tuple[str, ...] = ()

    @property
    def zero_shot(self) -> TransferRow:
        return self.rows[0]

    @property
    def fine_tuned(self) -> tuple[TransferRow, ...]:
        return self.rows[1:]

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.mode for r in self.fine_tuned))

    @property
    def test_examples(self) -> int:
        return self.zero_shot.examples

    def row(self, shots: int | None, mode: str) -> TransferRow:
        for row in self.fine_tuned:
            if row.shots == shots and row.mode == mode:
                return row
        raise KeyError((shots, mode))

    @property
    def best(self) -> TransferRow | None:
        """The fine-tuned setting with the highest mean accuracy (first of ties)."""
        return max(self.fine_tuned, key=lambda r: r.accuracy) if self.fine_tuned else None

    @property
    def gain(self) -> float | None:
        """Best fine-tuned accuracy minus zero-shot accuracy, in percentage points."""
        best = self.best
        return None if best is None else 100.0 * (best.accuracy - self.zero_shot.accuracy)


# ------------------------------------------------------------------------ the study --------------
def seeds_by_examples_interval(
    correct: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of a (seeds, examples) 0/1 matrix, drawing seeds and
    examples with replacement (:func:`~trustlab.core.stats.seeds_by_examples_draws`, as the recipe study does)."""
    matrix = np.asarray(correct, dtype=float)[:, None, :]
    (draws,) = seeds_by_examples_draws([matrix], resamples=resamples, seed=seed)
    low, high = percentile_interval(draws[:, 0], level)
    return (float(low), float(high))


def _check_options(shots: Sequence[int | None], modes: Sequence[str], seeds: Sequence[int]) -> None:
    for s in shots:
        if s is not None and (isinstance(s, bool) or not isinstance(s, int) or s < 1):
            raise InputError(ERR_SHOTS.format(got=s))
    for m in modes:
        if m not in MODES:
            raise InputError(ERR_MODE.format(known=", ".join(MODES), got=m))
    if not seeds:
        raise InputError("seeds must hold at least one seed")


def domain_transfer(
    classifier: Classifier,
    source_name: str,
    train_data: Any,
    test_data: Any,
    *,
    shots: Sequence[int | None] = (10, 50, None),
    modes: Sequence[str] = MODES,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 10,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    resamples: int = DEFAULT_RESAMPLES,
    show_progress: bool = True,
) -> TransferResult:
    """Zero-shot accuracy of ``classifier`` (trained on ``source_name``, e.g. MNIST) on the upsampled
    ``digits`` test split, then fine-tuned copies' accuracy for each of ``shots`` x ``modes`` over
    ``seeds`` (see the module's docstring). ``train_data``/``test_data``: ``digits`` Datasets, 8 x 8 (they
    are upsampled here) or already upsampled. Fine-tuning: Adam, cosine-decayed ``learning_rate``,
    ``epochs`` passes over the chosen examples in batches of ``batch_size``."""
    start = time.perf_counter()
    _check_options(shots, modes, seeds)
    train_data, test_data = (
        d if tuple(d.x.shape[-2:]) == (MNIST_SIZE, MNIST_SIZE) else upsample_digits(d) for d in (train_data, test_data)
    )
    x_test, y_test = test_data.x, test_data.y
    n = int(x_test.shape[0])

    zero_correct = (classifier.predict(x_test).cpu() == y_test).numpy()
    low, high = wilson_interval(int(zero_correct.sum()), n)
    rows = [TransferRow(0, ZERO_SHOT, (), 0, n, (int(zero_correct.sum()),), low, high, time.perf_counter() - start)]

    settings = [(s, m) for s in shots for m in modes]
    bar = progress(settings, desc="fine-tuning", unit="setting", enabled=show_progress)
    for shot, mode in bar:
        began = time.perf_counter()
        hits, used = [], 0
        for seed in seeds:
            index = few_shot_indices(train_data.y, shot, seed, classifier.num_classes)
            used = int(index.numel())
            tuned = fine_tune_copy(
                classifier, train_data.x[index], train_data.y[index], mode=mode, seed=seed, epochs=epochs,
                batch_size=batch_size, learning_rate=learning_rate,
            )  # fmt: skip
            hits.append((tuned.predict(x_test).cpu() == y_test).numpy())
        matrix = np.stack(hits)
        low, high = seeds_by_examples_interval(matrix, resamples=resamples)
        rows.append(
            TransferRow(
                shot, mode, tuple(int(s) for s in seeds), used, n, tuple(int(h.sum()) for h in hits), low, high,
                time.perf_counter() - began,
            )
        )  # fmt: skip
    return TransferResult(
        model=source_name,
        source="MNIST",
        target=f"{test_data.name} {test_data.split} split, 8x8 upsampled to 28x28",
        rows=tuple(rows),
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        resamples=resamples,
        seconds=time.perf_counter() - start,
    )
