"""``trustlab study ...``: studies that combine checks."""

from __future__ import annotations

from pathlib import Path

import click

from trustlab.cli.options import (
    backend_options,
    batch_size_option,
    data_dir_option,
    echo_and_report,
    new_run,
    open_data,
    open_model,
    out_option,
)


@click.group("study")
def study() -> None:
    """Studies that combine checks (robust vs natural models, ...)."""


@study.command("robust-vs-natural")
@click.option("--natural", default="mnist_cnn", show_default=True, help="naturally trained model")
@click.option("--robust", default="mnist_cnn_robust", show_default=True, help="adversarially trained model")
@click.option("--dataset", default="mnist", show_default=True)
@click.option("--split", default="test", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True, help="images")
@click.option("--eps", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True)
@click.option("--method", default="saliency", show_default=True, help="attribution method")
@click.option("--seed", type=int, default=0, show_default=True)
@batch_size_option
@out_option("runs/robust-vs-natural")
@data_dir_option
def robust_vs_natural(natural, robust, dataset, split, limit, eps, method, seed, batch_size, out, data_dir) -> None:
    """Saliency of a natural and a robust model on clean and PGD inputs: alignment, compactness, deletion."""
    from trustlab.studies.checks import run_robust_vs_natural

    data = open_data(dataset, split, data_dir, limit=limit)
    first, _ = open_model(natural, None, False, data.input_shape, batch_size)
    second, _ = open_model(robust, None, False, data.input_shape, batch_size)
    run = new_run(out, seed=seed)
    result = run_robust_vs_natural(run, first, second, data, eps=eps, method=method, seed=seed)
    echo_and_report(run, [result])


# trustlab.studies.recipes.RECIPES' names, kept here so that --help imports no torch (a test keeps them equal)
RECIPES = (
    "baseline", "batch_norm", "dropout", "label_smoothing", "focal", "shift", "rotate", "elastic", "noise",
    "shift_rotate", "all_augment", "sgd", "adamw",
)  # fmt: skip


def _list_recipes(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from trustlab.studies.recipes import RECIPES as DECLARED

    for recipe in DECLARED:
        click.echo(f"{recipe.name:16} {recipe.summary}")
    ctx.exit()


@study.command("generalisation")
@click.option(
    "--recipe", "recipes", multiple=True, type=click.Choice(RECIPES),
    help="a training recipe to include (repeatable; default: all; the baseline always runs)",
)  # fmt: skip
@click.option(
    "--seeds", type=click.IntRange(min=1), default=3, show_default=True, help="training seeds per recipe (0, 1, ...)"
)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--train-examples",
    type=click.IntRange(min=10),
    default=None,
    help="a seeded sample of the training split (default: all of it)",
)
@click.option(
    "--corrupted-examples", type=click.IntRange(min=1), default=2000, show_default=True,
    help="test digits corrupted with each MNIST-C corruption (a seeded sample)",
)  # fmt: skip
@click.option(
    "--reference/--no-reference", default=True, show_default=True, help="score the shipped mnist_cnn beside the recipes"
)
@click.option("--resamples", type=click.IntRange(min=1), default=1000, show_default=True, help="bootstrap resamples")
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="corruptions, samples, bootstrap"
)
@click.option(
    "--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="where trained models and their scores are kept (default: ~/.cache/trustlab/studies/generalisation)",
)  # fmt: skip
@click.option(
    "--list", "list_recipes", is_flag=True, expose_value=False, is_eager=True, callback=_list_recipes,
    help="list the recipes and exit",
)  # fmt: skip
@out_option("runs/generalisation")
@data_dir_option
@backend_options
def generalisation(
    recipes, seeds, epochs, train_examples, corrupted_examples, reference, resamples, seed, cache_dir, out, data_dir
) -> None:
    """Train each recipe with several seeds and score it on clean MNIST, MNIST-C and a second digit
    domain, with intervals over seeds and digits; trained models are cached, so a re-run resumes."""
    from trustlab.studies.checks import run_generalisation

    train = open_data("mnist", "train", data_dir)
    if train_examples is not None:
        train = train.sample(train_examples, seed=seed)
    test = open_data("mnist", "test", data_dir)
    domain = open_data("digits", "test", data_dir)
    shipped = None
    if reference:
        shipped, _ = open_model("mnist_cnn", None, False, test.input_shape, 256)
    run = new_run(out, seed=seed)
    result = run_generalisation(
        run, train, test, domain, recipes=list(recipes) or None, seeds=tuple(range(seeds)), epochs=epochs,
        corrupted_examples=corrupted_examples, reference=shipped, seed=seed, resamples=resamples, cache_dir=cache_dir,
    )  # fmt: skip
    echo_and_report(run, [result], title="trustlab study generalisation")


COMMANDS = (study,)
