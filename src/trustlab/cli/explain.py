"""``trustlab explain images | tabular | featurevis | attack``: what the model looks at."""

from __future__ import annotations

import click

from trustlab.cli.options import (
    batch_size_option,
    data_dir_option,
    echo_and_report,
    limit_option,
    model_and_data_options,
    model_options,
    new_run,
    open_data,
    open_model,
    out_option,
)


def _model_and_data(model, dataset, split, arch, allow_pickle, data_dir, limit, batch_size, out):
    data = open_data(dataset, split, data_dir, limit=limit)
    classifier, source = open_model(model, arch, allow_pickle, data.input_shape, batch_size)
    return classifier, data, _run_for(out, classifier, source, data)


def _run_for(out, classifier, source, data=None, seed=None):
    """A run directory that records the model, with its card, and the data."""
    from trustlab.models.checks import add_model_card

    run = new_run(out, seed=seed)
    add_model_card(run, classifier, source=source)
    if data is not None:
        run.describe_data(data)
    return run


@click.group("explain")
def explain() -> None:
    """What the model looks at, and whether those explanations hold up."""


@explain.command("images")
@model_and_data_options
@click.option(
    "--methods",
    default="saliency,guided_backprop,gradcam,smoothgrad,integrated_gradients,occlusion",
    show_default=True,
    help="comma-separated methods (also: saliency_abs, guided_gradcam, lime, kernelshap)",
)
@click.option("--n", "count", type=click.IntRange(min=1, max=64), default=8, show_default=True, help="images")
@batch_size_option
@out_option("runs/explain")
@data_dir_option
def explain_images(model, dataset, split, arch, allow_pickle, methods, count, batch_size, out, data_dir) -> None:
    """Attribution maps of several methods on the first N images, with compactness and deletion AUC."""
    from trustlab.explain.checks import run_attributions

    classifier, data, run = _model_and_data(model, dataset, split, arch, allow_pickle, data_dir, count, batch_size, out)
    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    echo_and_report(run, [run_attributions(run, classifier, data, methods=chosen)])


@explain.command("tabular")
@click.option("--dataset", default="pima", show_default=True, help="tabular data set with train/test splits")
@click.option(
    "--kind", type=click.Choice(["gradient_boosting", "logistic"]), default="gradient_boosting", show_default=True
)
@click.option(
    "--model", default=None,
    help="your model to explain (a file: trustlab, TorchScript, ONNX, skops...); default: fit one of --kind",
)  # fmt: skip
@click.option("--rows", default=None, help="comma-separated test-row indices to explain (default: 5 chosen rows)")
@click.option("--seed", type=int, default=0, show_default=True)
@out_option("runs/tabular")
@data_dir_option
def explain_tabular(dataset, kind, model, rows, seed, out, data_dir) -> None:
    """Correlations, a classifier (yours, or one fitted here), LIME for single rows, SHAP local and
    global, and their agreement."""
    from trustlab.core.exceptions import InputError
    from trustlab.explain.checks import run_tabular_explanations

    chosen = None
    if rows:
        try:
            chosen = [int(r) for r in rows.split(",")]
        except ValueError:
            raise InputError(f"--rows must be comma-separated row numbers, got {rows!r}") from None
    train, test = open_data(dataset, "train", data_dir), open_data(dataset, "test", data_dir)
    if train.kind != "tabular":
        raise InputError(f"{dataset} is not a tabular data set")
    classifier = None
    if model is not None:
        classifier, source = open_model(model, None, False, train.input_shape, 256)
        run = _run_for(out, classifier, source, seed=seed)
    else:
        run = new_run(out, seed=seed)
    result = run_tabular_explanations(run, train, test, kind=kind, model=classifier, rows=chosen, seed=seed)
    echo_and_report(run, [result])


@explain.command("featurevis")
@model_options
@click.option("--input-shape", default="1,28,28", show_default=True, help="C,H,W when the file does not say")
@click.option("--steps", type=click.IntRange(min=1), default=400, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@batch_size_option
@out_option("runs/featurevis")
def explain_featurevis(model, arch, allow_pickle, input_shape, steps, seed, batch_size, out) -> None:
    """One optimised image per class (activation maximisation) and the probability it gets."""
    from trustlab.core.exceptions import InputError
    from trustlab.explain.checks import run_feature_visualisation

    try:
        shape = tuple(int(s) for s in input_shape.split(","))
    except ValueError:
        raise InputError(f"--input-shape must be C,H,W, got {input_shape!r}") from None
    classifier, source = open_model(model, arch, allow_pickle, shape, batch_size)
    run = _run_for(out, classifier, source, seed=seed)
    echo_and_report(run, [run_feature_visualisation(run, classifier, steps=steps, seed=seed)])


@explain.command("attack")
@model_and_data_options
@click.option("--attack", "attack_name", type=click.Choice(["fgsm", "pgd"]), default="fgsm", show_default=True)
@click.option("--eps", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True)
@click.option("--method", default="saliency", show_default=True, help="attribution method for the maps")
@limit_option
@batch_size_option
@out_option("runs/explain-attack")
@data_dir_option
def explain_attack(
    model, dataset, split, arch, allow_pickle, attack_name, eps, method, limit, batch_size, out, data_dir
) -> None:
    """Maps before and after an attack, and per-class recall before and after."""
    from trustlab.robustness.attacks import make_attack
    from trustlab.studies.checks import run_attack_explanations

    classifier, data, run = _model_and_data(model, dataset, split, arch, allow_pickle, data_dir, limit, batch_size, out)
    result = run_attack_explanations(run, classifier, data, attack=make_attack(attack_name), eps=eps, method=method)
    echo_and_report(run, [result])


COMMANDS = (explain,)
