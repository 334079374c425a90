"""The ``trustlab`` command.

User mistakes (TrustlabError, bad options) print one line on stderr and exit with code 2;
Ctrl-C exits with 130 and leaves completed results and checkpoints in place for a resume.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import click

from trustlab._version import __version__
from trustlab.cli_explain import explain_group, study_group
from trustlab.cli_options import data_dir_option, echo_and_report, load_classifier, load_data, model_and_data_options
from trustlab.core.exceptions import TrustlabError
from trustlab.core.progress import set_quiet

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="trustlab")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def cli(quiet: bool) -> None:
    """Audit a trained classifier and report how far to trust it."""
    set_quiet(quiet)


@cli.command()
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


@cli.command()
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
    dataset: str,
    split: str,
    arch: str | None,
    epochs: int,
    batch_size: int,
    lr: float,
    augment_shift: int,
    adversarial: str | None,
    adv_eps: float,
    adv_steps: int,
    adv_warmup: int,
    seed: int,
    out: Path,
    run_dir: Path | None,
    data_dir: Path | None,
) -> None:
    """Train a model from the architecture registry; deterministic given --seed."""
    from trustlab.models import Classifier, build_architecture, save_model
    from trustlab.models import train as train_model
    from trustlab.models.evaluation import model_card
    from trustlab.report.run import RunDirectory

    data = load_data(dataset, split, data_dir, bounds=(0.0, 1.0))
    image = data.kind == "image"
    arch = arch or ("mnist_cnn" if image else "mlp")
    if image:
        config = {
            "in_channels": data.input_shape[0],
            "image_size": data.input_shape[1],
            "num_classes": data.num_classes,
        }
    else:
        config = {"in_features": data.input_shape[0], "num_classes": data.num_classes}
    mean, std = data.feature_stats()
    module = build_architecture(arch, seed=seed, **config)
    classifier = Classifier(
        module,
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        bounds=data.bounds,
        mean=mean,
        std=std,
        class_names=data.class_names,
        architecture=arch,
        config=config,
    )
    history = train_model(
        classifier,
        data.x,
        data.y,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        augment_shift=augment_shift,
        adversary=_training_adversary(adversarial, adv_steps),
        adversary_eps=adv_eps if adversarial else 0.0,
        eps_warmup_epochs=adv_warmup,
        seed=seed,
        dataset_name=f"{data.name}/{data.split}",
    )
    save_model(classifier, out)
    if run_dir is not None:
        run = RunDirectory(run_dir, seed=seed, command=sys.argv)
        run.describe_model(classifier, source=str(out))
        run.describe_data(data)
        run.add("model_card", model_card(classifier, name=out.stem))
        run.add("training", history)
    click.echo(
        f"trained {arch} on {data.name}/{data.split} ({len(data):,} examples) in {history.seconds:.1f} s: "
        f"final loss {history.loss[-1]:.4f}, training accuracy {100 * history.accuracy[-1]:.2f}%; saved {out}"
    )


def _training_adversary(kind: str | None, steps: int):
    from trustlab.robustness.attacks import FGSM, PGD

    if kind is None:
        return None
    return PGD(steps=steps) if kind == "pgd" else FGSM(random_start=True, step_scale=1.25)


def _evaluate_into(run, classifier, data, *, source: str, batch_size: int | None) -> Any:
    from trustlab.models.evaluation import evaluate, model_card

    run.describe_model(classifier, source=source)
    run.describe_data(data)
    run.add("model_card", model_card(classifier, name=Path(source).stem if Path(source).exists() else source))
    key = f"accuracy-{data.name}-{data.split}"
    fingerprint = {
        "model": classifier.weights_sha256(),
        "data": data.sha256,
        "n": len(data),
        "batch_size": batch_size or classifier.batch_size,
    }
    checkpoint = run.checkpoint(key, fingerprint)
    with run.timed(key):
        result = evaluate(classifier, data, batch_size=batch_size, checkpoint=checkpoint)
    run.add(key, result)
    checkpoint.clear()
    return result


@cli.command()
@model_and_data_options
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/evaluate"),
    show_default=True,
    help="run directory (re-running resumes an interrupted evaluation)",
)
@data_dir_option
def evaluate(
    model: str,
    dataset: str,
    split: str | None,
    arch: str | None,
    allow_pickle: bool,
    batch_size: int,
    out: Path,
    data_dir: Path | None,
) -> None:
    """Accuracy of a model on a data set (overall, per class, confusions) into a run directory."""
    from trustlab.report.run import RunDirectory

    data = load_data(dataset, split, data_dir)
    classifier, source = load_classifier(
        model, arch=arch, allow_pickle=allow_pickle, input_shape=data.input_shape, batch_size=batch_size
    )
    if dataset.endswith(".npz") and data.num_classes <= classifier.num_classes:
        data = replace(data, class_names=classifier.class_names)  # labels of a user file use the model's names
    run = RunDirectory(out, command=sys.argv)
    result = _evaluate_into(run, classifier, data, source=source, batch_size=batch_size)
    click.echo(
        f"accuracy {100 * result.accuracy:.2f}% on {data.name}/{data.split} ({result.examples:,} examples); "
        f"results in {out / 'results.json'}"
    )


def _build_attack(name: str, options: dict[str, Any]):
    """Build an attack from CLI options, refusing options the attack does not take."""
    import inspect

    from trustlab.core.exceptions import InputError
    from trustlab.robustness.attacks import ATTACKS

    accepted = inspect.signature(ATTACKS[name]).parameters
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(k for k in given if k not in accepted)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise InputError(f"attack {name} does not take {flags}")
    return ATTACKS[name](**given)


@cli.command()
@model_and_data_options
@click.option(
    "--attack",
    "attack_name",
    type=click.Choice(["fgsm", "pgd", "apgd", "fmn", "square"]),
    default="fgsm",
    show_default=True,
)
@click.option("--norm", type=click.Choice(["linf", "l2"]), default="linf", show_default=True)
@click.option(
    "--search/--no-search",
    default=True,
    show_default=True,
    help="per-example minimal-eps search with per-class profile",
)
@click.option("--eps-max", type=click.FloatRange(min=0, min_open=True), default=0.5, show_default=True)
@click.option(
    "--tol",
    type=click.FloatRange(min=0, min_open=True),
    default=1 / 512,
    show_default=True,
    help="resolution of the minimal eps",
)
@click.option(
    "--eps",
    "fixed_eps",
    type=click.FloatRange(min=0),
    multiple=True,
    help="also attack at this fixed budget (repeatable): robust accuracy table",
)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="iterations (pgd, apgd, fmn)")
@click.option("--step-size", type=click.FloatRange(min=0, min_open=True), default=None, help="pgd step size")
@click.option("--restarts", type=click.IntRange(min=1), default=None, help="random restarts (pgd, apgd)")
@click.option("--queries", type=click.IntRange(min=1), default=None, help="query budget (square)")
@click.option("--regions", is_flag=True, help="also compare object vs background perturbation (Grad-CAM)")
@click.option(
    "--quantile",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=0.5,
    show_default=True,
    help="Grad-CAM quantile splitting object from background",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="use only the first N examples")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/robustness"),
    show_default=True,
    help="run directory (re-running resumes an interrupted search)",
)
@data_dir_option
def robustness(
    model: str,
    dataset: str,
    split: str | None,
    arch: str | None,
    allow_pickle: bool,
    attack_name: str,
    norm: str,
    search: bool,
    eps_max: float,
    tol: float,
    fixed_eps: tuple[float, ...],
    steps: int | None,
    step_size: float | None,
    restarts: int | None,
    queries: int | None,
    regions: bool,
    quantile: float,
    limit: int | None,
    batch_size: int,
    out: Path,
    data_dir: Path | None,
) -> None:
    """How small a perturbation flips each prediction: minimal eps per example and per class."""
    from trustlab.core.exceptions import InputError
    from trustlab.report.run import RunDirectory

    if not search and not fixed_eps and not regions:
        raise InputError("nothing to do: use --search (default), --eps BUDGET or --regions")
    data = load_data(dataset, split, data_dir)
    if limit is not None:
        data = data.subset(slice(0, limit))
    classifier, source = load_classifier(
        model, arch=arch, allow_pickle=allow_pickle, input_shape=data.input_shape, batch_size=batch_size
    )
    attack = _build_attack(
        attack_name, {"norm": norm, "steps": steps, "step_size": step_size, "restarts": restarts, "queries": queries}
    )
    run = RunDirectory(out, command=sys.argv)
    _evaluate_into(run, classifier, data, source=source, batch_size=batch_size)
    lines = run_robustness(
        run,
        classifier,
        data,
        attack,
        search=search,
        eps_max=eps_max,
        tol=tol,
        fixed_eps=fixed_eps,
        regions=regions,
        quantile=quantile,
    )
    echo_and_report(run, lines)


def run_robustness(
    run,
    classifier,
    data,
    attack,
    *,
    search: bool,
    eps_max: float,
    tol: float,
    fixed_eps: tuple[float, ...] = (),
    regions: bool = False,
    quantile: float = 0.5,
) -> list[str]:
    """Run the requested robustness checks into ``run``; return one summary line per check."""
    from trustlab.capabilities import load_views
    from trustlab.core.views import summary_lines

    load_views()
    from trustlab.robustness.evaluate import robust_accuracy
    from trustlab.robustness.profile import robustness_result
    from trustlab.robustness.regions import region_result, region_search
    from trustlab.robustness.search import minimal_eps

    lines = []
    base = {
        "model": classifier.weights_sha256(),
        "data": data.sha256,
        "n": len(data),
        "batch_size": classifier.batch_size,
        "attack": repr(attack),
    }
    if search:
        key = f"robustness-{attack.name}-{data.name}-{data.split}"
        checkpoint = run.checkpoint(key, {**base, "eps_max": eps_max, "tol": tol})
        with run.timed(key):
            found = minimal_eps(classifier, data.x, data.y, attack, eps_max=eps_max, tol=tol, checkpoint=checkpoint)
        result = run.add(
            key,
            robustness_result(found, data.class_names, dataset=data.name, split=data.split, attack_name=attack.name),
        )
        checkpoint.clear()
        lines += summary_lines([result])
    if fixed_eps:
        key = f"robust-accuracy-{attack.name}-{data.name}-{data.split}"
        with run.timed(key):
            result = run.add(
                key,
                robust_accuracy(
                    classifier, data.x, data.y, attack, sorted(fixed_eps), dataset=data.name, split=data.split
                ),
            )
        lines += summary_lines([result])
    if regions:
        key = f"regions-{attack.name}-{data.name}-{data.split}"
        with run.timed(key):
            searches, _ = region_search(classifier, data.x, data.y, attack, quantile=quantile, eps_max=eps_max, tol=tol)
        result = run.add(
            key, region_result(searches, data.class_names, quantile=quantile, dataset=data.name, split=data.split)
        )
        lines += summary_lines([result])
    return lines


# ---------------------------------------------------------------------- reliability alarm -----
@cli.group()
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


def _alarm_inputs(model, dataset, train_split, holdout_split, arch, allow_pickle, data_dir, batch_size, seed):
    """Classifier, training data and the two halves (calibration, evaluation) of the held-out split."""
    from trustlab.ood.calibration import split_holdout

    train = load_data(dataset, train_split, data_dir)
    holdout = load_data(dataset, holdout_split, data_dir)
    classifier, source = load_classifier(
        model, arch=arch, allow_pickle=allow_pickle, input_shape=holdout.input_shape, batch_size=batch_size
    )
    first, second = split_holdout(len(holdout), seed=seed)
    return classifier, source, train, holdout.subset(first), holdout.subset(second)


@alarm.command("fit")
@model_and_data_options
@_alarm_data_options
@click.option(
    "--detector",
    default="vae:recon",
    show_default=True,
    help="msp, energy, maxlogit, mahalanobis, knn, vae:recon, vae:nelbo, wgan:delta_z, wgan:recon (+ic: complexity)",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="guard artefact (.safetensors)"
)
@data_dir_option
def alarm_fit(
    model,
    dataset,
    split,
    arch,
    allow_pickle,
    train_split,
    holdout_split,
    alpha,
    pretrained,
    seed,
    detector,
    batch_size,
    out,
    data_dir,
) -> None:
    """Fit a detector, calibrate its threshold and save the guarded classifier as one file."""
    from trustlab.ood.evaluate import build_detectors, parse_detector
    from trustlab.ood.guard import GuardedClassifier

    parse_detector(detector)  # a typo fails before any data is read
    if split is not None:
        holdout_split = split
    classifier, _, train, calibration, evaluation = _alarm_inputs(
        model, dataset, train_split, holdout_split, arch, allow_pickle, data_dir, batch_size, seed
    )
    fitted = build_detectors([detector], classifier=classifier, train=train, pretrained=pretrained)[detector.strip()]
    guard = GuardedClassifier.calibrate(classifier, fitted.detector, calibration, alpha=alpha)
    realised = guard.predict(evaluation.x).alarms.double().mean().item()
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
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/alarm"), show_default=True)
@data_dir_option
def alarm_evaluate(
    model,
    dataset,
    split,
    arch,
    allow_pickle,
    train_split,
    holdout_split,
    alpha,
    pretrained,
    seed,
    detector_specs,
    set_names,
    ood_files,
    limit,
    batch_size,
    out,
    data_dir,
) -> None:
    """Detection table of detectors x OOD sets, calibrated false-alarm rates, figures and report.

    MNIST-like models (1 x 28 x 28) get the built-in OOD sets; any model can be tested on its own
    OOD inputs with --ood-file. Default detectors: all for images of that shape, else post-hoc ones.
    """
    from trustlab.data.ood_sets import MNIST_SHAPE, OODSet
    from trustlab.ood.evaluate import ALL_DETECTORS, POSTHOC, parse_detector
    from trustlab.report.run import RunDirectory

    for spec in detector_specs:
        parse_detector(spec)  # a typo fails before any data is read
    if split is not None:
        holdout_split = split
    classifier, source, train, calibration, evaluation = _alarm_inputs(
        model, dataset, train_split, holdout_split, arch, allow_pickle, data_dir, batch_size, seed
    )
    run = RunDirectory(out, seed=seed, command=sys.argv)
    run.describe_model(classifier, source=source)
    for data in (train, calibration):
        run.describe_data(data)
    include = None if set_names is None else [s.strip() for s in set_names.split(",") if s.strip()]
    extra = {}
    for path in ood_files:
        x, _ = _read_inputs((path,), classifier.input_shape)
        extra[path.stem] = OODSet(path.stem, x.float(), f"your inputs from {path.name}")
    default = ALL_DETECTORS if tuple(classifier.input_shape) == MNIST_SHAPE else POSTHOC
    lines = run_alarm(
        run,
        classifier,
        train,
        calibration,
        evaluation,
        detectors=list(detector_specs) or list(default),
        extra_sets=extra,
        alpha=alpha,
        pretrained=pretrained,
        include=include,
        limit=limit,
        data_dir=data_dir,
        seed=seed,
    )
    echo_and_report(run, lines)


def run_alarm(
    run,
    classifier,
    train,
    calibration,
    evaluation,
    *,
    detectors,
    alpha,
    pretrained=True,
    include=None,
    limit=None,
    data_dir=None,
    seed=0,
    notmnist_split="test",
    extra_sets=None,
) -> list[str]:
    """Fit, calibrate and evaluate ``detectors`` into ``run``; return summary lines. The built-in
    OOD suite is used for 1 x 28 x 28 (MNIST-like) inputs; ``extra_sets`` are the user's own."""
    from trustlab.core.exceptions import InputError
    from trustlab.data.ood_sets import MNIST_SHAPE, ood_suite
    from trustlab.ood.evaluate import build_detectors, evaluate_alarm

    sets = {}
    if tuple(evaluation.input_shape) == MNIST_SHAPE:
        sets = ood_suite(
            evaluation.x, n=limit, root=data_dir, seed=seed, include=include, notmnist_split=notmnist_split
        )
    elif not extra_sets:
        raise InputError(
            f"the built-in OOD sets are 1 x 28 x 28 images and this data is {tuple(evaluation.input_shape)}: "
            "pass your own out-of-distribution inputs with --ood-file"
        )
    sets.update(extra_sets or {})
    key = f"alarm-{evaluation.name}"
    with run.timed(key):
        fitted = build_detectors(detectors, classifier=classifier, train=train, pretrained=pretrained)
        result = evaluate_alarm(
            fitted,
            calibration=calibration,
            evaluation=evaluation,
            ood_sets=sets,
            alpha=alpha,
            dataset=f"{evaluation.name}/{evaluation.split} (held out)",
            train_dataset=f"{train.name}/{train.split}",
        )
    run.add(key, result)
    from trustlab.core.views import summary_lines

    return summary_lines([result])


def _read_inputs(paths: tuple[Path, ...], input_shape: tuple[int, ...]):
    """Inputs from .npy / .npz (array 'x') files, or image files resized to the model's input."""
    import numpy as np
    import torch

    from trustlab.core.exceptions import InputError

    batches, names = [], []
    for path in paths:
        suffix = path.suffix.lower()
        if suffix in (".npy", ".npz"):
            try:
                loaded = np.load(path, allow_pickle=False)
                array = loaded["x"] if suffix == ".npz" else loaded
            except (ValueError, KeyError, OSError) as exc:
                raise InputError(f"cannot read inputs from {path}: {str(exc).splitlines()[0]}") from None
            array = np.asarray(array, dtype=np.float32)
            if array.shape == tuple(input_shape):
                array = array[None]
            batches.append(torch.from_numpy(array))
            names += [f"{path.name}[{i}]" for i in range(array.shape[0])]
        else:
            from PIL import Image, UnidentifiedImageError

            channels, height, width = input_shape
            try:
                with Image.open(path) as image:
                    image = image.convert("L" if channels == 1 else "RGB").resize((width, height))
            except (UnidentifiedImageError, OSError) as exc:
                raise InputError(f"cannot read image {path}: {str(exc).splitlines()[0]}") from None
            pixels = np.asarray(image, dtype=np.float32) / 255.0
            pixels = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
            batches.append(torch.from_numpy(np.ascontiguousarray(pixels))[None])
            names.append(path.name)
    return torch.cat(batches), names


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
    from trustlab.ood.guard import GuardedClassifier

    guard = GuardedClassifier.load(guard_path)
    x, names = _read_inputs(inputs, guard.classifier.input_shape)
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


@cli.command()
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


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/demo"), show_default=True)
def demo(out: Path) -> None:
    """Audit the shipped reference MNIST CNN on the bundled sample and write a report (offline)."""
    from trustlab.data import load_dataset
    from trustlab.models import load_reference_model
    from trustlab.models.training import TrainingResult
    from trustlab.report.html import write_report
    from trustlab.report.run import RunDirectory
    from trustlab.robustness.attacks import FGSM

    classifier = load_reference_model("mnist_cnn")
    data = load_dataset("mnist", "sample")
    run = RunDirectory(out, seed=0, command=sys.argv)
    record = json.loads(resources.files("trustlab.models.weights").joinpath("mnist_cnn.json").read_text())
    run.add("training", TrainingResult.from_dict(record["training"]))
    result = _evaluate_into(run, classifier, data, source="mnist_cnn", batch_size=None)
    robustness_lines = run_robustness(run, classifier, data, FGSM(), search=True, eps_max=0.5, tol=1 / 512)
    robustness_lines += run_robustness(
        run, classifier, data.subset(slice(0, 300)), FGSM(), search=False, eps_max=1.0, tol=1 / 256, regions=True
    )
    alarm_lines = _demo_alarm(run, classifier, data)
    explain_lines = _demo_explanations(run, classifier, data)
    path = write_report(out, title="trustlab demo: reference MNIST CNN")
    click.echo(f"accuracy {100 * result.accuracy:.2f}% on the bundled MNIST sample ({result.examples:,} digits)")
    for line in robustness_lines + alarm_lines + explain_lines:
        click.echo(line)
    click.echo(f"report written to {path}")


DEMO_DETECTORS = ("msp", "energy", "mahalanobis", "knn", "vae:recon", "vae:nelbo", "wgan:delta_z", "wgan:recon")


def _demo_alarm(run, classifier, data) -> list[str]:
    """The alarm on the bundled sample: post-hoc detectors fit on 400 digits, the shipped VAE and
    WGAN; thresholds calibrated on 300 other digits, false alarms measured on the last 300."""
    from trustlab.ood.calibration import split_holdout

    fit_idx, rest = split_holdout(len(data), fraction=0.4, seed=0)
    calibration_idx, evaluation_idx = rest[: len(rest) // 2], rest[len(rest) // 2 :]
    return run_alarm(
        run,
        classifier,
        data.subset(fit_idx),
        data.subset(calibration_idx),
        data.subset(evaluation_idx),
        detectors=list(DEMO_DETECTORS),
        alpha=0.05,
        limit=300,
        notmnist_split="sample",
        include=[
            "notmnist",
            "uniform_noise",
            "gaussian_noise",
            "natural_crops",
            "mnist_rotate90",
            "mnist_invert",
            "mnist_blur",
            "mnist_shift",
        ],
    )


cli.add_command(explain_group)
cli.add_command(study_group)


def _demo_explanations(run, classifier, data) -> list[str]:
    """A small explanation section: five methods on four digits, one image per class, and what
    FGSM at eps 0.1 does to the maps and to each class's recall (300 digits)."""
    from trustlab.explain.adversarial import explain_attack
    from trustlab.explain.featurevis import activation_maximisation
    from trustlab.explain.gallery import attribution_gallery

    methods = ("saliency", "guided_backprop", "gradcam", "smoothgrad", "integrated_gradients")
    gallery = run.add(
        "attributions-mnist", attribution_gallery(classifier, data.x[:4], data.y[:4], methods=methods, dataset="mnist")
    )
    visual = run.add("feature-visualisation", activation_maximisation(classifier, steps=150))
    attacked = run.add(
        "attack-explanations-mnist",
        explain_attack(classifier, data.x[:300], data.y[:300], eps=0.1, gallery=4, dataset="mnist/sample"),
    )
    return [
        "explanations: " + ", ".join(f"{m} {gallery.seconds[m]:.2f} s" for m in methods),
        f"feature visualisation: lowest class probability {min(visual.probabilities):.3f}",
        f"FGSM eps 0.1: accuracy {100 * attacked.accuracy_before:.1f}% -> {100 * attacked.accuracy_after:.1f}%",
    ]


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into one line and exit code 2."""
    try:
        code = cli.main(args=argv, prog_name="trustlab", standalone_mode=False)
    except TrustlabError as exc:
        click.echo(f"trustlab: error: {exc}", err=True)
        sys.exit(EXIT_USER_ERROR)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"trustlab: error: {exc.format_message()} (see --help)", err=True)
        sys.exit(EXIT_USER_ERROR)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("trustlab: interrupted; completed results are kept, re-run the same command to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
