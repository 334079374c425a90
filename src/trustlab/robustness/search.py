"""Per-example minimal epsilon: batched bisection over a per-example epsilon tensor.

For every example the search returns the smallest budget (to tolerance ``tol``) at which the
attack flips its prediction, with the bracket ``(lower, upper]`` that proves it:

* examples misclassified before any perturbation get eps* = 0 (``clean_wrong``);
* examples not flipped at ``eps_max`` are ``censored`` (eps* = inf), never dropped;
* examples are frozen as soon as their bracket is within ``tol``.

FGSM takes a fast path: its direction does not depend on eps, so one gradient per example is
computed and every bisection round is a forward pass only (the floor of the method: one
forward+backward plus ceil(log2(eps_max / tol)) forwards, plus one check at eps_max). That
final check also detects *non-monotonic* examples: flipped at some eps but correct again at
eps_max. Other fixed-budget attacks (PGD, APGD, Square) are re-run per round on the active
examples, warm-started from each example's last successful adversarial; minimum-norm attacks
(FMN) are run once and their norms are eps*.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from trustlab.core.batching import BatchCheckpoint, run_batches
from trustlab.core.exceptions import InputError
from trustlab.models.classifier import Classifier
from trustlab.robustness.attacks import FGSM, Attack, make_attack
from trustlab.robustness.attacks.base import BatchContext, Counter, expand, parse_mask
from trustlab.robustness.evaluate import check_eps


@dataclass(frozen=True)
class MinimalEps:
    """Per-example minimal epsilon with its bracket and flags (tensors of length N)."""

    eps_star: torch.Tensor  # 0 when clean_wrong, inf when censored, else the bracket's upper end
    lower: torch.Tensor
    upper: torch.Tensor
    clean_wrong: torch.Tensor
    censored: torch.Tensor
    nonmonotonic: torch.Tensor
    labels: torch.Tensor
    eps_max: float
    tol: float
    attack: str
    norm: str
    forward_calls: int
    gradient_calls: int
    seconds: float

    def robust_accuracy(self, eps: float) -> float:
        """Share of examples still correct at budget ``eps`` (derived from eps*, no re-attack)."""
        if eps > self.eps_max:
            raise InputError(f"eps {eps} is above the search's eps_max {self.eps_max}; nothing is known there")
        return float((self.eps_star > eps).float().mean()) if self.eps_star.numel() else float("nan")

    def curve(self, grid: torch.Tensor | list[float]) -> torch.Tensor:
        """Robust accuracy at each eps of ``grid`` (all <= eps_max)."""
        grid = torch.as_tensor(grid, dtype=self.eps_star.dtype)
        if (grid > self.eps_max).any():
            raise InputError(f"grid values must be <= eps_max {self.eps_max}")
        return (self.eps_star[None, :] > grid[:, None]).float().mean(1)


def _resolve_attack(attack: Attack | str) -> Attack:
    return make_attack(attack) if isinstance(attack, str) else attack


def minimal_eps(
    model: Classifier,
    x: Any,
    y: Any,
    attack: Attack | str = "fgsm",
    *,
    eps_max: float = 0.5,
    tol: float = 1 / 512,
    mask: Any = None,
    checkpoint: BatchCheckpoint | None = None,
    show_progress: bool = True,
) -> MinimalEps:
    """Smallest eps flipping each example under ``attack`` (see module docstring).

    ``mask`` restricts the perturbation to some pixels (broadcastable to ``x``). With a
    ``checkpoint`` the search resumes from the last completed batch. ``eps_max`` above the input
    range (see :func:`~trustlab.robustness.evaluate.check_eps`) is refused before any attack runs.
    """
    attack = _resolve_attack(attack)
    if not (eps_max > 0 and math.isfinite(eps_max)) or not tol > 0:
        raise InputError(f"eps_max and tol must be positive and finite, got {eps_max} and {tol}")
    check_eps(model, attack.norm, eps_max, option="eps_max")
    if attack.needs_gradients:
        model.require_gradients(f"minimal-eps search with {attack.name}")
    x = model.validate(x)
    n = x.shape[0]
    y = model.validate_labels(y, n)
    mask_all = parse_mask(mask, x)
    counter = Counter()
    start_time = time.perf_counter()

    def search(start: int, stop: int) -> dict[str, torch.Tensor]:
        batch_mask = None if mask_all is None else (mask_all if mask_all.shape[0] == 1 else mask_all[start:stop])
        xb, yb = x[start:stop].to(model.device), y[start:stop].to(model.device)
        if batch_mask is not None:
            batch_mask = batch_mask.to(model.device)
        if attack.fixed_direction:
            out = _direction_bisection(model, attack, xb, yb, batch_mask, eps_max, tol, counter)
        elif not attack.needs_eps:
            out = _minimum_norm(model, attack, xb, yb, batch_mask, eps_max, counter)
        else:
            out = _attack_bisection(model, attack, xb, yb, batch_mask, eps_max, tol, counter)
        return {k: v.detach().cpu() for k, v in out.items()}

    outputs = run_batches(
        search,
        n,
        model.batch_size,
        checkpoint=checkpoint,
        desc=f"minimal eps ({attack.name})",
        show_progress=show_progress,
    )
    if not outputs:
        empty = torch.zeros(0)
        outputs = {k: empty for k in ("lower", "upper")} | {
            k: empty.bool() for k in ("clean_wrong", "censored", "nonmonotonic")
        }
    clean_wrong, censored = outputs["clean_wrong"].bool(), outputs["censored"].bool()
    eps_star = torch.where(
        clean_wrong,
        torch.zeros_like(outputs["upper"]),
        torch.where(censored, torch.full_like(outputs["upper"], math.inf), outputs["upper"]),
    )
    return MinimalEps(
        eps_star=eps_star,
        lower=outputs["lower"],
        upper=outputs["upper"],
        clean_wrong=clean_wrong,
        censored=censored,
        nonmonotonic=outputs["nonmonotonic"].bool(),
        labels=y.cpu(),
        eps_max=float(eps_max),
        tol=float(tol),
        attack=repr(attack),
        norm=attack.norm,
        forward_calls=counter.forward,
        gradient_calls=counter.gradient,
        seconds=time.perf_counter() - start_time,
    )


def _bounded(model: Classifier, x: torch.Tensor) -> torch.Tensor:
    return x if model.bounds is None else x.clamp(model.bounds[0], model.bounds[1])


def _direction_bisection(model, attack: Attack, x, y, mask, eps_max, tol, counter) -> dict[str, torch.Tensor]:
    """One gradient, then forward passes only: the attack's point at eps is clip(x + eps * direction)."""
    ctx = BatchContext(
        model=model,
        x=x,
        y=y,
        eps=torch.full((x.shape[0],), eps_max, device=x.device),
        mask=mask,
        init=None,
        generator=torch.Generator(device=model.device),
        counter=counter,
    )
    with torch.enable_grad():
        direction, clean_logits = attack.direction(ctx, x)
    clean_wrong = attack.is_adversarial(clean_logits, y)
    lower = torch.zeros(x.shape[0], device=x.device)
    upper = torch.full_like(lower, eps_max)
    flipped_somewhere = torch.zeros_like(clean_wrong)
    active = ~clean_wrong
    with torch.no_grad():
        while active.any():
            rows = torch.nonzero(active).squeeze(1) if not active.all() else None
            mid = (lower + upper) / 2
            if rows is None:
                flip = attack.is_adversarial(attack.logits(ctx, _bounded(model, x + expand(mid, x) * direction)), y)
            else:
                candidates = _bounded(model, x[rows] + expand(mid[rows], x[rows]) * direction[rows])
                flip = torch.zeros_like(active)
                flip[rows] = attack.is_adversarial(attack.logits(ctx, candidates), y[rows])
            upper = torch.where(active & flip, mid, upper)
            lower = torch.where(active & ~flip, mid, lower)
            flipped_somewhere |= active & flip
            active = active & (upper - lower > tol)
        rows = torch.nonzero(~clean_wrong).squeeze(1)
        at_max = torch.zeros_like(clean_wrong)
        if rows.numel():
            final = _bounded(model, x[rows] + eps_max * direction[rows])
            at_max[rows] = attack.is_adversarial(attack.logits(ctx, final), y[rows])
    censored = ~clean_wrong & ~flipped_somewhere & ~at_max
    nonmonotonic = flipped_somewhere & ~at_max
    return {
        "lower": lower,
        "upper": upper,
        "clean_wrong": clean_wrong,
        "censored": censored,
        "nonmonotonic": nonmonotonic,
    }


def _clean_wrong(model, attack: Attack, x, y, counter) -> torch.Tensor:
    with torch.no_grad():
        counter.forward += x.shape[0]
        return attack.is_adversarial(model.forward(x), y)


def _rows_mask(mask: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor | None:
    return mask if mask is None or mask.shape[0] == 1 else mask[rows]


def _absorb(counter: Counter, result) -> None:
    counter.forward += result.forward_calls
    counter.gradient += result.gradient_calls


def _attack_bisection(model, attack: Attack, x, y, mask, eps_max, tol, counter) -> dict[str, torch.Tensor]:
    """Bisection re-running ``attack`` per round, warm-started from the last successful adversarial."""
    clean_wrong = _clean_wrong(model, attack, x, y, counter)
    lower = torch.zeros(x.shape[0], device=x.device)
    upper = torch.full_like(lower, eps_max)
    censored = torch.zeros_like(clean_wrong)
    best = x.clone()
    rows = torch.nonzero(~clean_wrong).squeeze(1)
    if rows.numel():
        first = attack.attack(model, x[rows], y[rows], eps=eps_max, mask=_rows_mask(mask, rows))
        _absorb(counter, first)
        censored[rows] = ~first.success.to(x.device)
        best[rows] = first.adversarials.to(x.device)
    active = ~clean_wrong & ~censored & (upper - lower > tol)
    while active.any():
        rows = torch.nonzero(active).squeeze(1)
        mid = (lower + upper) / 2
        result = attack.attack(model, x[rows], y[rows], eps=mid[rows], mask=_rows_mask(mask, rows), init=best[rows])
        _absorb(counter, result)
        success = result.success.to(x.device)
        upper[rows] = torch.where(success, mid[rows], upper[rows])
        lower[rows] = torch.where(success, lower[rows], mid[rows])
        best[rows[success]] = result.adversarials.to(x.device)[success]
        active = active & (upper - lower > tol)
    return {
        "lower": lower,
        "upper": upper,
        "clean_wrong": clean_wrong,
        "censored": censored,
        "nonmonotonic": torch.zeros_like(clean_wrong),
    }


def _minimum_norm(model, attack: Attack, x, y, mask, eps_max, counter) -> dict[str, torch.Tensor]:
    """A minimum-norm attack answers directly: eps* is the norm of its adversarial."""
    clean_wrong = _clean_wrong(model, attack, x, y, counter)
    result = attack.attack(model, x, y, eps=eps_max, mask=mask)
    _absorb(counter, result)
    success = result.success.to(x.device) & ~clean_wrong
    norms = result.norms.to(x.device)
    upper = torch.where(success, norms, torch.full_like(norms, eps_max))
    return {
        "lower": torch.zeros_like(upper),
        "upper": upper,
        "clean_wrong": clean_wrong,
        "censored": ~clean_wrong & ~success,
        "nonmonotonic": torch.zeros_like(clean_wrong),
    }


@dataclass(frozen=True)
class LinearScan:
    """Brute-force FGSM scan on the grid tol, 2 tol, ..., eps_max along trustlab's FGSM direction."""

    first_flip: torch.Tensor  # smallest grid eps that flips (0 if wrong at start, inf if none)
    nonmonotonic: torch.Tensor  # flipped at some grid eps but correct at a larger evaluated one
    exhaustive: bool  # False: only eps_max was checked above the first flip


def linear_scan(
    model: Classifier,
    x: Any,
    y: Any,
    *,
    eps_max: float = 0.5,
    tol: float = 1 / 512,
    mask: Any = None,
    exhaustive: bool = False,
    show_progress: bool = True,
) -> LinearScan:
    """Reference for the bisection: evaluate FGSM at every grid point (slow; for validation)."""
    attack = FGSM()
    x = model.validate(x)
    y = model.validate_labels(y, x.shape[0])
    mask_all = parse_mask(mask, x)
    steps = int(round(eps_max / tol))
    grid = torch.arange(1, steps + 1, dtype=torch.float64) * tol

    def scan(start: int, stop: int) -> dict[str, torch.Tensor]:
        xb, yb = x[start:stop].to(model.device), y[start:stop].to(model.device)
        mb = (
            None
            if mask_all is None
            else (mask_all if mask_all.shape[0] == 1 else mask_all[start:stop]).to(model.device)
        )
        ctx = BatchContext(
            model=model,
            x=xb,
            y=yb,
            eps=torch.zeros(len(xb), device=xb.device),
            mask=mb,
            init=None,
            generator=torch.Generator(device=model.device),
            counter=Counter(),
        )
        with torch.enable_grad():
            direction, clean_logits = attack.direction(ctx, xb)
        wrong = attack.is_adversarial(clean_logits, yb)
        first = torch.where(wrong, 0.0, math.inf).to(torch.float64)
        recovered = torch.zeros_like(wrong)
        with torch.no_grad():
            for eps in grid.tolist():
                pending = torch.isinf(first) if not exhaustive else ~wrong
                if not exhaustive and not pending.any():
                    break
                rows = torch.nonzero(pending).squeeze(1)
                flip = attack.is_adversarial(
                    attack.logits(ctx, _bounded(model, xb[rows] + float(eps) * direction[rows])), yb[rows]
                )
                already = torch.isfinite(first[rows])
                recovered[rows] |= already & ~flip
                newly = rows[flip & ~already]
                first[newly] = eps
            if not exhaustive:
                rows = torch.nonzero(torch.isfinite(first) & ~wrong).squeeze(1)
                if rows.numel():
                    at_max = attack.is_adversarial(
                        attack.logits(ctx, _bounded(model, xb[rows] + eps_max * direction[rows])), yb[rows]
                    )
                    recovered[rows] = ~at_max
        return {"first": first, "recovered": recovered}

    out = run_batches(scan, x.shape[0], model.batch_size, desc="linear scan", show_progress=show_progress)
    return LinearScan(first_flip=out["first"], nonmonotonic=out["recovered"].bool(), exhaustive=exhaustive)
