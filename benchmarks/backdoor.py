"""Backdoor benchmark: a zoo of backdoored MNIST models and clean twins, scanned and repaired.

The zoo: the reference architecture trained on the 5,000-image MNIST training sample, 11 models
infected with the poisoning kit (patch triggers of several shapes, sizes, positions, targets,
poison rates and seeds, one blended trigger, one all-to-all) and 11 clean twins (same recipe, no
poison). For every model: clean accuracy and attack success (ASR) on the 10,000 test images, the
Neural Cleanse scan (trustlab defaults, 200 test images) with its verdict. For every all-to-one
model: unlearning with 10% of the training sample, measured on the test split. Finally the
batched scan is timed against a plain one-label-at-a-time implementation of the same schedule
(tests/cleanse_loop.py) at equal steps, in the same run, on the same model and inputs.

No peer runs here: ART's Neural Cleanse is Keras-only (its PyTorch request, ART issue #871, is
open), so the reference for speed is the one-label loop, as the original code runs it.

    python benchmarks/backdoor.py [--epochs 4] [--seeds 1] [--zoo DIR]
Models (and their scans) are cached in --zoo (default benchmarks/.zoo) and reused when their
recipe (and the scan's settings) is unchanged; the scan times reported are those of the run
that computed them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import REPO, default_data_dir, environment, log, other_cpu_load  # noqa: E402

from cleanse_loop import cleanse_one_label  # noqa: E402
from trustlab.backdoor import (  # noqa: E402
    BackdoorScanResult,
    CleanseSettings,
    attack_success_rate,
    blend_trigger,
    neural_cleanse,
    patch_trigger,
    poison,
    reverse_triggers,
    unlearn,
)
from trustlab.core.progress import set_quiet  # noqa: E402
from trustlab.data import load_dataset  # noqa: E402
from trustlab.models import load_model, save_model  # noqa: E402
from trustlab.models.training import classifier_for, train  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"

# name: (trigger kind, trigger options, target, poison rate, seed)
INFECTED = {
    "square4-br-t0": ("patch", {"size": 4, "shape": "square", "position": "bottom-right"}, 0, 0.10, 0),
    "square3-tl-t7": ("patch", {"size": 3, "shape": "square", "position": "top-left"}, 7, 0.10, 1),
    "checker4-bl-t3": ("patch", {"size": 4, "shape": "checker", "position": "bottom-left"}, 3, 0.05, 2),
    "cross5-tr-t9": ("patch", {"size": 5, "shape": "cross", "position": "top-right"}, 9, 0.10, 3),
    "corner4-c-t5": ("patch", {"size": 4, "shape": "corner", "position": "centre"}, 5, 0.10, 4),
    "square2-br-t1": ("patch", {"size": 2, "shape": "square", "position": "bottom-right"}, 1, 0.15, 5),
    "checker5-tl-t2": ("patch", {"size": 5, "shape": "checker", "position": "top-left"}, 2, 0.02, 6),
    "square4-bl-t8": ("patch", {"size": 4, "shape": "square", "position": "bottom-left"}, 8, 0.10, 7),
    "cross3-br-t4": ("patch", {"size": 3, "shape": "cross", "position": "bottom-right"}, 4, 0.05, 8),
    "blend0.1-t6": ("blend", {"ratio": 0.1}, 6, 0.10, 9),
    "square4-br-all": ("patch", {"size": 4, "shape": "square", "position": "bottom-right"}, "all-to-all", 0.10, 10),
}
CLEAN_SEEDS = tuple(range(100, 111))


def _trigger(kind: str, options: dict, seed: int):
    shape = (1, 28, 28)
    return patch_trigger(shape, **options) if kind == "patch" else blend_trigger(shape, seed=seed, **options)


def _model(zoo: Path, name: str, recipe: dict, train_set, trigger, target, rate, seed, epochs):
    """The zoo model ``name``, trained now unless cached with the same recipe."""
    path, meta = zoo / f"{name}.safetensors", zoo / f"{name}.json"
    if path.is_file() and meta.is_file() and json.loads(meta.read_text()) == recipe:
        return load_model(path), None
    data = train_set if trigger is None else poison(train_set, trigger, target, rate, seed=seed)[0]
    classifier = classifier_for(train_set, seed=seed)
    start = time.perf_counter()
    train(classifier, data.x, data.y, epochs=epochs, batch_size=64, seed=seed, show_progress=False)
    seconds = time.perf_counter() - start
    save_model(classifier, path)
    meta.write_text(json.dumps(recipe))
    return classifier, seconds


def _scan(args, name: str, classifier, scan_x, settings) -> BackdoorScanResult:
    """The model's scan, reused from the zoo when model, inputs and settings are unchanged."""
    key = {"model": classifier.weights_sha256(), "examples": args.examples, "seeds": args.seeds, **settings.to_dict()}
    path = args.zoo / f"{name}.scan.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached["key"] == key:
            return BackdoorScanResult.from_dict(cached["result"])
    scan = neural_cleanse(classifier, scan_x, seeds=range(args.seeds), settings=settings, dataset="mnist/test")
    path.write_text(json.dumps({"key": key, "result": scan.to_dict()}))
    return scan


def _accuracy(classifier, test) -> float:
    return float((classifier.predict(test.x) == test.y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--epochs", type=int, default=4, help="training epochs of every zoo model")
    parser.add_argument("--seeds", type=int, default=1, help="Neural Cleanse seeds per scan")
    parser.add_argument("--examples", type=int, default=200, help="clean test images per scan")
    parser.add_argument("--zoo", type=Path, default=REPO / "benchmarks" / ".zoo")
    parser.add_argument("--out", type=Path, default=RESULTS / "backdoor")
    parser.add_argument(
        "--only", action="append", default=None, help="models whose name contains this (repeatable; default all)"
    )
    parser.add_argument(
        "--detection-only", action="store_true", help="scan only: no repairs, no speed comparison (e.g. with --seeds 3)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_quiet(not sys.stderr.isatty())
    args.zoo.mkdir(parents=True, exist_ok=True)
    train_set = load_dataset("mnist", "train", root=args.data_dir)
    test = load_dataset("mnist", "test", root=args.data_dir)
    scan_x = test.x[torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[: args.examples]]
    settings = CleanseSettings()
    busy = other_cpu_load()
    rows, repairs = [], []

    subjects = [(name, *spec) for name, spec in INFECTED.items()] + [
        (f"clean-{seed}", None, None, None, None, seed) for seed in CLEAN_SEEDS
    ]
    subjects = [s for s in subjects if not args.only or any(part in s[0] for part in args.only)]
    for name, kind, options, target, rate, seed in subjects:
        trigger = None if kind is None else _trigger(kind, options, seed)
        recipe = {"kind": kind, "options": options, "target": target, "rate": rate, "seed": seed, "epochs": args.epochs}
        classifier, trained = _model(args.zoo, name, recipe, train_set, trigger, target, rate, seed, args.epochs)
        accuracy = _accuracy(classifier, test)
        asr = None if trigger is None else attack_success_rate(classifier, test.x, test.y, trigger, target)
        scan = _scan(args, name, classifier, scan_x, settings)
        target_norm = scan.mean_norms[target] if isinstance(target, int) else None
        row = {
            "model": name,
            "trigger": None if trigger is None else trigger.description,
            "target": target,
            "rate": rate,
            "clean_accuracy": accuracy,
            "asr": asr,
            "flagged": list(scan.flagged),
            "right_target": isinstance(target, int) and scan.flagged == (target,),
            "anomaly_index_target": None if target_norm is None else scan.anomaly_index[target],
            "max_anomaly": scan.max_anomaly,
            "target_norm": target_norm,
            "median_norm": scan.median_norm,
            "norm_spread": [list(s) for s in scan.norm_spread] if args.seeds > 1 else None,
            "scan_seconds": round(scan.seconds, 1),
            "train_seconds": None if trained is None else round(trained, 1),
        }
        rows.append(row)
        log(f"{name}: acc {accuracy:.4f} asr {asr} flagged {scan.flagged} ({scan.seconds:.1f} s)")
        if isinstance(target, int) and not args.detection_only:
            held_out = test
            candidates = list(scan.flagged) if scan.flagged else [target]
            triggers = [(scan.trigger(k), k) for k in candidates]
            _, result = unlearn(
                classifier, train_set, triggers, true_trigger=(trigger, target), evaluation=held_out,
                evaluation_limit=len(held_out), show_progress=False,
            )  # fmt: skip
            repairs.append(
                {
                    "model": name,
                    "removed": candidates,
                    "from_scan": bool(scan.flagged),
                    "accuracy_before": result.accuracy_before,
                    "accuracy_after": result.accuracy_after,
                    "accuracy_drop_points": result.accuracy_drop,
                    "asr_true_before": result.asr_true_before,
                    "asr_true_after": result.asr_true_after,
                    "asr_reversed_after": result.asr_reversed_after,
                    "examples": result.repair_examples + result.stamped_examples,
                    "seconds": round(result.seconds, 1),
                }
            )
            log(f"  unlearning: acc drop {result.accuracy_drop:.2f} pts, ASR {result.asr_true_after:.4f}")

    speed = None if args.detection_only else _speed(args, scan_x, settings)
    payload = {
        "ran": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment(args.threads),
        "other_cpu_load_before": busy,
        "settings": {**settings.to_dict(), "examples": args.examples, "seeds": args.seeds, "train_epochs": args.epochs},
        "detection": rows,
        "repair": repairs,
        "speed": speed,
    }
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2))
    args.out.with_suffix(".md").write_text(markdown(payload))
    print(markdown(payload))


def _speed(args, scan_x, settings) -> dict:
    """The batched scan against the one-label loop: same model, inputs, settings and seed."""
    classifier = load_model(args.zoo / f"{next(iter(INFECTED))}.safetensors")
    start = time.perf_counter()
    batched = reverse_triggers(classifier, scan_x, settings=settings, seed=0, show_progress=False)
    batched_seconds = time.perf_counter() - start
    start = time.perf_counter()
    looped = [cleanse_one_label(classifier, scan_x, k, settings, seed=0) for k in range(classifier.num_classes)]
    loop_seconds = time.perf_counter() - start
    speed = {
        "model": next(iter(INFECTED)),
        "batched_seconds": round(batched_seconds, 2),
        "loop_seconds": round(loop_seconds, 2),
        "speedup": round(loop_seconds / batched_seconds, 2),
        "epochs_batched": batched.epochs.tolist(),
        "epochs_loop": [e for _, e in looped],
        "max_norm_difference": max(abs(float(b) - n) for b, (n, _) in zip(batched.norms, looped)),
    }
    log(f"speed: batched {batched_seconds:.1f} s, loop {loop_seconds:.1f} s")
    return speed


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _num(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(payload: dict) -> str:
    """The results as the tables README quotes."""
    env, s = payload["environment"], payload["settings"]
    lines = [
        "# Backdoor benchmark",
        "",
        f"Ran {payload['ran']} on {env['platform']}, {env['torch_threads']} threads, torch {env['versions']['torch']}"
        f" (other CPU load before: {payload['other_cpu_load_before']}). Zoo: reference architecture, "
        f"{s['train_epochs']} epochs on the 5,000-image MNIST training sample. Scan: {s['examples']} test images, "
        f"{s['seeds']} seed(s), at most {s['epochs']} epochs of {s['examples'] // s['batch_size']} steps, "
        f"batch {s['batch_size']} per label.",
        "",
        "## Detection",
        "",
        "| model | trigger | target | rate | clean acc | ASR | flagged | right target | anomaly index (target) "
        "| target norm / median | max anomaly | scan s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in payload["detection"]:
        ratio = "n/a" if r["target_norm"] is None else f"{r['target_norm']:.1f} / {r['median_norm']:.1f}"
        lines.append(
            f"| {r['model']} | {r['trigger'] or 'none (clean twin)'}"
            f" | {r['target'] if r['target'] is not None else '-'}"
            f" | {_num(r['rate'])} | {_pct(r['clean_accuracy'])} | {_pct(r['asr'])} | {r['flagged'] or '-'}"
            f" | {'yes' if r['right_target'] else 'no'} | {_num(r['anomaly_index_target'])} | {ratio}"
            f" | {_num(r['max_anomaly'])} | {r['scan_seconds']} |"
        )
    lines += [
        "",
        "## Repair (unlearning, 10% of the training sample, measured on the 10,000 test images)",
        "",
        "| model | removed | from scan | clean acc before | after | drop (points) | ASR true before | after "
        "| ASR reversed after | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in payload["repair"]:
        lines.append(
            f"| {r['model']} | {r['removed']} | {'yes' if r['from_scan'] else 'no (true target)'}"
            f" | {_pct(r['accuracy_before'])} | {_pct(r['accuracy_after'])} | {r['accuracy_drop_points']:.2f}"
            f" | {_pct(r['asr_true_before'])} | {_pct(r['asr_true_after'])} | {_pct(r['asr_reversed_after'])}"
            f" | {r['seconds']} |"
        )
    sp = payload["speed"]
    if sp is None:
        return "\n".join(lines)
    lines += [
        "",
        "## Speed: batched scan vs one label at a time (same schedule, steps, model, inputs, seed)",
        "",
        "| model | batched s | one-label loop s | loop / batched | largest norm difference |",
        "|---|---|---|---|---|",
        f"| {sp['model']} | {sp['batched_seconds']} | {sp['loop_seconds']} | {sp['speedup']} "
        f"| {sp['max_norm_difference']:.2e} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
