"""Reliability-alarm benchmark: every detector against every OOD set, and the guard's cost.

How to run
----------
From the repository root::

    make bench-alarm                              # full run (a few minutes on 2 cores)
    make bench-alarm ARGS=--quick                 # smoke test on 500 inputs per set
    make bench-alarm ARGS=--train-generative      # also train the VAE and WGAN here (~7 min more)
    .venv/bin/python benchmarks/alarm.py --help

What it measures (reference MNIST CNN, its 5,000-image training sample as in-distribution data)
-----------------------------------------------------------------------------------------------
``detection``
    Every detector of ``trustlab.ood.evaluate.ALL_DETECTORS`` is fitted on the training sample
    (post-hoc ones here; the VAE and WGAN are the shipped ones, whose recorded training time is
    reported, unless ``--train-generative``), calibrated at alpha = 0.05 on one half of the
    10,000-image test split, and its realised false-alarm rate measured on the other half. Each
    OOD set (notMNIST, Fashion-MNIST when present, noise, natural crops, corrupted MNIST built
    from the evaluation half) is scored: AUROC, AUPR-in, AUPR-out, both FPR-at-95%-TPR
    conventions, detection rate at the threshold; fit time and scoring time per 1,000 inputs.
``latency``
    The guarded classifier against the bare classifier: per single input, the median and p99 of
    ``predict`` over ``--calls`` calls; per batch, the throughput of ``predict`` over the whole
    evaluation half at batch size 256. Ratios are guard / bare, measured in the same run. KNN is
    also guarded with seeded samples of 2,000 and 1,000 training features (its cost is one matmul
    against the bank), and every guard's AUROC on notMNIST is shown beside its cost.

No peer is timed here: pytorch-ood cannot be imported without torchvision, and alibi-detect is
TensorFlow-only. Results go to ``benchmarks/results/alarm.json`` and ``alarm.md``
(``alarm-quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from common import markdown_table

from trustlab.core.progress import set_quiet
from trustlab.data import load_dataset
from trustlab.data.ood_sets import ood_suite
from trustlab.models import load_reference_model
from trustlab.ood.base import make_detector
from trustlab.ood.calibration import split_holdout
from trustlab.ood.evaluate import ALL_DETECTORS, build_detectors, evaluate_alarm
from trustlab.ood.guard import GuardedClassifier
from trustlab.ood.metrics import auroc

RESULTS = Path(__file__).resolve().parent / "results"
EXTRA_DETECTORS = ("vae:recon+ic",)
GUARDS = ("msp", "energy", "mahalanobis", "knn", "vae:recon", "vae:nelbo", "wgan:delta_z")
SMALL_BANKS = (2000, 1000)  # KNN on a seeded sample of the training features
METRICS = (
    ("auroc", "AUROC", False),
    ("aupr_in", "AUPR-in", False),
    ("aupr_out", "AUPR-out", False),
    ("fpr_ood_accepted_at_95_id", "OOD accepted @95% ID accepted", True),
    ("fpr_id_rejected_at_95_ood", "ID rejected @95% OOD caught", True),
    ("detection_rate", "detected @threshold", True),
)


def detection(args, classifier, train, calibration, evaluation) -> tuple[dict, str]:
    sets = ood_suite(evaluation.x, n=args.n, root=args.data_dir, seed=0, labels=evaluation.y)
    specs = list(ALL_DETECTORS) + list(EXTRA_DETECTORS)
    fitted = build_detectors(specs, classifier=classifier, train=train, pretrained=not args.train_generative)
    result = evaluate_alarm(
        fitted,
        calibration=calibration,
        evaluation=evaluation,
        ood_sets=sets,
        alpha=0.05,
        dataset="mnist/test (held out)",
        train_dataset="mnist/train",
    )
    parts = []
    rows = [
        [
            d,
            f"{result.thresholds[d]:.5g}",
            f"{100 * result.false_alarm_rate[d]:.2f}%",
            f"{100 * result.false_alarm_interval[d][0]:.2f}-{100 * result.false_alarm_interval[d][1]:.2f}%",
            "n/a" if result.fit_seconds[d] is None else f"{result.fit_seconds[d]:.1f}",
            result.fit_notes[d],
            f"{result.score_ms_per_1000[d]:.0f}",
        ]
        for d in result.detectors
    ]
    parts.append(
        f"### Calibration (alpha = 0.05; {result.calibration_examples:,} calibration and "
        f"{result.evaluation_examples:,} evaluation inputs)\n\n"
        + markdown_table(
            ["detector", "threshold", "realised false alarms", "95% CI", "fit s", "fit", "scoring ms / 1,000"], rows
        )
    )
    parts.append(
        "### AUROC\n\n"
        + markdown_table(
            ["detector", *result.sets],
            [[d] + [f"{result.metrics[d][s].auroc:.4f}" for s in result.sets] for d in result.detectors],
        )
    )
    for s in result.sets:
        rows = [
            [d]
            + [
                f"{100 * v:.2f}%" if pct else f"{v:.4f}"
                for key, _, pct in METRICS
                for v in [getattr(result.metrics[d][s], key)]
            ]
            for d in result.detectors
        ]
        parts.append(
            f"### {s} ({result.set_sizes[s]:,} inputs: {result.set_descriptions[s]})\n\n"
            + markdown_table(["detector", *[label for _, label, _ in METRICS]], rows)
        )
    return result.to_dict(), "\n\n".join(parts)


def _time_calls(fn, inputs: list[torch.Tensor]) -> list[float]:
    times = []
    for x in inputs:
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return times


def latency(args, classifier, train, calibration, evaluation) -> tuple[dict, str]:
    fitted = {name: f.detector for name, f in build_detectors(list(GUARDS), classifier=classifier, train=train).items()}
    for size in SMALL_BANKS:  # KNN's cost is one matmul against its bank: the trade-off of a smaller one
        fitted[f"knn, bank {size:,}"] = make_detector("knn", classifier, bank_size=size).fit(train)
    notmnist = load_dataset("notmnist", "test", root=args.data_dir).x[: len(evaluation)]
    singles = [evaluation.x[i : i + 1] for i in range(args.calls)]
    batch = evaluation.x

    def bare_single(x):
        return classifier.proba(x)

    def bare_batch():
        return classifier.proba(batch)

    for _ in range(3):  # warm-up
        bare_single(singles[0])
    out = {}
    rows = []
    for name, detector in fitted.items():
        guard = GuardedClassifier.calibrate(classifier, detector, calibration.x, alpha=0.05)
        for _ in range(3):
            guard.predict(singles[0])
        # interleave bare and guarded measurements so drifts in machine load hit both alike
        bare_t, guard_t = [], []
        for x in singles:
            bare_t += _time_calls(bare_single, [x])
            guard_t += _time_calls(guard.predict, [x])
        bare_b, guard_b = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            bare_batch()
            bare_b.append(time.perf_counter() - start)
            start = time.perf_counter()
            guard.predict(batch)
            guard_b.append(time.perf_counter() - start)

        def p99(values):
            return sorted(values)[max(0, int(round(0.99 * len(values))) - 1)]

        entry = {
            "single_median_ms": {"bare": 1e3 * statistics.median(bare_t), "guard": 1e3 * statistics.median(guard_t)},
            "single_p99_ms": {"bare": 1e3 * p99(bare_t), "guard": 1e3 * p99(guard_t)},
            "batch_seconds": {"bare": min(bare_b), "guard": min(guard_b)},
            "batch_inputs": len(batch),
        }
        entry["added_single_median_ms"] = entry["single_median_ms"]["guard"] - entry["single_median_ms"]["bare"]
        entry["notmnist_auroc"] = auroc(guard.predict(evaluation.x).scores, guard.predict(notmnist).scores)
        entry["batch_ratio"] = entry["batch_seconds"]["guard"] / entry["batch_seconds"]["bare"]
        out[name] = entry
        rows.append(
            [
                name,
                f"{entry['single_median_ms']['bare']:.2f}",
                f"{entry['single_median_ms']['guard']:.2f}",
                f"{entry['added_single_median_ms']:.2f}",
                f"{entry['single_p99_ms']['bare']:.2f}",
                f"{entry['single_p99_ms']['guard']:.2f}",
                f"{len(batch) / entry['batch_seconds']['bare']:,.0f}",
                f"{len(batch) / entry['batch_seconds']['guard']:,.0f}",
                f"{entry['batch_ratio']:.2f}x",
                f"{entry['notmnist_auroc']:.4f}",
            ]
        )
        print(f"  {name}: batch {entry['batch_ratio']:.2f}x bare, +{entry['added_single_median_ms']:.2f} ms per input")
    text = (
        f"### Guard cost ({args.calls} single-input calls; batch = {len(batch):,} inputs, best of {args.repeats})\n\n"
        + markdown_table(
            [
                "detector",
                "bare median ms",
                "guard median ms",
                "added ms",
                "bare p99 ms",
                "guard p99 ms",
                "bare inputs/s",
                "guard inputs/s",
                "batch time guard / bare",
                "notMNIST AUROC",
            ],
            rows,
        )
    )
    return out, text


SECTIONS = {"detection": detection, "latency": latency}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("TRUSTLAB_DATA", "../shared/data"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--quick", action="store_true", help="500 inputs per set, 100 single calls")
    parser.add_argument("--only", action="append", choices=sorted(SECTIONS), help="run one section (repeatable)")
    parser.add_argument("--train-generative", action="store_true", help="train the VAE and WGAN in this run")
    parser.add_argument("--calls", type=int, default=1000, help="single-input calls timed per guard")
    parser.add_argument("--repeats", type=int, default=3, help="batch timings per guard (best is kept)")
    parser.add_argument("--out", type=Path, default=None, help="output path without suffix")
    args = parser.parse_args()
    args.n = 500 if args.quick else None
    if args.quick:
        args.calls = min(args.calls, 100)
    torch.set_num_threads(args.threads)
    set_quiet(not sys.stderr.isatty())
    out = args.out or RESULTS / ("alarm-quick" if args.quick else "alarm")

    classifier = load_reference_model("mnist_cnn")
    train = load_dataset("mnist", "train", root=args.data_dir)
    holdout = load_dataset("mnist", "test", root=args.data_dir)
    first, second = split_holdout(len(holdout), seed=0)
    calibration, evaluation = holdout.subset(first), holdout.subset(second)
    if args.quick:
        calibration, evaluation = calibration.subset(slice(0, 1000)), evaluation.subset(slice(0, 500))

    previous = (
        json.loads(out.with_suffix(".json").read_text()) if args.only and out.with_suffix(".json").exists() else {}
    )
    results = previous.get("sections", {})
    texts = previous.get("texts", {})
    for name in args.only or list(SECTIONS):
        print(f"== {name}", flush=True)
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        data, text = SECTIONS[name](args, classifier, train, calibration, evaluation)
        results[name] = {
            "data": data,
            "seconds": round(time.perf_counter() - start, 1),
            "ran": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_average_before": round(load_before, 2),
        }
        texts[name] = text
        print(text, flush=True)
    meta = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": args.threads,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "sections": results, "texts": texts}, indent=1))
    header = (
        "# Reliability-alarm benchmark\n\n"
        f"torch {meta['torch']}, {meta['threads']} threads, {meta['platform']}. "
        "Generated by `benchmarks/alarm.py`; do not edit by hand.\n"
    )
    body = "\n\n".join(
        f"## {name} (ran {results[name]['ran']}, {results[name]['seconds']} s, load average before "
        f"{results[name]['load_average_before']})\n\n{texts[name]}"
        for name in SECTIONS
        if name in results
    )
    out.with_suffix(".md").write_text(header + "\n" + body + "\n")
    print(f"results written to {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
