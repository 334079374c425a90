"""Fast gradient sign method (Goodfellow et al. 2015), with the random start of Wong et al. (2020).

One gradient per example. For L2 the step follows the normalised gradient (the "fast gradient
method"). With ``random_start`` the step starts from a uniform point in the ball and has size
``step_scale * eps`` (Wong et al. use 1.25), then is projected back into the ball.
"""

from __future__ import annotations

import torch

from trustlab.core.exceptions import InputError
from trustlab.robustness.attacks.base import Attack, BatchContext, Direction, expand


class FGSM(Attack):
    """FGSM (Goodfellow et al. 2015), optionally with a random start (Wong et al. 2020) and ``step_scale``."""

    name = "fgsm"

    def __init__(
        self,
        *,
        norm: str = "linf",
        targeted: bool = False,
        loss: str = "ce",
        random_start: bool = False,
        step_scale: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(norm=norm, targeted=targeted, loss=loss, seed=seed)
        if step_scale <= 0:
            raise InputError(f"step_scale must be positive, got {step_scale}")
        self.random_start = bool(random_start)
        self.step_scale = float(step_scale)

    @property
    def fixed_direction(self) -> bool:
        """Without a random start the step is eps times a direction computed once at the input."""
        return not self.random_start

    def direction(self, ctx: BatchContext, x: torch.Tensor) -> Direction:
        """Unit steepest-ascent direction at ``x`` (masked), the logits there and the margin's rate."""
        _, grad, logits = self.gradient(ctx, x, ctx.y)
        step = self.steepest_step(grad)
        if ctx.mask is not None:
            step = step * ctx.mask
            if self.norm == "l2":  # renormalise inside the allowed pixels
                step = self.steepest_step(step)
        return Direction(step, logits, self.margin_rate(ctx, x, step, grad, logits))

    def _attack_batch(self, ctx: BatchContext) -> tuple[torch.Tensor, None]:
        x0, eps = ctx.x, ctx.eps
        start = self.uniform_start(ctx, x0, eps) if self.random_start else torch.zeros_like(x0)
        step = self.direction(ctx, x0 + start).step
        delta = start + expand(eps * self.step_scale, x0) * step
        return x0 + self.clip(ctx, x0, delta, eps), None
