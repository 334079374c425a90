"""Two near-OOD ideas measured and not adopted: feature detectors on earlier layers, and a learned
combination trained on synthetic outliers. Evidence for the near-OOD goal's status (README).

How to run
----------
From the repository root (about 15 minutes on 2 cores, most of it the two regret scores)::

    .venv/bin/python benchmarks/near_ood_extras.py

What it measures (reference MNIST CNN, its 5,000-image training sample as in-distribution data)
-----------------------------------------------------------------------------------------------
``layers``
    KNN and Mahalanobis fitted on the input of each hookable layer of the reference CNN (the
    penultimate activations are ``fc2``'s input; ``act``'s input is the hidden layer before its ReLU;
    ``fc1``'s input the flattened conv features; ``features.3``'s input the first conv block's
    output), AUROC per family (worst set) on 1,000 inputs per OOD set against 2,000 held-out test
    digits. Multi-layer ensembles (Lee et al. 2018) only help where some layer is better.
``learned``
    Ten detectors' conformal p-values (against 1,000 held-out test digits) as features of a logistic
    regression separating 1,000 further held-out digits from synthetic outliers built from the
    *training* digits (``data.near_ood.synthetic_outliers``, 500 per near family): for each family F
    the regression sees only the other five near families, and its AUROC on F is reported beside
    Fisher's fixed combination of the same p-values.

Results go to ``benchmarks/results/near_ood_extras.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_data_dir, log, markdown_table  # noqa: E402

from trustlab.core.progress import set_quiet  # noqa: E402
from trustlab.data import load_dataset  # noqa: E402
from trustlab.data.near_ood import synthetic_outliers  # noqa: E402
from trustlab.data.ood_sets import NEAR_FAMILIES, ood_family, ood_suite  # noqa: E402
from trustlab.models import load_reference_model  # noqa: E402
from trustlab.ood.combined import combine_p_values, conformal_p_values  # noqa: E402
from trustlab.ood.evaluate import build_detectors  # noqa: E402
from trustlab.ood.metrics import auroc  # noqa: E402
from trustlab.ood.posthoc.features import KNN, Mahalanobis  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LAYERS = ("fc2", "act", "fc1", "features.3")
COMPONENTS = (
    "msp", "energy", "knn", "mahalanobis", "vae:recon", "vae:regret", "ratio", "wgan:recon", "wgan:regret",
    "wgan:delta_z",
)  # fmt: skip


def family_auroc(inside: torch.Tensor, sets: dict[str, torch.Tensor]) -> dict[str, float]:
    """Worst AUROC over each family's sets."""
    out: dict[str, float] = {}
    for name, scores in sets.items():
        family = ood_family(name)
        out[family] = min(out.get(family, 1.0), float(auroc(inside, scores)))
    return out


def logistic_weights(outliers: torch.Tensor, inliers: torch.Tensor, l2: float = 1e-2) -> torch.Tensor:
    """Weights of an L2-penalised logistic regression (L-BFGS) of outliers (1) against inliers (0)."""
    x = torch.cat([outliers, inliers]).double()
    y = torch.cat([torch.ones(len(outliers)), torch.zeros(len(inliers))]).double()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    solver = torch.optim.LBFGS([w, b], max_iter=200)

    def closure() -> torch.Tensor:
        solver.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) + l2 * w.square().sum()
        loss.backward()
        return loss

    solver.step(closure)
    return w.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_quiet(True)
    began = time.perf_counter()
    classifier = load_reference_model()
    train = load_dataset("mnist", "train", root=args.data_dir)
    test = load_dataset("mnist", "test", root=args.data_dir)
    reference, inliers, evaluation = (test.subset(range(a, a + n)) for a, n in ((0, 1000), (1000, 1000), (5000, 2000)))
    sets = ood_suite(evaluation.x, n=1000, root=args.data_dir, seed=0, labels=evaluation.y)
    families = list(dict.fromkeys(ood_family(s) for s in sets))
    parts = ["# Near-OOD: earlier feature layers and a learned combination (not adopted)"]

    rows = []
    for layer in LAYERS:
        for detector in (KNN(classifier, layer=layer), Mahalanobis(classifier, layer=layer)):
            log(f"{detector.name} on the input of {layer}")
            detector.fit(train.x, train.y)
            by_family = family_auroc(detector.score(evaluation.x), {k: detector.score(v.x) for k, v in sets.items()})
            rows.append([detector.name, layer, *(f"{by_family[f]:.4f}" for f in families)])
    parts.append(
        "## Feature detectors by layer (AUROC per family, worst set)\n\n"
        + markdown_table(["detector", "features: input of", *families], rows)
    )

    outliers = {f: synthetic_outliers(train.x, train.y, 500, families=(f"near_{f}",), seed=11) for f in NEAR_FAMILIES}
    fitted = build_detectors(list(COMPONENTS), classifier=classifier, train=train)
    columns: dict[str, list[torch.Tensor]] = {}
    for name in COMPONENTS:
        log(f"scoring {name}")
        detector = fitted[name].detector
        ref = detector.score(reference.x).double().sort().values
        for key, x in [("inliers", inliers.x), ("evaluation", evaluation.x), *((k, v.x) for k, v in sets.items()),
                       *((f"outliers:{f}", v) for f, v in outliers.items())]:  # fmt: skip
            columns.setdefault(key, []).append(conformal_p_values(ref, detector.score(x)))
    p = {key: torch.stack(cols, dim=1) for key, cols in columns.items()}
    fisher = family_auroc(
        combine_p_values(p["evaluation"], "fisher").neg(),
        {k: combine_p_values(p[k], "fisher").neg() for k in sets},
    )
    learned: dict[str, float] = {}
    for family in families:
        seen = torch.cat([p[f"outliers:{f}"] for f in NEAR_FAMILIES if f != family]).log().neg()
        w = logistic_weights(seen, p["inliers"].log().neg())
        scored = {k: p[k].log().neg() @ w for k in sets if ood_family(k) == family}
        learned[family] = family_auroc(p["evaluation"].log().neg() @ w, scored)[family]
    parts.append(
        f"## Learned combination of {len(COMPONENTS)} detectors, leave one family out\n\n"
        f"Components: {', '.join(COMPONENTS)}. Near families: the regression never saw the family it is "
        "measured on; far families were never outliers.\n\n"
        + markdown_table(
            ["family", "learned (logistic regression)", "fisher (fixed)"],
            [[f, f"{learned[f]:.4f}", f"{fisher[f]:.4f}"] for f in families],
        )
    )
    parts.append(f"Total time {time.perf_counter() - began:.0f} s.")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "near_ood_extras.md").write_text("\n\n".join(parts) + "\n")
    print("\n\n".join(parts))


if __name__ == "__main__":
    main()
