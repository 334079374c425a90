"""Train the certifiably robust reference MNIST CNN shipped in trustlab (deterministic given the seed).

Data: the 5,000-image MNIST training sample from the reference data. Architecture and
normalisation as the natural reference (scripts/train_reference_cnn.py). Recipe: interval bound
propagation training (Gowal et al. 2018): loss ``kappa * CE(clean) + (1 - kappa) * CE(IBP worst
case)``, with a clean warm-up, then eps ramped linearly from 0 to the training eps and kappa from
1 to 0.5; Gowal et al. train MNIST at eps 0.4 for a test eps of 0.3, as here. Adam with cosine
decay, seed 0, 2 CPU threads.

Writes mnist_cnn_certified.safetensors and mnist_cnn_certified.json (training record, clean
accuracy, IBP and CROWN-IBP verified error at eps 0.1 and 0.3 on the official 10,000-image test
split, and the PGD upper bound at the same budgets on the first ``--pgd-examples`` test images).

    python scripts/train_certified_cnn.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from trustlab.core.files import atomic_write_json
from trustlab.data import load_dataset
from trustlab.models import save_model, train
from trustlab.models.evaluation import evaluate
from trustlab.models.reference import untrained_mnist_cnn
from trustlab.robustness.attacks import PGD
from trustlab.robustness.bounds import IntervalCertifier, certified
from trustlab.robustness.evaluate import robust_accuracy

OUT = Path(__file__).resolve().parents[1] / "src" / "trustlab" / "models" / "weights"
RECIPE = {
    "method": "ibp",
    "eps_train": 0.4,
    "eps_test": 0.3,
    "epochs": 10,
    "warmup": 1,
    "ramp": 5,
    "kappa": 0.5,
    "lr": 1e-3,
    "batch": 50,
}
EVAL_EPS = (0.1, 0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ (default: TRUSTLAB_DATA)")
    parser.add_argument(
        "--out", type=Path, default=OUT, help="folder for mnist_cnn_certified.safetensors and its record"
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (fixed for reproducibility)")
    parser.add_argument("--epochs", type=int, default=RECIPE["epochs"], help="training epochs")
    parser.add_argument("--no-eval", action="store_true", help="skip the bound and PGD evaluation on the test split")
    parser.add_argument("--pgd-examples", type=int, default=1000, help="test images attacked by PGD-40")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = dict(RECIPE, epochs=args.epochs)

    train_set = load_dataset("mnist", "train", root=args.data_dir)
    test_set = load_dataset("mnist", "test", root=args.data_dir)
    classifier = untrained_mnist_cnn(seed=0)
    history = train(
        classifier,
        train_set.x,
        train_set.y,
        epochs=recipe["epochs"],
        batch_size=recipe["batch"],
        learning_rate=recipe["lr"],
        certifier=IntervalCertifier(method=recipe["method"]),
        certified_eps=recipe["eps_train"],
        certified_warmup_epochs=recipe["warmup"],
        certified_ramp_epochs=recipe["ramp"],
        certified_kappa=recipe["kappa"],
        seed=0,
        dataset_name="mnist/train (5,000-image sample)",
    )
    args.out.mkdir(parents=True, exist_ok=True)
    save_model(classifier, args.out / "mnist_cnn_certified.safetensors")
    record = {
        "recipe": recipe,
        "training": history.to_dict(),
        "weights_sha256": classifier.weights_sha256(),
        "train_data_sha256": train_set.sha256,
        "test_data_sha256": test_set.sha256,
        "torch": torch.__version__,
        "threads": args.threads,
        "test_accuracy": evaluate(classifier, test_set).accuracy,
        "test_examples": len(test_set),
    }
    if not args.no_eval:
        for method in ("ibp", "crown-ibp"):
            start = time.perf_counter()
            errors = {}
            for eps in EVAL_EPS:
                ok = certified(classifier, test_set.x, test_set.y, eps, method, show_progress=True)
                errors[f"{eps:g}"] = 1.0 - float(ok.float().mean())
            record[f"{method.replace('-', '_')}_verified_error"] = errors
            record[f"{method.replace('-', '_')}_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        count = min(args.pgd_examples, len(test_set))
        attack = PGD(steps=40, step_size=0.01, early_stop=True)
        result = robust_accuracy(
            classifier, test_set.x[:count], test_set.y[:count], attack, list(EVAL_EPS), dataset="mnist", split="test"
        )
        record["pgd40_examples"] = count
        record["pgd40_error"] = {f"{e:g}": 1.0 - a for e, a in zip(EVAL_EPS, result.accuracy)}
        record["pgd40_seconds"] = time.perf_counter() - start
    atomic_write_json(args.out / "mnist_cnn_certified.json", record)
    print(json.dumps({k: v for k, v in record.items() if k not in ("training",)}, indent=2))


if __name__ == "__main__":
    main()
