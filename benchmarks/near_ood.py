"""Near-OOD alarm benchmark: every detector and combination on far and near OOD families, chosen
without the family it is tested on (leave one family out), with false alarms and the guard's cost.

How to run
----------
From the repository root::

    .venv/bin/python benchmarks/near_ood.py                 # full run (several minutes on 2 cores)
    .venv/bin/python benchmarks/near_ood.py --quick         # 300 inputs per set

What it measures (reference MNIST CNN, its 5,000-image training sample as in-distribution data)
-----------------------------------------------------------------------------------------------
``detection``
    Every single detector (post-hoc, the shipped VAE and WGAN scores) and the candidate
    combinations (conformal p-values combined by Simes, Bonferroni or Fisher) are fitted on the
    training sample, calibrated at alpha = 0.05 on one half of the 10,000-image test split, their
    realised false-alarm rate measured on the other half, and scored on every OOD set: far
    (notMNIST, noise, photo crops, corrupted digits) and near (flipped digits, overlays, fragments,
    pen strokes, letters and symbols drawn like MNIST), ``--n`` inputs each. A family's AUROC is
    its worst set's.
``leave-one-family-out``
    Choosing a detector is tuning. For each family F and each group (generative scores, single
    detectors, combinations), the group's detector with the best worst-case AUROC over the *other*
    families is chosen, and its AUROC on F is reported: the figure a user would see on a kind of
    input nobody tuned for. Detectors without choices inside them (every one here: fixed settings,
    fixed components) are otherwise untuned.
``outlier exposure``
    For each near family F, the reference CNN's recipe trained with outlier exposure to synthetic
    outliers of the *other* five families (``trustlab.ood.exposure``), built from the training
    digits; MSP, energy and the best combination read that model, and their AUROC on F is the
    leave-one-family-out figure. Far families (never outliers) are reported as the worst over the six
    models, the false-alarm rate as the largest. ``--no-exposure`` skips it (six trainings).
``cost``
    Guarded prediction of the best combination (chosen on all families) and of each single
    detector it combines, against the bare classifier on the evaluation half, in the same run.

Results go to ``benchmarks/results/near_ood.json`` and ``near_ood.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_data_dir, environment, log, markdown_table, other_cpu_load  # noqa: E402

from trustlab.core.progress import set_quiet  # noqa: E402
from trustlab.data import load_dataset  # noqa: E402
from trustlab.data.ood_sets import NEAR_FAMILIES, ood_suite  # noqa: E402
from trustlab.models import load_reference_model  # noqa: E402
from trustlab.ood.calibration import split_holdout  # noqa: E402
from trustlab.ood.combined import parse_combination  # noqa: E402
from trustlab.ood.evaluate import ALL_DETECTORS, GENERATIVE, build_detectors, evaluate_alarm  # noqa: E402
from trustlab.ood.guard import GuardedClassifier  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
COMBINATIONS = (
    "simes[energy,knn]",
    "simes[msp,knn]",
    "simes[energy,knn,vae:recon]",
    "simes[msp,energy,knn,mahalanobis]",
    "simes[energy,knn,mahalanobis,vae:recon]",
    "bonferroni[energy,knn,vae:recon]",
    "fisher[energy,knn,vae:recon]",
    "fisher[msp,energy,knn,vae:recon]",
    "fisher[energy,knn,vae:recon,vae:regret]",
    "fisher[msp,energy,knn,mahalanobis,vae:recon,wgan:recon]",
)


def groups(detectors: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return {
        "generative score": tuple(d for d in detectors if d in GENERATIVE),
        "single detector": tuple(d for d in detectors if "[" not in d),
        "combination": tuple(d for d in detectors if "[" in d),
    }


def leave_one_family_out(result) -> dict[str, dict[str, tuple[str, float]]]:
    """Per family and group: the group's detector chosen on the other families, and its AUROC here."""
    by_detector = {d: result.family_auroc(d) for d in result.detectors}
    out: dict[str, dict[str, tuple[str, float]]] = {}
    for family in result.family_names:
        out[family] = {}
        for group, members in groups(result.detectors).items():
            if not members:
                continue
            chosen = max(members, key=lambda d: min(v for f, v in by_detector[d].items() if f != family))
            out[family][group] = (chosen, by_detector[chosen][family])
    return out


def exposure_lofo(train, calibration, evaluation, sets, combinations) -> dict:
    """Six outlier-exposure models, each trained without one near family; their detectors on all sets."""
    from trustlab.ood.exposure import outlier_exposure_model

    detectors = ("msp", "energy", *combinations)
    auroc: dict[str, dict[str, float]] = {d: {} for d in detectors}
    far_alarms: dict[str, float] = {d: 0.0 for d in detectors}
    seconds = {}
    for family in NEAR_FAMILIES:
        log(f"outlier exposure without {family}")
        others = tuple(f"near_{f}" for f in NEAR_FAMILIES if f != family)
        model, history = outlier_exposure_model(train, families=others, show_progress=False)
        seconds[family] = history.seconds
        fitted = build_detectors(list(detectors), classifier=model, train=train)
        result = evaluate_alarm(fitted, calibration=calibration, evaluation=evaluation, ood_sets=sets, alpha=0.05)
        for d in detectors:
            by_family = result.family_auroc(d)
            auroc[d][family] = by_family[family]
            for other, value in by_family.items():
                if other not in NEAR_FAMILIES:
                    auroc[d][other] = min(auroc[d].get(other, 1.0), value)
            far_alarms[d] = max(far_alarms[d], result.false_alarm_rate[d])
    return {"detectors": detectors, "auroc": auroc, "far": far_alarms, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--n", type=int, default=2000, help="inputs per OOD set")
    parser.add_argument("--quick", action="store_true", help="300 inputs per set")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed batch predictions per guard")
    parser.add_argument("--no-exposure", action="store_true", help="skip the six outlier-exposure trainings")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_quiet(True)
    n = 300 if args.quick else args.n
    busy = other_cpu_load()
    began = time.perf_counter()

    classifier = load_reference_model()
    train = load_dataset("mnist", "train", root=args.data_dir)
    test = load_dataset("mnist", "test", root=args.data_dir)
    first, second = split_holdout(len(test), seed=0)
    calibration, evaluation = test.subset(first), test.subset(second)
    sets = ood_suite(evaluation.x, n=n, root=args.data_dir, seed=0, labels=evaluation.y)
    log(f"{len(sets)} OOD sets of {n} inputs; fitting {len(ALL_DETECTORS) + len(COMBINATIONS)} detectors")
    specs = list(ALL_DETECTORS) + list(COMBINATIONS)
    fitted = build_detectors(specs, classifier=classifier, train=train)
    result = evaluate_alarm(
        fitted, calibration=calibration, evaluation=evaluation, ood_sets=sets, alpha=0.05,
        dataset="mnist/test (held out)", train_dataset="mnist/train",
    )  # fmt: skip
    lofo = leave_one_family_out(result)
    families = result.family_names
    parts = [
        f"# Near-OOD alarm: far and near OOD families, leave one family out\n\nRun "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {n:,} inputs per OOD set; calibration {len(calibration):,} and "
        f"evaluation {len(evaluation):,} held-out test digits; alpha 5%; other CPU load before the run "
        f"{'n/a' if busy is None else f'{busy:.0%}'}."
    ]
    rows = []
    for family in families:
        row = [family, "near" if family in NEAR_FAMILIES else "far"]
        for group in ("generative score", "single detector", "combination"):
            chosen, value = lofo[family].get(group, ("-", float("nan")))
            row.append(f"{value:.4f} ({chosen})")
        rows.append(row)
    parts.append(
        "## Leave-one-family-out AUROC (each group's detector chosen on the other families)\n\n"
        + markdown_table(["family", "kind", "best generative score", "best single detector", "best combination"], rows)
    )
    ranked = result.ranking()
    parts.append(
        "## Every detector by its worst family (AUROC per family: its worst set)\n\n"
        + markdown_table(
            ["detector", "worst", "weakest family", *families, "false alarms (target 5%)"],
            [
                [d, f"{result.worst_auroc(d):.4f}", result.weakest_family(d)]
                + [f"{result.family_auroc(d)[f]:.4f}" for f in families]
                + [f"{100 * result.false_alarm_rate[d]:.2f}%"]
                for d in ranked
            ],
        )
    )
    parts.append(
        "## AUROC per set\n\n"
        + markdown_table(
            ["detector", *result.sets],
            [[d] + [f"{result.metrics[d][s].auroc:.4f}" for s in result.sets] for d in ranked],
        )
    )

    best_combination = max(groups(result.detectors)["combination"], key=result.worst_auroc)
    exposure = {}
    if not args.no_exposure:
        exposure = exposure_lofo(train, calibration, evaluation, sets, (best_combination,))
        header = ["family", "kind", *exposure["detectors"], "trained without", "seconds"]
        rows = []
        for family in families:
            near = family in NEAR_FAMILIES
            cells = [f"{exposure['auroc'][d][family]:.4f}" for d in exposure["detectors"]]
            trained = f"{exposure['seconds'][family]:.0f}" if near else "-"
            kind = "near" if near else "far (worst of 6 models)"
            rows.append([family, kind, *cells, family if near else "-", trained])
        rows.append(
            ["false alarms (largest of 6)", "", *[f"{100 * exposure['far'][d]:.2f}%" for d in exposure["detectors"]],
             "", ""]
        )  # fmt: skip
        parts.append(
            "## Outlier exposure, leave one family out (the model never saw the family it is measured on)\n\n"
            + markdown_table(header, rows)
        )
    cost_rows, cost = [], {}
    batch = evaluation.x

    def timed(fn) -> float:
        fn()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    for name in (best_combination, *parse_combination(best_combination)[1]):
        detector = (
            fitted[name].detector
            if name in fitted
            else build_detectors([name], classifier=classifier, train=train)[name].detector
        )
        guard = GuardedClassifier.calibrate(classifier, detector, calibration.x, alpha=0.05)
        bare = timed(lambda: classifier.proba(batch))
        guarded = timed(lambda g=guard: g.predict(batch))
        cost[name] = {"bare_seconds": bare, "guard_seconds": guarded, "ratio": guarded / bare}
        cost_rows.append([name, f"{bare:.3f}", f"{guarded:.3f}", f"{guarded / bare:.2f}x"])
    parts.append(
        f"## Guard cost on a batch of {len(batch):,} (best of {args.repeats}; bare and guarded timed together)\n\n"
        + markdown_table(["guard", "bare classifier s", "guarded s", "ratio"], cost_rows)
    )
    parts.append(
        f"Versions: {json.dumps(environment(args.threads))}\n\nTotal time {time.perf_counter() - began:.0f} s."
    )
    RESULTS.mkdir(exist_ok=True)
    stem = "near_ood-quick" if args.quick else "near_ood"
    (RESULTS / f"{stem}.md").write_text("\n\n".join(parts) + "\n")
    payload = {"result": result.to_dict(), "lofo": lofo, "cost": cost, "exposure": exposure, "n": n}
    (RESULTS / f"{stem}.json").write_text(json.dumps(payload, indent=1, allow_nan=True))
    print("\n\n".join(parts[:3]))


if __name__ == "__main__":
    main()
