"""``trustlab datasets | train | evaluate | report | demo``: data, models, their accuracy and reports."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from trustlab.cli.options import (
    batch_size_option,
    data_dir_option,
    model_and_data_options,
    new_run,
    open_data,
    open_model,
    out_option,
    summaries,
)


@click.command()
@data_dir_option
def datasets(data_dir: Path | None) -> None:
    """List data sets, their splits and whether their files are here."""
    from trustlab.data import list_datasets, resolve_data_dir, split_status

    folder, origin = resolve_data_dir(data_dir)
    click.echo(f"data directory: {folder} (from {origin})")
    for spec in list_datasets():
        click.echo(f"\n{spec.name}: {spec.description}\n  source: {spec.source}; licence: {spec.licence}")
        for split in spec.splits:
            click.echo(f"  {split:<8} {split_status(spec.name, split, root=data_dir)}")


@click.command()
@click.option("--dataset", required=True, help="data set name (see `trustlab datasets`) or an .npz file")
@click.option("--split", default="train", show_default=True, help="split to train on")
@click.option("--arch", default=None, help="architecture (default: mnist_cnn for images, mlp for tabular)")
@click.option("--epochs", type=click.IntRange(min=1), default=15, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True, help="learning rate"
)
@click.option(
    "--augment-shift",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="random translation of up to this many pixels (images)",
)
@click.option(
    "--adversarial",
    type=click.Choice(["pgd", "fgsm-rs"]),
    default=None,
    help="adversarial training: PGD-k (Madry et al.) or FGSM with random start (Wong et al.)",
)
@click.option(
    "--adv-eps",
    type=click.FloatRange(min=0, min_open=True),
    default=0.3,
    show_default=True,
    help="L-inf budget of the training attack (pixel units)",
)
@click.option("--adv-steps", type=click.IntRange(min=1), default=7, show_default=True, help="PGD steps")
@click.option(
    "--adv-warmup",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="epochs over which the budget ramps up linearly from eps/(warmup+1)",
)
@click.option(
    "--outlier-exposure",
    "exposure",
    default=None,
    help="train to be unsure on synthetic near-OOD digits (Hendrycks et al.): 'all' or comma-separated families "
    "of flipped, overlays, fragments, strokes, letters, symbols (1 x 28 x 28 digit data only)",
)
@click.option(
    "--outliers", type=click.IntRange(min=1), default=5000, show_default=True, help="synthetic outliers drawn"
)
@click.option(
    "--outlier-weight", type=click.FloatRange(min=0, min_open=True), default=0.5, show_default=True,
    help="weight of the outliers' cross-entropy to the uniform distribution",
)  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="model artefact to write (.safetensors)",
)
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="also record the training in this run directory",
)
@data_dir_option
def train(
    dataset, split, arch, epochs, batch_size, lr, augment_shift, adversarial, adv_eps, adv_steps, adv_warmup, exposure,
    outliers, outlier_weight, seed, out, run_dir, data_dir,
) -> None:  # fmt: skip
    """Train a model from the architecture registry; deterministic given --seed."""
    from trustlab.models import save_model
    from trustlab.models import train as train_model
    from trustlab.models.evaluation import model_card
    from trustlab.models.training import classifier_for
    from trustlab.robustness.checks import training_attack

    data = open_data(dataset, split, data_dir, bounds=(0.0, 1.0) if dataset.endswith(".npz") else None)
    classifier = classifier_for(data, arch=arch, seed=seed)
    pool = None
    if exposure is not None:
        from trustlab.core.exceptions import InputError
        from trustlab.data.near_ood import outlier_families, synthetic_outliers

        families = outlier_families(exposure)
        if tuple(data.input_shape) != (1, 28, 28):
            raise InputError(f"--outlier-exposure draws 1 x 28 x 28 digits; this data is {tuple(data.input_shape)}")
        pool = synthetic_outliers(data.x, data.y, outliers, families=families, seed=seed + 1)
    history = train_model(
        classifier,
        data.x,
        data.y,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        augment_shift=augment_shift,
        adversary=training_attack(adversarial, adv_steps),
        adversary_eps=adv_eps if adversarial else 0.0,
        eps_warmup_epochs=adv_warmup,
        outliers=pool,
        outlier_weight=outlier_weight,
        seed=seed,
        dataset_name=f"{data.name}/{data.split}",
    )
    save_model(classifier, out)
    if run_dir is not None:
        run = new_run(run_dir, seed=seed)
        run.describe_model(classifier, source=str(out))
        run.describe_data(data)
        run.add("model_card", model_card(classifier, name=out.stem))
        run.add("training", history)
    click.echo(f"{summaries([history])[0]}; saved {out}")


@click.command()
@model_and_data_options
@batch_size_option
@out_option("runs/evaluate", "run directory (re-running resumes an interrupted evaluation)")
@data_dir_option
def evaluate(model, dataset, split, arch, allow_pickle, batch_size, out, data_dir) -> None:
    """Accuracy of a model on a data set (overall, per class, confusions) into a run directory."""
    from trustlab.models.checks import run_accuracy

    data = open_data(dataset, split, data_dir)
    classifier, source = open_model(model, arch, allow_pickle, data.input_shape, batch_size)
    if dataset.endswith(".npz") and data.num_classes <= classifier.num_classes:
        data = replace(data, class_names=classifier.class_names)  # labels of a user file use the model's names
    result = run_accuracy(new_run(out), classifier, data, source=source, batch_size=batch_size)
    click.echo(f"{summaries([result])[0]}; results in {out / 'results.json'}")


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="HTML file (default: RUN_DIR/report.html)",
)
@click.option("--title", default="trustlab audit", show_default=True)
def report(run_dir: Path, out: Path | None, title: str) -> None:
    """Render a run directory's results into one self-contained HTML file."""
    from trustlab.report.html import write_report

    click.echo(f"report written to {write_report(run_dir, out=out, title=title)}")


@click.command()
@out_option("runs/demo", "run directory")
def demo(out: Path) -> None:
    """Audit the shipped reference MNIST CNN on the bundled sample (quick profile, offline)."""
    from trustlab.audit.demo import SOURCE, TITLE, prepare_demo
    from trustlab.cli.audit import run_and_report

    run, ctx, planned = prepare_demo(out, command=sys.argv)
    run_and_report(run, ctx, planned, source=SOURCE, policy=None, title=TITLE, fail_on="never")


COMMANDS = (datasets, train, evaluate, report, demo)
