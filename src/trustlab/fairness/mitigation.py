"""Every mitigation tried on the same split: what fixing the training data or the decision costs in
accuracy and buys in fairness, each figure with its bootstrap interval.

The baseline is the shared tabular model (``trustlab.models.tabular.fit_tabular_model``) fitted on
the training split as it is. Each pre-processing method changes the training data (weights, labels
or features) and the same kind of model is fitted again; each post-processing method keeps the
baseline model and changes its decision rule. All are evaluated on the same test split, with the
same privileged group (the user's, or the group the baseline selects most) and the same bootstrap
resamples:

* ``reweighing``: Kamiran & Calders weights, so group and label are independent in the weighted data;
* ``massaging``: the fewest label flips, chosen by the baseline's score as the ranker;
* ``disparate_impact_remover``: Feldman et al.'s repair (level 1) of every non-binary feature,
  on the training and the test split alike (it needs each row's group);
* ``lfr``: Zemel et al.'s learned fair representation (the class's defaults) of the standardised
  features, fitted on a sample of the training rows (its cost grows with rows x prototypes x
  features); the model is fitted on the representation;
* ``thresholds_dp`` / ``thresholds_four_fifths`` / ``thresholds_eo``: group thresholds on the
  baseline's score, chosen on the training split, for equal selection rates / selection rates
  within the four-fifths rule (the lowest at least 0.8 x the highest) / equalised odds (Hardt et al.).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from trustlab.core.exceptions import InputError
from trustlab.core.progress import progress
from trustlab.core.results import Record, Result
from trustlab.fairness.groups import binary, protected_groups
from trustlab.fairness.table import FOUR_FIFTHS, Estimate, fairness_table

METHODS = {
    "baseline": ("none", "the model fitted on the training data as it is"),
    "reweighing": ("pre-processing", "Kamiran & Calders weights: group and label independent in the weighted data"),
    "massaging": ("pre-processing", "Kamiran & Calders: the fewest label flips, ranked by the baseline's score"),
    "disparate_impact_remover": ("pre-processing", "Feldman et al.: each feature's group distributions repaired"),
    "lfr": ("pre-processing", "Zemel et al.: the model fitted on a learned fair representation of the features"),
    "thresholds_dp": ("post-processing", "group thresholds on the baseline's score for demographic parity"),
    "thresholds_four_fifths": ("post-processing", "group thresholds on the baseline's score: rates within 4/5"),
    "thresholds_eo": ("post-processing", "group thresholds on the baseline's score for equalised odds"),
}
DEFAULT_LFR_ROWS = 5000
ERR_UNKNOWN_METHOD = "unknown mitigation {name!r}; expected some of: {known}"


@dataclass(frozen=True)
class MitigationRow(Record):
    """One method's outcome on the test split (figures of the worst unprivileged group)."""

    kind = "fairness.mitigation_row"
    method: str
    stage: str  # "none", "pre-processing" or "post-processing"
    change: str  # what the method changed, in words
    accuracy: Estimate
    disparate_impact: Estimate  # lower selection rate / higher, judged against the four-fifths line
    statistical_parity_difference: Estimate
    equal_opportunity_difference: Estimate
    equalized_odds_difference: Estimate  # over every group
    seconds: float  # fitting and predicting


@dataclass(frozen=True)
class MitigationResult(Result):
    """Every mitigation's accuracy and fairness on one test split, against the baseline's."""

    kind = "fairness.mitigation"
    dataset: str
    attributes: tuple[str, ...]
    privileged: str
    model: str
    rows: tuple[MitigationRow, ...]
    train_examples: int
    test_examples: int
    resamples: int
    level: float
    seed: int
    seconds: float

    def row(self, method: str) -> MitigationRow:
        """The row of ``method`` (KeyError if it was not run)."""
        for row in self.rows:
            if row.method == method:
                return row
        raise KeyError(method)

    @property
    def group_label(self) -> str:
        return " x ".join(self.attributes)

    def accuracy_cost(self, method: str) -> float:
        """Baseline accuracy minus ``method``'s, in points (positive: the method loses accuracy)."""
        return 100 * (self.row("baseline").accuracy.value - self.row(method).accuracy.value)

    @property
    def best(self) -> MitigationRow | None:
        """The most accurate method whose disparate impact passes the four-fifths line, or None."""
        passing = [r for r in self.rows if r.disparate_impact.value >= FOUR_FIFTHS]
        return max(passing, key=lambda r: r.accuracy.value) if passing else None


def check_methods(methods: Sequence[str] | None) -> tuple[str, ...]:
    """The methods to run (the baseline always first); unknown names are a one-line error."""
    chosen = list(METHODS) if not methods else list(dict.fromkeys(methods))
    for name in chosen:
        if name not in METHODS:
            raise InputError(ERR_UNKNOWN_METHOD.format(name=name, known=", ".join(METHODS)))
    return ("baseline", *[m for m in chosen if m != "baseline"])


def _with(data: Any, *, x: np.ndarray | None = None, y: np.ndarray | None = None) -> Any:
    """``data`` with new features and/or labels (protected attributes kept)."""
    changes = {}
    if x is not None:
        changes["x"] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if y is not None:
        changes["y"] = torch.from_numpy(np.asarray(y, dtype=np.int64))
    return replace(data, **changes)


def mitigate(
    train: Any,
    test: Any,
    *,
    protected: Sequence[str],
    methods: Sequence[str] | None = None,
    kind: str = "logistic",
    privileged: Any = None,
    resamples: int = 1000,
    lfr_rows: int = DEFAULT_LFR_ROWS,
    lfr_iterations: int = 5000,
    seed: int = 0,
    show_progress: bool = True,
) -> MitigationResult:
    """Fit the baseline (``kind``: ``"logistic"`` or ``"gradient_boosting"``) on ``train`` and each
    of ``methods`` (default: all of :data:`METHODS`), and measure every one on ``test`` by the
    groups of ``protected`` (several: their intersection). LFR is fitted on at most ``lfr_rows``
    training rows for at most ``lfr_iterations`` L-BFGS iterations (its class default)."""
    from trustlab.fairness.lfr import LearnedFairRepresentation
    from trustlab.fairness.preprocess import DisparateImpactRemover, massage, reweighing_weights
    from trustlab.fairness.thresholds import GroupThresholds
    from trustlab.models.tabular import (
        check_tabular,
        fit_tabular_model,
        model_description,
        positive_probability,
        tabular_arrays,
    )

    methods = check_methods(methods)
    check_tabular(train, "train")
    check_tabular(test, "test")
    protected = [protected] if isinstance(protected, str) else list(protected)
    g_train, g_test = protected_groups(train, protected), protected_groups(test, protected)
    y_train = binary(train.y, f"labels of {train.name}/{train.split}", len(train))
    y_test = binary(test.y, f"labels of {test.name}/{test.split}", len(test))
    x_train, x_test = tabular_arrays(train)[0], tabular_arrays(test)[0]
    start = time.perf_counter()

    def fitted(data: Any, **options: Any) -> Any:
        return fit_tabular_model(data, kind=kind, seed=seed, **options)

    baseline = fitted(train)
    base_train_score = positive_probability(baseline, x_train)
    base_test_score = positive_probability(baseline, x_test)

    def run(method: str) -> tuple[np.ndarray, str]:
        """(test decisions, what changed)."""
        if method == "baseline":
            return (base_test_score >= 0.5).astype(np.int64), "nothing"
        if method == "reweighing":
            weights = reweighing_weights(y_train, g_train)
            score = positive_probability(fitted(train, sample_weight=weights), x_test)
            change = f"weights from {weights.min():.3f} to {weights.max():.3f}"
        elif method == "massaging":
            flips = massage(y_train, g_train, base_train_score, privileged=chosen)
            score = positive_probability(fitted(_with(train, y=flips.labels)), x_test)
            change = f"{flips.changes:,} promoted and {flips.changes:,} demoted of {len(train):,} labels"
        elif method == "disparate_impact_remover":
            remover = DisparateImpactRemover(1.0).fit(x_train, g_train)
            model = fitted(_with(train, x=remover.transform(x_train, g_train)))
            score = positive_probability(model, remover.transform(x_test, g_test))
            change = f"{len(remover.columns_)} non-binary features repaired (level 1)"
        elif method == "lfr":
            sample = np.random.default_rng(seed).permutation(len(train))[: min(lfr_rows, len(train))]
            centre, scale = x_train.mean(0), np.where(x_train.std(0) > 0, x_train.std(0), 1.0)
            z_train, z_test = (x_train - centre) / scale, (x_test - centre) / scale
            lfr = LearnedFairRepresentation(max_iter=lfr_iterations, seed=seed, privileged=chosen)
            lfr.fit(z_train[sample], y_train[sample], g_train[sample])
            model = fitted(_with(train, x=lfr.transform(z_train, g_train)))
            score = positive_probability(model, lfr.transform(z_test, g_test))
            change = f"features rebuilt from {lfr.prototypes} prototypes (fitted on {len(sample):,} rows)"
        else:
            constraint = "equalized_odds" if method == "thresholds_eo" else "demographic_parity"
            ratio = FOUR_FIFTHS if method == "thresholds_four_fifths" else 1.0
            rule = GroupThresholds(constraint=constraint, ratio=ratio, seed=seed).fit(
                y_train, base_train_score, g_train
            )
            cuts = ", ".join(f"{g} {t:.3f}" for g, t in zip(rule.groups_, rule.thresholds_))
            return rule.predict(base_test_score, g_test), f"thresholds on the baseline's score: {cuts}"
        return (score >= 0.5).astype(np.int64), change

    rows, chosen = [], privileged
    for method in progress(methods, desc="mitigations", enabled=show_progress):
        began = time.perf_counter()
        decisions, change = run(method)
        seconds = time.perf_counter() - began
        # no scores: the rows need no calibration or ROC curves, only the decisions' figures
        table = fairness_table(y_test, decisions, None, g_test, privileged=chosen, resamples=resamples, seed=seed)
        chosen = table.privileged  # every method is judged against the baseline's privileged group
        rows.append(
            MitigationRow(
                method=method,
                stage=METHODS[method][0],
                change=change,
                accuracy=table.accuracy,
                disparate_impact=table.four_fifths_ratio,
                statistical_parity_difference=table.worst(
                    "statistical_parity_difference"
                ).statistical_parity_difference,
                equal_opportunity_difference=table.worst("equal_opportunity_difference").equal_opportunity_difference,
                equalized_odds_difference=table.equalized_odds_all_groups,
                seconds=seconds,
            )
        )
    return MitigationResult(
        dataset=f"{train.name}/{train.split} -> {test.name}/{test.split}",
        attributes=tuple(protected),
        privileged=str(chosen),
        model=model_description(baseline),
        rows=tuple(rows),
        train_examples=len(train),
        test_examples=len(test),
        resamples=resamples,
        level=0.95,
        seed=seed,
        seconds=time.perf_counter() - start,
    )
