"""Explanations for tabular classifiers: correlations, LIME and SHAP, and how far they agree.

The models are scikit-learn classifiers fitted on a tabular :class:`Dataset` (raw features,
two classes) by :mod:`trustlab.models.tabular`. Explanations are always *towards the positive
class* (index 1, e.g. "diabetes"):

- LIME (Ribeiro et al. 2016) fits a weighted linear model to the predicted probability around
  one row. Continuous features are discretised into training-set quartiles (the paper's and
  the library's default), so a weight is the change in P(positive) for "the feature lies in this
  row's quartile" against "it lies elsewhere". This keeps weights on one scale (probability)
  whatever the feature's unit, and does not depend on sampling around the training mean.
- SHAP (Lundberg & Lee 2017) explains the model's raw output, the log-odds of the positive
  class, so values add up exactly: ``expected_value + sum(shap) = log-odds(x)``. Tree models use
  ``shap.TreeExplainer`` with ``feature_perturbation="interventional"``: exact Shapley values of
  the model with absent features drawn from a background sample (true to the model, not to the
  feature correlations); its float32 thresholds are rounded so that it splits exactly like
  scikit-learn (see ``_round_thresholds_for_float32``). Other models use ``shap.KernelExplainer``
  on the same background with enough coalitions to enumerate them all for up to 11 features
  (exact then, and deterministic).

LIME and SHAP therefore use different units; their agreement is measured on the ranks of the
absolute weights (Spearman, Kendall tau-b) and on the overlap of the top features.

shap and lime are optional (``pip install "trustlab[explain]"``) and imported only when used.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trustlab.core.exceptions import InputError
from trustlab.core.progress import progress
from trustlab.core.results import Result
from trustlab.data.dataset import Dataset
from trustlab.models.tabular import (
    as_estimator,
    check_tabular,
    fit_tabular_model,
    is_tree_model,
    log_odds,
    model_description,
    model_quality,
    positive_probability,
    tabular_arrays,
)

EXPLAIN_EXTRA = 'pip install "trustlab[explain]"'
TREE_PERTURBATIONS = ("interventional", "tree_path_dependent")
KERNEL_NSAMPLES = 2048  # >= 2**F - 2 for F <= 11 features: every coalition is enumerated (exact)
SUMMARY_POINTS = 300  # test rows kept for the summary (beeswarm) plot
TOP_K = 3
OUTCOME = "outcome"


def _require(module: str) -> Any:
    """Import an optional dependency, or say how to install it."""
    import importlib

    try:
        with warnings.catch_warnings():  # shap's plotting colours warn about matplotlib deprecations on import
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            return importlib.import_module(module)
    except ImportError:
        name = module.split(".")[0]
        raise InputError(f"{name} is needed for tabular explanations: {EXPLAIN_EXTRA}") from None


def _feature_names(data: Dataset) -> tuple[str, ...]:
    return tuple(data.feature_names) if data.feature_names else tuple(f"x{i}" for i in range(data.x.shape[1]))


def _as_rows(values: Any, features: int, name: str) -> np.ndarray:
    """Float64 rows N x F from a tensor, array or single row; finite values only."""
    if isinstance(values, Dataset):
        values = values.x
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        rows = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be numeric feature rows, got {type(values).__name__}") from None
    if rows.ndim == 1:
        rows = rows[None, :]
    if rows.ndim != 2 or rows.shape[1] != features:
        raise InputError(f"{name} must have shape N x {features}, got {rows.shape}")
    if not np.isfinite(rows).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return rows


# ---------------------------------------------------------------- correlations ---------------


def feature_correlations(dataset: Dataset) -> tuple[tuple[str, ...], np.ndarray]:
    """Pearson correlation between every pair of features and with the label (last row/column).

    Returns the names (features, then ``"outcome"``) and the (F + 1) x (F + 1) matrix; a
    constant column has NaN correlations.
    """
    check_tabular(dataset, "dataset")
    x, y = tabular_arrays(dataset)
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.corrcoef(np.column_stack([x, y.astype(np.float64)]), rowvar=False)
    return (*_feature_names(dataset), OUTCOME), matrix


# ---------------------------------------------------------------- LIME -----------------------


@dataclass(frozen=True)
class LimeExplanation:
    """LIME weights towards the positive class, N x F in the data set's feature order (0 for a
    feature LIME did not select), the local linear models' intercepts and weighted R^2."""

    weights: np.ndarray
    intercepts: np.ndarray
    scores: np.ndarray
    settings: dict[str, Any]


def lime_explanations(
    model: Any,
    train: Dataset,
    rows: Any,
    *,
    num_features: int = 8,
    num_samples: int = 5000,
    seed: int = 0,
    show_progress: bool = False,
) -> LimeExplanation:
    """LIME explanation of P(positive) for each row (raw feature values, N x F).

    Each row is explained with the random generator reset to ``seed``, so a row's weights do
    not depend on which other rows are explained. Weights are read from ``as_map()``
    (feature indices), never parsed from LIME's condition strings.
    """
    lime_tabular = _require("lime.lime_tabular")
    check_tabular(train, "train")
    names = _feature_names(train)
    features = len(names)
    rows = _as_rows(rows, features, "rows")
    if not isinstance(num_features, int) or not 1 <= num_features <= features:
        raise InputError(f"num_features must be an integer in 1..{features}, got {num_features!r}")
    if not isinstance(num_samples, int) or num_samples < 10:
        raise InputError(f"num_samples must be an integer >= 10, got {num_samples!r}")
    x_train, _ = tabular_arrays(train)
    settings = {
        "mode": "classification",
        "discretize_continuous": True,
        "discretizer": "quartile",
        "kernel_width": 0.75 * math.sqrt(features),
        "num_features": num_features,
        "num_samples": num_samples,
        "feature_selection": "auto",
        "seed": seed,
        "output": f"probability of {train.class_names[1]}",
    }
    explainer = lime_tabular.LimeTabularExplainer(
        x_train,
        mode="classification",
        feature_names=list(names),
        class_names=list(train.class_names),
        discretize_continuous=True,
        discretizer="quartile",
        kernel_width=settings["kernel_width"],
        random_state=seed,
    )
    weights = np.zeros((len(rows), features))
    intercepts = np.zeros(len(rows))
    scores = np.zeros(len(rows))

    def predict(values: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_proba(values), dtype=np.float64)

    for i in progress(range(len(rows)), desc="LIME", enabled=show_progress, unit="row"):
        explainer.random_state.seed(seed)  # one generator shared by the sampler, discretiser and ridge
        explanation = explainer.explain_instance(
            rows[i], predict, labels=(1,), num_features=num_features, num_samples=num_samples
        )
        for index, weight in explanation.as_map()[1]:
            weights[i, int(index)] = float(weight)
        intercepts[i] = float(explanation.intercept[1])
        scores[i] = float(explanation.score)
    return LimeExplanation(weights, intercepts, scores, settings)


# ---------------------------------------------------------------- SHAP -----------------------


@dataclass(frozen=True)
class ShapExplanation:
    """SHAP values of the positive class's log-odds (N x F) and the expected value E[f] over the
    background, so that ``expected_value + values.sum(1)`` is the model's log-odds."""

    values: np.ndarray
    expected_value: float
    explainer: str
    settings: dict[str, Any]


def background_sample(train: Dataset, size: int, *, seed: int = 0) -> np.ndarray:
    """A seeded sample of ``size`` training rows (without replacement, in data order)."""
    if not isinstance(size, int) or size < 1:
        raise InputError(f"background must be a positive integer, got {size!r}")
    x, _ = tabular_arrays(train)
    if size >= len(x):
        return x
    index = np.sort(np.random.default_rng(seed).choice(len(x), size=size, replace=False))
    return x[index]


def _round_thresholds_for_float32(explainer: Any) -> None:
    """Make interventional Tree SHAP split exactly like scikit-learn.

    scikit-learn compares float32 inputs with float64 thresholds; shap 0.51's interventional C++
    code stores thresholds as float32, so an input equal to the rounded threshold goes the wrong
    way and additivity fails (seen on Pima: BMI 29.2 against 29.1999998). Replacing each threshold
    by the largest float32 not above it keeps every float32 comparison unchanged and makes the
    cast exact. Only for models whose inputs shap casts to float32; a no-op otherwise.
    """
    tree_model = getattr(explainer, "model", None)
    thresholds = getattr(tree_model, "thresholds", None)
    if not isinstance(thresholds, np.ndarray) or getattr(tree_model, "input_dtype", None) is not np.float32:
        return
    rounded = thresholds.astype(np.float32)
    above = rounded.astype(np.float64) > thresholds
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    tree_model.thresholds = rounded.astype(np.float64)


def shap_explanations(
    model: Any,
    train: Dataset,
    x: Any,
    *,
    background: int = 100,
    seed: int = 0,
    nsamples: int = KERNEL_NSAMPLES,
    tree_perturbation: str = "interventional",
    show_progress: bool = False,
) -> ShapExplanation:
    """SHAP values of the log-odds of the positive class for the rows ``x`` (N x F).

    Tree models: ``shap.TreeExplainer(model, data=background, feature_perturbation="interventional",
    model_output="raw")``, exact (``tree_perturbation="tree_path_dependent"`` uses the trees' training
    cover instead of the background). Others: ``shap.KernelExplainer`` on ``log_odds`` with the same
    seeded background, ``nsamples`` coalitions and no L1 feature selection; with
    ``nsamples >= 2**F - 2`` every coalition is enumerated and the values are exact.
    """
    shap = _require("shap")
    check_tabular(train, "train")
    rows = _as_rows(x, train.x.shape[1], "x")
    data = background_sample(train, background, seed=seed)
    if tree_perturbation not in TREE_PERTURBATIONS:
        raise InputError(
            f"unknown tree_perturbation {tree_perturbation!r}; expected one of: {', '.join(TREE_PERTURBATIONS)}"
        )
    if is_tree_model(model):
        interventional = tree_perturbation == "interventional"
        explainer = shap.TreeExplainer(
            model, data=data if interventional else None, feature_perturbation=tree_perturbation, model_output="raw"
        )
        if interventional:
            _round_thresholds_for_float32(explainer)
        values = np.asarray(explainer.shap_values(rows, check_additivity=True), dtype=np.float64)
        expected = float(np.asarray(explainer.expected_value).reshape(-1)[-1])
        name = "shap.TreeExplainer"
        settings: dict[str, Any] = {"feature_perturbation": tree_perturbation, "model_output": "raw (log-odds)"}
    else:
        if not isinstance(nsamples, int) or nsamples < 2 * rows.shape[1] + 2:
            raise InputError(f"nsamples must be an integer >= {2 * rows.shape[1] + 2}, got {nsamples!r}")
        explainer = shap.KernelExplainer(lambda v: log_odds(model, v), data, link="identity")
        state = np.random.get_state()  # Kernel SHAP samples coalitions with the global generator
        np.random.seed(seed)
        try:
            parts = []
            chunks = range(0, len(rows), 16)
            for start in progress(chunks, desc="Kernel SHAP", enabled=show_progress, unit="chunk"):
                part = explainer.shap_values(rows[start : start + 16], nsamples=nsamples, l1_reg=False, silent=True)
                parts.append(np.asarray(part, dtype=np.float64).reshape(-1, rows.shape[1]))
        finally:
            np.random.set_state(state)
        values = np.concatenate(parts)
        expected = float(np.asarray(explainer.expected_value).reshape(-1)[-1])
        name = "shap.KernelExplainer"
        settings = {
            "link": "identity",
            "model_output": "log-odds",
            "nsamples": nsamples,
            "exact": nsamples >= 2 ** rows.shape[1] - 2,
            "l1_reg": False,
        }
    if values.ndim == 3:  # (N, F, classes) in some shap versions
        values = values[..., -1]
    settings.update({"background": len(data), "background_sampling": "seeded sample of training rows", "seed": seed})
    return ShapExplanation(values.reshape(len(rows), -1), expected, name, settings)


# ---------------------------------------------------------------- agreement ------------------


def top_features(weights: Any, k: int = TOP_K) -> np.ndarray:
    """Indices of the ``k`` largest |weights| per row (ties: lower index first), N x k."""
    w = np.abs(np.atleast_2d(np.asarray(weights, dtype=np.float64)))
    return np.argsort(-w, axis=1, kind="stable")[:, :k]


def rank_agreement(a: Any, b: Any, *, top_k: int = TOP_K) -> dict[str, np.ndarray]:
    """Per row, how alike two attributions rank the features by magnitude.

    ``spearman`` and ``kendall`` (tau-b) correlate |a| with |b|; ``top_k_overlap`` is the share
    of the ``top_k`` features of ``a`` that are also among those of ``b``. NaN where a row's
    magnitudes are all equal (no ranking).
    """
    from scipy.stats import kendalltau, spearmanr

    a = np.abs(np.atleast_2d(np.asarray(a, dtype=np.float64)))
    b = np.abs(np.atleast_2d(np.asarray(b, dtype=np.float64)))
    if a.shape != b.shape:
        raise InputError(f"attributions must have the same shape, got {a.shape} and {b.shape}")
    if not 1 <= top_k <= a.shape[1]:
        raise InputError(f"top_k must lie in 1..{a.shape[1]}, got {top_k}")
    spearman = np.full(len(a), np.nan)
    kendall = np.full(len(a), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant rows: scipy warns and returns NaN
        for i in range(len(a)):
            spearman[i] = spearmanr(a[i], b[i]).statistic
            kendall[i] = kendalltau(a[i], b[i]).statistic
    top_a, top_b = top_features(a, top_k), top_features(b, top_k)
    overlap = np.array([len(set(p.tolist()) & set(q.tolist())) / top_k for p, q in zip(top_a, top_b)])
    return {"spearman": spearman, "kendall": kendall, "top_k_overlap": overlap}


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


# ---------------------------------------------------------------- the whole check -------------


@dataclass(frozen=True)
class TabularExplanationResult(Result):
    """Correlations, model quality, LIME and SHAP for chosen test rows, global SHAP importance and
    LIME-SHAP rank agreement. LIME weights are in probability units, SHAP values in log-odds.

    The headline numbers are computed here, once: ``importance_order`` ranks the features by
    ``global_importance`` (largest first, ties by feature order), ``outcome_correlations`` is the
    training-split Pearson correlation of each feature with the outcome (the last column of
    ``correlations``) and ``strongest_correlate`` the feature with the largest |r| (None when
    every correlation is NaN)."""

    kind = "tabular_explanations"
    dataset: str
    split: str
    model: str
    model_description: str
    seed: int
    train_examples: int
    test_examples: int
    accuracy: float
    roc_auc: float
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    correlation_names: tuple[str, ...]  # features, then "outcome"
    correlations: tuple[tuple[float, ...], ...]
    rows: tuple[int, ...]  # indices into the test split
    row_features: tuple[tuple[float, ...], ...]
    row_labels: tuple[int, ...]
    row_probabilities: tuple[float, ...]  # P(positive class)
    lime_weights: tuple[tuple[float, ...], ...]  # rows x features, towards the positive class
    lime_scores: tuple[float, ...]  # weighted R^2 of each local linear model
    shap_values: tuple[tuple[float, ...], ...]  # rows x features, log-odds
    expected_value: float  # E[log-odds] over the background
    shap_output: str
    global_importance: tuple[float, ...]  # mean |SHAP| per feature over the test split
    importance_order: tuple[int, ...]  # feature indices by global_importance, largest first
    outcome_correlations: tuple[float, ...]  # per feature, Pearson r with the outcome (train)
    strongest_correlate: int | None  # feature index with the largest |r|; None if all are NaN
    top_k: int
    agreement: dict[str, tuple[float, ...]]  # spearman, kendall, top_k_overlap per row
    agreement_mean: dict[str, float]
    summary_rows: tuple[int, ...]  # test indices drawn in the summary plot
    summary_shap: tuple[tuple[float, ...], ...]
    summary_features: tuple[tuple[float, ...], ...]
    explainers: dict[str, str]
    settings: dict[str, dict[str, Any]]
    seconds: float


def _default_rows(predicted: np.ndarray, count: int) -> np.ndarray:
    """The first ceil(count/2) predicted-positive and first floor(count/2) predicted-negative rows
    (topped up from the other group when one is short), in test order."""
    positive, negative = np.flatnonzero(predicted == 1), np.flatnonzero(predicted == 0)
    want_pos = min(len(positive), (count + 1) // 2)
    want_neg = min(len(negative), count - want_pos)
    want_pos = min(len(positive), count - want_neg)
    return np.sort(np.concatenate([positive[:want_pos], negative[:want_neg]]))


def _strongest(correlations: np.ndarray) -> int | None:
    """Index of the largest |correlation| (first on ties, NaN ignored), or None if all are NaN."""
    finite = np.isfinite(correlations)
    if not finite.any():
        return None
    return int(np.nanargmax(np.where(finite, np.abs(correlations), np.nan)))


def _tuples(values: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(values, dtype=np.float64))


def tabular_explanations(
    train: Dataset,
    test: Dataset,
    *,
    kind: str = "gradient_boosting",
    model: Any = None,
    rows: Any = None,
    n_rows: int = 5,
    seed: int = 0,
    background: int = 100,
    lime_samples: int = 5000,
    summary_points: int = SUMMARY_POINTS,
    show_progress: bool = False,
) -> TabularExplanationResult:
    """Explain a model on ``test``: correlations, quality, LIME and SHAP for ``rows`` (test
    indices; default: a deterministic mix of ``n_rows`` predicted positive and negative), mean
    |SHAP| over the whole test split, and LIME-SHAP agreement. The model is the user's
    ``model`` (a trustlab Classifier of tabular inputs and two classes, e.g. a loaded file),
    else one of ``kind`` fitted on ``train``."""
    start = time.perf_counter()
    check_tabular(train, "train")
    check_tabular(test, "test")
    if test.x.shape[1] != train.x.shape[1]:
        raise InputError(f"test has {test.x.shape[1]} features but train has {train.x.shape[1]}")
    if not isinstance(summary_points, int) or summary_points < 1:
        raise InputError(f"summary_points must be a positive integer, got {summary_points!r}")
    _require("shap")  # fail before fitting anything
    _require("lime.lime_tabular")
    if model is None:
        model = fit_tabular_model(train, kind=kind, seed=seed)
    else:
        model, kind = as_estimator(model), "given"
    accuracy, auc = model_quality(model, test)
    x_test, y_test = tabular_arrays(test)
    prob = positive_probability(model, x_test)
    if rows is None:
        if not isinstance(n_rows, int) or n_rows < 1:
            raise InputError(f"n_rows must be a positive integer, got {n_rows!r}")
        chosen = _default_rows((prob >= 0.5).astype(np.int64), min(n_rows, len(test)))
    else:
        chosen = np.asarray(rows).reshape(-1)
        if chosen.size == 0 or not np.issubdtype(chosen.dtype, np.integer):
            raise InputError(f"rows must be a non-empty list of test indices, got {rows!r}")
        if chosen.min() < 0 or chosen.max() >= len(test):
            raise InputError(f"rows must be indices in 0..{len(test) - 1}, got {chosen.tolist()}")
    features = x_test.shape[1]
    lime_exp = lime_explanations(
        model,
        train,
        x_test[chosen],
        num_features=features,
        num_samples=lime_samples,
        seed=seed,
        show_progress=show_progress,
    )
    shap_exp = shap_explanations(model, train, x_test, background=background, seed=seed, show_progress=show_progress)
    row_shap = shap_exp.values[chosen]
    top_k = min(TOP_K, features)
    agreement = rank_agreement(lime_exp.weights, row_shap, top_k=top_k)
    if len(test) > summary_points:
        summary = np.sort(np.random.default_rng(seed).choice(len(test), size=summary_points, replace=False))
    else:
        summary = np.arange(len(test))
    names, corr = feature_correlations(train)
    importance = np.abs(shap_exp.values).mean(axis=0)
    with_outcome = corr[:features, -1]
    return TabularExplanationResult(
        dataset=test.name,
        split=test.split,
        model=kind,
        model_description=model_description(model),
        seed=int(seed),
        train_examples=len(train),
        test_examples=len(test),
        accuracy=accuracy,
        roc_auc=auc,
        class_names=tuple(test.class_names),
        feature_names=_feature_names(test),
        correlation_names=names,
        correlations=_tuples(corr),
        rows=tuple(int(i) for i in chosen),
        row_features=_tuples(x_test[chosen]),
        row_labels=tuple(int(v) for v in y_test[chosen]),
        row_probabilities=tuple(float(v) for v in prob[chosen]),
        lime_weights=_tuples(lime_exp.weights),
        lime_scores=tuple(float(v) for v in lime_exp.scores),
        shap_values=_tuples(row_shap),
        expected_value=shap_exp.expected_value,
        shap_output=f"log-odds of {test.class_names[1]}",
        global_importance=tuple(float(v) for v in importance),
        importance_order=tuple(int(i) for i in np.argsort(-importance, kind="stable")),
        outcome_correlations=tuple(float(v) for v in with_outcome),
        strongest_correlate=_strongest(with_outcome),
        top_k=top_k,
        agreement={k: tuple(float(v) for v in values) for k, values in agreement.items()},
        agreement_mean={k: _nanmean(values) for k, values in agreement.items()},
        summary_rows=tuple(int(i) for i in summary),
        summary_shap=_tuples(shap_exp.values[summary]),
        summary_features=_tuples(x_test[summary]),
        explainers={"lime": "lime.lime_tabular.LimeTabularExplainer", "shap": shap_exp.explainer},
        settings={"lime": dict(lime_exp.settings), "shap": dict(shap_exp.settings)},
        seconds=time.perf_counter() - start,
    )
