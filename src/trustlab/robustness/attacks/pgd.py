"""Projected gradient descent (Madry et al. 2018), L-infinity and L2.

Random start in the ball, ``steps`` steepest-ascent steps of ``step_size`` (default
2.5 * eps / steps, Madry's rule), projection onto the ball and the input bounds after each step,
and ``restarts``: each restart re-attacks only the examples no earlier restart fooled. With
``early_stop`` an example stops as soon as it is adversarial (cheaper robust accuracy; the
returned point is then the first adversarial found rather than the highest-loss one).
"""

from __future__ import annotations

import torch

from trustlab.core.exceptions import InputError
from trustlab.robustness.attacks.base import Attack, BatchContext, expand


class PGD(Attack):
    """PGD (Madry et al. 2018): ``steps`` of ``step_size``, ``random_start`` and ``restarts``."""

    name = "pgd"

    def __init__(
        self,
        *,
        norm: str = "linf",
        steps: int = 40,
        step_size: float | None = None,
        random_start: bool = True,
        restarts: int = 1,
        early_stop: bool = False,
        targeted: bool = False,
        loss: str = "ce",
        seed: int = 0,
    ) -> None:
        super().__init__(norm=norm, targeted=targeted, loss=loss, seed=seed)
        if steps < 1 or restarts < 1:
            raise InputError(f"steps and restarts must be at least 1, got {steps} and {restarts}")
        if step_size is not None and step_size <= 0:
            raise InputError(f"step_size must be positive, got {step_size}")
        self.steps = int(steps)
        self.step_size = step_size
        self.random_start = bool(random_start)
        self.restarts = int(restarts)
        self.early_stop = bool(early_stop)

    def _attack_batch(self, ctx: BatchContext) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = ctx.x
        best = x0.clone()
        best_logits = None
        done = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
        for restart in range(self.restarts):
            index = torch.nonzero(~done).squeeze(1)
            if restart and index.numel() == 0:
                break
            all_rows = index.numel() == x0.shape[0]
            sub = ctx if all_rows else ctx.select(index)
            if restart == 0 and ctx.init is not None:
                delta = self.clip(sub, sub.x, sub.init - sub.x, sub.eps)
            elif self.random_start:
                delta = self.random_start_delta(sub)
            else:
                delta = torch.zeros_like(sub.x)
            adv, logits = self._steps(sub, delta)
            success = self.is_adversarial(logits, sub.y)
            if all_rows:
                best, best_logits, done = adv, logits, success
            else:
                best[index] = adv
                best_logits[index] = logits
                done[index] = success
        return best, best_logits

    def random_start_delta(self, ctx: BatchContext) -> torch.Tensor:
        return self.uniform_start(ctx, ctx.x, ctx.eps)

    def _steps(self, ctx: BatchContext, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the iterations; return the final adversarials and their logits."""
        x0, y, eps = ctx.x, ctx.y, ctx.eps
        alpha = expand(eps * 2.5 / self.steps if self.step_size is None else torch.full_like(eps, self.step_size), x0)
        if not self.early_stop and self.norm == "linf":
            return self._linf_steps(ctx, x0 + delta, alpha)
        if not self.early_stop:
            for _ in range(self.steps):
                _, grad, _ = self.gradient(ctx, x0 + delta, y)
                delta = self.clip(ctx, x0, delta + alpha * self.steepest_step(grad), eps)
            with torch.no_grad():
                adv = x0 + delta
                return adv, self.logits(ctx, adv)
        active = torch.arange(x0.shape[0], device=x0.device)
        final_logits = torch.empty((x0.shape[0], ctx.model.num_classes), device=x0.device)
        for _ in range(self.steps):
            sub = ctx.select(active)
            _, grad, logits = self.gradient(sub, sub.x + delta[active], sub.y)
            fooled = self.is_adversarial(logits, sub.y)
            final_logits[active[fooled]] = logits[fooled]
            keep = ~fooled
            active, grad = active[keep], grad[keep]
            if active.numel() == 0:
                break
            sub = ctx.select(active)
            step = alpha[active] if alpha.shape[0] > 1 else alpha
            delta[active] = self.clip(sub, sub.x, delta[active] + step * self.steepest_step(grad), sub.eps)
        if active.numel():
            with torch.no_grad():
                final_logits[active] = self.logits(ctx.select(active), x0[active] + delta[active])
        return x0 + delta, final_logits

    def _linf_steps(
        self, ctx: BatchContext, adv: torch.Tensor, alpha: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The L-inf hot path: the ball, the bounds and the mask are one per-pixel box [low, high]
        (masked-out pixels get low = high = x), so each step is sign, scale, add and one clamp."""
        x0 = ctx.x
        radius = expand(ctx.eps, x0)
        low, high = x0 - radius, x0 + radius
        if ctx.model.bounds is not None:
            low, high = low.clamp_min(ctx.model.bounds[0]), high.clamp_max(ctx.model.bounds[1])
        if ctx.mask is not None:
            keep = ctx.mask == 0
            low, high = torch.where(keep, x0, low), torch.where(keep, x0, high)
        for _ in range(self.steps):
            _, grad, _ = self.gradient(ctx, adv, ctx.y)
            adv = torch.clamp(adv + alpha * grad.sign(), low, high)
        with torch.no_grad():
            return adv, self.logits(ctx, adv)
