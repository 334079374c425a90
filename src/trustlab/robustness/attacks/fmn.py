"""Fast minimum-norm attack (FMN) of Pintor et al., "Fast Minimum-norm Adversarial Attacks through
Adaptive Norm Projections" (NeurIPS 2021), L-infinity and L2.

Bounded attacks answer "is there an adversarial within eps?"; FMN answers "how far is the
nearest adversarial?", per example, in one run. It descends the logit-difference loss
(true logit minus the best other; for a target, best other minus the target's) with steps of
L2-normalised gradient and projects each iterate onto an eps-ball whose radius adapts:

* at an adversarial iterate, record it if it is the smallest so far and shrink:
  eps = min(eps * (1 - gamma), best norm);
* at a non-adversarial iterate, grow: eps = eps * (1 + gamma) once an adversarial has been
  found, and before that jump to the linear estimate of the boundary,
  eps = ||delta|| + |loss| / ||grad||_dual (dual norm: L1 for L-inf, L2 for L2).

eps never exceeds the largest norm the bounds allow. The step size alpha and gamma follow
cosine annealing from ``alpha_init`` to ``alpha_final`` (default alpha_init / 100) and from
``gamma_init`` (0.05) to ``gamma_final`` (0.001). ``alpha_init`` defaults to 1 for L2 and to 10
for L-inf: an L2-normalised step of length 1 over a whole image moves each pixel far less than a
typical L-inf eps, while a step of 10 is cut back by the projection, so the iterates move along
the faces of the eps-ball (on the reference MNIST CNN, 10 gives about 5% smaller median L-inf
norms than 1 after 30 steps).

One addition to the paper: gradient components that would push a pixel already at a bound
further out are zeroed before the step and the boundary estimate. Those components are lost
to the clipping anyway; kept, they inflate ||grad||_dual (so the estimate undershoots) and
shorten the normalised step inside the box. On MNIST, where most pixels sit at 0, L2 FMN
otherwise stalls short of the boundary on about a third of the images.

Each example returns its smallest-norm adversarial; an example never made adversarial returns
the clean input (norm 0, success False). ``eps`` passed to ``attack`` is optional and acts as an
upper bound: a smallest adversarial above it does not count and the clean input is returned.
Already-misclassified examples return the clean input (norm 0, success True). ``init`` is used
as the starting perturbation (the paper's warm start runs a binary search from an adversarial
starting point first; trustlab starts directly there). Counting: ``steps`` gradient
evaluations and one forward pass (a final check of the returned points) per example, plus one
forward pass on the clean inputs when ``init`` is given.
"""

from __future__ import annotations

import math

import torch

from trustlab.core.exceptions import InputError
from trustlab.robustness.attacks.base import Attack, BatchContext, expand, lp_norms


class FMN(Attack):
    """Fast minimum-norm attack (Pintor et al., NeurIPS 2021): ``steps``, step size ``alpha_init`` to
    ``alpha_final`` and eps change ``gamma_init`` to ``gamma_final``."""

    name = "fmn"
    needs_eps = False

    def __init__(
        self,
        *,
        norm: str = "linf",
        steps: int = 100,
        alpha_init: float | None = None,
        alpha_final: float | None = None,
        gamma_init: float = 0.05,
        gamma_final: float = 0.001,
        targeted: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(norm=norm, targeted=targeted, loss="margin", seed=seed)
        if steps < 1:
            raise InputError(f"steps must be at least 1, got {steps}")
        alpha_init = (10.0 if norm == "linf" else 1.0) if alpha_init is None else float(alpha_init)
        alpha_final = alpha_init / 100 if alpha_final is None else float(alpha_final)
        if alpha_init <= 0:
            raise InputError(f"alpha_init must be positive, got {alpha_init}")
        if alpha_final <= 0:
            raise InputError(f"alpha_final must be positive, got {alpha_final}")
        for label, value in (("gamma_init", gamma_init), ("gamma_final", gamma_final)):
            if not 0.0 < value < 1.0:
                raise InputError(f"{label} must lie in (0, 1), got {value}")
        self.steps = int(steps)
        self.alpha_init = alpha_init
        self.alpha_final = alpha_final
        self.gamma_init = float(gamma_init)
        self.gamma_final = float(gamma_final)

    def _dual_norms(self, grad: torch.Tensor) -> torch.Tensor:
        flat = grad.flatten(1)
        return flat.abs().sum(1) if self.norm == "linf" else flat.norm(dim=1)

    def _largest_norms(self, ctx: BatchContext) -> torch.Tensor:
        """The largest perturbation norm the bounds (and mask) allow, per example."""
        x0 = ctx.x
        bounds = ctx.model.bounds
        if bounds is None:
            return torch.full((x0.shape[0],), math.inf, device=x0.device)
        room = torch.maximum(x0 - bounds[0], bounds[1] - x0)
        if ctx.mask is not None:
            room = room * ctx.mask
        return lp_norms(room, self.norm)

    def _attack_batch(self, ctx: BatchContext) -> tuple[torch.Tensor, torch.Tensor | None]:
        x0, y = ctx.x, ctx.y
        n = x0.shape[0]
        device = x0.device
        unbounded = torch.full((n,), math.inf, device=device)
        best_norm = torch.full((n,), math.inf, device=device)
        best_delta = torch.zeros_like(x0)
        found = torch.zeros(n, dtype=torch.bool, device=device)
        if ctx.init is not None:
            delta = self.clip(ctx, x0, ctx.init - x0, unbounded)
            with torch.no_grad():
                clean_adv = self.is_adversarial(self.logits(ctx, x0), y)
            best_norm = torch.where(clean_adv, 0.0, best_norm)
            found = clean_adv
        else:
            delta = torch.zeros_like(x0)
        largest = self._largest_norms(ctx)
        radius = unbounded.clone()
        bounds = ctx.model.bounds
        for k in range(self.steps):
            cosine = (1 + math.cos(math.pi * k / self.steps)) / 2
            alpha = self.alpha_final + (self.alpha_init - self.alpha_final) * cosine
            gamma = self.gamma_final + (self.gamma_init - self.gamma_final) * cosine
            # objective = minus the paper's logit difference: positive exactly when adversarial
            objective, grad, logits = self.gradient(ctx, x0 + delta, y)
            if ctx.mask is not None:
                grad = grad * ctx.mask
            if bounds is not None:  # drop components that push a pixel out of bounds
                point = x0 + delta
                grad = grad.masked_fill(((point <= bounds[0]) & (grad < 0)) | ((point >= bounds[1]) & (grad > 0)), 0.0)
            adv = self.is_adversarial(logits, y)
            norm = lp_norms(delta, self.norm)
            smaller = adv & (norm < best_norm)
            best_norm = torch.where(smaller, norm, best_norm)
            best_delta = torch.where(expand(smaller, x0), delta, best_delta)
            found = found | adv
            boundary = norm + objective.abs().float() / self._dual_norms(grad).clamp_min(1e-12)
            radius = torch.where(
                adv,
                torch.minimum(radius * (1 - gamma), best_norm),
                torch.where(found, radius * (1 + gamma), boundary),
            )
            radius = torch.minimum(radius, largest)
            step = grad / expand(grad.flatten(1).norm(dim=1).clamp_min(1e-12), grad)
            delta = self.clip(ctx, x0, delta + alpha * step, radius)

        adv_points = torch.where(expand(found, x0), x0 + best_delta, x0)
        too_far = lp_norms(adv_points - x0, self.norm) > ctx.eps
        adv_points = torch.where(expand(too_far, x0), x0, adv_points)
        with torch.no_grad():
            logits = self.logits(ctx, adv_points)
        # a point adversarial during the run but not at this check (a tie at the boundary) is
        # dropped: no example returns a perturbed input that does not succeed
        lost = ~self.is_adversarial(logits, y) & (best_norm > 0) & found & ~too_far
        if lost.any():
            return torch.where(expand(lost, x0), x0, adv_points), None
        return adv_points, logits
