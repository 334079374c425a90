"""`trustlab explain ...` and `trustlab study ...`: explanation checks and the studies.

Registered on the main command by ``trustlab.cli``, which maps their errors to exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from trustlab.cli_options import data_dir_option, echo_and_report, load_classifier, load_data, model_and_data_options


def _out_option(default: str):
    return click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path(default),
        show_default=True,
        help="run directory (results, figures, report)",
    )


def _setup(model, dataset, split, arch, allow_pickle, data_dir, limit, out):
    from trustlab.report.run import RunDirectory

    data = load_data(dataset, split, data_dir)
    if limit is not None:
        data = data.subset(slice(0, limit))
    classifier, source = load_classifier(
        model, arch=arch, allow_pickle=allow_pickle, input_shape=data.input_shape, batch_size=256
    )
    run = RunDirectory(out, command=sys.argv)
    run.describe_model(classifier, source=source)
    run.describe_data(data)
    return classifier, data, run


@click.group("explain")
def explain_group() -> None:
    """What the model looks at, and whether those explanations hold up."""


@explain_group.command("images")
@model_and_data_options
@click.option(
    "--methods",
    default="saliency,guided_backprop,gradcam,smoothgrad,integrated_gradients,occlusion",
    show_default=True,
    help="comma-separated methods (also: saliency_abs, guided_gradcam, lime, kernelshap)",
)
@click.option("--n", "count", type=click.IntRange(min=1, max=64), default=8, show_default=True, help="images")
@_out_option("runs/explain")
@data_dir_option
def explain_images(model, dataset, split, arch, allow_pickle, methods, count, out, data_dir) -> None:
    """Attribution maps of several methods on the first N images, with compactness and deletion AUC."""
    from trustlab.explain.gallery import attribution_gallery

    classifier, data, run = _setup(model, dataset, split, arch, allow_pickle, data_dir, count, out)
    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    result = run.add(
        f"attributions-{data.name}", attribution_gallery(classifier, data.x, data.y, methods=chosen, dataset=data.name)
    )
    echo_and_report(
        run,
        [
            f"{m}: {result.seconds[m]:.2f} s, Gini {result.gini[m]:.3f}, deletion AUC {result.deletion_auc[m]:.3f}"
            for m in chosen
        ],
    )


@explain_group.command("tabular")
@click.option("--dataset", default="pima", show_default=True, help="tabular data set with train/test splits")
@click.option(
    "--kind", type=click.Choice(["gradient_boosting", "logistic"]), default="gradient_boosting", show_default=True
)
@click.option("--patients", default=None, help="comma-separated test-row indices to explain (default: 5 chosen rows)")
@click.option("--seed", type=int, default=0, show_default=True)
@_out_option("runs/tabular")
@data_dir_option
def explain_tabular(dataset, kind, patients, seed, out, data_dir) -> None:
    """Correlations, a classifier, LIME for single rows, SHAP local and global, and their agreement."""
    from trustlab.core.exceptions import InputError
    from trustlab.explain.tabular import tabular_explanations
    from trustlab.report.run import RunDirectory

    rows = None
    if patients:
        try:
            rows = [int(p) for p in patients.split(",")]
        except ValueError:
            raise InputError(f"--patients must be comma-separated row numbers, got {patients!r}") from None
    train, test = load_data(dataset, "train", data_dir), load_data(dataset, "test", data_dir)
    if train.kind != "tabular":
        raise InputError(f"{dataset} is not a tabular data set")
    run = RunDirectory(out, seed=seed, command=sys.argv)
    run.describe_data(train)
    result = run.add(f"tabular-{dataset}", tabular_explanations(train, test, kind=kind, patients=rows, seed=seed))
    top = sorted(zip(result.global_importance, result.feature_names), reverse=True)[:3]
    echo_and_report(
        run,
        [
            f"{kind}: accuracy {100 * result.accuracy:.1f}%, ROC AUC {result.roc_auc:.3f}",
            "most important (mean |SHAP|): " + ", ".join(f"{n} {v:.2f}" for v, n in top),
            f"LIME vs SHAP rank agreement (mean Spearman): {result.agreement_mean['spearman']:.2f}",
        ],
    )


@explain_group.command("featurevis")
@click.option("--model", required=True, help="model file or reference model name")
@click.option("--arch", default=None, help="architecture of a bare state dict")
@click.option("--allow-pickle", is_flag=True, help="trust and unpickle a full pickle (can run arbitrary code)")
@click.option("--input-shape", default="1,28,28", show_default=True, help="C,H,W when the file does not say")
@click.option("--steps", type=click.IntRange(min=1), default=400, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@_out_option("runs/featurevis")
def explain_featurevis(model, arch, allow_pickle, input_shape, steps, seed, out) -> None:
    """One optimised image per class (activation maximisation) and the probability it gets."""
    from trustlab.core.exceptions import InputError
    from trustlab.explain.featurevis import activation_maximisation
    from trustlab.report.run import RunDirectory

    try:
        shape = tuple(int(s) for s in input_shape.split(","))
    except ValueError:
        raise InputError(f"--input-shape must be C,H,W, got {input_shape!r}") from None
    classifier, source = load_classifier(model, arch=arch, allow_pickle=allow_pickle, input_shape=shape, batch_size=256)
    run = RunDirectory(out, seed=seed, command=sys.argv)
    run.describe_model(classifier, source=source)
    result = run.add("feature-visualisation", activation_maximisation(classifier, steps=steps, seed=seed))
    echo_and_report(
        run,
        [", ".join(f"{result.class_names[c]}: {p:.3f}" for c, p in zip(result.classes, result.probabilities))],
    )


@explain_group.command("attack")
@model_and_data_options
@click.option("--attack", "attack_name", type=click.Choice(["fgsm", "pgd"]), default="fgsm", show_default=True)
@click.option("--eps", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True)
@click.option("--method", default="saliency", show_default=True, help="attribution method for the maps")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="use only the first N examples")
@_out_option("runs/explain-attack")
@data_dir_option
def explain_attack_command(model, dataset, split, arch, allow_pickle, attack_name, eps, method, limit, out, data_dir):
    """Maps before and after an attack, and per-class recall before and after."""
    from trustlab.explain.adversarial import explain_attack
    from trustlab.robustness.attacks import FGSM, PGD

    classifier, data, run = _setup(model, dataset, split, arch, allow_pickle, data_dir, limit, out)
    attack = FGSM() if attack_name == "fgsm" else PGD()
    result = run.add(
        f"attack-explanations-{data.name}",
        explain_attack(classifier, data.x, data.y, attack=attack, eps=eps, method=method, dataset=data.name),
    )
    echo_and_report(
        run,
        [
            f"accuracy {100 * result.accuracy_before:.1f}% -> {100 * result.accuracy_after:.1f}% "
            f"under {attack_name} at eps {eps:g}"
        ],
    )


@click.group("study")
def study_group() -> None:
    """Studies that combine checks (robust vs natural models, ...)."""


@study_group.command("robust-vs-natural")
@click.option("--natural", default="mnist_cnn", show_default=True, help="naturally trained model")
@click.option("--robust", default="mnist_cnn_robust", show_default=True, help="adversarially trained model")
@click.option("--dataset", default="mnist", show_default=True)
@click.option("--split", default="test", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True, help="images")
@click.option("--eps", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True)
@click.option("--method", default="saliency", show_default=True, help="attribution method")
@click.option("--seed", type=int, default=0, show_default=True)
@_out_option("runs/robust-vs-natural")
@data_dir_option
def robust_vs_natural_command(natural, robust, dataset, split, limit, eps, method, seed, out, data_dir) -> None:
    """Saliency of a natural and a robust model on clean and PGD inputs: alignment, compactness, deletion."""
    from trustlab.report.run import RunDirectory
    from trustlab.studies.robust_vs_natural import robust_vs_natural

    data = load_data(dataset, split, data_dir).subset(slice(0, limit))
    first, _ = load_classifier(natural, arch=None, allow_pickle=False, input_shape=data.input_shape, batch_size=256)
    second, _ = load_classifier(robust, arch=None, allow_pickle=False, input_shape=data.input_shape, batch_size=256)
    run = RunDirectory(out, seed=seed, command=sys.argv)
    run.describe_data(data)
    result = run.add(
        f"robust-vs-natural-{data.name}",
        robust_vs_natural(first, second, data.x, data.y, eps=eps, method=method, seed=seed, dataset=data.name),
    )
    lines = []
    for metric in result.metric_descriptions:
        cells = ", ".join(f"{m}/{k} {result.means[metric][m][k]:.3f}" for m in result.models for k in result.inputs)
        lines.append(f"{metric}: {cells}")
    echo_and_report(run, lines)
