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
from trustlab.data.augment import Augmentation, random_translate
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
    optimiser: str = "adam"
    loss_name: str = "cross_entropy"
    augmentation: str = "none"  # Augmentation.describe() of the batch augmentations beyond augment_shift
    outliers: int = 0  # inputs of the outlier-exposure pool (0: none)
    certifier: str | None = None  # repr of the bound method of certified training (None: not certified)
    certified_eps: float = 0.0
    certified_warmup_epochs: int = 0
    certified_ramp_epochs: int = 0
    certified_kappa: float = 1.0  # final weight of the clean loss (Gowal et al.'s kappa)


OPTIMISERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": lambda params, **kw: torch.optim.SGD(params, momentum=0.9, **kw),
}
LOSSES = ("cross_entropy", "focal")


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float) -> torch.Tensor:
    """Lin et al. (2017)'s focal loss, mean over the batch: ``-(1 - p_t)^gamma log p_t`` with ``p_t``
    the probability of the true class (``gamma = 0`` is cross-entropy)."""
    log_p = F.log_softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    return (-((1.0 - log_p.exp()) ** gamma) * log_p).mean()


def loss_function(loss: str, *, label_smoothing: float = 0.0, focal_gamma: float = 2.0):
    """``fn(logits, labels) -> scalar`` for ``loss``: cross-entropy (with ``label_smoothing``, Szegedy
    et al. 2016: the target puts ``1 - label_smoothing`` on the label and spreads the rest evenly over
    all classes) or the focal loss with ``focal_gamma``."""
    if loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
    if not 0.0 <= label_smoothing < 1.0:
        raise InputError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
    if loss == "focal":
        if not focal_gamma >= 0:
            raise InputError(f"focal_gamma must be >= 0, got {focal_gamma}")
        if label_smoothing:
            raise InputError("label_smoothing applies to the cross-entropy loss only")
        return lambda logits, labels: focal_loss(logits, labels, focal_gamma)
    return lambda logits, labels: F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


def _check_certified(certifier: Any, eps: float, warmup: int, ramp: int, kappa: float) -> None:
    """Validate the certified-training settings (see :func:`train`)."""
    if certifier is None:
        if eps:
            raise InputError(
                "certified_eps needs a certifier, e.g. certifier=trustlab.robustness.bounds.IntervalCertifier()"
            )
        return
    if not callable(getattr(certifier, "worst_case_logits", None)):
        raise InputError(
            f"certifier must have a worst_case_logits(classifier, x, y, eps) method, got {type(certifier).__name__}"
        )
    if not (isinstance(eps, int | float) and math.isfinite(eps) and eps > 0):
        raise InputError(f"certified_eps must be positive with a certifier, got {eps!r}")
    if not (isinstance(warmup, int) and warmup >= 0 and isinstance(ramp, int) and ramp >= 0):
        raise InputError(
            f"certified_warmup_epochs and certified_ramp_epochs must be integers >= 0, got {warmup!r} and {ramp!r}"
        )
    if not 0.0 <= kappa <= 1.0:
        raise InputError(f"certified_kappa must lie in [0, 1], got {kappa!r}")


def classifier_for(
    data: Any, *, arch: str | None = None, seed: int = 0, options: dict[str, Any] | None = None
) -> Classifier:
    """A new, untrained classifier fitted to ``data``'s shape, classes, bounds and feature
    statistics (normalisation inside): ``arch`` from the registry, by default ``mnist_cnn`` for
    images and ``mlp`` for tabular data; ``options``: further keyword settings of the architecture
    (e.g. ``{"batch_norm": True}``), stored in its config."""
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
    config.update(options or {})
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
    loss: str = "cross_entropy",
    label_smoothing: float = 0.0,
    focal_gamma: float = 2.0,
    augment: Augmentation | None = None,
    outliers: Any = None,
    outlier_weight: float = 0.5,
    certifier: Any = None,
    certified_eps: float = 0.0,
    certified_warmup_epochs: int = 0,
    certified_ramp_epochs: int = 0,
    certified_kappa: float = 0.5,
    dataset_name: str = "",
    show_progress: bool = True,
) -> TrainingResult:
    """Train ``classifier.module`` in place on pixel-space ``x`` and labels ``y``; return what happened.

    With ``adversary`` (an attack from ``trustlab.robustness.attacks``, e.g. PGD with 7 steps for
    Madry et al.'s training or FGSM with a random start for Wong et al.'s), every batch is
    replaced by its adversarial examples at ``adversary_eps``, ramped up linearly over the first
    ``eps_warmup_epochs`` epochs.

    ``loss``: "cross_entropy" (with ``label_smoothing``) or "focal" (with ``focal_gamma``); ``augment``:
    the :class:`~trustlab.data.augment.Augmentation` drawn for every batch (after ``augment_shift``'s
    translations), images only.

    ``outliers``: inputs that are no class (outlier exposure, Hendrycks, Mazeika & Dietterich 2019):
    every step also draws a batch of them and adds ``outlier_weight`` times their cross-entropy to
    the uniform distribution, so the model learns to be unsure on inputs unlike its classes.

    Certified (IBP) training, Gowal et al. (2018): with ``certifier`` (an object with
    ``worst_case_logits(classifier, x, y, eps)``, e.g.
    :class:`trustlab.robustness.bounds.IntervalCertifier`; passed in because models/ sits below
    robustness/) and ``certified_eps > 0`` the loss is ``kappa * CE(clean logits) + (1 - kappa) *
    CE(worst-case logits)``, the worst case bounded over the L-inf ball of radius eps. After
    ``certified_warmup_epochs`` of clean training, eps rises linearly from 0 to ``certified_eps``
    and kappa from 1 to ``certified_kappa`` over ``certified_ramp_epochs`` (step by step), then
    both stay. The reported training accuracy is then that of the clean logits.
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
    if (augment_shift or (augment is not None and augment.active)) and len(classifier.input_shape) != 3:
        raise InputError("augmentations apply to images only (inputs of shape C x H x W)")
    criterion = loss_function(loss, label_smoothing=label_smoothing, focal_gamma=focal_gamma)
    _check_certified(certifier, certified_eps, certified_warmup_epochs, certified_ramp_epochs, certified_kappa)
    if certifier is not None and adversary is not None:
        raise InputError("choose either adversary (adversarial training) or certifier (certified training), not both")
    if outliers is not None:
        outliers = classifier.validate(outliers, name="outliers")
        if outliers.shape[0] == 0:
            raise InputError("outliers must hold at least one input")
        if not outlier_weight > 0:
            raise InputError(f"outlier_weight must be positive, got {outlier_weight}")
    x = classifier.validate(x)
    y = classifier.validate_labels(y, x.shape[0])
    module = classifier.module
    n = x.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    bounds = tuple(classifier.bounds) if classifier.bounds else (0.0, 1.0)
    fill = bounds[0]
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
                    if augment is not None and augment.active:
                        xb = augment(xb, generator, bounds)
                    xb, yb = xb.to(classifier.device), yb.to(classifier.device)
                    if adversary is not None:
                        xb = adversary.attack(classifier, xb, yb, eps=eps, generator=generator).adversarials
                    logits = classifier.forward(xb)
                    batch_loss = criterion(logits, yb)
                    if certifier is not None:
                        done = epoch * steps_per_epoch + step - certified_warmup_epochs * steps_per_epoch
                        ramp = max(1, certified_ramp_epochs * steps_per_epoch)
                        t = min(1.0, max(0.0, (done + 1) / ramp)) if done >= 0 else 0.0
                        if t > 0:
                            kappa = 1.0 - t * (1.0 - certified_kappa)
                            worst = certifier.worst_case_logits(classifier, xb, yb, t * certified_eps)
                            batch_loss = kappa * batch_loss + (1.0 - kappa) * criterion(worst, yb)
                    if outliers is not None:
                        drawn = torch.randint(0, outliers.shape[0], (len(index),), generator=generator)
                        odd = classifier.forward(outliers[drawn].to(classifier.device))
                        batch_loss = batch_loss - outlier_weight * F.log_softmax(odd, dim=1).mean()
                    step_rule.zero_grad(set_to_none=True)
                    batch_loss.backward()
                    step_rule.step()
                    schedule.step()
                    total_loss += batch_loss.item() * len(index)
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
        optimiser=optimiser,
        loss_name=loss if not label_smoothing else f"{loss} (label smoothing {label_smoothing:g})",
        augmentation="none" if augment is None else augment.describe(),
        outliers=0 if outliers is None else int(outliers.shape[0]),
        certifier=None if certifier is None else repr(certifier),
        certified_eps=float(certified_eps) if certifier is not None else 0.0,
        certified_warmup_epochs=int(certified_warmup_epochs) if certifier is not None else 0,
        certified_ramp_epochs=int(certified_ramp_epochs) if certifier is not None else 0,
        certified_kappa=float(certified_kappa) if certifier is not None else 1.0,
        loss=tuple(losses),
        accuracy=tuple(accuracies),
        seconds=time.perf_counter() - start,
    )
