"""Neural Cleanse (Wang et al., IEEE S&P 2019), batched over every candidate label.

For each label ``k`` a mask ``m_k`` (H x W, through ``tanh(.)/2 + 1/2``) and a pattern ``p_k``
(C x H x W, through the same squashing into the input bounds) are optimised so that clean inputs
stamped as ``(1 - m_k) x + m_k p_k`` are classified as ``k`` while the mask's L1 norm stays small:
``CE(f(stamped), k) + cost_k * |m_k|_1``. The paper's schedule runs per label, epoch by epoch:
the cost starts at ``init_cost``; after ``patience`` epochs with the attack success at or above
``success_threshold`` it is multiplied by ``cost_multiplier``, after ``patience`` epochs below
it divided by ``cost_multiplier ** 1.5``; the smallest mask reaching the threshold is kept; a
label stops early once its cost has moved both ways and its best norm has not improved for
``early_stop_patience`` epochs.

Every label's mask and pattern live in one K x ... tensor and are optimised together: one
forward pass covers all still-running labels (chunked to the classifier's ``batch_size``), Adam
being element-wise makes this the same optimisation as K separate ones. Gradients are taken with
respect to the masks and patterns only; the model's weights and gradients are never touched.

A label whose minimal trigger is abnormally small is the backdoor's target: the anomaly index
is ``|norm - median| / (1.4826 * MAD)`` and a label is flagged when it exceeds 2 with a norm
below the median.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from trustlab.backdoor.triggers import Trigger
from trustlab.core.exceptions import InputError
from trustlab.core.progress import progress
from trustlab.core.results import Record, Result
from trustlab.core.validate import positive_int
from trustlab.models.classifier import Classifier

MAD_CONSISTENCY = 1.4826  # makes the median absolute deviation estimate a normal's std
ANOMALY_THRESHOLD = 2.0
_TANH_LIMIT = 1 - 1e-6


@dataclass(frozen=True)
class CleanseSettings(Record):
    """The optimisation's settings (the paper's defaults where it has one)."""

    kind = "backdoor.cleanse_settings"
    epochs: int = 30  # the paper allows 1,000; 30 keeps a 10-label MNIST scan under a minute on 2 cores
    batch_size: int = 32  # clean inputs per label per step
    learning_rate: float = 0.1
    betas: tuple[float, float] = (0.5, 0.9)
    init_cost: float = 1e-3
    patience: int = 5
    cost_multiplier: float = 1.5
    success_threshold: float = 0.99
    early_stop_patience: int = 25  # 5 x patience, as in the paper


@dataclass
class ReversedTriggers:
    """One seed's outcome: per label the smallest mask that reached the success threshold
    (``reached`` False: none did, the last one is kept), its pattern, norm and success rate."""

    masks: torch.Tensor  # K x H x W
    patterns: torch.Tensor  # K x C x H x W
    norms: torch.Tensor  # K
    success: torch.Tensor  # K, attack success of the kept mask (epoch mean)
    reached: torch.Tensor  # K, bool
    epochs: torch.Tensor  # K, epochs run before stopping
    steps: int = 0  # optimisation steps taken (each over every running label)
    seconds: float = 0.0
    history: dict[str, list[list[float]]] = field(default_factory=dict)


def _squash(theta: torch.Tensor) -> torch.Tensor:
    return torch.tanh(theta) / 2 + 0.5


def _unsquash(value: torch.Tensor) -> torch.Tensor:
    return torch.atanh(((value - 0.5) * 2).clamp(-_TANH_LIMIT, _TANH_LIMIT))


def _initial(seed: int, label: int, *, input_shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """A label's random initial mask (1 x H x W) and pattern (C x H x W, as a share of the input
    range), drawn from its own generator: the same whichever other labels run beside it."""
    generator = torch.Generator().manual_seed(1_000_003 * seed + label)
    channels, height, width = input_shape
    return torch.rand((1, height, width), generator=generator), torch.rand(input_shape, generator=generator)


def check_scannable(classifier: Classifier) -> None:
    """A one-line error unless Neural Cleanse can scan ``classifier``: gradients, bounded image
    inputs (C x H x W) and at least two classes. Cheap: commands call it before any work."""
    classifier.require_gradients("Neural Cleanse")
    if len(classifier.input_shape) != 3 or classifier.bounds is None:
        raise InputError(
            f"Neural Cleanse stamps triggers on bounded images (C x H x W); this model takes inputs of shape "
            f"{classifier.input_shape} with bounds {classifier.bounds}"
        )
    if classifier.num_classes < 2:
        raise InputError("Neural Cleanse needs a model with at least two classes")


def _check_inputs(classifier: Classifier, x: Any, settings: CleanseSettings) -> torch.Tensor:
    check_scannable(classifier)
    x = classifier.validate(x, name="clean inputs")
    if x.shape[0] < settings.batch_size:
        raise InputError(
            f"Neural Cleanse needs at least {settings.batch_size} clean inputs (one batch), got {x.shape[0]}"
        )
    for name in ("epochs", "batch_size", "patience", "early_stop_patience"):
        positive_int(getattr(settings, name), name)
    if not 0 < settings.success_threshold <= 1:
        raise InputError(f"success_threshold must be in (0, 1], got {settings.success_threshold}")
    return x


def reverse_triggers(
    classifier: Classifier,
    x: Any,
    *,
    labels: Any = None,
    settings: CleanseSettings | None = None,
    seed: int = 0,
    show_progress: bool = True,
) -> ReversedTriggers:
    """The minimal trigger of every label in ``labels`` (default: all), found on clean inputs
    ``x`` (pixel space) by one batched optimisation (see the module doc). Deterministic given
    ``seed``, which draws the order of the mini-batches and, with each label, its initial mask
    and pattern: a label's optimisation is the same whichever labels run beside it."""
    settings = settings or CleanseSettings()
    x = _check_inputs(classifier, x, settings)
    labels = torch.arange(classifier.num_classes) if labels is None else torch.as_tensor(labels).flatten()
    k = len(labels)
    channels, height, width = classifier.input_shape
    low, high = classifier.bounds
    device = classifier.device
    generator = torch.Generator().manual_seed(seed)  # the order of the mini-batches
    masks, patterns = zip(*(_initial(seed, int(label), input_shape=(channels, height, width)) for label in labels))
    theta_mask = _unsquash(torch.stack(masks)).to(device).requires_grad_()
    theta_pattern = _unsquash(torch.stack(patterns)).to(device).requires_grad_()
    optimiser = torch.optim.Adam([theta_mask, theta_pattern], lr=settings.learning_rate, betas=settings.betas)

    cost = torch.full((k,), settings.init_cost, dtype=torch.float64)
    best_norm = torch.full((k,), math.inf, dtype=torch.float64)
    best_success = torch.zeros(k, dtype=torch.float64)
    best_mask = torch.zeros((k, height, width))
    best_pattern = torch.zeros((k, channels, height, width))
    up = torch.zeros(k, dtype=torch.long)
    down = torch.zeros(k, dtype=torch.long)
    zero_cost_epochs = torch.zeros(k, dtype=torch.long)
    moved_up = torch.zeros(k, dtype=torch.bool)
    moved_down = torch.zeros(k, dtype=torch.bool)
    stale = torch.zeros(k, dtype=torch.long)
    early_best = torch.full((k,), math.inf, dtype=torch.float64)
    running = torch.ones(k, dtype=torch.bool)
    epochs_run = torch.zeros(k, dtype=torch.long)
    history: dict[str, list[list[float]]] = {"norm": [], "success": [], "cost": []}

    n, b = x.shape[0], settings.batch_size
    steps_per_epoch = n // b
    per_pass = max(1, classifier.batch_size // b)  # labels per forward pass, bounding memory
    targets_all = labels.to(device)
    steps = 0
    start = time.perf_counter()
    bar = progress(range(settings.epochs), desc="Neural Cleanse", unit="epoch", enabled=show_progress)
    for _epoch in bar:
        active = torch.nonzero(running).flatten()
        if len(active) == 0:
            break
        order = torch.randperm(n, generator=generator)
        ce_sum = torch.zeros(k, dtype=torch.float64)
        hit_sum = torch.zeros(k, dtype=torch.float64)
        norm_sum = torch.zeros(k, dtype=torch.float64)
        for step in range(steps_per_epoch):
            xb = x[order[step * b : (step + 1) * b]].to(device)
            optimiser.zero_grad(set_to_none=True)
            grads = [torch.zeros_like(theta_mask), torch.zeros_like(theta_pattern)]
            for chunk in active.split(per_pass):
                mask = _squash(theta_mask[chunk])  # c x 1 x H x W
                pattern = low + (high - low) * _squash(theta_pattern[chunk])
                stamped = (1 - mask.unsqueeze(1)) * xb.unsqueeze(0) + (mask * pattern).unsqueeze(1)
                logits = classifier.forward(stamped.reshape(-1, channels, height, width))
                target = targets_all[chunk].repeat_interleave(b)
                ce = F.cross_entropy(logits, target, reduction="none").view(len(chunk), b).mean(1)
                norm = mask.abs().sum((1, 2, 3))
                loss = (ce + cost[chunk].to(device, ce.dtype) * norm).sum()
                g_mask, g_pattern = torch.autograd.grad(loss, [theta_mask, theta_pattern])
                grads[0] += g_mask
                grads[1] += g_pattern
                with torch.no_grad():
                    hits = (logits.argmax(1) == target).view(len(chunk), b).float().mean(1)
                ce_sum[chunk] += ce.detach().double().cpu()
                hit_sum[chunk] += hits.double().cpu()
                norm_sum[chunk] += norm.detach().double().cpu()
            theta_mask.grad, theta_pattern.grad = grads
            optimiser.step()
            steps += 1
        success = hit_sum / steps_per_epoch
        norm = norm_sum / steps_per_epoch
        _schedule(
            settings, active, success, norm, theta_mask, theta_pattern, low, high,
            cost, best_norm, best_success, best_mask, best_pattern, up, down, zero_cost_epochs,
            moved_up, moved_down, stale, early_best, running,
        )  # fmt: skip
        epochs_run[active] += 1
        history["norm"].append(norm.tolist())
        history["success"].append(success.tolist())
        history["cost"].append(cost.tolist())
        bar.set_postfix(running=int(running.sum()))
    reached = torch.isfinite(best_norm)
    with torch.no_grad():  # a label that never reached the threshold keeps its last mask
        last_mask = _squash(theta_mask).squeeze(1).cpu()
        last_pattern = (low + (high - low) * _squash(theta_pattern)).cpu()
    best_mask[~reached] = last_mask[~reached]
    best_pattern[~reached] = last_pattern[~reached]
    norms = torch.where(reached, best_norm, best_mask.abs().sum((1, 2)).double())
    return ReversedTriggers(
        masks=best_mask,
        patterns=best_pattern,
        norms=norms,
        success=best_success,
        reached=reached,
        epochs=epochs_run,
        steps=steps,
        seconds=time.perf_counter() - start,
        history=history,
    )


def _schedule(
    s, active, success, norm, theta_mask, theta_pattern, low, high,
    cost, best_norm, best_success, best_mask, best_pattern, up, down, zero_cost_epochs,
    moved_up, moved_down, stale, early_best, running,
) -> None:  # fmt: skip
    """The paper's per-label bookkeeping after one epoch, vectorised over the running labels
    (every tensor is updated in place at ``active``)."""
    a = active
    ok = success[a] >= s.success_threshold
    better = ok & (norm[a] < best_norm[a])
    if bool(better.any()):
        improved = a[better]
        with torch.no_grad():
            best_mask[improved] = _squash(theta_mask[improved]).squeeze(1).cpu()
            best_pattern[improved] = (low + (high - low) * _squash(theta_pattern[improved])).cpu()
        best_norm[improved] = norm[improved]
        best_success[improved] = success[improved]
    # early stop: the best norm has stopped improving and the cost has moved both ways
    have_best = torch.isfinite(best_norm[a])
    stalled = have_best & (best_norm[a] >= early_best[a])
    stale[a] = torch.where(stalled, stale[a] + 1, torch.zeros_like(stale[a]))
    early_best[a] = torch.minimum(early_best[a], best_norm[a])
    running[a] = ~(moved_up[a] & moved_down[a] & (stale[a] >= s.early_stop_patience))
    # a cost of zero is raised to init_cost after `patience` successful epochs
    zero = (cost[a] == 0) & ok
    zero_cost_epochs[a] = torch.where(zero, zero_cost_epochs[a] + 1, torch.zeros_like(zero_cost_epochs[a]))
    reset = a[zero_cost_epochs[a] >= s.patience]
    cost[reset] = s.init_cost
    for counters in (up, down, zero_cost_epochs):
        counters[reset] = 0
    moved_up[reset] = False
    moved_down[reset] = False
    up[a] = torch.where(ok, up[a] + 1, torch.zeros_like(up[a]))
    down[a] = torch.where(ok, torch.zeros_like(down[a]), down[a] + 1)
    raise_ = a[up[a] >= s.patience]
    lower = a[(up[a] < s.patience) & (down[a] >= s.patience)]
    cost[raise_] *= s.cost_multiplier
    up[raise_] = 0
    moved_up[raise_] = True
    cost[lower] /= s.cost_multiplier**1.5
    down[lower] = 0
    moved_down[lower] = True


def median(values: Any) -> float:
    """The median as statisticians (and numpy) define it: the mean of the two middle values of an
    even count (``torch.median`` returns the lower one)."""
    return float(torch.quantile(torch.as_tensor(values, dtype=torch.float64), 0.5))


def anomaly_index(norms: Any) -> torch.Tensor:
    """``|norm - median| / (1.4826 * median(|norm - median|))`` per label; zero spread gives 0
    for labels at the median and infinity for the others."""
    norms = torch.as_tensor(norms, dtype=torch.float64)
    deviation = (norms - median(norms)).abs()
    mad = MAD_CONSISTENCY * median(deviation)
    if mad == 0:
        return torch.where(deviation == 0, torch.zeros_like(norms), torch.full_like(norms, math.inf))
    return deviation / mad


def flagged_labels(norms: Any, *, threshold: float = ANOMALY_THRESHOLD) -> list[int]:
    """Labels whose anomaly index exceeds ``threshold`` with a norm below the median."""
    norms = torch.as_tensor(norms, dtype=torch.float64)
    index = anomaly_index(norms)
    return [int(i) for i in torch.nonzero((index > threshold) & (norms < median(norms))).flatten()]


@dataclass(frozen=True)
class BackdoorScanResult(Result):
    """A Neural Cleanse scan: each label's minimal trigger norm per seed, the anomaly index of the
    mean norm, the flagged labels, and the reversed masks and patterns of the first seed."""

    kind = "backdoor.scan"
    dataset: str
    examples: int  # clean inputs the triggers were optimised on
    class_names: tuple[str, ...]
    seeds: tuple[int, ...]
    settings: CleanseSettings
    norms: tuple[tuple[float, ...], ...]  # seed x label
    reached: tuple[tuple[bool, ...], ...]  # seed x label: the success threshold was reached
    success: tuple[tuple[float, ...], ...]  # seed x label
    epochs: tuple[tuple[int, ...], ...]  # seed x label
    mean_norms: tuple[float, ...]
    anomaly_index: tuple[float, ...]  # of the mean norms
    flagged: tuple[int, ...]
    flagged_per_seed: tuple[tuple[int, ...], ...]
    median_norm: float
    masks: tuple[Any, ...]  # label x H x W (first seed)
    patterns: tuple[Any, ...]  # label x C x H x W (first seed)
    pixels: int  # H x W, the largest possible mask norm
    seconds: float
    steps: int  # optimisation steps over all labels (all seeds)
    threshold: float = ANOMALY_THRESHOLD

    @property
    def backdoored(self) -> bool:
        return bool(self.flagged)

    @property
    def max_anomaly(self) -> float:
        """The largest anomaly index among labels below the median (0 when none is)."""
        below = [a for a, n in zip(self.anomaly_index, self.mean_norms) if n < self.median_norm]
        return max(below, default=0.0)

    @property
    def flag_norm(self) -> float:
        """The mean norm below which a label is flagged: median - threshold x 1.4826 x MAD."""
        deviation = [abs(n - self.median_norm) for n in self.mean_norms]
        mad = MAD_CONSISTENCY * median(deviation)
        return self.median_norm - self.threshold * mad

    @property
    def norm_spread(self) -> tuple[tuple[float, float], ...]:
        """Per label, the smallest and largest norm over the seeds."""
        return tuple((min(col), max(col)) for col in zip(*self.norms))

    def trigger(self, label: int) -> Trigger:
        """The reversed trigger of ``label`` (first seed), to stamp inputs with."""
        return Trigger(
            torch.tensor(self.masks[label], dtype=torch.float32),
            torch.tensor(self.patterns[label], dtype=torch.float32),
            f"trigger reversed for class {self.class_names[label]} (mask L1 {self.norms[0][label]:.1f})",
        )


def _nested(values: Any) -> Any:
    """Nested lists as nested tuples (what a result holds and reads back from JSON)."""
    return tuple(_nested(v) for v in values) if isinstance(values, list) else values


def neural_cleanse(
    classifier: Classifier,
    x: Any,
    *,
    seeds: Any = (0,),
    settings: CleanseSettings | None = None,
    dataset: str = "",
    show_progress: bool = True,
) -> BackdoorScanResult:
    """Scan ``classifier`` for a backdoor on clean inputs ``x``: reverse every label's minimal
    trigger once per seed (each a batched optimisation) and judge the mean norms by their
    anomaly index. Neither the model nor ``x`` is modified."""
    settings = settings or CleanseSettings()
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise InputError("give at least one seed")
    runs = [reverse_triggers(classifier, x, settings=settings, seed=s, show_progress=show_progress) for s in seeds]
    norms = torch.stack([r.norms for r in runs])
    mean = norms.mean(0)
    first = runs[0]
    return BackdoorScanResult(
        dataset=dataset,
        examples=int(x.shape[0]),
        class_names=tuple(classifier.class_names),
        seeds=seeds,
        settings=settings,
        norms=tuple(tuple(r.norms.tolist()) for r in runs),
        reached=tuple(tuple(r.reached.tolist()) for r in runs),
        success=tuple(tuple(r.success.tolist()) for r in runs),
        epochs=tuple(tuple(r.epochs.tolist()) for r in runs),
        mean_norms=tuple(mean.tolist()),
        anomaly_index=tuple(anomaly_index(mean).tolist()),
        flagged=tuple(flagged_labels(mean)),
        flagged_per_seed=tuple(tuple(flagged_labels(r.norms)) for r in runs),
        median_norm=median(mean),
        masks=_nested(first.masks.round(decimals=4).tolist()),
        patterns=_nested(first.patterns.round(decimals=4).tolist()),
        pixels=int(first.masks.shape[1] * first.masks.shape[2]),
        seconds=sum(r.seconds for r in runs),
        steps=sum(r.steps for r in runs),
    )
