"""``trustlab backdoor ...``: scan a model for a backdoor, repair it, or make a backdoored test subject."""

from __future__ import annotations

from pathlib import Path

import click

from trustlab.cli.options import (
    batch_size_option,
    data_dir_option,
    echo_and_report,
    model_and_data_options,
    new_run,
    open_data,
    open_model,
    out_option,
)


@click.group("backdoor")
def backdoor() -> None:
    """Backdoors: scan (Neural Cleanse), repair (unlearning, pruning), make test subjects."""


def _scan_options(fn):
    for option in reversed(
        [
            click.option(
                "--examples", type=click.IntRange(min=1), default=200, show_default=True,
                help="clean inputs the triggers are optimised on (a seeded sample of the data)",
            ),
            click.option(
                "--seeds", type=click.IntRange(min=1), default=1, show_default=True,
                help="independent optimisations (seeds --seed, --seed + 1, ...): the report shows the spread",
            ),
            click.option(
                "--epochs", type=click.IntRange(min=1), default=None, help="most epochs per label (default 30)"
            ),
            click.option("--seed", type=int, default=0, show_default=True),
        ]
    ):  # fmt: skip
        fn = option(fn)
    return fn


def _scan(run, classifier, source, data, examples, seeds, epochs, seed):
    from trustlab.backdoor.checks import run_backdoor_scan
    from trustlab.backdoor.cleanse import CleanseSettings
    from trustlab.models.checks import add_model_card

    settings = CleanseSettings() if epochs is None else CleanseSettings(epochs=epochs)
    add_model_card(run, classifier, source=source)
    return run_backdoor_scan(
        run, classifier, data, examples=examples, seeds=range(seed, seed + seeds), settings=settings, seed=seed
    )


@backdoor.command("scan")
@model_and_data_options
@_scan_options
@batch_size_option
@out_option("runs/backdoor")
@data_dir_option
def scan(model, dataset, split, arch, allow_pickle, examples, seeds, epochs, seed, batch_size, out, data_dir) -> None:
    """Reverse the smallest trigger of every label (Neural Cleanse) and flag abnormally small ones."""
    from trustlab.backdoor.cleanse import check_scannable

    data = open_data(dataset, split, data_dir)
    classifier, source = open_model(model, arch, allow_pickle, data.input_shape, batch_size)
    check_scannable(classifier)
    run = new_run(out, seed=seed)
    result = _scan(run, classifier, source, data, examples, seeds, epochs, seed)
    echo_and_report(run, [result])


@backdoor.command("repair")
@model_and_data_options
@click.option(
    "--save", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="where to write the repaired model (the original is left as it is)",
)  # fmt: skip
@click.option("--method", type=click.Choice(["unlearning", "pruning"]), default="unlearning", show_default=True)
@click.option(
    "--target", "targets", type=click.IntRange(min=0), multiple=True,
    help="label whose reversed trigger to remove (repeatable; default: the labels the scan flagged)",
)  # fmt: skip
@click.option(
    "--share", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.1, show_default=True,
    help="share of the clean data the repair uses; the rest measures it",
)  # fmt: skip
@click.option(
    "--eval-split",
    default=None,
    help="split of the same data set to measure the repair on (default: the data the repair does not use)",
)
@click.option(
    "--true-trigger", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="the real trigger, for test subjects (a file written by `trustlab backdoor infect`): ASR with it too",
)  # fmt: skip
@_scan_options
@batch_size_option
@out_option("runs/backdoor", "run directory holding the scan (scanned first when it holds none)")
@data_dir_option
def repair(
    model, dataset, split, arch, allow_pickle, save, method, targets, share, eval_split, true_trigger, examples, seeds,
    epochs, seed, batch_size, out, data_dir,
) -> None:  # fmt: skip
    """Remove the backdoor the scan found (unlearning or pruning) and write the repaired model."""
    from trustlab.backdoor.checks import run_backdoor_repair
    from trustlab.backdoor.cleanse import check_scannable
    from trustlab.backdoor.triggers import load_trigger

    data = open_data(dataset, split, data_dir)
    classifier, source = open_model(model, arch, allow_pickle, data.input_shape, batch_size)
    check_scannable(classifier)
    truth = load_trigger(true_trigger) if true_trigger else None
    held_out = open_data(dataset, eval_split, data_dir) if eval_split else None
    run = new_run(out, seed=seed)
    scans = [r for r in run.results.values() if r.kind == "backdoor.scan"]
    found = scans[-1] if scans else _scan(run, classifier, source, data, examples, seeds, epochs, seed)
    result = run_backdoor_repair(
        run, classifier, data, found, out=save, method=method, targets=targets or None, share=share,
        true_trigger=truth, evaluation=held_out, seed=seed,
    )  # fmt: skip
    echo_and_report(run, [found, result])
    click.echo(f"repaired model written to {result.artefact}")


@backdoor.command("infect")
@click.option("--dataset", default="mnist", show_default=True, help="training data (a name, .npz or image folder)")
@click.option("--split", default="train", show_default=True)
@click.option("--trigger", "kind", type=click.Choice(["patch", "blend"]), default="patch", show_default=True)
@click.option("--size", type=click.IntRange(min=1), default=4, show_default=True, help="patch side in pixels")
@click.option(
    "--shape", type=click.Choice(["square", "checker", "cross", "corner"]), default="square", show_default=True
)
@click.option(
    "--position", type=click.Choice(["bottom-right", "bottom-left", "top-right", "top-left", "centre"]),
    default="bottom-right", show_default=True,
)  # fmt: skip
@click.option("--value", type=float, default=None, help="patch pixel value (default: the upper input bound)")
@click.option(
    "--ratio", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.1, show_default=True,
    help="blend ratio of a blended trigger",
)  # fmt: skip
@click.option("--target", default="0", show_default=True, help="target class, or all-to-all")
@click.option(
    "--rate", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.1, show_default=True,
    help="share of the training data poisoned",
)  # fmt: skip
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="model file to write")
@data_dir_option
def infect(
    dataset, split, kind, size, shape, position, value, ratio, target, rate, epochs, seed, out, data_dir
) -> None:  # fmt: skip
    """Train a backdoored test subject (for testing scans and repairs, not for attacking anyone).

    Writes the model and, beside it, its trigger (FILE.trigger.safetensors) for `repair --true-trigger`."""
    from trustlab.backdoor.poisoning import ALL_TO_ALL, train_infected
    from trustlab.backdoor.triggers import blend_trigger, patch_trigger, save_trigger
    from trustlab.core.exceptions import InputError
    from trustlab.models.artefacts import save_model

    data = open_data(dataset, split, data_dir)
    if data.kind != "image" or data.bounds is None:
        raise InputError("test subjects are image classifiers: the data must be bounded images")
    if target != ALL_TO_ALL and not target.isdigit():
        raise InputError(f"--target must be a class index or {ALL_TO_ALL}, got {target!r}")
    goal = target if target == ALL_TO_ALL else int(target)
    if kind == "patch":
        high = data.bounds[1] if value is None else value
        trigger = patch_trigger(data.input_shape, size=size, shape=shape, position=position, value=high)
    else:
        trigger = blend_trigger(data.input_shape, ratio=ratio, bounds=data.bounds, seed=seed)
    classifier, history = train_infected(data, trigger, goal, rate=rate, seed=seed, epochs=epochs)
    path = save_model(classifier, out)
    trigger_path = save_trigger(trigger, path.with_suffix(".trigger.safetensors"), target=goal)
    click.echo(f"trained {epochs} epochs on {data.name}/{split} with {rate:.0%} poisoned ({trigger.description}, "
               f"target {goal}); training accuracy {history.accuracy[-1]:.2%}")  # fmt: skip
    click.echo(f"model written to {path}; trigger written to {trigger_path}")


COMMANDS = (backdoor,)
