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
    """The ``--data-dir`` option (where data files are read from and downloaded to)."""
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=DATA_DIR_HELP
    )(fn)


NORMALISATION_KEYS = {"mean": "trustlab.mean", "std": "trustlab.std"}


def _normalisation(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Parse ``--mean``/``--std`` ("0.1307" or "0.485,0.456,0.406") and keep them in the context,
    where :func:`open_model` reads them: the commands' own signatures need not change."""
    if value is None:
        return
    try:
        values = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None
    if param.name == "std" and any(not v > 0 for v in values):
        raise click.BadParameter(f"every std must be positive, got {value!r}")
    ctx.meta[NORMALISATION_KEYS[param.name]] = values


LAYERS_KEY = "trustlab.layers"
DATA_KEY = "trustlab.data"


def _layer(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Keep ``--gradcam-layer``/``--feature-layer`` in the context for :func:`open_model`."""
    if value:
        ctx.meta.setdefault(LAYERS_KEY, {})["gradcam" if param.name == "gradcam_layer" else "features"] = value


def _data_format(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Keep the data-format options in the context for :func:`open_data`."""
    if value:
        ctx.meta.setdefault(DATA_KEY, {})[param.name] = tuple(value) if isinstance(value, tuple | list) else value


def data_format_options(fn: Any) -> Any:
    """How to read a CSV file or an image folder given as the data (see ``trustlab.data.io``)."""
    return _apply(
        fn,
        [
            click.option("--label-column", expose_value=False, callback=_data_format, help="CSV: the label column"),
            click.option(
                "--protected", multiple=True, expose_value=False, callback=_data_format,
                help=(
                    "protected attribute (repeatable): a CSV column kept out of the features, or one a data set "
                    "carries (adult: sex, race), then only those named are judged"
                ),
            ),
            click.option(
                "--image-size", nargs=2, type=click.IntRange(min=1), default=None, expose_value=False,
                callback=_data_format, help="image folder: resize every image to H W (default: all must match)",
            ),
        ],
    )  # fmt: skip


def model_options(fn: Any) -> Any:
    """How to load a model: a file or a reference name, a bare state dict's architecture, pickles,
    and the normalisation a file does not record (``--mean``/``--std``, read by :func:`open_model`)."""
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
            click.option(
                "--gradcam-layer",
                expose_value=False,
                callback=_layer,
                help="module name of Grad-CAM's layer (default: found by probing the model)",
            ),
            click.option(
                "--feature-layer",
                expose_value=False,
                callback=_layer,
                help="module name whose input is the feature vector for Mahalanobis/KNN (default: probed)",
            ),
            click.option(
                "--mean",
                default=None,
                expose_value=False,
                callback=_normalisation,
                help="normalisation mean the model expects, one value or one per channel (e.g. 0.1307)",
            ),
            click.option(
                "--std",
                default=None,
                expose_value=False,
                callback=_normalisation,
                help="normalisation std the model expects, one value or one per channel (e.g. 0.3081)",
            ),
        ],
    )


def model_and_data_options(fn: Any) -> Any:
    """The options every command that audits a model on a data set takes."""
    return data_format_options(
        model_options(
            _apply(
                fn,
                [
                    click.option(
                        "--dataset",
                        required=True,
                        help="data set name (see `trustlab datasets`), an .npz file with x and y, a CSV file "
                        "(with --label-column) or an image folder with one sub-folder per class",
                    ),
                    click.option("--split", default=None, help="split (default: the data set's default, e.g. test)"),
                ],
            )
        )
    )


def batch_size_option(fn: Any) -> Any:
    """The ``--batch-size`` option: examples per forward pass (default 256)."""
    return click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)(fn)


def limit_option(fn: Any) -> Any:
    """The ``--limit`` option: use only the first N examples."""
    return click.option("--limit", type=click.IntRange(min=1), default=None, help="use only the first N examples")(fn)


def out_option(default: str, help: str = "run directory (results, figures, report; re-running resumes)"):
    """The ``--out`` option (the run directory), with the command's own default path and help text."""
    return click.option(
        "--out", type=click.Path(file_okay=False, path_type=Path), default=Path(default), show_default=True, help=help
    )


def open_model(
    model: str,
    arch: str | None,
    allow_pickle: bool,
    input_shape: tuple[int, ...] | None,
    batch_size: int,
    *,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
):
    """The classifier and its source; ``mean``/``std`` default to the command's ``--mean``/``--std``."""
    from trustlab.models.reference import open_classifier

    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    mean = meta.get(NORMALISATION_KEYS["mean"]) if mean is None else mean
    std = meta.get(NORMALISATION_KEYS["std"]) if std is None else std
    classifier, source = open_classifier(
        model,
        arch=arch,
        allow_pickle=allow_pickle,
        input_shape=input_shape,
        batch_size=batch_size,
        mean=mean,
        std=std,
    )
    echo_normalisation_note(classifier, model)
    classifier.layer_names.update(meta.get(LAYERS_KEY, {}))
    return classifier, source


def echo_normalisation_note(classifier: Any, model: str) -> None:
    """One stderr line when the model file recorded no normalisation and none was given."""
    from trustlab.models.artefacts import normalisation_note

    note = normalisation_note(classifier, Path(model).name)
    if note:
        click.echo(note, err=True)


def open_data(dataset: str, split: str | None, data_dir: Path | None, *, limit: int | None = None, bounds=None):
    """The data set, read with the command's data-format options (``--label-column`` etc.)."""
    from trustlab.data.io import open_dataset

    ctx = click.get_current_context(silent=True)
    formats = dict(ctx.meta.get(DATA_KEY, {})) if ctx is not None else {}
    data = open_dataset(dataset, split, root=data_dir, bounds=bounds, **formats)
    return data if limit is None else data.subset(slice(0, limit))


def new_run(out: Path, *, seed: int | None = None):
    """Open (or create) the run directory ``out``, recording this command line in its manifest."""
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


def backend_options(fn: Any) -> Any:
    """``--backend local|ray``, ``--address`` and ``--workers``: where the command's batch loops run.

    The command itself is wrapped: its work runs inside :func:`trustlab.distributed.backend`,
    so every ``run_batches`` call in its checks uses the chosen executor (results are the local
    ones; see ``trustlab.core.batching``) and a Ray instance it started is shut down afterwards.
    Ray is imported only for ``--backend ray``, and its absence is a one-line error.
    """
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, backend: str, address: str | None, workers: int | None, **kwargs: Any) -> Any:
        from trustlab.distributed import backend as use_backend

        with use_backend(backend, address=address, workers=workers):
            return fn(*args, **kwargs)

    return _apply(
        wrapper,
        [
            click.option(
                "--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                help="where batch loops (accuracy, minimal-eps search, OOD scoring) run: this process, or Ray workers",
            ),
            click.option(
                "--address", default=None,
                help="--backend ray: the cluster to join ('auto' or HOST:PORT; default: start a local Ray instance)",
            ),
            click.option(
                "--workers", type=click.IntRange(min=1), default=None,
                help="--backend ray: shards running at once (default: one per CPU of the local instance or cluster)",
            ),
        ],
    )  # fmt: skip
