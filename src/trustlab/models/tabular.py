"""Scikit-learn classifiers for tabular data sets: fitting, predicting and describing them.

Capabilities audit a fitted tabular model (explanations, fairness), so the model lives here,
below them, rather than inside one capability's API: each capability fits through
:func:`fit_tabular_model` and reads the model through :func:`positive_probability`,
:func:`log_odds` and :func:`model_quality`. Models are binary classifiers on raw features (a
tabular :class:`Dataset`, N x F, two classes); class 1 is the positive class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trustlab.core.exceptions import InputError
from trustlab.data.dataset import Dataset

MODEL_KINDS = ("gradient_boosting", "logistic")
ERR_UNKNOWN_KIND = "unknown model kind {kind!r}; expected one of: {expected}"
ERR_ONE_CLASS = "train must contain examples of both classes (labels 0 and 1)"
ERR_SAMPLE_WEIGHT = "sample_weight must be {n} finite weights >= 0 (one per example, not all 0), got {got}"


def check_tabular(data: Dataset, name: str) -> None:
    """Raise an :class:`InputError` naming ``name`` unless ``data`` is a non-empty tabular data
    set (features N x F) with two classes."""
    if not isinstance(data, Dataset) or data.x.ndim != 2:
        shape = tuple(data.x.shape) if isinstance(data, Dataset) else type(data).__name__
        raise InputError(f"{name} must be a tabular Dataset (features N x F), got {shape}")
    if data.num_classes != 2:
        raise InputError(f"{name} must have two classes, got {data.num_classes}: {', '.join(data.class_names)}")
    if len(data) == 0:
        raise InputError(f"{name} has no examples")


def tabular_arrays(data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Features as float64 (N x F) and labels as int64 (N), as scikit-learn takes them."""
    return data.x.detach().cpu().numpy().astype(np.float64), data.y.detach().cpu().numpy().astype(np.int64)


def fit_tabular_model(
    train: Dataset, *, kind: str = "gradient_boosting", seed: int = 0, sample_weight: Any = None
) -> Any:
    """A fitted scikit-learn binary classifier.

    ``"gradient_boosting"``: ``GradientBoostingClassifier`` (100 trees of depth 3), whose trees
    ``shap.TreeExplainer`` reads exactly (unlike the binned histogram variant). ``"logistic"``:
    standardisation + ``LogisticRegression`` in one pipeline, explained by Kernel SHAP.
    ``sample_weight``: one non-negative weight per training example (e.g. reweighing's), passed
    to the classifier's fit (for the pipeline, to the logistic regression; the standardisation
    stays unweighted); None weighs every example alike.
    """
    check_tabular(train, "train")
    if kind not in MODEL_KINDS:
        raise InputError(ERR_UNKNOWN_KIND.format(kind=kind, expected=", ".join(MODEL_KINDS)))
    x, y = tabular_arrays(train)
    if set(np.unique(y).tolist()) != {0, 1}:
        raise InputError(ERR_ONE_CLASS)
    fit_params: dict[str, Any] = {}
    if sample_weight is not None:
        raw = sample_weight.detach().cpu().numpy() if hasattr(sample_weight, "detach") else sample_weight
        try:
            weights = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise InputError(ERR_SAMPLE_WEIGHT.format(n=len(y), got=type(raw).__name__)) from error
        if weights.shape != (len(y),):
            raise InputError(ERR_SAMPLE_WEIGHT.format(n=len(y), got=f"shape {weights.shape}"))
        if not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
            got = f"values from {np.nanmin(weights):g} to {np.nanmax(weights):g}" if len(weights) else "none"
            raise InputError(ERR_SAMPLE_WEIGHT.format(n=len(y), got=got))
        key = "sample_weight" if kind == "gradient_boosting" else "logisticregression__sample_weight"
        fit_params[key] = weights
    if kind == "gradient_boosting":
        from sklearn.ensemble import GradientBoostingClassifier

        model = GradientBoostingClassifier(n_estimators=100, max_depth=3, learning_rate=0.1, random_state=seed)
    else:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return model.fit(x, y, **fit_params)


def is_tree_model(model: Any) -> bool:
    """Whether ``model`` is a tree ensemble that ``shap.TreeExplainer`` reads exactly."""
    from sklearn.ensemble import GradientBoostingClassifier

    return isinstance(model, GradientBoostingClassifier)


class ClassifierEstimator:
    """A trustlab Classifier (any loaded model of tabular inputs and two classes) seen as a fitted
    scikit-learn-style estimator: what the tabular explanations need to explain the user's own
    model instead of fitting one."""

    def __init__(self, classifier: Any) -> None:
        if len(classifier.input_shape) != 1 or classifier.num_classes != 2:
            raise InputError(
                "tabular explanations need a model of tabular inputs (N x features) and two classes; "
                f"this one takes {tuple(classifier.input_shape)} and has {classifier.num_classes} classes"
            )
        self.classifier = classifier
        self.classes_ = np.arange(2)
        self.n_features_in_ = int(classifier.input_shape[0])
        self.description = f"{classifier.architecture or 'user'} model"

    def predict_proba(self, x: Any) -> np.ndarray:
        import torch

        inputs = torch.as_tensor(np.asarray(x, dtype=np.float32))
        return self.classifier.proba(inputs).double().numpy()

    def get_params(self) -> dict[str, Any]:
        return {}


def as_estimator(classifier: Any) -> Any:
    """The fitted estimator behind ``classifier`` (a skops-loaded scikit-learn model), or the
    classifier wrapped as one (:class:`ClassifierEstimator`)."""
    return getattr(classifier, "estimator", None) or ClassifierEstimator(classifier)


def model_description(model: Any) -> str:
    """A short name with the settings that matter, e.g. ``GradientBoostingClassifier(n_estimators=100,
    ...)`` or ``StandardScaler + LogisticRegression`` for a pipeline."""
    if isinstance(model, ClassifierEstimator):
        return model.description
    steps = getattr(model, "steps", None)
    if steps:
        return " + ".join(type(step).__name__ for _, step in steps)
    params = model.get_params()
    shown = {k: params[k] for k in ("n_estimators", "max_depth", "learning_rate") if k in params}
    return f"{type(model).__name__}({', '.join(f'{k}={v}' for k, v in shown.items())})"


def positive_probability(model: Any, x: Any) -> np.ndarray:
    """P(class 1) for each row."""
    return np.asarray(model.predict_proba(np.asarray(x, dtype=np.float64))[:, 1], dtype=np.float64)


def log_odds(model: Any, x: Any) -> np.ndarray:
    """The model's raw output for class 1: the log-odds (``decision_function``, else logit of the probability)."""
    x = np.asarray(x, dtype=np.float64)
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(x), dtype=np.float64).reshape(-1)
    p = np.clip(positive_probability(model, x), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def model_quality(model: Any, test: Dataset) -> tuple[float, float]:
    """Accuracy (threshold 0.5) and ROC AUC on ``test``."""
    from sklearn.metrics import roc_auc_score

    check_tabular(test, "test")
    x, y = tabular_arrays(test)
    p = positive_probability(model, x)
    accuracy = float(((p >= 0.5).astype(np.int64) == y).mean())
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")
    return accuracy, auc
