"""Learned fair representations: Zemel, Wu, Swersky, Pitassi & Dwork (2013), "Learning Fair
Representations", ICML.

Each example is mapped to a soft assignment over K prototypes ``v_k`` (rows of a K x D matrix):
``M_nk = softmax_k(-d(x_n, v_k))`` with the weighted squared distance
``d(x, v) = sum_d alpha_d (x_d - v_d)^2``. The representation should (1) hide the protected group
(statistical parity of the assignments), (2) keep the features (reconstruction ``x_hat = M V``) and
(3) keep the label (``y_hat = M w``, ``w_k`` in (0, 1) the label probability of prototype k):

    loss = az * Lz + ax * Lx + ay * Ly
    Lz = sum_k | mean of M_nk over the privileged - mean of M_nk over the unprivileged |
    Lx = mean over examples and features of (x_hat - x)^2
    Ly = mean log loss of y_hat against y

The defaults (K = 5, ax = 0.01, ay = 1, az = 50, 5000 iterations) are the settings commonly used
with AIF360's implementation of the paper; Lx and Ly are means here, so the weights do not depend
on the data set's size.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trustlab.core.exceptions import InputError, NotFittedError
from trustlab.core.validate import positive_int
from trustlab.fairness.groups import binary, encode_groups
from trustlab.fairness.preprocess import (
    ERR_NOT_FITTED,
    ERR_WIDTH,
    feature_matrix,
    group_labels,
    privileged_split,
)

ERR_WEIGHT = "{name} must be a finite number >= 0, got {got!r}"
PROBABILITY_FLOOR = 1e-9  # y_hat is clipped to [floor, 1 - floor] inside the log loss
SMOOTHING = 1e-4  # Lz's |d| is optimised as sqrt(d^2 + s^2) - s: exact |d| stalls L-BFGS at its kinks
INIT_JITTER = 1e-3  # prototypes start at random rows moved by this many standard deviations


def _weight(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InputError(ERR_WEIGHT.format(name=name, got=value))
    if not math.isfinite(float(value)) or float(value) < 0:
        raise InputError(ERR_WEIGHT.format(name=name, got=value))
    return float(value)


class LearnedFairRepresentation:
    """Zemel et al. (2013) learned fair representations (LFR) of tabular features.

    ``fit(x, y, groups)`` learns the prototypes ``prototypes_`` (K x D), the distance weights
    ``alpha_`` and the prototype label probabilities ``w_`` (K) by minimising the loss of the
    module docstring; ``transform`` gives the reconstructed features ``x_hat = M V`` (N x D), a
    data set whose rows carry little information on the group, to train any model on;
    ``predict_proba`` gives the paper's own classifier ``y_hat = M w``.

    The protected split is binary: the group ``privileged`` (a label of ``groups``; None: the group
    with the largest positive rate at fit) against all other groups. As in the paper, each side
    has its own distance weights: ``alpha_`` is 2 x D, row 0 for the unprivileged side and row 1
    for the privileged one; at transform time, a row's group picks its weights, and any label other
    than ``privileged_`` counts as unprivileged. Weights are kept positive (``alpha = exp(a)``) and
    start at 1 / variance of each feature, so features of any scale start on an equal footing;
    ``Lx`` is still measured in the features' own units, so standardise features whose units
    differ widely.

    Optimisation: full-batch L-BFGS (torch, float64, strong-Wolfe line search) for at most
    ``max_iter`` iterations, on the loss with Lz's absolute values smoothed
    (``sqrt(d^2 + 1e-8) - 1e-4``, within 1e-4 of |d|): with the exact kinks, L-BFGS stops after a
    few dozen steps at a poor point where all prototype labels stay near 0.5. Prototypes start
    at ``prototypes`` rows drawn with ``seed`` (moved by a tiny seeded jitter so that duplicated
    rows do not give identical prototypes), ``w`` at 0.5; no global random state is touched, so
    the same seed gives the same numbers on the CPU. Each iteration costs O(N K D).

    Fitted attributes: ``prototypes_``, ``alpha_``, ``w_``, ``loss_`` (final loss),
    ``loss_terms_`` (``{"Lz", "Lx", "Ly"}`` at the end), ``loss_history_`` (the loss at every
    evaluation, the first at the starting point), ``n_iter_``, ``privileged_``, ``n_features_in_``.
    """

    def __init__(
        self,
        *,
        prototypes: int = 5,
        ax: float = 0.01,
        ay: float = 1.0,
        az: float = 50.0,
        max_iter: int = 5000,
        seed: int = 0,
        privileged: Any = None,
    ) -> None:
        self.prototypes = positive_int(prototypes, "prototypes")
        self.ax = _weight(ax, "ax")
        self.ay = _weight(ay, "ay")
        self.az = _weight(az, "az")
        self.max_iter = positive_int(max_iter, "max_iter")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise InputError(f"seed must be an integer, got {seed!r}")
        self.seed = int(seed)
        self.privileged = privileged

    # ------------------------------------------------------------------ the model -------
    @staticmethod
    def _memberships(x: Any, side: Any, prototypes: Any, log_alpha: Any) -> Any:
        """M (N x K) from features (N x D), side (N, 0/1 long), prototypes (K x D), log_alpha (2 x D).
        Expanded distances, so memory is N x K rather than N x K x D:
        sum_d a_nd (x_nd - v_kd)^2 = sum_d a_nd x_nd^2 - 2 sum_d a_nd x_nd v_kd + sum_d a_nd v_kd^2."""
        import torch

        weights = torch.exp(log_alpha)[side]  # N x D
        distance = (
            (weights * x * x).sum(1, keepdim=True) - 2 * (weights * x) @ prototypes.T + weights @ (prototypes**2).T
        )
        return torch.softmax(-distance.clamp_min(0), dim=1)

    def _terms(self, x: Any, y: Any, side: Any, params: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
        """The gaps ``mean M over the privileged - mean M over the unprivileged`` (K), Lx and Ly."""
        import torch

        prototypes, log_alpha, w_logit = params
        m = self._memberships(x, side, prototypes, log_alpha)
        privileged = side.bool()
        gap = m[privileged].mean(0) - m[~privileged].mean(0)
        lx = ((m @ prototypes - x) ** 2).mean()
        y_hat = (m @ torch.sigmoid(w_logit)).clamp(PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
        ly = -(y * torch.log(y_hat) + (1 - y) * torch.log1p(-y_hat)).mean()
        return gap, lx, ly

    # ------------------------------------------------------------------ fitting --------
    def fit(self, x: Any, y: Any, groups: Any) -> LearnedFairRepresentation:
        """Learn prototypes, distance weights and prototype label probabilities on ``x`` (N x D),
        binary labels ``y`` and one group label per row (at least two groups, both sides present)."""
        import torch

        codes, labels = encode_groups(groups)
        n = len(codes)
        labels_y = binary(y, "y", n)
        features = feature_matrix(x, "x", n)
        p = privileged_split(labels_y, codes, labels, self.privileged)
        side = (codes == p).astype(np.int64)

        rng = np.random.default_rng(self.seed)
        k, width = self.prototypes, features.shape[1]
        spread = features.std(0)
        start = features[rng.choice(n, size=k, replace=k > n)]
        start = start + INIT_JITTER * np.where(spread > 0, spread, 1.0) * rng.standard_normal((k, width))
        variance = features.var(0)
        log_alpha0 = -np.log(np.where(variance > 1e-12, variance, 1.0))

        tx = torch.from_numpy(features)
        ty = torch.from_numpy(labels_y.astype(np.float64))
        tside = torch.from_numpy(side)
        params = (
            torch.tensor(start, dtype=torch.float64, requires_grad=True),
            torch.tensor(np.tile(log_alpha0, (2, 1)), dtype=torch.float64, requires_grad=True),
            torch.zeros(k, dtype=torch.float64, requires_grad=True),
        )
        optimiser = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=self.max_iter,
            max_eval=self.max_iter * 5 // 4,
            tolerance_grad=1e-9,
            tolerance_change=1e-12,
            history_size=20,
            line_search_fn="strong_wolfe",
        )
        history: list[float] = []

        def closure() -> Any:
            optimiser.zero_grad()
            gap, lx, ly = self._terms(tx, ty, tside, params)
            smooth_lz = (torch.sqrt(gap * gap + SMOOTHING**2) - SMOOTHING).sum()
            rest = self.ax * lx + self.ay * ly
            loss = self.az * smooth_lz + rest
            loss.backward()
            history.append(self.az * float(gap.detach().abs().sum()) + float(rest.detach()))  # the exact loss
            return loss

        optimiser.step(closure)
        with torch.no_grad():
            gap, lx, ly = self._terms(tx, ty, tside, params)
            lz = gap.abs().sum()
        self.prototypes_ = params[0].detach().numpy().copy()
        self.alpha_ = np.exp(params[1].detach().numpy())
        self.w_ = torch.sigmoid(params[2].detach()).numpy().copy()
        self.loss_terms_ = {"Lz": float(lz), "Lx": float(lx), "Ly": float(ly)}
        self.loss_ = self.az * float(lz) + self.ax * float(lx) + self.ay * float(ly)
        self.loss_history_ = np.asarray(history, dtype=np.float64)
        self.n_iter_ = int(optimiser.state[params[0]].get("n_iter", 0))
        self.privileged_ = labels[p]
        self.n_features_in_ = width
        return self

    # ------------------------------------------------------------------ using it -------
    def memberships(self, x: Any, groups: Any) -> np.ndarray:
        """The soft assignment M (N x K) of each row to the prototypes (rows sum to 1)."""
        import torch

        if not hasattr(self, "prototypes_"):
            raise NotFittedError(ERR_NOT_FITTED.format(name=type(self).__name__))
        group = group_labels(groups)
        features = feature_matrix(x, "x", len(group))
        if features.shape[1] != self.n_features_in_:
            raise InputError(ERR_WIDTH.format(name="x", got=features.shape[1], expected=self.n_features_in_))
        side = torch.from_numpy((group == self.privileged_).astype(np.int64))
        with torch.no_grad():
            m = self._memberships(
                torch.from_numpy(features),
                side,
                torch.from_numpy(self.prototypes_),
                torch.from_numpy(np.log(self.alpha_)),
            )
        return m.numpy()

    def transform(self, x: Any, groups: Any) -> np.ndarray:
        """The fair reconstruction ``x_hat = M V`` of each row (float64, N x D)."""
        return self.memberships(x, groups) @ self.prototypes_

    def predict_proba(self, x: Any, groups: Any) -> np.ndarray:
        """The paper's prediction ``y_hat = M w``: P(y = 1) of each row (float64, shape N)."""
        return self.memberships(x, groups) @ self.w_

    def predict(self, x: Any, groups: Any) -> np.ndarray:
        """``predict_proba >= 0.5`` as int64 labels."""
        return (self.predict_proba(x, groups) >= 0.5).astype(np.int64)

    def fit_transform(self, x: Any, y: Any, groups: Any) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same data."""
        return self.fit(x, y, groups).transform(x, groups)
