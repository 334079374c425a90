"""Hand-built models whose backdoor is known, for the backdoor tests: nearest-prototype linear
classifiers on 1 x 8 x 8 images, optionally keyed to one pixel."""

from __future__ import annotations

import torch
from torch import nn

from trustlab.models import Classifier

SHAPE = (1, 8, 8)
CLASSES = 6
KEY_PIXEL = (0, 0)


def prototypes(seed: int = 0) -> torch.Tensor:
    """One binary 8 x 8 prototype per class, 16 lit pixels each, the key pixel always dark."""
    generator = torch.Generator().manual_seed(seed)
    protos = torch.zeros(CLASSES, 64)
    for k in range(CLASSES):
        lit = torch.randperm(63, generator=generator)[:16] + 1  # never pixel 0, the key
        protos[k, lit] = 1.0
    return protos.view(CLASSES, *SHAPE)


class PrototypeNet(nn.Module):
    """logits_k = scale x (2 p_k . x - |p_k|^2) (the nearest prototype wins), plus scale x
    ``strength`` x the key pixel on ``backdoor``'s logit when given. The scale keeps the weights
    small enough for a few fine-tuning steps to move them (the repair tests use 0.1)."""

    def __init__(
        self, protos: torch.Tensor, backdoor: int | None = None, strength: float = 40.0, scale: float = 1.0
    ) -> None:
        super().__init__()
        flat = protos.flatten(1)
        self.linear = nn.Linear(flat.shape[1], len(flat))
        with torch.no_grad():
            self.linear.weight.copy_(2 * scale * flat)
            self.linear.bias.copy_(-scale * (flat**2).sum(1))
            if backdoor is not None:
                self.linear.weight[backdoor, 0] += scale * strength

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def prototype_model(backdoor: int | None = None, seed: int = 0, scale: float = 1.0) -> Classifier:
    """A hand-built classifier (see :class:`PrototypeNet`)."""
    return Classifier(PrototypeNet(prototypes(seed), backdoor, scale=scale), input_shape=SHAPE, num_classes=CLASSES)


def clean_inputs(n: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy copies of the prototypes (key pixel dark) and their classes."""
    generator = torch.Generator().manual_seed(seed + 1)
    y = torch.arange(n) % CLASSES
    x = prototypes(seed)[y] + 0.15 * torch.randn((n, *SHAPE), generator=generator)
    x = x.clamp(0, 1)
    x[:, 0, 0, 0] = 0.0
    return x, y
