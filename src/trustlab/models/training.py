"""A small, deterministic training loop: same seed, same weights on CPU.

Trains through ``Classifier.forward`` so the normalisation the classifier owns is the one used
in training. Optimiser: Adam (or SGD with momentum 0.9, gentler for fine-tuning a trained model
on a few examples) with a cosine-decayed (or constant) learning rate; optional random translations
(vectorised, no per-example loop) as augmentation for images.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from trustlab.core.exceptions import InputError
from trustlab.core.progress import progress
from trustlab.core.results import Result
from trustlab.models.classifier import Classifier


@dataclass(frozen=True)
class TrainingResult(Result):
    """What a training run did: settings, per-epoch loss and training accuracy, wall time."""

    kind = "training"
    architecture: str | None
    dataset: str
    examples: int
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    seed: int
    augment_shift: int
    loss: tuple[float, ...]
    accuracy: tuple[float, ...]  # on the (adversarial, when training adversarially) training batches
    seconds: float
    adversary: str | None = None
    adversary_eps: float = 0.0


OPTIMISERS = {
    "adam": torch.optim.Adam,
    "sgd": lambda params, **kw: torch.optim.SGD(params, momentum=0.9, **kw),
}


def random_translate(x: torch.Tensor, max_shift: int, generator: torch.Generator, fill: float = 0.0) -> torch.Tensor:
    """Shift each image by its own random offset in [-max_shift, max_shift] pixels, filling with ``fill``."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=fill)
    dy = torch.randint(0, 2 * max_shift + 1, (n, 1, 1), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n, 1, 1), generator=generator)
    rows = torch.arange(h).view(1, h, 1) + dy
    cols = torch.arange(w).view(1, 1, w) + dx
    batch = torch.arange(n).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def classifier_for(data: Any, *, arch: str | None = None, seed: int = 0) -> Classifier:
    """A new, untrained classifier fitted to ``data``'s shape, classes, bounds and feature
    statistics (normalisation inside): ``arch`` from the registry, by default ``mnist_cnn`` for
    images and ``mlp`` for tabular data."""
    from trustlab.models.architectures import build_architecture

    image = data.kind == "image"
    arch = arch or ("mnist_cnn" if image else "mlp")
    if image:
        config = {
            "in_channels": data.input_shape[0],
            "image_size": data.input_shape[1],
            "num_classes": data.num_classes,
        }
    else:
        config = {"in_features": data.input_shape[0], "num_classes": data.num_classes}
    mean, std = data.feature_stats()
    return Classifier(
        build_architecture(arch, seed=seed, **config),
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        bounds=data.bounds,
        mean=mean,
        std=std,
        class_names=data.class_names,
        architecture=arch,
        config=config,
    )


def train(
    classifier: Classifier,
    x: Any,
    y: Any,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    augment_shift: int = 0,
    adversary: Any = None,
    adversary_eps: float = 0.0,
    eps_warmup_epochs: int = 0,
    optimiser: str = "adam",
    cosine: bool = True,
    dataset_name: str = "",
    show_progress: bool = True,
) -> TrainingResult:
    """Train ``classifier.module`` in place on pixel-space ``x`` and labels ``y``; return what happened.

    With ``adversary`` (an attack from ``trustlab.robustness.attacks``, e.g. PGD with 7 steps for
    Madry et al.'s training or FGSM with a random start for Wong et al.'s), every batch is
    replaced by its adversarial examples at ``adversary_eps``, ramped up linearly over the first
    ``eps_warmup_epochs`` epochs.
    """
    classifier.require_gradients("training")
    if adversary is not None and not adversary_eps > 0:
        raise InputError(f"adversary_eps must be positive with an adversary, got {adversary_eps}")
    if epochs < 1 or batch_size < 1 or learning_rate <= 0:
        raise InputError(
            f"epochs, batch_size and learning_rate must be positive, got {epochs}, {batch_size}, {learning_rate}"
        )
    if optimiser not in OPTIMISERS:
        raise InputError(f"unknown optimiser {optimiser!r}; expected one of {', '.join(OPTIMISERS)}")
    if augment_shift and len(classifier.input_shape) != 3:
        raise InputError("augment_shift applies to images only (inputs of shape C x H x W)")
    x = classifier.validate(x)
    y = classifier.validate_labels(y, x.shape[0])
    module = classifier.module
    n = x.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    fill = classifier.bounds[0] if classifier.bounds else 0.0
    losses: list[float] = []
    accuracies: list[float] = []
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout and any other global-RNG use inside the module
        generator = torch.Generator().manual_seed(seed)
        step_rule = OPTIMISERS[optimiser](module.parameters(), lr=learning_rate, weight_decay=weight_decay)
        schedule = (
            torch.optim.lr_scheduler.CosineAnnealingLR(step_rule, T_max=epochs * steps_per_epoch)
            if cosine
            else torch.optim.lr_scheduler.ConstantLR(step_rule, factor=1.0)
        )
        module.train()
        try:
            bar = progress(range(epochs), desc="training", unit="epoch", enabled=show_progress)
            for epoch in bar:
                order = torch.randperm(n, generator=generator)
                total_loss, correct = 0.0, 0
                eps = (
                    adversary_eps * min(1.0, (epoch + 1) / (eps_warmup_epochs + 1))
                    if eps_warmup_epochs
                    else adversary_eps
                )
                for step in range(steps_per_epoch):
                    index = order[step * batch_size : (step + 1) * batch_size]
                    xb, yb = x[index], y[index]
                    if augment_shift:
                        xb = random_translate(xb, augment_shift, generator, fill)
                    xb, yb = xb.to(classifier.device), yb.to(classifier.device)
                    if adversary is not None:
                        xb = adversary.attack(classifier, xb, yb, eps=eps, generator=generator).adversarials
                    logits = classifier.forward(xb)
                    loss = F.cross_entropy(logits, yb)
                    step_rule.zero_grad(set_to_none=True)
                    loss.backward()
                    step_rule.step()
                    schedule.step()
                    total_loss += loss.item() * len(index)
                    correct += int((logits.argmax(1) == yb).sum())
                losses.append(total_loss / n)
                accuracies.append(correct / n)
                bar.set_postfix(loss=f"{losses[-1]:.4f}", acc=f"{accuracies[-1]:.4f}")
        finally:
            module.eval()
    return TrainingResult(
        architecture=classifier.architecture,
        dataset=dataset_name,
        examples=n,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        seed=seed,
        augment_shift=augment_shift,
        adversary=None if adversary is None else repr(adversary),
        adversary_eps=float(adversary_eps),
        loss=tuple(losses),
        accuracy=tuple(accuracies),
        seconds=time.perf_counter() - start,
    )
