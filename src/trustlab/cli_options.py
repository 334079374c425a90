"""Options and loaders shared by the ``trustlab`` commands (kept apart so every command module
can import them without importing the main command)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

DATA_DIR_HELP = "data folder (default: $TRUSTLAB_DATA, then the user cache)"


def data_dir_option(fn: Any) -> Any:
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=DATA_DIR_HELP
    )(fn)


def model_and_data_options(fn: Any) -> Any:
    """The options every command that audits a model on a data set takes."""
    options = [
        click.option(
            "--model", required=True, help="model file, or a shipped reference model name (mnist_cnn, mnist_cnn_robust)"
        ),
        click.option(
            "--dataset", required=True, help="data set name (see `trustlab datasets`) or an .npz file with x and y"
        ),
        click.option("--split", default=None, help="split (default: the data set's default, e.g. test)"),
        click.option("--arch", default=None, help="architecture of a bare state dict"),
        click.option("--allow-pickle", is_flag=True, help="trust and unpickle a full pickle (can run arbitrary code)"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def load_data(dataset: str, split: str | None, data_dir: Path | None, bounds: tuple[float, float] | None = None):
    from trustlab.data import dataset_from_npz, load_dataset

    if dataset.endswith(".npz"):
        return dataset_from_npz(dataset, bounds=bounds)
    return load_dataset(dataset, split, root=data_dir)


def load_classifier(
    model: str, *, arch: str | None, allow_pickle: bool, input_shape: tuple[int, ...] | None, batch_size: int
):
    from trustlab.models import load_model, load_reference_model
    from trustlab.models.reference import REFERENCE_MODELS

    if model in REFERENCE_MODELS and not Path(model).exists():
        return load_reference_model(model, batch_size=batch_size), f"reference model {model}"
    classifier = load_model(
        model, architecture=arch, allow_pickle=allow_pickle, input_shape=input_shape, batch_size=batch_size
    )
    return classifier, str(model)


def echo_and_report(run: Any, lines: list[str]) -> None:
    """Print a check's summary lines, then render the run directory's report and say where it is."""
    from trustlab.report.html import write_report

    for line in lines:
        click.echo(line)
    click.echo(f"report written to {write_report(run.path)}")
