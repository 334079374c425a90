"""Fairness benchmark: trustlab's fairness metrics, reweighing and group thresholds against AIF360
and fairlearn, measured in the same run on the same model and data (UCI Adult, adult.data only).

Sections (``--only NAME``, repeatable; the others already in the result files are kept):

* ``agreement``: every metric trustlab computes that AIF360 (``ClassificationMetric``,
  ``BinaryLabelDatasetMetric``) or fairlearn (``MetricFrame``, ``demographic_parity_*``,
  ``equalized_odds_*``) also computes, on the test split of ``adult`` with trustlab's logistic
  regression (``fit_tabular_model``, fitted on the train split) and decisions at 0.5; groups by sex
  (privileged: Male) and, for fairlearn, sex x race. trustlab's figures are the point values of
  ``fairness_table`` (what the report shows). Any absolute difference above 1e-9 fails the run.
* ``reweighing-weights``: ``trustlab.fairness.preprocess.reweighing_weights`` against AIF360's
  ``Reweighing`` instance weights on the same training data (max |difference| <= 1e-9 or the
  run fails).
* ``thresholds``: ``trustlab.fairness.thresholds.GroupThresholds`` against fairlearn's
  ``ThresholdOptimizer`` (prefit logistic regression, ``predict_proba``, objective accuracy),
  constraints demographic parity and equalised odds, fitted on train and measured on test.
* ``timing``: ``fairness_table`` with 1,000 bootstrap resamples on all 32,561 rows against
  fairlearn's ``MetricFrame(n_boot=1000)`` (selection rate, TPR, FPR by sex), best of N repeats.
* ``reweighing-study``: AIF360's reweighing tutorial on ``adult_coarse`` (its preprocessing),
  trustlab's pipeline and AIF360's own on the same arrays, at threshold 0.5 and at the threshold
  with the best balanced accuracy on a validation part.

    python benchmarks/fairness.py [--data-dir DIR] [--resamples 1000] [--repeats 3] [--peer-repeats 1]
                                  [--only agreement] [--quick]

Runs in .venv-bench (``make bench-fairness``): AIF360 and fairlearn are never trustlab
dependencies. Writes benchmarks/results/fairness.json and .md (``fairness-quick.*`` with --quick).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, default_data_dir, environment, fmt_busy, log, other_cpu_load, peer  # noqa: E402

from trustlab.data import load_dataset  # noqa: E402
from trustlab.fairness import (  # noqa: E402
    disparate_impact,
    equalized_odds_difference,
    fairness_table,
    protected_groups,
    selection_rates,
    statistical_parity_difference,
)
from trustlab.models.tabular import fit_tabular_model, positive_probability, tabular_arrays  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
SECTIONS = ("agreement", "reweighing-weights", "thresholds", "timing", "reweighing-study")
TOLERANCE = 1e-9
PRIVILEGED = "Male"
NEIGHBOURS = 5  # AIF360's consistency default
THRESHOLD_GRID = np.linspace(0.01, 0.99, 100)  # AIF360's tutorial grid for the balanced-accuracy search
TUTORIAL = {"di_before": 0.28, "di_after": 0.76, "spd_before": -0.36, "spd_after": -0.09}
PEERS = (("aif360", "aif360"), ("fairlearn", "fairlearn"), ("scikit-learn", "sklearn"), ("pandas", "pandas"))


# ------------------------------------------------------------------------ helpers --------------
def _diff(a: float, b: float) -> float:
    """|a - b|, 0 when both are NaN (both undefined), inf when only one is."""
    a, b = float(a), float(b)
    if math.isnan(a) and math.isnan(b):
        return 0.0
    if math.isnan(a) or math.isnan(b):
        return math.inf
    return abs(a - b)


def _quiet() -> None:
    warnings.simplefilter("ignore")
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # AIF360's notes about optional dependencies


def _aif360_dataset(x: np.ndarray, names: list[str], y: np.ndarray, sex: np.ndarray | None = None) -> Any:
    """An AIF360 BinaryLabelDataset of the arrays (label ``income``, protected attribute ``sex``:
    1 Male, 0 Female). ``sex``: added as a column when the features do not hold it already."""
    import pandas as pd

    datasets = peer("aif360.datasets")
    frame = pd.DataFrame(x.astype(np.float64), columns=names)
    if sex is not None:
        frame["sex"] = sex.astype(np.float64)
    frame["income"] = y.astype(np.float64)
    return datasets.BinaryLabelDataset(
        df=frame, label_names=["income"], protected_attribute_names=["sex"], favorable_label=1.0, unfavorable_label=0.0
    )


def _with_labels(dataset: Any, labels: np.ndarray) -> Any:
    out = dataset.copy(deepcopy=True)
    out.labels = labels.reshape(-1, 1).astype(np.float64)
    return out


AIF_GROUPS = {"unprivileged_groups": [{"sex": 0.0}], "privileged_groups": [{"sex": 1.0}]}


# ---------------------------------------------------------------------- agreement -------------
def section_agreement(ctx: dict) -> dict:
    """trustlab's values next to AIF360's and fairlearn's on the same test-split decisions."""
    metrics = peer("aif360.metrics")
    flm = peer("fairlearn.metrics")
    test, model = ctx["test"], ctx["model"]
    x, y = tabular_arrays(test)
    score = positive_probability(model, x)
    pred = (score >= 0.5).astype(np.int64)
    sex_code = test.protected["sex"].codes.numpy()
    sex = protected_groups(test, ["sex"])
    sex_race = protected_groups(test, ["sex", "race"])
    rows: list[dict] = []

    def add(peer_name: str, metric: str, groups: str, ours: float, theirs: float, how: str = "") -> None:
        rows.append(
            {
                "peer": peer_name,
                "metric": metric,
                "groups": groups,
                "trustlab": float(ours),
                "peer_value": float(theirs),
                "difference": _diff(ours, theirs),
                "note": how,
            }
        )

    # consistency on the features AIF360 sees: trustlab's features plus the sex column
    x_aif = np.column_stack([x, sex_code.astype(np.float64)])
    table = fairness_table(
        y, pred, score, sex, privileged=PRIVILEGED, x=x_aif, neighbours=NEIGHBOURS, include_self=True, resamples=20
    )
    group = {row.group: row for row in table.groups}
    pair = table.pairs[0]  # Female against Male

    # AIF360
    truth = _aif360_dataset(x, list(test.feature_names), y, sex_code)
    predicted = _with_labels(truth, pred)
    cm = metrics.ClassificationMetric(truth, predicted, **AIF_GROUPS)
    add("AIF360", "statistical parity difference", "sex", pair.statistical_parity_difference.value,
        cm.statistical_parity_difference())  # fmt: skip
    add("AIF360", "disparate impact", "sex", pair.disparate_impact.value, cm.disparate_impact())
    add("AIF360", "equal opportunity difference", "sex", pair.equal_opportunity_difference.value,
        cm.equal_opportunity_difference())  # fmt: skip
    add("AIF360", "average odds difference", "sex", pair.average_odds_difference.value, cm.average_odds_difference())
    add("AIF360", "equalised odds difference", "sex", pair.equalized_odds_difference.value,
        cm.equalized_odds_difference())  # fmt: skip
    for label, privileged in (("Male", True), ("Female", False)):
        add("AIF360", f"selection rate {label}", "sex", group[label].selection_rate.value,
            cm.selection_rate(privileged=privileged))  # fmt: skip
        add("AIF360", f"TPR {label}", "sex", group[label].tpr.value, cm.true_positive_rate(privileged=privileged))
        add("AIF360", f"FPR {label}", "sex", group[label].fpr.value, cm.false_positive_rate(privileged=privileged))
    add("AIF360", "accuracy", "all", table.accuracy.value, cm.accuracy())
    label_metric = metrics.BinaryLabelDatasetMetric(truth, **AIF_GROUPS)
    add("AIF360", "statistical parity difference of the labels (dataset metric)", "sex",
        statistical_parity_difference(y, sex, PRIVILEGED)["Female"], label_metric.statistical_parity_difference(),
        "trustlab function on y_true")  # fmt: skip
    add("AIF360", "disparate impact of the labels (dataset metric)", "sex",
        disparate_impact(y, sex, PRIVILEGED)["Female"], label_metric.disparate_impact(),
        "trustlab function on y_true")  # fmt: skip
    start = time.perf_counter()
    aif_consistency = float(
        np.ravel(metrics.BinaryLabelDatasetMetric(predicted, **AIF_GROUPS).consistency(NEIGHBOURS))[0]
    )
    add("AIF360", f"consistency (k={NEIGHBOURS}, include_self=True)", "all", table.consistency.value, aif_consistency,
        f"features + sex, {len(x):,} rows; AIF360 {time.perf_counter() - start:.1f} s")  # fmt: skip

    # fairlearn: by sex, then by sex x race
    race_categories = np.asarray(test.protected["race"].categories)
    sex_categories = np.asarray(test.protected["sex"].categories)
    race_names = race_categories[test.protected["race"].codes.numpy()]
    sex_names = sex_categories[sex_code]
    import pandas as pd

    for label, groups, sensitive in (
        ("sex", sex, sex_names),
        ("sex x race", sex_race, pd.DataFrame({"sex": sex_names, "race": race_names})),
    ):
        t = fairness_table(y, pred, score, groups, resamples=20)  # privileged: largest selection rate
        by = {row.group: row for row in t.groups}
        frame = flm.MetricFrame(
            metrics={
                "selection_rate": flm.selection_rate,
                "tpr": flm.true_positive_rate,
                "fpr": flm.false_positive_rate,
            },
            y_true=y,
            y_pred=pred,
            sensitive_features=sensitive,
        )
        for key, values in frame.by_group.iterrows():
            name = " & ".join(key) if isinstance(key, tuple) else str(key)
            add("fairlearn", f"selection rate {name}", label, by[name].selection_rate.value, values["selection_rate"])
            add("fairlearn", f"TPR {name}", label, by[name].tpr.value, values["tpr"])
            add("fairlearn", f"FPR {name}", label, by[name].fpr.value, values["fpr"])
        add("fairlearn", "demographic parity difference", label, t.discrimination.value,
            flm.demographic_parity_difference(y, pred, sensitive_features=sensitive),
            "trustlab: abs(SPD) of the worst group against the largest selection rate")  # fmt: skip
        add("fairlearn", "demographic parity ratio", label, t.four_fifths_ratio.value,
            flm.demographic_parity_ratio(y, pred, sensitive_features=sensitive),
            "trustlab: the four-fifths ratio (lowest over highest selection rate)")  # fmt: skip
        add("fairlearn", "equalised odds difference", label, t.equalized_odds_all_groups.value,
            flm.equalized_odds_difference(y, pred, sensitive_features=sensitive))  # fmt: skip
        add("fairlearn", "equalised odds difference (function)", label,
            equalized_odds_difference(y, pred, groups),
            flm.equalized_odds_difference(y, pred, sensitive_features=sensitive))  # fmt: skip
        tpr = np.array([row.tpr.value for row in t.groups])
        fpr = np.array([row.fpr.value for row in t.groups])
        add("fairlearn", "equalised odds ratio", label, min(tpr.min() / tpr.max(), fpr.min() / fpr.max()),
            flm.equalized_odds_ratio(y, pred, sensitive_features=sensitive),
            "derived here from trustlab's per-group TPR and FPR (trustlab has no such figure)")  # fmt: skip

    worst = max(rows, key=lambda r: r["difference"])
    return {
        "data": f"adult test split ({len(y):,} rows), logistic regression fitted on the train split, threshold 0.5",
        "rows": rows,
        "max_difference": worst["difference"],
        "worst": f"{worst['peer']}: {worst['metric']} ({worst['groups']})",
        "passed": all(r["difference"] <= TOLERANCE for r in rows),
    }


# ------------------------------------------------------------------ reweighing weights --------
def _reweighing_module() -> Any:
    import importlib

    return importlib.import_module("trustlab.fairness.preprocess")


def section_reweighing_weights(ctx: dict) -> dict:
    """trustlab's reweighing weights against AIF360's Reweighing on the same training data."""
    import pandas as pd

    preprocessing = peer("aif360.algorithms.preprocessing")
    try:
        ours = _reweighing_module().reweighing_weights
    except (ImportError, AttributeError) as exc:
        return {"skipped": f"trustlab.fairness.preprocess.reweighing_weights is not available yet ({exc})"}
    rows = []
    for dataset_name, data in (("adult", ctx["train"]), ("adult_coarse", ctx["coarse_train"])):
        x, y = tabular_arrays(data)
        # adult's race has five categories: AIF360's Reweighing takes one privileged and one
        # unprivileged side, so race is compared on adult_coarse (White against Non-White) only
        for attribute in ("sex", "race") if dataset_name == "adult_coarse" else ("sex",):
            attr = data.protected[attribute]
            privileged = {"sex": PRIVILEGED, "race": "White"}[attribute]
            binary = (attr.codes.numpy() == attr.categories.index(privileged)).astype(np.int64)
            frame = pd.DataFrame(x, columns=list(data.feature_names))
            frame[f"protected_{attribute}"] = binary.astype(np.float64)
            frame["income"] = y.astype(np.float64)
            dataset = peer("aif360.datasets").BinaryLabelDataset(
                df=frame, label_names=["income"], protected_attribute_names=[f"protected_{attribute}"],
                favorable_label=1.0, unfavorable_label=0.0,
            )  # fmt: skip
            start = time.perf_counter()
            theirs = (
                preprocessing.Reweighing(
                    unprivileged_groups=[{f"protected_{attribute}": 0.0}],
                    privileged_groups=[{f"protected_{attribute}": 1.0}],
                )
                .fit_transform(dataset)
                .instance_weights
            )
            peer_seconds = time.perf_counter() - start
            labels = protected_groups(data, [attribute])
            start = time.perf_counter()
            weights = np.asarray(ours(y, labels), dtype=np.float64)
            seconds = time.perf_counter() - start
            distinct = sorted({round(float(w), 6) for w in weights})
            rows.append(
                {
                    "data": f"{dataset_name} train",
                    "attribute": attribute,
                    "rows": int(len(y)),
                    "max_difference": float(np.max(np.abs(weights - theirs))),
                    "weights": distinct,
                    "sum_trustlab": float(weights.sum()),
                    "sum_aif360": float(np.sum(theirs)),
                    "trustlab_ms": round(1000 * seconds, 2),
                    "aif360_ms": round(1000 * peer_seconds, 2),
                }
            )
    return {
        "rows": rows,
        "max_difference": max(r["max_difference"] for r in rows),
        "passed": all(r["max_difference"] <= TOLERANCE for r in rows),
    }


# ------------------------------------------------------------------------ thresholds -----------
def _decision_figures(y: np.ndarray, pred: np.ndarray, groups: np.ndarray) -> dict:
    """Accuracy, selection-rate gap (max - min), disparate impact (min / max selection rate) and
    the all-groups equalised odds difference of decisions ``pred`` (trustlab's functions)."""
    rates = np.array(list(selection_rates(pred, groups).values()))
    return {
        "accuracy": float((pred == y).mean()),
        "selection_rate_gap": float(rates.max() - rates.min()),
        "disparate_impact": float(rates.min() / rates.max()) if rates.max() > 0 else float("nan"),
        "equalized_odds_difference": float(equalized_odds_difference(y, pred, groups)),
        "selection_rates": {k: float(v) for k, v in selection_rates(pred, groups).items()},
    }


COIN_SEEDS = range(10)  # both methods randomise some decisions: figures are means over these seeds
FIGURES = ("accuracy", "selection_rate_gap", "disparate_impact", "equalized_odds_difference")


def _mean_figures(runs: list[dict]) -> dict:
    return {key: float(np.mean([r[key] for r in runs])) for key in FIGURES}


def _expected_figures(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> dict:
    """The figures of randomised decisions in expectation over the coins: ``p`` is each example's
    probability of being selected."""
    labels = np.unique(groups)
    rate = np.array([p[groups == g].mean() for g in labels])
    tpr = np.array([p[(groups == g) & (y == 1)].mean() for g in labels])
    fpr = np.array([p[(groups == g) & (y == 0)].mean() for g in labels])
    return {
        "accuracy": float(np.mean(y * p + (1 - y) * (1 - p))),
        "selection_rate_gap": float(rate.max() - rate.min()),
        "disparate_impact": float(rate.min() / rate.max()),
        "equalized_odds_difference": float(max(tpr.max() - tpr.min(), fpr.max() - fpr.min())),
    }


def _trustlab_selection_probability(fitted: Any, score: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """P(selected) of each example under GroupThresholds' fitted rule (its documented attributes)."""
    code = np.searchsorted(fitted.groups_, groups.astype(str))
    upper, lower = fitted.upper_thresholds_[code], fitted.thresholds_[code]
    by_score = (score >= upper) + ((score >= lower) & (score < upper)) * fitted.band_probabilities_[code]
    share = fitted.random_shares_[code]
    return share * fitted.random_rate_ + (1 - share) * by_score


def section_thresholds(ctx: dict) -> dict:
    """GroupThresholds against fairlearn's ThresholdOptimizer: fit on train, measure on train and
    test; decisions of both are randomised, so each figure is a mean over 10 coin seeds."""
    postprocessing = peer("fairlearn.postprocessing")
    try:
        import importlib

        GroupThresholds = importlib.import_module("trustlab.fairness.thresholds").GroupThresholds  # noqa: N806
    except (ImportError, AttributeError) as exc:
        return {"skipped": f"trustlab.fairness.thresholds.GroupThresholds is not available yet ({exc})"}
    train, test, model = ctx["train"], ctx["test"], ctx["model"]
    x_train, y_train = tabular_arrays(train)
    x_test, y_test = tabular_arrays(test)
    s_train, s_test = positive_probability(model, x_train), positive_probability(model, x_test)
    rows = []
    for attributes in (["sex"], ["sex", "race"]):
        label = " x ".join(attributes)
        g_train, g_test = protected_groups(train, attributes), protected_groups(test, attributes)
        rows.append(
            {
                "groups": label,
                "constraint": "none",
                "method": "threshold 0.5",
                "train": _decision_figures(y_train, (s_train >= 0.5).astype(np.int64), g_train),
                "test": _decision_figures(y_test, (s_test >= 0.5).astype(np.int64), g_test),
                "expected_train": _decision_figures(y_train, (s_train >= 0.5).astype(np.int64), g_train),
                "expected_test": _decision_figures(y_test, (s_test >= 0.5).astype(np.int64), g_test),
                "fit_seconds": 0.0,
            }
        )
        for constraint in ("demographic_parity", "equalized_odds"):
            row = {"groups": label, "constraint": constraint, "method": "trustlab GroupThresholds"}
            try:
                start = time.perf_counter()
                GroupThresholds(constraint=constraint, seed=0).fit(y_train, s_train, g_train)
                row["fit_seconds"] = round(time.perf_counter() - start, 3)
                on_train, on_test = [], []
                for seed in COIN_SEEDS:
                    fitted = GroupThresholds(constraint=constraint, seed=seed).fit(y_train, s_train, g_train)
                    on_train.append(_decision_figures(y_train, np.asarray(fitted.predict(s_train, g_train)), g_train))
                    on_test.append(_decision_figures(y_test, np.asarray(fitted.predict(s_test, g_test)), g_test))
                row |= {
                    "train": _mean_figures(on_train),
                    "test": _mean_figures(on_test),
                    "expected_train": _expected_figures(
                        y_train, _trustlab_selection_probability(fitted, s_train, g_train), g_train
                    ),
                    "expected_test": _expected_figures(
                        y_test, _trustlab_selection_probability(fitted, s_test, g_test), g_test
                    ),
                    "reported_accuracy": float(fitted.accuracy_),
                }
            except Exception as exc:  # noqa: BLE001 - a failing row is reported, the others go on
                row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
            start = time.perf_counter()
            optimizer = postprocessing.ThresholdOptimizer(
                estimator=model, constraints=constraint, objective="accuracy_score", prefit=True,
                predict_method="predict_proba",
            )  # fmt: skip
            optimizer.fit(x_train, y_train, sensitive_features=g_train)
            fit_seconds = time.perf_counter() - start
            on_train = [
                _decision_figures(y_train, np.asarray(optimizer.predict(x_train, sensitive_features=g_train,
                                                                        random_state=seed)).astype(np.int64), g_train)
                for seed in COIN_SEEDS
            ]  # fmt: skip
            on_test = [
                _decision_figures(y_test, np.asarray(optimizer.predict(x_test, sensitive_features=g_test,
                                                                       random_state=seed)).astype(np.int64), g_test)
                for seed in COIN_SEEDS
            ]  # fmt: skip
            rows.append(
                {
                    "groups": label,
                    "constraint": constraint,
                    "method": "fairlearn ThresholdOptimizer",
                    "train": _mean_figures(on_train),
                    "test": _mean_figures(on_test),
                    # fairlearn's private _pmf_predict: P(selected) per example under its rule
                    "expected_train": _expected_figures(
                        y_train, optimizer._pmf_predict(x_train, sensitive_features=g_train)[:, 1], g_train
                    ),
                    "expected_test": _expected_figures(
                        y_test, optimizer._pmf_predict(x_test, sensitive_features=g_test)[:, 1], g_test
                    ),
                    "fit_seconds": round(fit_seconds, 3),
                }
            )
    return {
        "data": "adult: logistic regression's scores; fitted on the train split, measured on train and test",
        "coin_seeds": len(COIN_SEEDS),
        "rows": rows,
    }


# ----------------------------------------------------------------------------- timing ----------
def section_timing(ctx: dict) -> dict:
    """fairness_table (1,000 resamples) against fairlearn's bootstrapped MetricFrame, same input;
    trustlab's table alone also for race and sex x race (the timing of the first version)."""
    flm = peer("fairlearn.metrics")
    args, data, model = ctx["args"], ctx["all"], ctx["model"]
    x, y = tabular_arrays(data)
    score = positive_probability(model, x)
    pred = (score >= 0.5).astype(np.int64)
    busy_before = other_cpu_load()
    tables, per_groups = {}, []
    for names in (["sex"], ["race"], ["sex", "race"]):
        groups = protected_groups(data, names)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            table = fairness_table(y, pred, score, groups, resamples=args.resamples, seed=0)
            times.append(time.perf_counter() - start)
        tables[" x ".join(names)] = table
        ratio = table.four_fifths_ratio
        per_groups.append(
            {
                "groups": " x ".join(names),
                "count": len(table.groups),
                "best": round(min(times), 3),
                "worst": round(max(times), 3),
                "four_fifths_ratio": [ratio.value, ratio.low, ratio.high],
            }
        )
        log(f"timing: {' x '.join(names)} best {min(times):.2f} s")
    sex = protected_groups(data, ["sex"])
    log(f"timing: fairlearn next ({args.peer_repeats} repeat(s), minutes each)")
    theirs = []
    for _ in range(args.peer_repeats):
        start = time.perf_counter()
        frame = flm.MetricFrame(
            metrics={
                "selection_rate": flm.selection_rate,
                "tpr": flm.true_positive_rate,
                "fpr": flm.false_positive_rate,
            },
            y_true=y,
            y_pred=pred,
            sensitive_features=sex,
            n_boot=args.resamples,
            ci_quantiles=[0.025, 0.975],
            random_state=0,
        )
        theirs.append(time.perf_counter() - start)
    busy_after = other_cpu_load()
    intervals = []
    low, high = frame.by_group_ci
    for row in tables["sex"].groups:
        for metric in ("selection_rate", "tpr", "fpr"):
            est = getattr(row, metric)
            intervals.append(
                {
                    "group": row.group,
                    "metric": metric,
                    "value": est.value,
                    "trustlab": [est.low, est.high],
                    "fairlearn": [float(low.loc[row.group, metric]), float(high.loc[row.group, metric])],
                }
            )
    ours = per_groups[0]
    return {
        "data": f"adult, all {len(y):,} rows; logistic regression fitted on the train split; threshold 0.5",
        "resamples": args.resamples,
        "repeats": args.repeats,
        "trustlab": per_groups,
        "fairlearn_seconds": [round(t, 2) for t in theirs],
        "trustlab_best": ours["best"],
        "fairlearn_best": round(min(theirs), 2),
        "ratio": round(min(theirs) / ours["best"], 1),
        "trustlab_computes": "selection rate, TPR, FPR, ECE per group; SPD, DI, EOD, AOD, EqOdds per pair; "
        "all-groups EqOdds; accuracy; 95% percentile intervals of all",
        "fairlearn_computes": "selection rate, TPR, FPR per group; 2.5% and 97.5% quantiles",
        "other_cpu_load_before": busy_before,
        "other_cpu_load_after": busy_after,
        "threads": args.threads,
        "intervals": intervals,
    }


# ------------------------------------------------------------------- reweighing study ----------
def _split_validation(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The test split's rows halved at random (seeded): validation, test (AIF360's tutorial
    splits its held-out 30% likewise into validation and test)."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return 0.5 * (float(pred[y == 1].mean()) + float(1 - pred[y == 0].mean()))


def _fit_weighted(train: Any, weights: np.ndarray | None) -> tuple[Any, str]:
    """trustlab's logistic model, with reweighing weights when given."""
    if weights is None:
        return fit_tabular_model(train, kind="logistic"), "fit_tabular_model"
    return fit_tabular_model(train, kind="logistic", sample_weight=weights), "fit_tabular_model(sample_weight=)"


def section_reweighing_study(ctx: dict) -> dict:
    """AIF360's reweighing tutorial on adult_coarse: trustlab's pipeline and AIF360's own."""
    metrics = peer("aif360.metrics")
    preprocessing = peer("aif360.algorithms.preprocessing")
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    try:
        reweighing_weights = _reweighing_module().reweighing_weights
    except (ImportError, AttributeError) as exc:
        return {"skipped": f"trustlab.fairness.preprocess.reweighing_weights is not available yet ({exc})"}
    if "sample_weight" not in inspect.signature(fit_tabular_model).parameters:
        return {"skipped": "fit_tabular_model has no sample_weight keyword yet"}
    train, held_out = ctx["coarse_train"], ctx["coarse_test"]
    valid_rows, test_rows = _split_validation(len(held_out))
    valid, test = held_out.subset(valid_rows), held_out.subset(test_rows)
    names = list(train.feature_names)
    x_train, y_train = tabular_arrays(train)
    x_valid, y_valid = tabular_arrays(valid)
    x_test, y_test = tabular_arrays(test)
    sex_train, sex_valid, sex_test = (protected_groups(d, ["sex"]) for d in (train, valid, test))

    def trustlab_figures(model: Any) -> dict:
        s_valid, s_test = positive_probability(model, x_valid), positive_probability(model, x_test)
        bal = [_balanced_accuracy(y_valid, (s_valid >= t).astype(np.int64)) for t in THRESHOLD_GRID]
        best = float(THRESHOLD_GRID[int(np.argmax(bal))])
        out = {"best_threshold": best, "best_validation_balanced_accuracy": float(max(bal))}
        for name, threshold in (("at_0.5", 0.5), ("at_best", best)):
            pred = (s_test >= threshold).astype(np.int64)
            out[name] = {
                "disparate_impact": disparate_impact(pred, sex_test, PRIVILEGED)["Female"],
                "statistical_parity_difference": statistical_parity_difference(pred, sex_test, PRIVILEGED)["Female"],
                "balanced_accuracy": _balanced_accuracy(y_test, pred),
                "accuracy": float((pred == y_test).mean()),
            }
        return out

    weights = np.asarray(reweighing_weights(y_train, sex_train), dtype=np.float64)
    results: dict[str, Any] = {}
    how = {}
    for name, w in (("original", None), ("reweighed", weights)):
        model, how[name] = _fit_weighted(train, w)
        results[f"trustlab {name}"] = trustlab_figures(model)

    # AIF360's own pipeline (its tutorial, step by step) on the same arrays
    d_train, d_valid, d_test = (_aif360_dataset(x, names, y) for x, y in ((x_train, y_train), (x_valid, y_valid),
                                                                            (x_test, y_test)))  # fmt: skip
    transformed = preprocessing.Reweighing(**AIF_GROUPS).fit_transform(d_train)
    aif_weight_difference = float(np.max(np.abs(transformed.instance_weights - weights)))
    for name, d in (("original", d_train), ("reweighed", transformed)):
        scaler = StandardScaler()
        features = scaler.fit_transform(d.features)
        lmod = LogisticRegression()
        lmod.fit(features, d.labels.ravel(), sample_weight=d.instance_weights)
        positive = int(np.where(lmod.classes_ == d.favorable_label)[0][0])
        s_valid = lmod.predict_proba(scaler.transform(d_valid.features))[:, positive]
        s_test = lmod.predict_proba(scaler.transform(d_test.features))[:, positive]
        bal = []
        for threshold in THRESHOLD_GRID:
            cm = metrics.ClassificationMetric(d_valid, _with_labels(d_valid, (s_valid >= threshold).astype(float)),
                                              **AIF_GROUPS)  # fmt: skip
            bal.append(0.5 * (cm.true_positive_rate() + cm.true_negative_rate()))
        best = float(THRESHOLD_GRID[int(np.argmax(bal))])
        out = {"best_threshold": best, "best_validation_balanced_accuracy": float(max(bal))}
        for label, threshold in (("at_0.5", 0.5), ("at_best", best)):
            cm = metrics.ClassificationMetric(d_test, _with_labels(d_test, (s_test >= threshold).astype(float)),
                                              **AIF_GROUPS)  # fmt: skip
            out[label] = {
                "disparate_impact": float(cm.disparate_impact()),
                "statistical_parity_difference": float(cm.statistical_parity_difference()),
                "balanced_accuracy": float(0.5 * (cm.true_positive_rate() + cm.true_negative_rate())),
                "accuracy": float(cm.accuracy()),
            }
        results[f"AIF360 {name}"] = out
    return {
        "data": f"adult_coarse: train split {len(y_train):,} rows; the test split halved at random (seed 0) into "
        f"validation {len(y_valid):,} and test {len(y_test):,}; groups by sex (privileged Male)",
        "trustlab_model": "StandardScaler + LogisticRegression(max_iter=1000): "
        + ", ".join(f"{k}: {v}" for k, v in how.items()),
        "aif360_model": "AIF360 tutorial: StandardScaler (unweighted) + LogisticRegression() fitted with "
        "sample_weight = Reweighing's instance weights",
        "threshold_grid": "numpy.linspace(0.01, 0.99, 100), best balanced accuracy on validation",
        "weights_max_difference_vs_aif360": aif_weight_difference,
        "results": results,
        "published_tutorial": TUTORIAL,
    }


# ----------------------------------------------------------------------------- output ----------
def _f(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    value = float(value)
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def _e(value: float) -> str:
    return "inf" if math.isinf(value) else ("0" if value == 0 else f"{value:.1e}")


def markdown(payload: dict) -> str:
    env, sections = payload["environment"], payload["sections"]
    v = env["versions"]
    lines = [
        "# Fairness benchmark",
        "",
        f"Ran {payload['ran']} on {env['platform']}, {env['torch_threads']} threads; trustlab {v.get('trustlab')}, "
        f"AIF360 {v.get('aif360')}, fairlearn {v.get('fairlearn')}, scikit-learn {v.get('scikit-learn')}, "
        f"numpy {v.get('numpy')}, pandas {v.get('pandas')} (other CPU load before: {payload['other_cpu_load_before']})."
        " Data: UCI Adult, adult.data only (32,561 rows; AIF360's own loaders add adult.test, 48,842 rows).",
        "",
    ]
    s = sections.get("agreement")
    if s:
        lines += [
            "## Agreement of the metrics",
            "",
            f"{s['data']}. Fails above {TOLERANCE:g}: **{'passed' if s['passed'] else 'FAILED'}**, largest "
            f"difference {_e(s['max_difference'])} ({s['worst']}).",
            "",
            "| peer | groups | metric | trustlab | peer | abs. difference | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in s["rows"]:
            lines.append(
                f"| {r['peer']} | {r['groups']} | {r['metric']} | {_f(r['trustlab'], 6)} | {_f(r['peer_value'], 6)} "
                f"| {_e(r['difference'])} | {r['note']} |"
            )
        lines.append("")
    s = sections.get("reweighing-weights")
    if s:
        lines += ["## Reweighing weights against AIF360's Reweighing", ""]
        if "skipped" in s:
            lines += [f"Skipped: {s['skipped']}", ""]
        else:
            lines += [
                f"**{'passed' if s['passed'] else 'FAILED'}**: largest difference {_e(s['max_difference'])}.",
                "",
                "| data | attribute | rows | max abs. difference | distinct weights | sum trustlab / AIF360 "
                "| ms trustlab / AIF360 |",
                "|---|---|---|---|---|---|---|",
            ]
            for r in s["rows"]:
                lines.append(
                    f"| {r['data']} | {r['attribute']} | {r['rows']:,} | {_e(r['max_difference'])} "
                    f"| {', '.join(f'{w:.4f}' for w in r['weights'])} "
                    f"| {r['sum_trustlab']:.3f} / {r['sum_aif360']:.3f} "
                    f"| {r['trustlab_ms']} / {r['aif360_ms']} |"
                )
            lines.append("")
    s = sections.get("thresholds")
    if s:
        lines += ["## Group thresholds against fairlearn's ThresholdOptimizer", ""]
        if "skipped" in s:
            lines += [f"Skipped: {s['skipped']}", ""]
        else:
            lines += [
                f"{s['data']}. Both randomise some decisions: every figure is the mean over {s['coin_seeds']} coin "
                "seeds (trustlab `seed=`, fairlearn `random_state=`), all measured with trustlab's functions; "
                "'expected': the same figures in expectation over the coins (each example's probability of "
                "selection: from GroupThresholds' fitted attributes, and fairlearn's `_pmf_predict`). "
                "gap: max - min selection rate over groups; DI: min / max selection rate; EOdd: fairlearn's "
                "all-groups equalised odds difference.",
                "",
                "| groups | constraint | method | figures | train acc | train gap | train DI | train EOdd "
                "| test acc | test gap | test DI | test EOdd | fit s |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for r in s["rows"]:
                head = f"| {r['groups']} | {r['constraint']} | {r['method']}"
                if "error" in r:
                    lines.append(f"{head} | {r['error']} |" + " |" * 9)
                    continue
                for kind, parts in (("expected", ("expected_train", "expected_test")), ("realised", ("train", "test"))):
                    if r["constraint"] == "none" and kind == "realised":
                        continue
                    cells = [_f(r[part][key]) for part in parts for key in FIGURES]
                    lines.append(f"{head} | {kind} | {' | '.join(cells)} | {r['fit_seconds']} |")
            lines.append("")
    s = sections.get("timing")
    if s:
        lines += [
            "## Time of the bootstrap table",
            "",
            f"{s['data']}; {s['resamples']} resamples, {s['threads']} threads. Groups by sex: trustlab "
            f"`fairness_table` best of {s['repeats']}: **{s['trustlab_best']} s**; fairlearn "
            f"`MetricFrame(n_boot={s['resamples']}, ci_quantiles=[0.025, 0.975])` best of "
            f"{len(s['fairlearn_seconds'])}: **{s['fairlearn_best']} s**; ratio **{s['ratio']}x**. Other CPU load "
            f"before / after: {fmt_busy(s['other_cpu_load_before'])} / {fmt_busy(s['other_cpu_load_after'])} "
            "(timings taken while other work shares the CPUs are noisy).",
            "",
            f"trustlab computes {s['trustlab_computes']}; fairlearn computes {s['fairlearn_computes']}.",
            "",
            "| groups | count | trustlab best s | worst s | four-fifths ratio [95%] |",
            "|---|---|---|---|---|",
        ]
        for r in s["trustlab"]:
            v, lo, hi = r["four_fifths_ratio"]
            lines.append(
                f"| {r['groups']} | {r['count']} | {r['best']} | {r['worst']} | {_f(v, 3)} [{_f(lo, 3)}, {_f(hi, 3)}] |"
            )
        lines += [
            "",
            "Intervals by sex (different resamples, so close but not equal):",
            "",
            "| group | metric | value | trustlab 95% | fairlearn 95% |",
            "|---|---|---|---|---|",
        ]
        for r in s["intervals"]:
            lines.append(
                f"| {r['group']} | {r['metric']} | {_f(r['value'])} | [{_f(r['trustlab'][0])}, {_f(r['trustlab'][1])}] "
                f"| [{_f(r['fairlearn'][0])}, {_f(r['fairlearn'][1])}] |"
            )
        lines.append("")
    s = sections.get("reweighing-study")
    if s:
        lines += ["## Reweighing study (AIF360's tutorial on adult_coarse)", ""]
        if "skipped" in s:
            lines += [f"Skipped: {s['skipped']}", ""]
        else:
            t = s["published_tutorial"]
            lines += [
                f"{s['data']}. trustlab: {s['trustlab_model']}. AIF360: {s['aif360_model']}. Threshold search: "
                f"numpy.linspace(0.01, 0.99, 100), best balanced accuracy on validation. trustlab's reweighing "
                "weights differ from AIF360's on this train split by at most "
                f"{_e(s['weights_max_difference_vs_aif360'])}.",
                "",
                "| pipeline | best threshold | DI @0.5 | SPD @0.5 | bal. acc @0.5 | DI @best | SPD @best "
                "| bal. acc @best "
                "| acc @best |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for name, r in s["results"].items():
                a, b = r["at_0.5"], r["at_best"]
                lines.append(
                    f"| {name} | {r['best_threshold']:.4f} | {_f(a['disparate_impact'], 3)} "
                    f"| {_f(a['statistical_parity_difference'], 3)} | {_f(a['balanced_accuracy'], 3)} "
                    f"| {_f(b['disparate_impact'], 3)} | {_f(b['statistical_parity_difference'], 3)} "
                    f"| {_f(b['balanced_accuracy'], 3)} | {_f(b['accuracy'], 3)} |"
                )
            lines += [
                "",
                f"AIF360's published tutorial (48,842 rows, its own random 70/15/15 split): DI {t['di_before']} -> "
                f"{t['di_after']}, SPD {t['spd_before']} -> {t['spd_after']}.",
                "",
            ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of trustlab's timed table (best is kept)")
    parser.add_argument("--peer-repeats", type=int, default=1, help="repeats of fairlearn's bootstrap (minutes each)")
    parser.add_argument("--only", action="append", choices=SECTIONS, default=None, help="repeatable")
    parser.add_argument("--quick", action="store_true", help="smoke test: 50 resamples; writes fairness-quick.*")
    parser.add_argument("--out", type=Path, default=None, help="output path without suffix")
    args = parser.parse_args()
    if args.quick:
        args.resamples, args.repeats, args.peer_repeats = 50, 1, 1
    stem = args.out or RESULTS / ("fairness-quick" if args.quick else "fairness")
    torch.set_num_threads(args.threads)
    _quiet()
    busy = other_cpu_load()
    ctx = {
        "args": args,
        "all": load_dataset("adult", "all", root=args.data_dir),
        "train": load_dataset("adult", "train", root=args.data_dir),
        "test": load_dataset("adult", "test", root=args.data_dir),
        "coarse_train": load_dataset("adult_coarse", "train", root=args.data_dir),
        "coarse_test": load_dataset("adult_coarse", "test", root=args.data_dir),
    }
    ctx["model"] = fit_tabular_model(ctx["train"], kind="logistic")
    builders = {
        "agreement": section_agreement,
        "reweighing-weights": section_reweighing_weights,
        "thresholds": section_thresholds,
        "timing": section_timing,
        "reweighing-study": section_reweighing_study,
    }
    sections: dict[str, Any] = {}
    path = stem.with_suffix(".json")
    if args.only and path.is_file():
        sections = json.loads(path.read_text()).get("sections", {})
    for name in args.only or SECTIONS:
        log(f"{name} ...")
        start = time.perf_counter()
        sections[name] = builders[name](ctx) | {"ran": datetime.now(UTC).isoformat(timespec="seconds")}
        log(f"{name}: {time.perf_counter() - start:.1f} s")
    payload = {
        "ran": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment(args.threads, PEERS),
        "other_cpu_load_before": busy,
        "argv": sys.argv[1:],
        "sections": {name: sections[name] for name in SECTIONS if name in sections},
    }
    stem.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    stem.with_suffix(".md").write_text(markdown(payload))
    print(markdown(payload))
    failed = [name for name, s in payload["sections"].items() if s.get("passed") is False]
    skipped = [name for name, s in payload["sections"].items() if "skipped" in s]
    if skipped:
        log(f"skipped (trustlab module missing): {', '.join(skipped)}")
    if failed:
        log(f"FAILED (a difference above {TOLERANCE:g}): {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
