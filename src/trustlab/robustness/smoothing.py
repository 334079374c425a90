"""Randomised smoothing (Cohen, Rosenfeld & Kolter 2019): a certified L2 lower bound on robustness.

The smoothed classifier of a base classifier ``f`` at noise level ``sigma`` is

    g(x) = argmax_c P(f(x + eps) = c),   eps ~ N(0, sigma^2 I).

If the top class has probability ``pA >= pA_lower > 1/2`` then ``g`` returns that class for every
perturbation with ``||delta||_2 < sigma * Phi^{-1}(pA_lower)`` (Phi: the standard normal CDF).
Nobody can compute ``pA`` exactly; the paper's two Monte Carlo procedures bound it instead:

* :func:`smoothed_predict` (PREDICT): ``n`` noisy copies of each input, the two most frequent
  classes with counts ``nA >= nB``; the answer is the top class if a two-sided binomial test of
  ``nA`` out of ``nA + nB`` against 1/2 rejects at ``alpha``, otherwise it abstains. The probability
  of returning a class other than ``g(x)`` is at most ``alpha``.
* :func:`certify` (CERTIFY): ``n0`` noisy copies select the candidate class ``cA``; ``n`` fresh
  copies count ``nA`` hits of it; ``pA_lower`` is the one-sided Clopper-Pearson lower bound at level
  ``1 - alpha`` (the ``alpha`` quantile of Beta(nA, n - nA + 1), 0 when nA = 0). If
  ``pA_lower < 1/2`` it abstains, otherwise it returns ``cA`` with radius
  ``sigma * Phi^{-1}(pA_lower)``. With probability at least ``1 - alpha`` over the sampling, a
  returned class is ``g(x)`` and ``g`` is constant on the L2 ball of that radius.

Choices, stated once:

* Noise is added in **pixel space** (the space the Classifier's bounds refer to; its normalisation
  is applied inside ``forward`` after the noise) and is **not clipped** to the bounds, as in the
  paper: the guarantee is about the Gaussian smoothing of ``f`` over all of R^d, which clipping
  would change. Base classifiers should be trained under the same noise (see
  ``scripts/train_smoothing_cnn.py``).
* The certificate is an L2 radius. :attr:`SmoothingResult.linf_radius` (``radius / sqrt(d)``, d the
  input dimension) is the L-inf budget it *implies*, a loose consequence of
  ``||delta||_2 <= sqrt(d) ||delta||_inf``, not an L-inf certificate in its own right.
* Sampling is vectorised over examples *and* noise draws: each group of examples needs
  ``examples x samples`` noisy inputs, which are passed to the model ``batch_size`` at a time (the
  classifier's own unless given), so memory is bounded whatever ``n`` is. Groups run through
  :func:`~trustlab.core.batching.run_batches` (progress bar, checkpoints, executors).
* Deterministic given ``seed``: each group of examples draws from its own ``torch.Generator``
  seeded from ``(seed, first example index)``. Results therefore depend on the seed and on the
  group size (``batch_size // samples`` examples, at least one), not on the executor.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

from trustlab.core.batching import BatchCheckpoint, run_batches
from trustlab.core.exceptions import InputError
from trustlab.core.results import Record, Result
from trustlab.core.validate import positive_int
from trustlab.models.classifier import Classifier

ABSTAIN = -1
ERR_SIGMA = "sigma must be a positive finite number (noise standard deviation in pixel units), got {got!r}"
ERR_ALPHA = "alpha must be a number strictly between 0 and 1, got {got!r}"
ERR_NORM = "norm must be 'l2' or 'linf', got {got!r}"


# ---------------------------------------------------------------------------- statistics --------
def clopper_pearson_lower(successes: Any, trials: Any, alpha: float) -> np.ndarray:
    """One-sided Clopper-Pearson lower confidence bound at level ``1 - alpha`` on a binomial
    proportion: the ``alpha`` quantile of Beta(k, n - k + 1), and 0 where k = 0 (vectorised)."""
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        bound = stats.beta.ppf(alpha, np.maximum(k, 1.0), n - k + 1.0)
    return np.where(k > 0, bound, 0.0)


def binomial_test_half(successes: Any, trials: Any) -> np.ndarray:
    """Two-sided exact binomial test p-value of ``successes`` out of ``trials`` against p = 1/2
    (vectorised; 1 where trials = 0). By symmetry it is twice the upper tail beyond the larger of
    ``k`` and ``n - k``, capped at 1 (what ``scipy.stats.binomtest`` computes for p = 1/2)."""
    k = np.asarray(successes, dtype=np.int64)
    n = np.asarray(trials, dtype=np.int64)
    far = np.maximum(k, n - k)
    p = np.minimum(1.0, 2.0 * stats.binom.sf(far - 1, n, 0.5))
    return np.where(n > 0, p, 1.0)


def smoothing_radius(pa_lower: Any, sigma: float) -> np.ndarray:
    """``sigma * Phi^{-1}(pa_lower)`` where ``pa_lower >= 1/2``, 0 elsewhere (abstentions)."""
    p = np.asarray(pa_lower, dtype=np.float64)
    return np.where(p >= 0.5, sigma * stats.norm.ppf(np.clip(p, 0.5, 1.0)), 0.0)


# ---------------------------------------------------------------------------- results -----------
@dataclass(frozen=True)
class SmoothingResult(Result):
    """CERTIFY's answer for N examples (tuples of length N) and the settings that produced it.

    ``prediction`` is the smoothed class, or -1 where it abstains; ``radius`` the certified L2
    radius (0 on abstain); ``pa_lower`` the Clopper-Pearson lower bound on the top class's
    probability under noise; ``counts`` how many of the ``n`` estimation samples the base
    classifier put in the candidate class ``selected`` (chosen from the ``n0`` selection samples);
    ``correct`` whether the prediction equals the label (an abstention is wrong).
    """

    kind = "robustness.smoothing"
    sigma: float
    n0: int
    n: int
    alpha: float
    seed: int
    input_dim: int
    labels: tuple[int, ...]
    prediction: tuple[int, ...]
    selected: tuple[int, ...]
    counts: tuple[int, ...]
    pa_lower: tuple[float, ...]
    radius: tuple[float, ...]
    correct: tuple[bool, ...]
    forward_calls: int
    seconds: float
    dataset: str = ""
    split: str = ""

    @property
    def examples(self) -> int:
        """Number of certified examples."""
        return len(self.labels)

    @property
    def abstained(self) -> np.ndarray:
        """Boolean array: where CERTIFY abstained (pA_lower < 1/2)."""
        return np.asarray(self.prediction, dtype=np.int64) == ABSTAIN

    @property
    def abstention_rate(self) -> float:
        """Share of examples on which CERTIFY abstained (NaN when there are none)."""
        return float(self.abstained.mean()) if self.examples else math.nan

    @property
    def linf_radius(self) -> np.ndarray:
        """The L-inf budget each L2 radius implies, ``radius / sqrt(d)``. A *loose consequence*
        (``||delta||_2 <= sqrt(d) ||delta||_inf``), not an L-inf certificate of its own: for
        MNIST (d = 784) an L2 radius of 1 implies only eps = 0.036 in L-inf."""
        return np.asarray(self.radius, dtype=np.float64) / math.sqrt(self.input_dim)

    @property
    def max_radius(self) -> float:
        """The largest radius CERTIFY can return with these settings: every one of the ``n`` samples
        in the top class gives pA_lower = alpha^(1/n), so sigma * Phi^-1(alpha^(1/n))."""
        return float(smoothing_radius(self.alpha ** (1.0 / self.n), self.sigma))

    @property
    def seconds_per_example(self) -> float:
        """Wall time of the certification divided by the number of examples."""
        return self.seconds / self.examples if self.examples else math.nan

    def _radii(self, norm: str) -> np.ndarray:
        if norm == "l2":
            return np.asarray(self.radius, dtype=np.float64)
        if norm == "linf":
            return self.linf_radius
        raise InputError(ERR_NORM.format(got=norm))

    def certified_accuracy(self, radius: float, *, norm: str = "l2") -> float:
        """Share of examples predicted correctly *and* certified at ``radius`` or more (abstentions
        count as wrong). ``norm="linf"`` uses the implied (loose) L-inf radii."""
        if not radius >= 0:
            raise InputError(f"radius must be >= 0, got {radius!r}")
        if not self.examples:
            return math.nan
        ok = np.asarray(self.correct, dtype=bool) & (self._radii(norm) >= radius)
        return float(ok.mean())

    def curve(self, grid: Any, *, norm: str = "l2") -> np.ndarray:
        """Certified accuracy at each radius of ``grid`` (see :meth:`certified_accuracy`)."""
        grid = np.asarray(grid, dtype=np.float64).reshape(-1)
        if (grid < 0).any() or np.isnan(grid).any():
            raise InputError("grid radii must be >= 0")
        if not self.examples:
            return np.full(grid.shape, math.nan)
        ok = np.asarray(self.correct, dtype=bool)[None, :] & (self._radii(norm)[None, :] >= grid[:, None])
        return ok.mean(1)


@dataclass(frozen=True)
class SmoothedPrediction(Record):
    """PREDICT's answer for N examples: the smoothed class (-1 = abstain), the two-sided binomial
    test's p-value on the top two counts, and the settings."""

    kind = "robustness.smoothed_prediction"
    sigma: float
    n: int
    alpha: float
    seed: int
    prediction: tuple[int, ...]
    p_value: tuple[float, ...]
    forward_calls: int
    seconds: float

    @property
    def abstention_rate(self) -> float:
        """Share of examples on which PREDICT abstained (NaN when there are none)."""
        if not self.prediction:
            return math.nan
        return float((np.asarray(self.prediction) == ABSTAIN).mean())


# ---------------------------------------------------------------------------- sampling ----------
@dataclass
class _Counter:
    forward: int = 0


def _check_sigma(sigma: Any) -> float:
    if (
        isinstance(sigma, bool)
        or not isinstance(sigma, int | float | np.floating)
        or not (math.isfinite(sigma) and sigma > 0)
    ):
        raise InputError(ERR_SIGMA.format(got=sigma))
    return float(sigma)


def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float | np.floating) or not 0 < alpha < 1:
        raise InputError(ERR_ALPHA.format(got=alpha))
    return float(alpha)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _generator(device: torch.device, seed: int, start: int) -> torch.Generator:
    """A generator for the group of examples starting at ``start``, independent of the others."""
    state = int(np.random.SeedSequence([seed, start]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(state)


def sample_counts(
    model: Classifier,
    x: torch.Tensor,
    samples: int,
    sigma: float,
    generator: torch.Generator,
    *,
    batch_size: int | None = None,
    counter: _Counter | None = None,
) -> torch.Tensor:
    """(N, classes) counts of the base classifier's predictions on ``samples`` noisy copies
    (unclipped N(0, sigma^2) in pixel space) of each input of ``x`` (already on the model's device).
    The ``N x samples`` noisy inputs are built and classified ``batch_size`` at a time."""
    k, classes = x.shape[0], model.num_classes
    size = batch_size or model.batch_size
    total = k * samples
    counts = torch.zeros(k * classes, dtype=torch.int64, device=x.device)
    with torch.no_grad():
        for start in range(0, total, size):
            owner = torch.arange(start, min(start + size, total), device=x.device) // samples
            clean = x[owner]
            noise = torch.randn(clean.shape, generator=generator, device=x.device, dtype=clean.dtype)
            predicted = model.forward(clean + sigma * noise).argmax(1)
            counts += torch.bincount(owner * classes + predicted, minlength=k * classes)
            if counter is not None:
                counter.forward += int(owner.numel())
    return counts.view(k, classes)


def _prepare(model: Classifier, x: Any, sigma: Any, alpha: Any, seed: Any, batch_size: Any):
    sigma = _check_sigma(sigma)
    alpha = _check_alpha(alpha)
    seed = _check_seed(seed)
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size")
    return model.validate(x), sigma, alpha, seed, batch_size or model.batch_size


def certify(
    model: Classifier,
    x: Any,
    y: Any,
    *,
    sigma: float,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    seed: int = 0,
    batch_size: int | None = None,
    checkpoint: BatchCheckpoint | None = None,
    show_progress: bool = True,
    dataset: str = "",
    split: str = "",
) -> SmoothingResult:
    """Cohen et al.'s CERTIFY for every example of ``x`` (pixel space) with labels ``y``.

    ``n0`` noise samples per example select the candidate class, ``n`` more estimate its
    probability; ``alpha`` is the failure probability of each certificate. ``batch_size`` bounds the
    noisy inputs per forward pass (default: the classifier's). See the module docstring for the
    noise (pixel space, unclipped) and for determinism.
    """
    x, sigma, alpha, seed, size = _prepare(model, x, sigma, alpha, seed, batch_size)
    n0 = positive_int(n0, "n0")
    n = positive_int(n, "n")
    count = x.shape[0]
    y = model.validate_labels(y, count)
    counter = _Counter()
    started = time.perf_counter()

    def run(start: int, stop: int) -> dict[str, torch.Tensor]:
        xb = x[start:stop].to(model.device)
        generator = _generator(model.device, seed, start)
        selection = sample_counts(model, xb, n0, sigma, generator, batch_size=size, counter=counter)
        candidate = selection.argmax(1)
        estimation = sample_counts(model, xb, n, sigma, generator, batch_size=size, counter=counter)
        hits = estimation.gather(1, candidate[:, None]).squeeze(1)
        return {"selected": candidate.cpu(), "counts": hits.cpu()}

    group = max(1, size // (n0 + n))
    out = run_batches(
        run, count, group, checkpoint=checkpoint, desc=f"certify (sigma {sigma:g})", show_progress=show_progress
    )
    selected = out["selected"].numpy() if out else np.zeros(0, dtype=np.int64)
    hits = out["counts"].numpy() if out else np.zeros(0, dtype=np.int64)
    pa_lower = clopper_pearson_lower(hits, n, alpha)
    certified = pa_lower >= 0.5
    prediction = np.where(certified, selected, ABSTAIN)
    radius = smoothing_radius(pa_lower, sigma)
    labels = y.cpu().numpy()
    return SmoothingResult(
        sigma=sigma,
        n0=n0,
        n=n,
        alpha=alpha,
        seed=seed,
        input_dim=int(np.prod(model.input_shape)),
        labels=tuple(int(v) for v in labels),
        prediction=tuple(int(v) for v in prediction),
        selected=tuple(int(v) for v in selected),
        counts=tuple(int(v) for v in hits),
        pa_lower=tuple(float(v) for v in pa_lower),
        radius=tuple(float(v) for v in radius),
        correct=tuple(bool(v) for v in prediction == labels),
        forward_calls=counter.forward,
        seconds=time.perf_counter() - started,
        dataset=dataset,
        split=split,
    )


def smoothed_predict(
    model: Classifier,
    x: Any,
    *,
    sigma: float,
    n: int = 100_000,
    alpha: float = 0.001,
    seed: int = 0,
    batch_size: int | None = None,
    show_progress: bool = True,
) -> SmoothedPrediction:
    """Cohen et al.'s PREDICT for every example of ``x`` (pixel space): the top class of ``n`` noisy
    copies if the two-sided binomial test of the top two counts against 1/2 rejects at ``alpha``,
    else -1 (abstain). Same noise, batching and seeding as :func:`certify`."""
    x, sigma, alpha, seed, size = _prepare(model, x, sigma, alpha, seed, batch_size)
    n = positive_int(n, "n")
    counter = _Counter()
    started = time.perf_counter()

    def run(start: int, stop: int) -> dict[str, torch.Tensor]:
        xb = x[start:stop].to(model.device)
        counts = sample_counts(
            model, xb, n, sigma, _generator(model.device, seed, start), batch_size=size, counter=counter
        )
        top = torch.topk(counts, min(2, counts.shape[1]), dim=1)
        second = top.values[:, 1] if counts.shape[1] > 1 else torch.zeros_like(top.values[:, 0])
        return {"top": top.indices[:, 0].cpu(), "n_a": top.values[:, 0].cpu(), "n_b": second.cpu()}

    out = run_batches(
        run, x.shape[0], max(1, size // n), desc=f"smoothed predict (sigma {sigma:g})", show_progress=show_progress
    )
    empty = np.zeros(0, dtype=np.int64)
    top, n_a, n_b = (out[k].numpy() if out else empty for k in ("top", "n_a", "n_b"))
    p_value = binomial_test_half(n_a, n_a + n_b)
    prediction = np.where(p_value <= alpha, top, ABSTAIN)
    return SmoothedPrediction(
        sigma=sigma,
        n=n,
        alpha=alpha,
        seed=seed,
        prediction=tuple(int(v) for v in prediction),
        p_value=tuple(float(v) for v in p_value),
        forward_calls=counter.forward,
        seconds=time.perf_counter() - started,
    )
