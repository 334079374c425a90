"""Per-input latent optimisation shared by the generative regret scores (VAE and WGAN).

A generative detector's amortised network (the VAE's encoder, the WGAN's inverter) answers with a
latent for every input in one pass; it was trained on in-distribution inputs only. Optimising the
latent for each input on its own shows how much that answer left on the table: little for inputs
like the training data, more for inputs the generator can draw but the encoder never saw. The loss
of a batch sums per-input losses, so one gradient step moves every input's latent independently.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def lowest_loss(
    loss: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, *, steps: int, learning_rate: float
) -> torch.Tensor:
    """The lowest per-input ``loss(latent)`` seen in ``steps`` Adam steps from ``start`` (N, D),
    the starting point included (so never above ``loss(start)``). Gradients reach the latent only."""
    latent = start.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([latent], lr=learning_rate)
    best = torch.full((start.shape[0],), math.inf, dtype=start.dtype, device=start.device)
    with torch.enable_grad():
        for _ in range(steps + 1):
            value = loss(latent)
            best = torch.minimum(best, value.detach())
            (latent.grad,) = torch.autograd.grad(value.sum(), [latent])
            optimiser.step()
    return best
