"""Square Attack of Andriushchenko et al., "Square Attack: a query-efficient black-box adversarial
attack via random search" (ECCV 2020), L-infinity.

A score-based black-box attack: it needs only the model's outputs (logits, or the
log-probabilities a :class:`~trustlab.models.BlackBoxClassifier` returns), never gradients, so it
checks that a model's robustness is not an artefact of masked or useless gradients. It is random
search over perturbations at the corners of the eps-ball:

* start from vertical stripes: every column of every channel is shifted by +eps or -eps;
* at each iteration, pick for every example a random square window of side
  s = round(sqrt(p * height * width)) and set it, per channel, to +eps or -eps (redrawn while
  that would change nothing), and keep the proposal only if it strictly improves the example's
  loss (the margin loss: best other output minus the label's, or for a target minus that);
* the fraction p starts at ``p_init`` and halves after iterations 10, 50, 200, 500, 1000, 2000,
  4000, 6000 and 8000 of a 10,000-query run, rescaled to the ``queries`` budget
  (:func:`square_fraction`).

An example stops being queried as soon as it is adversarial, and a proposal that changes no
pixel (a window inside the masked-out area) is not queried. ``queries`` bounds the forward
passes per example, the starting point included. The mask multiplies every perturbation
(stripes and squares), so masked-out pixels never change; ``init`` replaces the stripes as the
starting point. The paper's L2 variant is not implemented (``norm="l2"`` is refused); the paper
uses cross-entropy for targeted attacks, trustlab the targeted margin by default (pass
``loss="ce"`` for the paper's choice).
"""

from __future__ import annotations

import math

import torch

from trustlab.core.exceptions import InputError
from trustlab.robustness.attacks.base import Attack, BatchContext

SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # halvings, on a 10,000-query scale


def square_fraction(p_init: float, iteration: int, queries: int) -> float:
    """The fraction of pixels a square covers at ``iteration`` of a ``queries``-query run."""
    scaled = iteration * 10000 // queries
    return p_init / 2 ** sum(scaled > point for point in SCHEDULE)


class Square(Attack):
    """Square Attack (Andriushchenko et al., ECCV 2020), L-inf only: ``queries`` per example and ``p_init``."""

    name = "square"
    needs_gradients = False

    def __init__(
        self,
        *,
        norm: str = "linf",
        queries: int = 1000,
        p_init: float = 0.8,
        targeted: bool = False,
        loss: str = "margin",
        seed: int = 0,
    ) -> None:
        super().__init__(norm=norm, targeted=targeted, loss=loss, seed=seed)
        if norm != "linf":
            raise InputError("square implements only the L-inf Square Attack; use norm='linf'")
        if queries < 1:
            raise InputError(f"queries must be at least 1, got {queries}")
        if not 0.0 < p_init <= 1.0:
            raise InputError(f"p_init must lie in (0, 1], got {p_init}")
        self.queries = int(queries)
        self.p_init = float(p_init)

    def _attack_batch(self, ctx: BatchContext) -> tuple[torch.Tensor, torch.Tensor]:
        x0, eps = ctx.x, ctx.eps
        if x0.ndim != 4:
            raise InputError(f"square needs image inputs (N, C, H, W), got shape {tuple(x0.shape)}")
        if not torch.isfinite(eps).all():
            raise InputError("square needs a finite eps for every example")
        n, channels, height, width = x0.shape
        gen, device = ctx.generator, x0.device
        if ctx.init is not None:
            delta = self.clip(ctx, x0, ctx.init - x0, eps)
        else:
            signs = torch.randint(0, 2, (n, channels, 1, width), generator=gen, device=device) * 2.0 - 1.0
            stripes = (signs * eps.view(-1, 1, 1, 1)).expand_as(x0)
            delta = self.clip(ctx, x0, stripes, eps)
        with torch.no_grad():
            logits = self.logits(ctx, x0 + delta)
        loss = self.objective(logits, ctx.y)
        adv = self.is_adversarial(logits, ctx.y)
        rows_h = torch.arange(height, device=device)
        rows_w = torch.arange(width, device=device)
        for iteration in range(self.queries - 1):
            active = torch.nonzero(~adv).squeeze(1)
            if active.numel() == 0:
                break
            sub = ctx.select(active)
            current = delta[active]
            m = active.numel()
            p = square_fraction(self.p_init, iteration, self.queries)
            s = min(max(int(round(math.sqrt(p * height * width))), 1), max(min(height, width) - 1, 1))
            top = torch.randint(0, height - s + 1, (m,), generator=gen, device=device)
            left = torch.randint(0, width - s + 1, (m,), generator=gen, device=device)
            in_h = (rows_h >= top[:, None]) & (rows_h < top[:, None] + s)
            in_w = (rows_w >= left[:, None]) & (rows_w < left[:, None] + s)
            window = (in_h[:, :, None] & in_w[:, None, :])[:, None]  # (m, 1, H, W)
            proposal = current
            unchanged = torch.ones(m, dtype=torch.bool, device=device)
            for _ in range(10):  # redraw the signs of proposals that would change nothing
                signs = torch.randint(0, 2, (m, channels, 1, 1), generator=gen, device=device) * 2.0 - 1.0
                candidate = self.clip(
                    sub, sub.x, torch.where(window, signs * sub.eps.view(-1, 1, 1, 1), current), sub.eps
                )
                proposal = torch.where(unchanged.view(-1, 1, 1, 1), candidate, proposal)
                unchanged = (proposal == current).flatten(1).all(1)
                if not unchanged.any():
                    break
            ask = torch.nonzero(~unchanged).squeeze(1)
            if ask.numel() == 0:
                continue
            asked = sub.select(ask)
            with torch.no_grad():
                new_logits = self.logits(asked, asked.x + proposal[ask])
            new_loss = self.objective(new_logits, asked.y)
            better = new_loss > loss[active[ask]]  # strict: equal loss keeps the current point
            accepted = active[ask[better]]
            delta[accepted] = proposal[ask[better]]
            logits[accepted] = new_logits[better]
            loss[accepted] = new_loss[better]
            adv[accepted] = self.is_adversarial(new_logits[better], asked.y[better])
        return x0 + delta, logits
