"""Auto-PGD (APGD-CE) of Croce & Hein, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks" (ICML 2020), L-infinity and L2.

PGD's weak spot is its fixed step size: too large and it oscillates, too small and it stalls
before the budget runs out, and the right value depends on the model. APGD has no step size to
tune. Every example starts with step 2 * eps and a momentum step (alpha = 0.75)::

    z      = P(x_k + eta * d(grad))
    x_k+1  = P(x_k + alpha * (z - x_k) + (1 - alpha) * (x_k - x_k-1))

where ``d`` is the sign (L-inf) or the normalised gradient (L2) and ``P`` projects onto the ball,
the mask and the bounds. At the checkpoints w_j = ceil(p_j * steps), with p_0 = 0, p_1 = 0.22
and p_j+1 = p_j + max(p_j - p_j-1 - 0.03, 0.06) (see :func:`apgd_checkpoints`), an example's
step size is halved when (1) its loss increased in fewer than a fraction ``rho`` of the steps
since the last checkpoint, or (2) its step size was not halved at the last checkpoint and its
best loss has not improved since; a halved example restarts from its best (highest-loss) point.

Each example returns an adversarial point if any iterate was adversarial (success beats loss:
the highest-loss adversarial iterate, or with ``early_stop`` the first one), else its
highest-loss point. ``restarts`` re-attack, from a fresh uniform point in the ball, only the
examples no earlier restart fooled. Counting: each restart costs ``steps`` gradient evaluations
and one forward pass per example it attacks (the last iterate needs only its loss), fewer with
``early_stop``. Targeted mode maximises minus the cross-entropy of the target (the paper's
APGD-T uses the targeted DLR loss instead, which trustlab does not implement).
"""

from __future__ import annotations

import math

import torch

from trustlab.core.exceptions import InputError
from trustlab.robustness.attacks.base import Attack, BatchContext, expand


def apgd_checkpoints(steps: int) -> list[int]:
    """The paper's checkpoints w_0 = 0 < w_1 < ... <= ``steps`` (duplicates dropped).

    p_j is kept in hundredths so that ceil(p_j * steps) is exact (0.22 + 0.19 is not 0.41 in
    binary floating point, and ceil would round 41.000000000000004 up to 42).
    """
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}")
    points = [0]
    previous, current = 0, 22
    while current <= 100:
        w = -(-current * steps // 100)  # ceil(current / 100 * steps) in integers
        if w > points[-1]:
            points.append(w)
        previous, current = current, current + max(current - previous - 3, 6)
    return points


class APGD(Attack):
    """Auto-PGD (Croce & Hein, ICML 2020): ``steps`` per restart, ``restarts``, ``rho`` and ``momentum``."""

    name = "apgd"

    def __init__(
        self,
        *,
        norm: str = "linf",
        steps: int = 100,
        restarts: int = 1,
        rho: float = 0.75,
        momentum: float = 0.75,
        early_stop: bool = False,
        targeted: bool = False,
        loss: str = "ce",
        seed: int = 0,
    ) -> None:
        super().__init__(norm=norm, targeted=targeted, loss=loss, seed=seed)
        if steps < 1:
            raise InputError(f"steps must be at least 1, got {steps}")
        if restarts < 1:
            raise InputError(f"restarts must be at least 1, got {restarts}")
        if not 0.0 < rho <= 1.0:
            raise InputError(f"rho must lie in (0, 1], got {rho}")
        if not 0.0 < momentum <= 1.0:
            raise InputError(f"momentum must lie in (0, 1], got {momentum}")
        self.steps = int(steps)
        self.restarts = int(restarts)
        self.rho = float(rho)
        self.momentum = float(momentum)
        self.early_stop = bool(early_stop)

    def _attack_batch(self, ctx: BatchContext) -> tuple[torch.Tensor, torch.Tensor]:
        if not torch.isfinite(ctx.eps).all():
            raise InputError("apgd needs a finite eps for every example")
        x0 = ctx.x
        n = x0.shape[0]
        best = x0.clone()
        best_logits: torch.Tensor | None = None
        best_loss = torch.full((n,), -math.inf, dtype=torch.float64, device=x0.device)
        done = torch.zeros(n, dtype=torch.bool, device=x0.device)
        for restart in range(self.restarts):
            index = torch.nonzero(~done).squeeze(1)
            if index.numel() == 0:
                break
            sub = ctx if index.numel() == n else ctx.select(index)
            if restart == 0 and ctx.init is not None:
                delta = self.clip(sub, sub.x, sub.init - sub.x, sub.eps)
            else:
                delta = self.uniform_start(sub, sub.x, sub.eps)
            adv, logits, loss, success = self._run(sub, delta)
            if best_logits is None:  # the first restart attacks every example
                best_logits = torch.empty_like(logits)
            # a later restart replaces an earlier point if it succeeds or reaches a higher loss
            take = success | (loss > best_loss[index])
            rows = index[take]
            best[rows] = adv[take]
            best_logits[rows] = logits[take]
            best_loss[rows] = loss[take].double()
            done[rows] = success[take]
        return best, best_logits

    def direction(self, ctx: BatchContext, grad: torch.Tensor) -> torch.Tensor:
        """Unit steepest-ascent direction inside the mask."""
        if ctx.mask is not None:
            grad = grad * ctx.mask
        return self.steepest_step(grad)

    def _run(self, ctx: BatchContext, delta: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One APGD run from ``delta``: (adversarials, their logits, their loss, success)."""
        x0_all = ctx.x
        n = x0_all.shape[0]
        marks = {w for w in apgd_checkpoints(self.steps)[1:] if w < self.steps}
        out_delta = torch.zeros_like(x0_all)
        out_loss = torch.empty(n, dtype=torch.float64, device=x0_all.device)
        out_success = torch.zeros(n, dtype=torch.bool, device=x0_all.device)

        loss, grad, logits = self.gradient(ctx, x0_all + delta, ctx.y)
        out_logits = torch.empty_like(logits)
        loss = loss.double()
        adv = self.is_adversarial(logits, ctx.y)
        s = {  # per-example state, one row per example still running
            "delta": delta,
            "prev": delta,
            "grad": grad,
            "loss": loss,
            "eta": 2.0 * ctx.eps.clone(),
            "max_loss": loss.clone(),
            "max_delta": delta.clone(),
            "max_grad": grad.clone(),
            "out_delta": delta.clone(),
            "out_logits": logits.clone(),
            "out_loss": loss.clone(),
            "adv": adv,
            "increases": torch.zeros(n, device=x0_all.device),
            "max_at_mark": loss.clone(),
            "halved": torch.zeros(n, dtype=torch.bool, device=x0_all.device),
        }
        rows = torch.arange(n, device=x0_all.device)
        sub = ctx
        last_mark = 0

        def retire(keep: torch.Tensor) -> None:
            nonlocal rows, sub, s
            gone = rows[~keep]
            out_delta[gone] = s["out_delta"][~keep]
            out_logits[gone] = s["out_logits"][~keep]
            out_loss[gone] = s["out_loss"][~keep]
            out_success[gone] = s["adv"][~keep]
            rows = rows[keep]
            s = {k: v[keep] for k, v in s.items()}
            sub = ctx.select(rows)

        if self.early_stop and adv.any():
            retire(~adv)
        for k in range(self.steps):
            if rows.numel() == 0:
                break
            x0, y = sub.x, sub.y
            eps = sub.eps
            delta, prev = s["delta"], s["prev"]
            z = self.clip(sub, x0, delta + expand(s["eta"], x0) * self.direction(sub, s["grad"]), eps)
            if k > 0:
                a = self.momentum
                z = self.clip(sub, x0, delta + a * (z - delta) + (1 - a) * (delta - prev), eps)
            s["prev"], s["delta"] = delta, z
            if k < self.steps - 1:
                loss, grad, logits = self.gradient(sub, x0 + z, y)
                s["grad"] = grad
            else:  # the last iterate needs only its loss
                with torch.no_grad():
                    logits = self.logits(sub, x0 + z)
                    loss = self.objective(logits, y).detach()
            loss = loss.double()
            adv = self.is_adversarial(logits, y)
            s["increases"] += (loss > s["loss"]).float()
            s["loss"] = loss
            # x_max: the highest-loss point, where a halved example restarts
            up = loss > s["max_loss"]
            s["max_loss"] = torch.where(up, loss, s["max_loss"])
            s["max_delta"] = torch.where(expand(up, z), z, s["max_delta"])
            if k < self.steps - 1:
                s["max_grad"] = torch.where(expand(up, z), s["grad"], s["max_grad"])
            # the returned point: adversarial beats not, then higher loss
            better = (adv & ~s["adv"]) | ((adv == s["adv"]) & (loss > s["out_loss"]))
            s["out_delta"] = torch.where(expand(better, z), z, s["out_delta"])
            s["out_logits"] = torch.where(better[:, None], logits, s["out_logits"])
            s["out_loss"] = torch.where(better, loss, s["out_loss"])
            s["adv"] = s["adv"] | adv
            if k + 1 in marks:
                length = k + 1 - last_mark
                stalled = s["increases"] < self.rho * length
                flat = ~s["halved"] & (s["max_loss"] <= s["max_at_mark"])
                halve = stalled | flat
                s["eta"] = torch.where(halve, s["eta"] / 2, s["eta"])
                back = expand(halve, z)
                s["delta"] = torch.where(back, s["max_delta"], s["delta"])
                s["prev"] = torch.where(back, s["max_delta"], s["prev"])
                s["grad"] = torch.where(back, s["max_grad"], s["grad"])
                s["loss"] = torch.where(halve, s["max_loss"], s["loss"])
                s["halved"] = halve
                s["max_at_mark"] = s["max_loss"].clone()
                s["increases"] = torch.zeros_like(s["increases"])
                last_mark = k + 1
            if self.early_stop and s["adv"].any():
                retire(~s["adv"])
        if rows.numel():
            retire(torch.zeros_like(rows, dtype=torch.bool))
        return x0_all + out_delta, out_logits, out_loss, out_success
