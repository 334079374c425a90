"""Randomisation sanity check: do the maps depend on the learned weights at all?

:func:`model_parameter_randomisation` (Adebayo et al. 2018, "Sanity checks for saliency maps";
Quantus ``MPRT``) re-initialises the model's layers one after another on a copy
(:meth:`~trustlab.models.classifier.Classifier.copy`) and compares each example's map with the
original one, by default with the vectorised rank correlation
:func:`trustlab.core.stats.spearman` (or :func:`~trustlab.core.stats.pearson`). A method whose maps
stay the same once the weights are random (e.g. one that returns the input) fails the check.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from trustlab.core.exceptions import InputError
from trustlab.core.progress import progress
from trustlab.core.stats import pearson, spearman
from trustlab.core.validate import describe
from trustlab.explain.metrics._inputs import _maps
from trustlab.models.classifier import Classifier

ORDERS = ("top_down", "bottom_up", "independent")
SIMILARITIES = ("spearman", "pearson")

ERR_ORDER = "order must be one of {expected}, got {got!r}"
ERR_SIMILARITY = "similarity must be one of {expected} or a callable, got {got!r}"
ERR_NO_LAYERS = "model_parameter_randomisation needs a model with parameters; {model} has none"
ERR_LAYER = "layer {name!r} ({kind}) has parameters but no reset_parameters(); it cannot be re-initialised"
ERR_MAPS_OUT = "explain_fn must return {n} maps (a tensor of shape (N, ...)), got {got}"


@dataclass(frozen=True)
class RandomisationResult:
    """Similarity of each example's map before and after randomising the weights, per layer.

    ``layers`` names the randomised layers in the order they were randomised (names within the
    classifier's module); ``scores`` (len(layers), N): row i compares the original maps with those
    of the model after step i. A method that passes the sanity check sees its scores fall.
    """

    layers: tuple[str, ...]
    scores: torch.Tensor
    order: str
    similarity: str
    absolute: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": list(self.layers),
            "scores": self.scores.tolist(),
            "order": self.order,
            "similarity": self.similarity,
            "absolute": self.absolute,
        }


def _layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules owning parameters directly, in definition order (input towards output)."""
    return [(name, m) for name, m in module.named_modules() if next(m.parameters(recurse=False), None) is not None]


def _reinitialise(name: str, layer: nn.Module, seed: int) -> None:
    """Re-draw ``layer``'s parameters as PyTorch's ``reset_parameters`` would, from a generator
    seeded with ``seed``: the same numbers Quantus gets after ``torch.manual_seed(seed)``.

    Linear and convolution layers (the common case) draw from a ``torch.Generator`` on the CPU,
    so the weights do not depend on the device. Other layers run their own ``reset_parameters``
    inside ``torch.random.fork_rng`` seeded with ``seed``, which restores the global random state
    afterwards: the caller's random stream is left as it was.
    """
    weight = getattr(layer, "weight", None)
    # a module that only mirrors a linear map or convolution (a TorchScript or exported model's
    # stand-in) has its weight but no reset_parameters: it is re-drawn the same way
    mirrored = isinstance(weight, torch.Tensor) and weight.ndim >= 2 and not hasattr(layer, "reset_parameters")
    with torch.no_grad():
        if isinstance(layer, nn.Linear | nn.modules.conv._ConvNd) or mirrored:
            generator = torch.Generator().manual_seed(seed)
            weight = torch.empty(layer.weight.shape, dtype=layer.weight.dtype)
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
            layer.weight.copy_(weight)
            if getattr(layer, "bias", None) is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                bias = torch.empty(layer.bias.shape, dtype=layer.bias.dtype)
                nn.init.uniform_(bias, -bound, bound, generator=generator)
                layer.bias.copy_(bias)
            return
        reset = getattr(layer, "reset_parameters", None)
        if not callable(reset):
            raise InputError(ERR_LAYER.format(name=name, kind=type(layer).__name__))
        devices = sorted({p.device.index or 0 for p in layer.parameters() if p.device.type == "cuda"})
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            reset()


def _similarity_fn(similarity: str | Callable[..., Any]) -> tuple[str, Callable[..., torch.Tensor]]:
    if callable(similarity):
        return getattr(similarity, "__name__", "custom"), similarity
    if similarity == "spearman":
        return "spearman", spearman
    if similarity == "pearson":
        return "pearson", pearson
    raise InputError(ERR_SIMILARITY.format(expected=", ".join(SIMILARITIES), got=similarity))


def _explained(
    explain_fn: Callable[..., Any], model: Classifier, x: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    maps = explain_fn(model, x, target)
    if isinstance(maps, np.ndarray):
        maps = torch.from_numpy(maps)
    if not isinstance(maps, torch.Tensor) or maps.ndim < 2 or maps.shape[0] != x.shape[0]:
        raise InputError(ERR_MAPS_OUT.format(n=x.shape[0], got=describe(maps)))
    return maps.detach().to(x.device)


def model_parameter_randomisation(
    model: Classifier,
    x: Any,
    target: Any,
    explain_fn: Callable[[Classifier, torch.Tensor, torch.Tensor], Any],
    *,
    order: str = "top_down",
    similarity: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "spearman",
    absolute: bool = True,
    seed: int = 0,
    original: Any = None,
) -> RandomisationResult:
    """Model parameter randomisation test (Adebayo et al. 2018), as Quantus's ``MPRT``.

    Layers are the modules that own parameters. With ``order="top_down"`` (cascading, the paper's
    main test) they are re-initialised one after another from the output towards the input,
    cumulatively; ``"bottom_up"`` goes the other way; ``"independent"`` randomises each layer
    alone. After each step, maps are recomputed with ``explain_fn(classifier, x, target)`` on the
    randomised copy and compared with the original maps, per example, by ``similarity``
    (``"spearman"``, the default as in Quantus, ``"pearson"``, or a callable taking two (N, F)
    tensors). ``absolute=True`` (Quantus's default ``abs=True``) compares |maps|.

    ``target``: class per example (``None``: the predicted class). ``original``: the maps of the
    unmodified model if already computed (otherwise ``explain_fn`` computes them).
    The randomisation happens on a deep copy (:meth:`Classifier.copy`); ``model`` is never
    changed. Each layer is re-initialised from a generator freshly seeded with ``seed``, as in
    PyTorch's ``reset_parameters``: Quantus seeds the global generator with its ``seed + 1``
    before each layer, so ``seed=s`` here reproduces Quantus's ``MPRT(seed=s - 1)``. Quantus's
    layers are the modules with a ``reset_parameters`` method; for ordinary networks (Linear,
    convolution, normalisation layers) both choices give the same list.
    Memory: one copy of the module, plus what ``explain_fn`` needs.
    """
    if order not in ORDERS:
        raise InputError(ERR_ORDER.format(expected=", ".join(ORDERS), got=order))
    name, compare = _similarity_fn(similarity)
    x = model.validate(x, name="x")
    target = model.targets(x, target)
    randomised = model.copy()
    layers = _layers(randomised.module)
    if not layers:
        raise InputError(ERR_NO_LAYERS.format(model=type(model.module).__name__))
    if order == "top_down":
        layers = layers[::-1]
    if original is None:
        reference = _explained(explain_fn, randomised, x, target)
    else:
        reference = _maps(original, name="original").to(x.device)
    if reference.shape[0] != x.shape[0]:
        raise InputError(ERR_MAPS_OUT.format(n=x.shape[0], got=describe(reference)))
    if absolute:
        reference = reference.abs()
    rows = []
    for layer_name, layer in progress(layers, desc="randomising layers", unit="layer"):
        saved = {k: v.clone() for k, v in layer.state_dict().items()} if order == "independent" else None
        _reinitialise(layer_name, layer, seed)
        maps = _explained(explain_fn, randomised, x, target)
        rows.append(torch.as_tensor(compare(reference, maps.abs() if absolute else maps)).float().to(x.device))
        if saved is not None:
            layer.load_state_dict(saved)
    return RandomisationResult(
        layers=tuple(n for n, _ in layers), scores=torch.stack(rows), order=order, similarity=name, absolute=absolute
    )


__all__ = ["RandomisationResult", "model_parameter_randomisation"]
