"""``trustlab fairness audit``: does the model treat protected groups alike, and how sure is that?"""

from __future__ import annotations

import click

from trustlab.cli.options import data_dir_option, echo_and_report, new_run, open_model, out_option

DEFAULT_KIND = "logistic"
MITIGATIONS = (
    "reweighing",
    "massaging",
    "disparate_impact_remover",
    "lfr",
    "thresholds_dp",
    "thresholds_four_fifths",
    "thresholds_eo",
)  # fmt: skip  (trustlab.fairness.mitigation.METHODS, kept here so that --help imports no torch)


@click.group("fairness")
def fairness() -> None:
    """Fairness: group metrics with bootstrap intervals over protected attributes."""


def _open(dataset, split, data_dir, protected, label_column):
    from trustlab.data.io import open_dataset

    return open_dataset(dataset, split, root=data_dir, label_column=label_column, protected=protected)


_protected_option = click.option(
    "--protected", multiple=True, required=True,
    help="protected attribute (repeatable: several give intersectional groups, e.g. sex x race)",
)  # fmt: skip
_resamples_option = click.option(
    "--resamples", type=click.IntRange(min=1), default=1000, show_default=True, help="bootstrap resamples"
)


@fairness.command("audit")
@click.option(
    "--model", default=None,
    help="model file (trustlab, TorchScript, ONNX, skops...); default: fit a logistic regression on the train split",
)  # fmt: skip
@click.option("--allow-pickle", is_flag=True, help="trust and unpickle a full pickle (can run arbitrary code)")
@click.option(
    "--kind", type=click.Choice(["logistic", "gradient_boosting"]), default=DEFAULT_KIND, show_default=True,
    help="model fitted on the train split when --model is not given",
)  # fmt: skip
@click.option(
    "--dataset", required=True,
    help="data set with protected attributes (e.g. adult), an .npz file or a CSV file (with --label-column)",
)  # fmt: skip
@click.option("--split", default=None, help="split audited (default: test without --model, else the set's default)")
@click.option("--label-column", default=None, help="CSV: the label column")
@_protected_option
@click.option(
    "--privileged", default=None,
    help='privileged group, e.g. Male or "Male & White" (default: the largest selection rate)',
)  # fmt: skip
@click.option(
    "--threshold", type=click.FloatRange(min=0, max=1), default=0.5, show_default=True,
    help="decision threshold on the positive-class probability",
)  # fmt: skip
@_resamples_option
@click.option(
    "--min-group-size", type=click.IntRange(min=1), default=30, show_default=True,
    help="groups smaller than this get a warning",
)  # fmt: skip
@click.option("--no-consistency", is_flag=True, help="skip Zemel's consistency (a k-nearest-neighbour search)")
@click.option(
    "--include-self", is_flag=True, help="consistency: count each point as its own neighbour (as AIF360 does)"
)
@click.option("--seed", type=int, default=0, show_default=True)
@out_option("runs/fairness")
@data_dir_option
def audit(
    model, allow_pickle, kind, dataset, split, label_column, protected, privileged, threshold, resamples,
    min_group_size, no_consistency, include_self, seed, out, data_dir,
) -> None:  # fmt: skip
    """Selection rates, TPR, FPR and calibration per group; statistical parity, disparate impact,
    equal opportunity, average and equalised odds; consistency; every figure with a bootstrap interval."""
    from trustlab.core.exceptions import InputError
    from trustlab.fairness.checks import run_fairness
    from trustlab.fairness.groups import binary, protected_groups
    from trustlab.fairness.metrics import encode_groups

    protected = list(dict.fromkeys(protected))
    data = _open(dataset, split if split or model else "test", data_dir, protected, label_column)
    # the user's mistakes fail here, before any model is loaded or fitted
    encode_groups(protected_groups(data, protected), what="--protected " + " x ".join(protected))
    binary(data.y, f"labels of data set {data.name!r}", len(data))
    if model is not None:
        from trustlab.models.checks import add_model_card

        predictor, source = open_model(model, None, allow_pickle, data.input_shape, 256)
        run = new_run(out, seed=seed)
        add_model_card(run, predictor, source=source)
    else:
        from trustlab.data.registry import list_datasets
        from trustlab.models.tabular import fit_tabular_model

        with_train = {spec.name for spec in list_datasets() if "train" in spec.splits}
        if data.kind != "tabular" or dataset not in with_train:
            raise InputError(
                "without --model a model is fitted on the data set's train split, which only registered "
                f"tabular data sets (e.g. adult) have; give --model to audit {dataset}"
            )
        predictor = fit_tabular_model(_open(dataset, "train", data_dir, protected, None), kind=kind, seed=seed)
        run = new_run(out, seed=seed)
    result = run_fairness(
        run, predictor, data, protected=protected, privileged=privileged, threshold=threshold,
        consistency=not no_consistency, include_self=include_self, min_group_size=min_group_size,
        resamples=resamples, seed=seed,
    )  # fmt: skip
    echo_and_report(run, [result], title="trustlab fairness audit")


@fairness.command("mitigate")
@click.option("--dataset", required=True, help="registered tabular data set with train and test splits (e.g. adult)")
@_protected_option
@click.option(
    "--kind", type=click.Choice(["logistic", "gradient_boosting"]), default=DEFAULT_KIND, show_default=True,
    help="the model fitted by every method",
)  # fmt: skip
@click.option(
    "--method", "methods", multiple=True, type=click.Choice(list(MITIGATIONS)),
    help="a mitigation to try (repeatable; default: all; the baseline always runs)",
)  # fmt: skip
@click.option(
    "--privileged", default=None,
    help='privileged group, e.g. Male (default: the group the baseline selects most)',
)  # fmt: skip
@_resamples_option
@click.option("--seed", type=int, default=0, show_default=True)
@out_option("runs/fairness-mitigate")
@data_dir_option
def mitigate(dataset, protected, kind, methods, privileged, resamples, seed, out, data_dir) -> None:
    """Retrain with each mitigation (reweighing, massaging, disparate impact removal, learned fair
    representations, group thresholds) and compare accuracy and fairness on the test split."""
    from trustlab.core.exceptions import InputError
    from trustlab.data.registry import list_datasets
    from trustlab.fairness.checks import run_mitigations
    from trustlab.fairness.groups import binary, protected_groups
    from trustlab.fairness.metrics import encode_groups

    protected = list(dict.fromkeys(protected))
    splits = {spec.name: spec.splits for spec in list_datasets()}
    if dataset not in splits or not {"train", "test"} <= set(splits[dataset]):
        raise InputError(
            f"mitigate needs a registered data set with train and test splits (e.g. adult), got {dataset!r}"
        )
    train = _open(dataset, "train", data_dir, protected, None)
    test = _open(dataset, "test", data_dir, protected, None)
    if train.kind != "tabular":
        raise InputError(f"mitigate needs tabular data; {dataset} holds images")
    encode_groups(protected_groups(train, protected), what="--protected " + " x ".join(protected))
    binary(train.y, f"labels of data set {dataset!r}", len(train))
    run = new_run(out, seed=seed)
    result = run_mitigations(
        run, train, test, protected=protected, methods=methods or None, kind=kind, privileged=privileged,
        resamples=resamples, seed=seed,
    )  # fmt: skip
    echo_and_report(run, [result], title="trustlab fairness mitigate")


COMMANDS = (fairness,)
