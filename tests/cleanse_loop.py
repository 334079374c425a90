"""A plain, one-label-at-a-time Neural Cleanse written from the paper's schedule with scalar
bookkeeping, as the original code runs it: the reference the batched scan is tested against
(same results) and timed against (benchmarks/backdoor.py).

It shares only the seed convention with trustlab (each label's initial mask and pattern, the
order of the mini-batches), so that both optimise from the same start.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trustlab.backdoor.cleanse import CleanseSettings, _initial


def _squash(theta: torch.Tensor) -> torch.Tensor:
    return torch.tanh(theta) / 2 + 0.5


def cleanse_one_label(classifier, x, label: int, settings: CleanseSettings, seed: int) -> tuple[float, int]:
    """The smallest mask norm reaching the success threshold for ``label`` and the epochs run."""
    channels, height, width = classifier.input_shape
    low, high = classifier.bounds
    mask0, pattern0 = _initial(seed, label, input_shape=(channels, height, width))
    limit = 1 - 1e-6
    theta_m = torch.atanh(((mask0 - 0.5) * 2).clamp(-limit, limit)).unsqueeze(0).requires_grad_()
    theta_p = torch.atanh(((pattern0 - 0.5) * 2).clamp(-limit, limit)).unsqueeze(0).requires_grad_()
    opt = torch.optim.Adam([theta_m, theta_p], lr=settings.learning_rate, betas=settings.betas)
    generator = torch.Generator().manual_seed(seed)
    cost = settings.init_cost
    best = math.inf
    up = down = zero_epochs = stale = 0
    moved_up = moved_down = False
    early_best = math.inf
    b = settings.batch_size
    steps = x.shape[0] // b
    target = torch.full((b,), label)
    epochs = 0
    for _ in range(settings.epochs):
        order = torch.randperm(x.shape[0], generator=generator)
        hits = norms = 0.0
        for step in range(steps):
            xb = x[order[step * b : (step + 1) * b]]
            mask = _squash(theta_m)
            pattern = low + (high - low) * _squash(theta_p)
            logits = classifier.forward((1 - mask) * xb + mask * pattern)
            ce = F.cross_entropy(logits, target)
            norm = mask.abs().sum()
            theta_m.grad, theta_p.grad = torch.autograd.grad(ce + cost * norm, [theta_m, theta_p])
            opt.step()
            hits += float((logits.argmax(1) == target).float().mean())
            norms += float(norm.detach())
        epochs += 1
        success, norm = hits / steps, norms / steps
        if success >= settings.success_threshold and norm < best:
            best = norm
        if best < math.inf:
            stale = stale + 1 if best >= early_best else 0
        early_best = min(early_best, best)
        if moved_up and moved_down and stale >= settings.early_stop_patience:
            break
        if cost == 0 and success >= settings.success_threshold:
            zero_epochs += 1
            if zero_epochs >= settings.patience:
                cost, up, down, zero_epochs, moved_up, moved_down = settings.init_cost, 0, 0, 0, False, False
        else:
            zero_epochs = 0
        if success >= settings.success_threshold:
            up, down = up + 1, 0
        else:
            up, down = 0, down + 1
        if up >= settings.patience:
            up, cost, moved_up = 0, cost * settings.cost_multiplier, True
        elif down >= settings.patience:
            down, cost, moved_down = 0, cost / settings.cost_multiplier**1.5, True
    return best, epochs
