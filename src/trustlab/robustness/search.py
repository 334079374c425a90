"""Per-example minimal epsilon: a batched search over a per-example epsilon tensor.

For every example the search returns the smallest budget (to tolerance ``tol``) at which the
attack flips its prediction, with the bracket ``(lower, upper]`` that proves it: correct at
``lower`` (or lower = 0), flipped at ``upper`` (by ``attack.is_adversarial``), width <= tol:

* examples misclassified before any perturbation get eps* = 0 (``clean_wrong``);
* examples not flipped at ``eps_max`` are ``censored`` (eps* = inf), never dropped;
* examples are frozen as soon as their bracket is within ``tol``.

FGSM takes a fast path: its direction does not depend on eps, so one gradient per example is
computed and every later step is a forward pass only. Along that ray the margin
m(eps) = max_{j != y} z_j - z_y at clip(x + eps * direction) is a function of one variable, and
``root_finder`` says how its sign change is located:

* ``"quadratic"`` (default): eps_max is checked first; for examples flipped there, [0, eps_max]
  brackets a sign change (m(0) comes with the gradient) and a bracketed interpolation uses the
  margin *values*: the root of the quadratic through both bracket ends and the end replaced
  last (in the first round, through both ends with the margin's slope at eps = 0, estimated
  from the gradient already taken: :meth:`Attack.margin_rate`), kept at least tol inside the
  bracket so that it closes on both sides, with midpoints for the last step and after ceil(log2(eps_max / tol))
  interpolation rounds, so at most twice bisection's rounds whatever the margin does
  (:func:`_bracketed_quadratic`). The values only place points; flips are always decided by
  ``attack.is_adversarial``, so ties go where argmax puts them. Examples *not* flipped at
  eps_max have no sign change to follow; they get the bisection's midpoints, except those a
  bound on the margin's rate of change proves not flipped, which are skipped
  (:func:`_guided_bisect`): the same bracket and flags as with ``"bisection"`` unless a flip
  window is steeper than the bound. See ``benchmarks/fgsm_root.py`` for the forward passes
  saved and the agreement on the MNIST reference CNNs;
* ``"bisection"`` (the reference): ceil(log2(eps_max / tol)) forward passes per example, then
  one check at eps_max.

Flags mean the same for both: ``censored`` = not flipped at eps_max nor at any bisection
midpoint; ``nonmonotonic`` = flipped at some evaluated eps but correct again at eps_max. An
example flipped at eps_max whose margin crosses zero more than once is not flagged by either;
both return a valid bracket, possibly around different crossings. Other fixed-budget attacks
(PGD, APGD, Square) are re-run per bisection round on the active examples, warm-started from
each example's last successful adversarial (``root_finder`` does not apply: their success is
only a yes/no); minimum-norm attacks (FMN) are run once and their norms are eps*.
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
from trustlab.robustness.attacks.base import BatchContext, Counter, expand, margin, parse_mask
from trustlab.robustness.evaluate import check_eps

ROOT_FINDERS = ("quadratic", "bisection")
# _guided_bisect's rate bound is this times the steepest slope seen on the ray. Chosen on 4,000
# training digits (mnist_cnn_robust, 869 not flipped at eps_max) and 10,000 (mnist_cnn, 142): no
# answer changed from 0.5 to 4; the first change appeared at 0.25.
SKIP_SAFETY = 1.0
ERR_ROOT_FINDER = "root_finder must be one of {choices}, got {got!r}"


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
    root_finder: str = "quadratic",
) -> MinimalEps:
    """Smallest eps flipping each example under ``attack`` (see module docstring).

    ``root_finder`` ("quadratic" or the reference "bisection") chooses how fixed-direction
    attacks (FGSM) search along their ray; other attacks ignore it.
    ``mask`` restricts the perturbation to some pixels (broadcastable to ``x``). With a
    ``checkpoint`` the search resumes from the last completed batch. ``eps_max`` above the input
    range (see :func:`~trustlab.robustness.evaluate.check_eps`) is refused before any attack runs.
    """
    if root_finder not in ROOT_FINDERS:
        raise InputError(ERR_ROOT_FINDER.format(choices=", ".join(ROOT_FINDERS), got=root_finder))
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
            out = _direction_search(model, attack, xb, yb, batch_mask, eps_max, tol, counter, root_finder)
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


def _direction_search(
    model, attack: Attack, x, y, mask, eps_max, tol, counter, root_finder: str
) -> dict[str, torch.Tensor]:
    """One gradient, then forward passes only: the attack's point at eps is clip(x + eps * direction).

    ``root_finder`` "bisection" bisects every example on [0, eps_max] and checks eps_max last;
    "quadratic" checks eps_max first, runs :func:`_bracketed_quadratic` on the examples flipped there and
    :func:`_guided_bisect` (the reference's midpoints, some skipped) on the others.
    """
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
        direction, clean_logits, rate = attack.direction(ctx, x)

    def evaluate(rows: torch.Tensor | None, eps: torch.Tensor) -> torch.Tensor:
        """Logits at clip(x + eps * direction) for ``rows`` (None: every row); ``eps`` per row."""
        if rows is None:
            return attack.logits(ctx, _bounded(model, x + expand(eps, x) * direction))
        xr = x[rows]
        return attack.logits(ctx, _bounded(model, xr + expand(eps, xr) * direction[rows]))

    clean_wrong = attack.is_adversarial(clean_logits, y)
    lower = torch.zeros(x.shape[0], device=x.device)
    upper = torch.full_like(lower, eps_max)
    at_max = torch.zeros_like(clean_wrong)
    flipped_somewhere = torch.zeros_like(clean_wrong)
    with torch.no_grad():
        if root_finder == "bisection":
            flipped_somewhere = _bisect(attack, evaluate, y, lower, upper, ~clean_wrong, tol)
            rows = torch.nonzero(~clean_wrong).squeeze(1)
            if rows.numel():
                at_max[rows] = attack.is_adversarial(evaluate(rows, upper.new_full((rows.numel(),), eps_max)), y[rows])
        else:  # quadratic
            rows = torch.nonzero(~clean_wrong).squeeze(1)
            value_max = torch.zeros_like(lower, dtype=torch.float64)
            if rows.numel():
                logits = evaluate(rows, upper.new_full((rows.numel(),), eps_max))
                at_max[rows] = attack.is_adversarial(logits, y[rows])
                value_max[rows] = _flip_value(attack, logits, y[rows])
            value_clean = _flip_value(attack, clean_logits, y)
            _bracketed_quadratic(
                attack, evaluate, y, lower, upper, value_clean, value_max, at_max, tol, eps_max, slope_lower=rate
            )
            flipped_somewhere = at_max | _guided_bisect(
                attack, evaluate, y, lower, upper, ~clean_wrong & ~at_max, tol, value_clean, value_max, rate
            )
    censored = ~clean_wrong & ~flipped_somewhere & ~at_max
    nonmonotonic = flipped_somewhere & ~at_max
    return {
        "lower": lower,
        "upper": upper,
        "clean_wrong": clean_wrong,
        "censored": censored,
        "nonmonotonic": nonmonotonic,
    }


def _flip_value(attack: Attack, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A continuous value that is >= 0 where ``attack.is_adversarial`` holds and <= 0 where it does
    not (ties, 0, go either way, as argmax breaks them): the margin max_{j != y} z_j - z_y, negated
    for a targeted attack (then ``y`` is the target). It only places the next point; flips are
    decided by ``is_adversarial``."""
    value = margin(logits, y).to(torch.float64)
    return -value if attack.targeted else value


def _bisect(attack: Attack, evaluate, y, lower, upper, active, tol) -> torch.Tensor:
    """Bisection of the brackets (lower, upper] of ``active`` rows in place, until width <= tol.

    Returns which rows flipped at some evaluated midpoint.
    """
    flipped_somewhere = torch.zeros_like(active)
    active = active.clone()
    while active.any():
        rows = torch.nonzero(active).squeeze(1) if not active.all() else None
        mid = (lower + upper) / 2
        if rows is None:
            flip = attack.is_adversarial(evaluate(None, mid), y)
        else:
            flip = torch.zeros_like(active)
            flip[rows] = attack.is_adversarial(evaluate(rows, mid[rows]), y[rows])
        upper.copy_(torch.where(active & flip, mid, upper))
        lower.copy_(torch.where(active & ~flip, mid, lower))
        flipped_somewhere |= active & flip
        active &= upper - lower > tol
    return flipped_somewhere


def _guided_bisect(
    attack: Attack, evaluate, y, lower, upper, active, tol, value_clean, value_max, rate
) -> torch.Tensor:
    """:func:`_bisect` of rows *not* flipped at eps_max, skipping midpoints a rate bound clears.

    Same midpoints as the bisection. Until a row's first flip, a midpoint p is taken as not
    flipped, without evaluating it, when its flip value could not reach 0 there at a rate of at
    most K from either known side: v_l + K (p - l) < 0 and v_max + K (eps_max - p) < 0, where
    (l, v_l) is the row's last evaluated point (eps = 0 at first) and K = SKIP_SAFETY times the
    largest of |``rate``| (the estimated slope at eps = 0), the secant slope over [0, eps_max] and
    the slopes between the points evaluated so far. After the first flip it is the plain
    bisection. A bump steeper than K between evaluated points can be missed (then the example
    looks censored or gets another crossing); ``benchmarks/fgsm_root.py`` counts how often.
    Returns which rows flipped at some evaluated midpoint.
    """
    eps_max = upper.clone()
    at_v = value_clean.clamp(max=0.0).clone()
    at_e = torch.zeros_like(lower)
    bound = torch.maximum(rate.double().abs(), (value_max - value_clean).abs() / eps_max.double())
    bound = torch.where(torch.isfinite(bound), SKIP_SAFETY * bound, torch.full_like(bound, math.inf))
    flipped_somewhere = torch.zeros_like(active)
    active = active.clone()
    while active.any():
        mid = (lower + upper) / 2
        clear = (at_v + bound * (mid - at_e) < 0) & (value_max + bound * (eps_max - mid) < 0)
        probe = active & ~(clear & ~flipped_somewhere)
        flip = torch.zeros_like(active)
        rows = torch.nonzero(probe).squeeze(1)
        if rows.numel():
            logits = evaluate(rows, mid[rows])
            flip[rows] = attack.is_adversarial(logits, y[rows])
            first = ~flipped_somewhere[rows]  # still before the first flip: learn the slope
            value = _flip_value(attack, logits, y[rows])
            slope = (value - at_v[rows]).abs() / (mid[rows] - at_e[rows]).double()
            learn = rows[first]
            bound[learn] = torch.maximum(bound[learn], SKIP_SAFETY * slope[first])
            at_v[learn], at_e[learn] = value[first], mid[learn]
        upper.copy_(torch.where(active & flip, mid, upper))
        lower.copy_(torch.where(active & ~flip, mid, lower))
        flipped_somewhere |= active & flip
        active &= upper - lower > tol
    return flipped_somewhere


def _bracketed_quadratic(
    attack: Attack, evaluate, y, lower, upper, value_lower, value_upper, active, tol, eps_max, slope_lower=None
) -> None:
    """Shrink the brackets (lower, upper] of ``active`` rows in place to width <= tol.

    Invariant: correct at ``lower`` (or lower = 0) and flipped at ``upper``, by
    ``attack.is_adversarial``; ``value_lower`` <= 0 <= ``value_upper`` are the flip values there
    (see :func:`_flip_value`). Each round evaluates one point per active row and moves one end
    to it. The point is

    * the root inside the bracket of the quadratic through both ends and the end replaced last;
      in the first round, through both ends with the slope ``slope_lower`` at the lower end
      (where it is positive and finite; else the false-position point, i.e. the secant). With a
      sign change between the ends that quadratic has exactly one root there. If it has none
      (rounding), the false-position point is used;
    * kept at least tol inside both ends, so an estimate within tol of an end tests that end
      +- tol, which closes the bracket when the estimate is right, and every round shrinks the
      bracket by at least tol;
    * the midpoint once the bracket is within 2 tol (closes it), and after ``rounds`` =
      ceil(log2(eps_max / tol)) interpolation rounds (what bisection needs), so at most 2 ceil(log2(eps_max / tol))
      rounds whatever the margin does.
    """
    rounds = max(1, math.ceil(math.log2(eps_max / tol)))
    value_lower = value_lower.clamp(max=0.0)  # ties count on the side is_adversarial put them
    value_upper = value_upper.clamp(min=0.0)
    third = torch.full_like(value_lower, math.nan)  # the end replaced last (x, value); nan: none yet
    third_value = torch.full_like(value_lower, math.nan)
    slope = torch.full_like(value_lower, math.nan) if slope_lower is None else slope_lower.double()
    active = active & (upper - lower > tol)
    done = 0
    while active.any():
        rows = torch.nonzero(active).squeeze(1)
        a, b = lower[rows], upper[rows]
        fa, fb = value_lower[rows], value_upper[rows]
        width = b - a
        guess = _quadratic_root(a.double(), b.double(), fa, fb, third[rows], third_value[rows], slope[rows])
        guess = guess.to(a.dtype)
        point = guess.clamp(min=a + tol, max=b - tol)
        bisect = (width <= 2 * tol) | ~torch.isfinite(guess) | (done >= rounds)
        point = torch.where(bisect, (a + b) / 2, point)
        logits = evaluate(rows, point)
        flip = attack.is_adversarial(logits, y[rows])
        value = _flip_value(attack, logits, y[rows])
        third[rows] = torch.where(flip, b, a).double()
        third_value[rows] = torch.where(flip, fb, fa)
        value_lower[rows] = torch.where(flip, fa, value.clamp(max=0.0))
        value_upper[rows] = torch.where(flip, value.clamp(min=0.0), fb)
        lower[rows] = torch.where(flip, a, point)
        upper[rows] = torch.where(flip, point, b)
        active[rows] = upper[rows] - lower[rows] > tol
        done += 1


def _quadratic_root(a, b, fa, fb, t, ft, slope_a) -> torch.Tensor:
    """Root in [a, b] of the quadratic through (a, fa), (b, fb), (t, ft), where fa <= 0 <= fb;
    where t is nan, of the quadratic through (a, fa), (b, fb) with slope ``slope_a`` at a; the
    secant's root where that is nan or not positive too, or the points are collinear; nan where
    none lies in [a, b] (both values 0, rounding). The caller keeps the point tol inside."""
    width = b - a
    slope = (fb - fa) / width
    curve = ((ft - fa) / (t - a) - slope) / (t - b)  # second divided difference
    hermite = torch.isnan(t) & torch.isfinite(slope_a) & (slope_a > 0)
    curve = torch.where(hermite, (slope - slope_a) / width, curve)
    curve = torch.where(torch.isfinite(curve), curve, torch.zeros_like(curve))
    # q(u) = curve u^2 + (slope - curve width) u + fa, u = e - a; stable roots C/q and q/A
    big_b = slope - curve * width
    disc = (big_b * big_b - 4 * curve * fa).clamp(min=0.0)
    q = -0.5 * (big_b + torch.copysign(disc.sqrt(), big_b))
    first, second = fa / q, q / curve
    secant = -fa / slope

    def inside(u: torch.Tensor) -> torch.Tensor:  # the ends count: the caller moves points tol inside
        return torch.isfinite(u) & (u >= 0) & (u <= width)

    u = torch.where(inside(first), first, torch.where(inside(second), second, secant))
    u = torch.where(inside(u), u, torch.full_like(u, math.nan))
    return a + u


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
            direction, clean_logits, _ = attack.direction(ctx, xb)
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
