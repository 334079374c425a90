"""``trustlab shift``: how far accuracy, calibration and the OOD alarm hold under MNIST-C's corruptions."""

from __future__ import annotations

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

# trustlab.data.mnist_c.NAMES, kept here so that --help imports no torch (a test keeps them equal)
CORRUPTIONS = (
    "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "scale", "rotate", "brightness",
    "translate", "stripe", "fog", "spatter", "dotted_line", "zigzag", "canny_edges",
)  # fmt: skip
ALARMS = ("msp", "energy", "maxlogit", "none")  # post-hoc detectors that need no fitting


@click.command("shift")
@model_and_data_options
@click.option(
    "--examples", type=click.IntRange(min=1), default=None,
    help="digits audited (a seeded sample; default: all but the alarm's calibration digits)",
)  # fmt: skip
@click.option(
    "--corruption", "corruptions", multiple=True, type=click.Choice(CORRUPTIONS),
    help="an MNIST-C corruption to apply (repeatable; default: all 15)",
)  # fmt: skip
@click.option(
    "--baseline", default="mnist_cnn", show_default=True,
    help="model the corruption errors (mCE) are measured against: a reference model name, a model file, or none",
)  # fmt: skip
@click.option(
    "--alarm", type=click.Choice(ALARMS), default="msp", show_default=True,
    help="OOD alarm whose rate on corrupted digits is measured, calibrated on held-out clean digits (none: no alarm)",
)  # fmt: skip
@click.option(
    "--alpha", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.05, show_default=True,
    help="the alarm's target false-alarm rate on clean digits",
)  # fmt: skip
@click.option(
    "--resamples", type=click.IntRange(min=1), default=1000, show_default=True,
    help="bootstrap resamples of the mean accuracy, drop and mCE intervals",
)  # fmt: skip
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="corruptions, sample, bootstrap")
@batch_size_option
@out_option("runs/shift")
@data_dir_option
def shift(
    model, dataset, split, arch, allow_pickle, examples, corruptions, baseline, alarm, alpha, resamples, seed,
    batch_size, out, data_dir,
) -> None:  # fmt: skip
    """Accuracy per MNIST-C corruption with intervals, error relative to clean, mean corruption error
    (mCE) against a baseline model, calibration (ECE) under shift, and how often the OOD alarm fires."""
    from trustlab.models.checks import add_model_card
    from trustlab.models.reference import open_classifier
    from trustlab.shift.checks import run_shift
    from trustlab.shift.evaluate import check_shiftable

    data = open_data(dataset, split, data_dir)
    classifier, source = open_model(model, arch, allow_pickle, data.input_shape, batch_size)
    check_shiftable(classifier)
    baseline_model, baseline_name = None, None
    if baseline.lower() != "none":
        baseline_model, baseline_name = open_classifier(
            baseline, allow_pickle=allow_pickle, input_shape=data.input_shape, batch_size=batch_size
        )
    run = new_run(out, seed=seed)
    add_model_card(run, classifier, source=source)
    result = run_shift(
        run, classifier, data, examples=examples, corruptions=list(corruptions) or None, baseline=baseline_model,
        baseline_name=baseline_name, alarm=None if alarm == "none" else alarm, alpha=alpha, resamples=resamples,
        seed=seed,
    )  # fmt: skip
    echo_and_report(run, [result], title="trustlab shift")


COMMANDS = (shift,)
