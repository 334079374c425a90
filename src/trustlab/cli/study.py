"""``trustlab study ...``: studies that combine checks."""

from __future__ import annotations

import click

from trustlab.cli.options import (
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


COMMANDS = (study,)
