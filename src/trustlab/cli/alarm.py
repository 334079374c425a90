"""``trustlab alarm fit | evaluate | predict``: the reliability alarm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from trustlab.cli.options import (
    backend_options,
    batch_size_option,
    data_dir_option,
    echo_and_report,
    model_and_data_options,
    new_run,
    open_data,
    open_model,
    out_option,
)


@click.group()
def alarm() -> None:
    """Reliability alarm: flag inputs too unlike the training data to trust the prediction."""


def _alarm_data_options(fn: Any) -> Any:
    options = [
        click.option(
            "--train-split", default="train", show_default=True, help="split of --dataset the detectors learn from"
        ),
        click.option(
            "--holdout-split",
            default="test",
            show_default=True,
            help="held-out split of --dataset: half calibrates the threshold, the other half measures false alarms",
        ),
        click.option(
            "--alpha",
            type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
            default=0.05,
            show_default=True,
            help="target false-alarm rate on in-distribution inputs",
        ),
        click.option(
            "--pretrained/--no-pretrained",
            default=True,
            show_default=True,
            help="vae and wgan: use the shipped MNIST detectors instead of training new ones",
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="seed of the held-out split"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _inputs(model, dataset, split, train_split, holdout_split, arch, allow_pickle, data_dir, batch_size, seed):
    """Classifier, its source, the training data and the two halves (calibration, evaluation) of
    the held-out split (``--split`` overrides ``--holdout-split``)."""
    from trustlab.ood.checks import holdout_halves

    train = open_data(dataset, train_split, data_dir)
    holdout = open_data(dataset, split or holdout_split, data_dir)
    classifier, source = open_model(model, arch, allow_pickle, holdout.input_shape, batch_size)
    calibration, evaluation = holdout_halves(holdout, seed=seed)
    return classifier, source, train, calibration, evaluation


@alarm.command("fit")
@model_and_data_options
@_alarm_data_options
@click.option(
    "--detector",
    default=None,
    help="msp, energy, maxlogit, mahalanobis, knn, vae:recon, vae:nelbo, wgan:delta_z, wgan:recon (+ic: complexity); "
    "default: for 1 x 28 x 28 images the one with the best worst case over the built-in OOD families (far and "
    "near), compared on the held-out split; mahalanobis (or msp where features cannot be read) otherwise",
)
@batch_size_option
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="guard artefact (.safetensors)"
)
@data_dir_option
def alarm_fit(
    model, dataset, split, arch, allow_pickle, train_split, holdout_split, alpha, pretrained, seed, detector,
    batch_size, out, data_dir,
) -> None:  # fmt: skip
    """Fit a detector, calibrate its threshold and save the guarded classifier as one file."""
    from trustlab.ood.checks import choose_guard_detector, fit_guard
    from trustlab.ood.evaluate import parse_detector

    if detector is not None:
        parse_detector(detector)  # a typo fails before any data is read
    classifier, _, train, calibration, evaluation = _inputs(
        model, dataset, split, train_split, holdout_split, arch, allow_pickle, data_dir, batch_size, seed
    )
    if detector is None:
        detector, compared = choose_guard_detector(
            classifier, train, calibration, evaluation, pretrained=pretrained, data_dir=data_dir, seed=seed
        )
        if compared is not None:
            ranked = ", ".join(
                f"{d} {compared.worst_auroc(d):.3f} ({compared.weakest_family(d)})" for d in compared.ranking()[:3]
            )
            click.echo(f"chosen by worst AUROC over {len(compared.family_names)} OOD families: {ranked}")
    guard, realised = fit_guard(
        classifier, train, calibration, evaluation, detector=detector, alpha=alpha, pretrained=pretrained
    )
    guard.save(out)
    click.echo(
        f"{detector}: threshold {guard.threshold.threshold:.6g} at alpha {alpha:g} from {len(calibration):,} "
        f"held-out inputs; false alarms on {len(evaluation):,} other held-out inputs: {100 * realised:.2f}%; "
        f"saved {out}"
    )


@alarm.command("evaluate")
@model_and_data_options
@_alarm_data_options
@click.option(
    "--detector",
    "detector_specs",
    multiple=True,
    help="detector to evaluate (repeatable; default: all, post-hoc and generative)",
)
@click.option("--sets", "set_names", default=None, help="comma-separated OOD sets (default: all available)")
@click.option(
    "--ood-file",
    "ood_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="your own OOD inputs: .npy, or .npz with array x (repeatable; named by the file)",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="cap every OOD set at N inputs")
@batch_size_option
@out_option("runs/alarm")
@data_dir_option
@backend_options
def alarm_evaluate(
    model, dataset, split, arch, allow_pickle, train_split, holdout_split, alpha, pretrained, seed, detector_specs,
    set_names, ood_files, limit, batch_size, out, data_dir,
) -> None:  # fmt: skip
    """Detection table of detectors x OOD sets, calibrated false-alarm rates, figures and report.

    MNIST-like models (1 x 28 x 28) get the built-in OOD sets; any model can be tested on its own
    OOD inputs with --ood-file. Default detectors: all for images of that shape, else post-hoc ones.
    """
    from trustlab.data.io import ood_sets_from_files
    from trustlab.ood.checks import run_alarm
    from trustlab.ood.evaluate import parse_detector

    for spec in detector_specs:
        parse_detector(spec)  # a typo fails before any data is read
    classifier, source, train, calibration, evaluation = _inputs(
        model, dataset, split, train_split, holdout_split, arch, allow_pickle, data_dir, batch_size, seed
    )
    run = new_run(out, seed=seed)
    run.describe_model(classifier, source=source)
    for data in (train, calibration):
        run.describe_data(data)
    extra = ood_sets_from_files(ood_files, classifier.input_shape)
    result = run_alarm(
        run,
        classifier,
        train,
        calibration,
        evaluation,
        detectors=detector_specs,
        extra_sets=extra,
        alpha=alpha,
        pretrained=pretrained,
        include=None if set_names is None else [s.strip() for s in set_names.split(",") if s.strip()],
        limit=limit,
        data_dir=data_dir,
        seed=seed,
    )
    echo_and_report(run, [result])


@alarm.command("predict")
@click.option(
    "--guard",
    "guard_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="guard artefact written by `trustlab alarm fit`",
)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="one JSON object per input instead of a table")
def alarm_predict(guard_path: Path, inputs: tuple[Path, ...], as_json: bool) -> None:
    """Predict with a guarded classifier: label, probability, OOD score, p-value, alarm.

    INPUTS: .npy files, .npz files (array x), or image files (resized to the model's input).
    """
    from trustlab.data.io import read_inputs
    from trustlab.ood.guard import GuardedClassifier

    guard = GuardedClassifier.load(guard_path)
    x, names = read_inputs(inputs, guard.classifier.input_shape)
    out = guard.predict(x)
    records = out.records(guard.classifier.class_names)
    if as_json:
        for name, record in zip(names, records):
            click.echo(json.dumps({"input": name, **record}))
        return
    click.echo(f"{'input':<24} {'class':>8} {'prob':>6} {'score':>11} {'p-value':>8}  alarm")
    for name, r in zip(names, records):
        flag = "ALARM" if r["alarm"] else "-"
        click.echo(f"{name:<24} {r['class']:>8} {r['probability']:6.3f} {r['score']:11.5g} {r['p_value']:8.4f}  {flag}")
    click.echo(f"{int(out.alarms.sum())} of {len(out)} inputs raised the alarm (alpha {guard.alpha:g})")


COMMANDS = (alarm,)
