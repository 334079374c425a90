"""Randomised-smoothing benchmark: trustlab's CERTIFY on the noise-trained reference CNN, against a
plain-PyTorch floor and ART's randomized-smoothing estimator.

How to run
----------
From the repository root (``.venv-bench`` holds trustlab and ART; with ``.venv`` the ART row says
"not installed")::

    .venv-bench/bin/python benchmarks/smoothing.py                # 500 images, n = 10,000
    .venv-bench/bin/python benchmarks/smoothing.py --quick        # smoke test (seconds)
    .venv-bench/bin/python benchmarks/smoothing.py --paired-only  # timing: the three in turn (minutes)

Writes ``benchmarks/results/smoothing.json`` and ``smoothing.md`` (``smoothing-quick.*`` with
``--quick``).

What it measures
----------------
* ``trustlab certify``: Cohen et al.'s CERTIFY (n0 = 100 selection and n = 10,000 estimation
  samples, alpha = 0.001, sigma = 0.25, unclipped noise in pixel space) on the first ``--images``
  images of the MNIST test split, with the reference model ``mnist_cnn_noise`` (trained under the
  same noise; scripts/train_smoothing_cnn.py). Reported: wall time per example, model evaluations
  per second, certified L2 accuracy at radii 0, 0.5, 1, 1.5 (correct and certified at that radius;
  abstentions count as wrong), the abstention rate and the implied (loose) L-inf radius.
* ``floor``: the same number of noisy forward passes in plain PyTorch (noise drawn, batch of 256,
  argmax, counts), with no statistics, on a subset scaled to the full size: what any implementation
  must pay.
* ``ART``: ``art.estimators.certification.randomized_smoothing.PyTorchRandomizedSmoothing.certify``
  (a loop over examples; noise drawn with numpy) on the first ``--art-images`` images, same model
  module (pixel space, normalisation inside), same n0, n, alpha, sigma and batch size, scaled to
  the full size. Its Clopper-Pearson bound comes from statsmodels; where statsmodels is not
  installed, the benchmark supplies the same quantity (the alpha quantile of Beta(k, n - k + 1),
  what ``proportion_confint(method="beta")`` returns) and says so. Agreement: the two draw
  different noise, so radii agree only up to Monte Carlo error; the table gives the share of equal
  predictions (abstentions included) and the median and largest absolute radius difference.

Times are wall-clock (``time.perf_counter``) of the library call only, after one warm-up on two
images; ``torch.set_num_threads(--threads)`` for everyone. The rows above run one after another, so
a change in the machine's speed during the run (other tenants, clocks) lands on one of them only;
``--paired-only`` times the three in turn on the same ``--paired-images`` images per round, the
order rotated each round (writes ``smoothing-paired.*``): the speed comparison to quote.
``--tune-allocator`` first calls :func:`trustlab.tune_allocator` as the ``trustlab`` command does;
it is process-wide, so ART and the floor get it too (writes ``*-tuned.*``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import default_data_dir, environment, fmt_busy, log, markdown_table, other_cpu_load, peer

from trustlab.core.allocator import tune_allocator
from trustlab.data import load_dataset
from trustlab.models import load_reference_model
from trustlab.robustness.smoothing import SmoothingResult, certify, smoothing_radius

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RADII = (0.0, 0.5, 1.0, 1.5)


def trustlab_row(model, x, y, args) -> tuple[dict[str, Any], SmoothingResult]:
    certify(model, x[:2], y[:2], sigma=args.sigma, n0=args.n0, n=200, alpha=args.alpha, show_progress=False)
    result = certify(
        model, x, y, sigma=args.sigma, n0=args.n0, n=args.n, alpha=args.alpha, seed=args.seed, show_progress=True
    )
    correct_certified = np.asarray(result.correct, dtype=bool)
    radius = np.asarray(result.radius)
    row = {
        "method": "trustlab certify",
        "images": result.examples,
        "seconds": result.seconds,
        "seconds_per_example": result.seconds_per_example,
        "forwards_per_second": result.forward_calls / result.seconds,
        "forward_calls_per_example": result.forward_calls / result.examples,
        "certified_accuracy": {f"{r:g}": result.certified_accuracy(r) for r in RADII},
        "abstention_rate": result.abstention_rate,
        "median_radius_correct": float(np.median(radius[correct_certified])) if correct_certified.any() else None,
        "implied_linf_of_radius_1": 1.0 / math.sqrt(result.input_dim),
        "largest_certifiable_radius": float(smoothing_radius(args.alpha ** (1.0 / args.n), args.sigma)),
        "certified_accuracy_implied_linf": {
            f"{e:g}": result.certified_accuracy(e, norm="linf") for e in (0.01, 0.02, 0.03, 0.05)
        },
    }
    return row, result


def floor_counts(model, net, images, args, generator) -> None:
    """Noisy forwards, argmax and counts in plain PyTorch: the work with nothing else around it."""
    size, per, classes = model.batch_size, args.n0 + args.n, model.num_classes
    with torch.no_grad():
        for image in images:
            counts = torch.zeros(classes, dtype=torch.int64)
            for begin in range(0, per, size):
                m = min(size, per - begin)
                noisy = image.expand(m, *image.shape) + args.sigma * torch.randn(m, *image.shape, generator=generator)
                counts += torch.bincount(net(noisy).argmax(1), minlength=classes)


def floor_row(model, x, args, count: int) -> dict[str, Any]:
    net, generator = model.as_module(), torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    floor_counts(model, net, x[:count], args, generator)
    return timing_row("floor: noisy forwards only (PyTorch)", count, time.perf_counter() - start, args)


def timing_row(method: str, count: int, seconds: float, args) -> dict[str, Any]:
    """The time columns of a row: ``count`` images certified (or their forwards run) in ``seconds``."""
    return {
        "method": method,
        "images": count,
        "seconds": seconds,
        "seconds_per_example": seconds / count,
        "forwards_per_second": count * (args.n0 + args.n) / seconds,
        "forward_calls_per_example": args.n0 + args.n,
    }


def art_estimator(model, args) -> tuple[Any, list[str]]:
    """ART's estimator on the same module, n0, sigma and alpha, and notes on what had to be supplied."""
    smoothing = peer("art.estimators.certification.randomized_smoothing")
    note = []
    try:
        peer("statsmodels.stats.proportion")
    except ImportError:
        from scipy.stats import beta

        mixin = smoothing.randomized_smoothing.RandomizedSmoothingMixin

        def lower(self, k, n):  # the quantity statsmodels' proportion_confint(alpha=2 alpha, method="beta")[0] is
            return float(beta.ppf(self.alpha, k, n - k + 1)) if k > 0 else 0.0

        mixin._lower_confidence_bound = lower
        note.append("statsmodels not installed: ART's Clopper-Pearson bound supplied (same Beta quantile)")
    estimator = smoothing.PyTorchRandomizedSmoothing(
        model=model.as_module(),
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=model.input_shape,
        nb_classes=model.num_classes,
        clip_values=None,
        device_type="cpu",
        sample_size=args.n0,
        scale=args.sigma,
        alpha=args.alpha,
    )
    return estimator, note


def art_row(model, x, y, args, ours: SmoothingResult, count: int) -> dict[str, Any]:
    estimator, note = art_estimator(model, args)
    xs = x[:count].numpy()
    np.random.seed(args.seed)
    estimator.certify(xs[:2], n=200, batch_size=model.batch_size)
    start = time.perf_counter()
    prediction, radius = estimator.certify(xs, n=args.n, batch_size=model.batch_size)
    seconds = time.perf_counter() - start
    ours_prediction = np.asarray(ours.prediction[:count])
    ours_radius = np.asarray(ours.radius[:count])
    diff = np.abs(np.asarray(radius, dtype=float) - ours_radius)
    return {
        **timing_row("ART PyTorchRandomizedSmoothing.certify", count, seconds, args),
        "same_prediction": float((np.asarray(prediction) == ours_prediction).mean()),
        "median_abs_radius_difference": float(np.median(diff)),
        "max_abs_radius_difference": float(diff.max()),
        "certified_accuracy_same_images": {
            f"{r:g}": float(((np.asarray(prediction) == y[:count].numpy()) & (radius >= r)).mean()) for r in RADII
        },
        "trustlab_certified_accuracy_same_images": {
            f"{r:g}": float(((ours_prediction == y[:count].numpy()) & (ours_radius >= r)).mean()) for r in RADII
        },
        "note": "; ".join(note),
    }


def paired_timing(model, x, y, args) -> dict[str, Any]:
    """trustlab, the floor and ART timed in turn on the same ``--paired-images`` images per round,
    the order rotated each round: a change in the machine's speed during the run (other tenants,
    clocks) falls on all three alike, which separate sequential runs cannot promise."""
    estimator, _ = art_estimator(model, args)
    net, generator = model.as_module(), torch.Generator().manual_seed(args.seed)
    np.random.seed(args.seed)
    batch = model.batch_size
    methods = {
        "trustlab certify": lambda xs, ys: certify(
            model, xs, ys, sigma=args.sigma, n0=args.n0, n=args.n, alpha=args.alpha, show_progress=False
        ),
        "floor: noisy forwards only (PyTorch)": lambda xs, ys: floor_counts(model, net, xs, args, generator),
        "ART PyTorchRandomizedSmoothing.certify": lambda xs, ys: estimator.certify(
            xs.numpy(), n=args.n, batch_size=batch
        ),
    }
    names = list(methods)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    k = args.paired_images
    for name in names:  # warm-up, untimed
        methods[name](x[:1], y[:1])
    for r in range(args.paired_rounds):
        xs, ys = x[r * k : (r + 1) * k], y[r * k : (r + 1) * k]
        for name in names[r % 3 :] + names[: r % 3]:
            start = time.perf_counter()
            methods[name](xs, ys)
            seconds[name].append(time.perf_counter() - start)
        log(
            f"paired round {r + 1}/{args.paired_rounds}: "
            + ", ".join(f"{n.split()[0]} {seconds[n][-1]:.1f} s" for n in names)
        )
    base = seconds[names[0]]
    return {
        "images_per_round": k,
        "rounds": args.paired_rounds,
        "seconds": seconds,
        "seconds_per_example": {name: sum(v) / (k * len(v)) for name, v in seconds.items()},
        "ratio_to_trustlab": {name: sum(v) / sum(base) for name, v in seconds.items()},
        "round_ratios": {name: [a / b for a, b in zip(v, base, strict=True)] for name, v in seconds.items()},
    }


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render_markdown(results: dict[str, Any]) -> str:
    run, rows = results["run"], results["rows"]
    base = rows[0]
    header = ["method", "images", "time s", "s / example", "x trustlab", "forwards / s", "note"]
    body = []
    for row in rows:
        if "error" in row:
            body.append([row["method"], "—", "—", "—", "—", "—", row["error"]])
            continue
        ratio = row["seconds_per_example"] / base["seconds_per_example"]
        scaled = "" if row["images"] == base["images"] else f"timed on {row['images']} images, per example"
        body.append(
            [
                row["method"],
                fmt(row["images"]),
                fmt(row["seconds"]),
                fmt(row["seconds_per_example"]),
                f"{ratio:.2f}",
                fmt(row["forwards_per_second"]),
                "; ".join(p for p in (scaled, row.get("note", "")) if p),
            ]
        )
    accuracy = [[f"{r:g}", f"{100 * base['certified_accuracy'][f'{r:g}']:.1f}%"] for r in RADII]
    out = [
        "# Randomised smoothing benchmark",
        "",
        "Generated by `benchmarks/smoothing.py` (see its docstring). CERTIFY (Cohen, Rosenfeld & Kolter 2019) "
        f"on the first {base['images']} MNIST test images with `{run['model']}`: sigma {run['sigma']}, n0 {run['n0']}, "
        f"n {run['n']:,}, alpha {run['alpha']}, noise unclipped in pixel space.",
        "",
        f"Run {run['date']}, {'QUICK (smoke test), ' if run['quick'] else ''}{run['threads']} threads, CPUs busy "
        f"with other work just before: {fmt_busy(run['cpu_busy_before'])}; load average at start {run['loadavg']}, "
        f"at end {run['loadavg_end']}. Command: `{run['command']}`",
        "",
        "## Time",
        "",
        markdown_table(header, body),
        "",
        "## Certified L2 accuracy (trustlab)",
        "",
        markdown_table(["L2 radius", "certified accuracy"], accuracy),
        "",
        f"- largest radius CERTIFY can return with n {run['n']:,} and alpha {run['alpha']} (all n samples in the "
        f"top class): sigma * Phi^-1(alpha^(1/n)) = {base['largest_certifiable_radius']:.3f}; certified accuracy at "
        "larger radii is 0 by construction (a larger n or sigma reaches further)",
        f"- abstention rate: {100 * base['abstention_rate']:.1f}%",
        f"- median certified radius of the correct predictions: {fmt(base['median_radius_correct'])}",
        f"- implied L-inf radius: radius / sqrt(784), so an L2 radius of 1 implies only eps = "
        f"{base['implied_linf_of_radius_1']:.4f} (a loose consequence of ||d||_2 <= sqrt(d) ||d||_inf); certified "
        "accuracy at implied L-inf eps "
        + ", ".join(f"{e}: {100 * v:.1f}%" for e, v in base["certified_accuracy_implied_linf"].items()),
        "",
    ]
    art = next((r for r in rows if r["method"].startswith("ART") and "error" not in r), None)
    if art:
        out += [
            "## Agreement with ART (same images, independent noise)",
            "",
            f"- same prediction (abstentions included): {100 * art['same_prediction']:.1f}% of {art['images']}",
            f"- |radius difference|: median {art['median_abs_radius_difference']:.4f}, "
            f"largest {art['max_abs_radius_difference']:.4f}",
            "- certified accuracy on those images, trustlab / ART: "
            + ", ".join(
                f"r {r}: {100 * art['trustlab_certified_accuracy_same_images'][r]:.1f}% / "
                f"{100 * art['certified_accuracy_same_images'][r]:.1f}%"
                for r in art["certified_accuracy_same_images"]
            ),
            "",
        ]
    out += ["## Environment", "", "```", json.dumps(results["meta"], indent=2), "```", ""]
    return "\n".join(out)


def render_paired(results: dict[str, Any]) -> str:
    run, paired = results["run"], results["paired"]
    body = [
        [name, str(paired["rounds"] * paired["images_per_round"]), f"{paired['seconds_per_example'][name]:.3f}",
         f"{paired['ratio_to_trustlab'][name]:.3f}",
         f"{min(paired['round_ratios'][name]):.3f}-{max(paired['round_ratios'][name]):.3f}"]
        for name in paired["seconds"]
    ]  # fmt: skip
    return "\n".join(
        [
            "# Randomised smoothing: paired timing",
            "",
            "Generated by `benchmarks/smoothing.py --paired-only` (see its docstring). CERTIFY with "
            f"`{run['model']}`, sigma {run['sigma']}, n0 {run['n0']}, n {run['n']:,}, alpha {run['alpha']}: "
            f"trustlab, a plain-PyTorch floor and ART timed in turn on the same {paired['images_per_round']} test "
            f"images per round, {paired['rounds']} rounds, the order rotated each round. Allocator: "
            + ("tuned (trustlab.tune_allocator(), process-wide)" if run["tune_allocator"] else "glibc defaults")
            + ".",
            "",
            f"Run {run['date']}, {'QUICK (smoke test), ' if run['quick'] else ''}{run['threads']} threads, CPUs busy "
            f"with other work just before: {fmt_busy(run['cpu_busy_before'])}; load average at start "
            f"{run['loadavg']}, at end {run['loadavg_end']}. Command: `{run['command']}`",
            "",
            markdown_table(["method", "images", "s / example", "x trustlab", "x trustlab per round"], body),
            "",
            "Seconds of every round: "
            + json.dumps({k: [round(t, 2) for t in v] for k, v in paired["seconds"].items()}),
            "",
            "## Environment",
            "",
            "```",
            json.dumps(results["meta"], indent=2),
            "```",
            "",
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 20 images, n 1,000")
    parser.add_argument("--images", type=int, default=None, help="test images to certify (default 500)")
    parser.add_argument("--n", type=int, default=None, help="estimation samples (default 10,000)")
    parser.add_argument("--n0", type=int, default=100, help="selection samples")
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="mnist_cnn_noise", help="reference model name")
    parser.add_argument("--floor-images", type=int, default=None, help="images for the floor (default 20)")
    parser.add_argument("--art-images", type=int, default=None, help="images for ART, 0 to skip (default 50)")
    parser.add_argument(
        "--paired-only",
        action="store_true",
        help="only the paired timing: trustlab, the floor and ART in turn on the same images "
        "(writes smoothing-paired.json/.md)",
    )
    parser.add_argument("--paired-rounds", type=int, default=None, help="rounds of the paired timing (default 6)")
    parser.add_argument("--paired-images", type=int, default=None, help="images per round (default 3)")
    parser.add_argument(
        "--tune-allocator",
        action="store_true",
        help="call trustlab.tune_allocator() first, as the trustlab command does (process-wide: every method "
        "gets it); writes *-tuned.*",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--out", type=Path, default=None, help="output path without suffix")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quick = args.quick
    args.images = args.images or (20 if quick else 500)
    args.n = args.n or (1000 if quick else 10_000)
    args.floor_images = args.floor_images if args.floor_images is not None else (4 if quick else 20)
    args.art_images = args.art_images if args.art_images is not None else (4 if quick else 50)
    args.paired_rounds = args.paired_rounds or (3 if quick else 6)
    args.paired_images = args.paired_images or (1 if quick else 3)
    name = ("smoothing-paired" if args.paired_only else "smoothing") + ("-tuned" if args.tune_allocator else "")
    stem = args.out or RESULTS_DIR / (f"{name}-quick" if quick else name)
    torch.set_num_threads(args.threads)
    if args.tune_allocator and not tune_allocator():
        log("warning: --tune-allocator had no effect (not glibc, or TRUSTLAB_MALLOC_TUNING=0)")
    test = load_dataset("mnist", "test", root=args.data_dir)
    x = torch.as_tensor(test.x[: args.images], dtype=torch.float32)
    y = torch.as_tensor(test.y[: args.images], dtype=torch.long)
    model = load_reference_model(args.model)
    busy = other_cpu_load()
    run = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "threads": args.threads,
        "cpu_busy_before": busy,
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "model": args.model,
        "sigma": args.sigma,
        "n0": args.n0,
        "n": args.n,
        "alpha": args.alpha,
        "seed": args.seed,
        "tune_allocator": args.tune_allocator,
        "command": " ".join([os.path.relpath(sys.executable), *sys.argv]),
    }
    if args.paired_only:
        args.images = args.paired_rounds * args.paired_images
        x, y = x[: args.images], y[: args.images]
        log(f"paired timing: {args.paired_rounds} rounds of {args.paired_images} images -> {stem}.json/.md")
        paired = paired_timing(model, x, y, args)
        run["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
        meta = environment(args.threads, (("adversarial-robustness-toolbox", "art"),))
        return write(stem, {"run": run, "paired": paired, "meta": meta}, render_paired)
    log(f"smoothing benchmark: {args.images} images, n {args.n:,}, {args.threads} threads -> {stem}.json/.md")
    rows = []
    base, ours = trustlab_row(model, x, y, args)
    rows.append(base)
    log(f"trustlab: {base['seconds_per_example']:.3f} s/example, certified accuracy {base['certified_accuracy']}")
    rows.append(floor_row(model, x, args, min(args.floor_images, args.images)))
    log(f"floor: {rows[-1]['seconds_per_example']:.3f} s/example")
    if args.art_images:
        try:
            rows.append(art_row(model, x, y, args, ours, min(args.art_images, args.images)))
            log(f"ART: {rows[-1]['seconds_per_example']:.3f} s/example")
        except ImportError as exc:
            rows.append({"method": "ART PyTorchRandomizedSmoothing.certify", "error": f"not installed ({exc})"})
    run["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    meta = environment(args.threads, (("adversarial-robustness-toolbox", "art"),))
    return write(stem, {"run": run, "rows": rows, "meta": meta, "result": ours.to_dict()}, render_markdown)


def write(stem: Path, results: dict[str, Any], render) -> int:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    stem.with_suffix(".md").write_text(render(results))
    print(render(results))
    log(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
