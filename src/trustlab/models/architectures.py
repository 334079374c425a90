"""Architecture registry: a name and a JSON-able config rebuild a module exactly.

A model artefact stores only (name, config, weights), so every architecture trustlab can load
is registered here with keyword-only, JSON-serialisable parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from trustlab.core.exceptions import UnknownNameError

_ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}


def register_architecture(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering an architecture builder under ``name``."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _ARCHITECTURES[name] = builder
        return builder

    return decorate


def list_architectures() -> list[str]:
    """Names of the registered architectures, sorted."""
    return sorted(_ARCHITECTURES)


def build_architecture(name: str, *, seed: int | None = None, **config: Any) -> nn.Module:
    """Build architecture ``name`` with ``config``; with ``seed``, its initial weights are
    reproducible without touching the global random state."""
    if name not in _ARCHITECTURES:
        raise UnknownNameError(f"unknown architecture {name!r}; expected one of: {', '.join(list_architectures())}")
    try:
        if seed is None:
            return _ARCHITECTURES[name](**config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return _ARCHITECTURES[name](**config)
    except TypeError as exc:
        raise UnknownNameError(f"bad config for architecture {name!r}: {exc}") from None


class MnistCNN(nn.Module):
    """Two 5x5 conv layers (each ReLU + 2x2 max-pool) and two fully connected layers: the
    small net of Madry et al. (2018) and Neural Cleanse's MNIST model, width configurable.

    Options for the generalisation study: ``batch_norm`` puts batch normalisation after each
    convolution and after the hidden fully connected layer (before the ReLU, as Ioffe & Szegedy
    2015); ``dropout`` drops that share of the hidden units before the last layer in training
    (Srivastava et al. 2014). Both off by default, which keeps the shipped weights' layout.

    ``features`` ends at the last conv block (the Grad-CAM layer); ``embed`` returns the
    penultimate activations used by feature-space detectors.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        channels: Sequence[int] = (32, 64),
        hidden: int = 1024,
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if image_size % 4:
            raise TypeError(f"image_size must be divisible by 4, got {image_size}")
        if not 0.0 <= dropout < 1.0:
            raise TypeError(f"dropout must lie in [0, 1), got {dropout}")
        c1, c2 = channels
        layers: list[nn.Module] = []
        for c_in, c_out in ((in_channels, c1), (c1, c2)):
            layers.append(nn.Conv2d(c_in, c_out, 5, padding=2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers += [nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        side = image_size // 4
        self.fc1 = nn.Linear(c2 * side * side, hidden)
        # absent (None) when off, so the default model's modules and weights stay those shipped
        self.norm = nn.BatchNorm1d(hidden) if batch_norm else None
        self.act = nn.ReLU()  # a module, not torch.relu, so guided backpropagation can hook it
        self.drop = nn.Dropout(dropout) if dropout else None
        self.fc2 = nn.Linear(hidden, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.fc1(self.features(x).flatten(1))
        if self.norm is not None:
            hidden = self.norm(hidden)
        return self.act(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(x)
        if self.drop is not None:
            hidden = self.drop(hidden)
        return self.fc2(hidden)


class MLP(nn.Module):
    """Fully connected ReLU network for tabular data; ``embed`` gives the last hidden layer."""

    def __init__(
        self, *, in_features: int, num_classes: int = 2, hidden: Sequence[int] = (64, 32), dropout: float = 0.0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(width, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


@register_architecture("mnist_cnn")
def mnist_cnn(**config: Any) -> nn.Module:
    """Build a :class:`MnistCNN` from its config."""
    return MnistCNN(**config)


@register_architecture("mlp")
def mlp(**config: Any) -> nn.Module:
    """Build an :class:`MLP` from its config."""
    return MLP(**config)
