"""Train the adversarially robust reference MNIST CNN shipped in trustlab (deterministic given the seed).

Data: the 5,000-image MNIST training sample from the reference data. Architecture and
normalisation as the natural reference (scripts/train_reference_cnn.py). Recipe: adversarial
training (Madry et al. 2018) whose inner attack is set by RECIPE below; Adam with cosine decay,
batch 64, budget ramped up linearly over the first epochs, seed 0, 2 CPU threads.

Writes mnist_cnn_robust.safetensors and mnist_cnn_robust.json (training record, clean accuracy
and PGD-40 robust accuracy on the official 10,000-image test split).

    python scripts/train_robust_cnn.py --data-dir ../shared/data
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
from trustlab.robustness.attacks import FGSM, PGD
from trustlab.robustness.evaluate import robust_accuracy

OUT = Path(__file__).resolve().parents[1] / "src" / "trustlab" / "models" / "weights"
RECIPE = {"attack": "pgd", "steps": 7, "eps": 0.3, "epochs": 20, "warmup": 4, "lr": 1e-3, "batch": 64}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ (default: TRUSTLAB_DATA)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for mnist_cnn_robust.safetensors and its record")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (fixed for reproducibility)")
    parser.add_argument("--no-eval", action="store_true", help="skip the (slow) PGD-40 evaluation on 10,000 images")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    train_set = load_dataset("mnist", "train", root=args.data_dir)
    test_set = load_dataset("mnist", "test", root=args.data_dir)
    classifier = untrained_mnist_cnn(seed=0)
    adversary = PGD(steps=RECIPE["steps"]) if RECIPE["attack"] == "pgd" else FGSM(random_start=True, step_scale=1.25)
    history = train(
        classifier,
        train_set.x,
        train_set.y,
        epochs=RECIPE["epochs"],
        batch_size=RECIPE["batch"],
        learning_rate=RECIPE["lr"],
        adversary=adversary,
        adversary_eps=RECIPE["eps"],
        eps_warmup_epochs=RECIPE["warmup"],
        seed=0,
        dataset_name="mnist/train (5,000-image sample)",
    )
    save_model(classifier, args.out / "mnist_cnn_robust.safetensors")
    record = {
        "recipe": RECIPE,
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
        start = time.perf_counter()
        attack = PGD(steps=40, step_size=0.01, early_stop=True)
        result = robust_accuracy(classifier, test_set.x, test_set.y, attack, [0.2, 0.3], dataset="mnist", split="test")
        record["pgd40_robust_accuracy"] = dict(zip(["0.2", "0.3"], result.accuracy))
        record["pgd40_seconds"] = time.perf_counter() - start
    atomic_write_json(args.out / "mnist_cnn_robust.json", record)
    print(json.dumps({k: v for k, v in record.items() if k not in ("training",)}, indent=2))


if __name__ == "__main__":
    main()
