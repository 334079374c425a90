"""Options, loaders and output shared by the ``trustlab`` commands (defined once, here)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

DATA_DIR_HELP = "data folder (default: $TRUSTLAB_DATA, then the user cache)"


def _apply(fn: Any, options: list) -> Any:
    for option in reversed(options):
        fn = option(fn)
    return fn


def data_dir_option(fn: Any) -> Any:
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=DATA_DIR_HELP
    )(fn)


def model_options(fn: Any) -> Any:
    """How to load a model: a file or a reference name, a bare state dict's architecture, pickles."""
    return _apply(
        fn,
        [
            click.option(
                "--model",
                required=True,
                help="model file, or a shipped reference model name (mnist_cnn, mnist_cnn_robust)",
            ),
            click.option("--arch", default=None, help="architecture of a bare state dict"),
            click.option(
                "--allow-pickle", is_flag=True, help="trust and unpickle a full pickle (can run arbitrary code)"
            ),
        ],
    )


def model_and_data_options(fn: Any) -> Any:
    """The options every command that audits a model on a data set takes."""
    return model_options(
        _apply(
            fn,
            [
                click.option(
                    "--dataset",
                    required=True,
                    help="data set name (see `trustlab datasets`) or an .npz file with x and y",
                ),
                click.option("--split", default=None, help="split (default: the data set's default, e.g. test)"),
            ],
        )
    )


def batch_size_option(fn: Any) -> Any:
    return click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)(fn)


def limit_option(fn: Any) -> Any:
    return click.option("--limit", type=click.IntRange(min=1), default=None, help="use only the first N examples")(fn)


def out_option(default: str, help: str = "run directory (results, figures, report; re-running resumes)"):
    return click.option(
        "--out", type=click.Path(file_okay=False, path_type=Path), default=Path(default), show_default=True, help=help
    )


def open_model(model: str, arch: str | None, allow_pickle: bool, input_shape: tuple[int, ...] | None, batch_size: int):
    from trustlab.models.reference import open_classifier

    return open_classifier(model, arch=arch, allow_pickle=allow_pickle, input_shape=input_shape, batch_size=batch_size)


def open_data(dataset: str, split: str | None, data_dir: Path | None, *, limit: int | None = None, bounds=None):
    from trustlab.data.io import open_dataset

    data = open_dataset(dataset, split, root=data_dir, bounds=bounds)
    return data if limit is None else data.subset(slice(0, limit))


def new_run(out: Path, *, seed: int | None = None):
    from trustlab.report.run import RunDirectory

    return RunDirectory(out, seed=seed, command=sys.argv)


def summaries(results: list) -> list[str]:
    """The results' CLI summary lines, from their views."""
    from trustlab.capabilities import load_views
    from trustlab.core.views import summary_lines

    load_views()
    return summary_lines(results)


def echo_and_report(run: Any, results: list, *, title: str = "trustlab audit") -> None:
    """Print the results' summary lines, then render the run directory's report and say where it is."""
    from trustlab.report.html import write_report

    for line in summaries(results):
        click.echo(line)
    click.echo(f"report written to {write_report(run.path, title=title)}")
