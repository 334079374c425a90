"""Train the outlier-exposure reference MNIST CNN shipped in trustlab (deterministic given the seed).

The reference CNN's recipe (scripts/train_reference_cnn.py) plus outlier exposure to 5,000 synthetic
near-OOD digits of all six families built from the training digits (trustlab.ood.exposure). Writes
mnist_cnn_oe.safetensors and mnist_cnn_oe.json (training record and test accuracy). Its detection
figures on a family it was trained against are optimistic: benchmarks/near_ood.py reports the
leave-one-family-out ones.

    python scripts/train_oe_cnn.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from trustlab.core.files import atomic_write_json
from trustlab.data import load_dataset
from trustlab.models import save_model
from trustlab.models.evaluation import evaluate
from trustlab.ood.exposure import outlier_exposure_model

OUT = Path(__file__).resolve().parents[1] / "src" / "trustlab" / "models" / "weights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ (default: TRUSTLAB_DATA)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for mnist_cnn_oe.safetensors and its record")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (fixed for reproducibility)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_set = load_dataset("mnist", "train", root=args.data_dir)
    test_set = load_dataset("mnist", "test", root=args.data_dir)
    classifier, history = outlier_exposure_model(train_set)
    accuracy = evaluate(classifier, test_set)
    save_model(classifier, args.out / "mnist_cnn_oe.safetensors")
    record = {
        "training": history.to_dict(),
        "test_accuracy": accuracy.accuracy,
        "test_examples": accuracy.examples,
        "train_data_sha256": train_set.sha256,
        "weights_sha256": classifier.weights_sha256(),
        "torch": torch.__version__,
        "threads": args.threads,
    }
    atomic_write_json(args.out / "mnist_cnn_oe.json", record)
    print(json.dumps({k: record[k] for k in ("test_accuracy", "test_examples", "weights_sha256")}, indent=2))


if __name__ == "__main__":
    main()
