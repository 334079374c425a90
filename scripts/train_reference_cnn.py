"""Train the reference MNIST CNN shipped in trustlab (deterministic given the seed).

Data: the 5,000-image MNIST training sample from the reference data (500 per digit).
Recipe: mnist_cnn (conv 32/64, fc 1024), Adam lr 1e-3 with cosine decay, batch 64, 15 epochs,
random translations of up to 2 pixels, seed 0, 2 CPU threads. Writes the weights artefact and a
JSON record of the training run and of the accuracy on the official 10,000-image test split.

    python scripts/train_reference_cnn.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from trustlab.core.files import atomic_write_json
from trustlab.data import load_dataset
from trustlab.models import save_model, train
from trustlab.models.evaluation import evaluate
from trustlab.models.reference import untrained_mnist_cnn

OUT = Path(__file__).resolve().parents[1] / "src" / "trustlab" / "models" / "weights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ (default: TRUSTLAB_DATA)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for mnist_cnn.safetensors and its record")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (fixed for reproducibility)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    train_set = load_dataset("mnist", "train", root=args.data_dir)
    test_set = load_dataset("mnist", "test", root=args.data_dir)
    classifier = untrained_mnist_cnn(seed=0)
    history = train(
        classifier,
        train_set.x,
        train_set.y,
        epochs=15,
        batch_size=64,
        learning_rate=1e-3,
        augment_shift=2,
        seed=0,
        dataset_name="mnist/train (5,000-image sample)",
    )
    accuracy = evaluate(classifier, test_set)
    save_model(classifier, args.out / "mnist_cnn.safetensors")
    record = {
        "training": history.to_dict(),
        "test_accuracy": accuracy.accuracy,
        "test_examples": accuracy.examples,
        "train_data_sha256": train_set.sha256,
        "test_data_sha256": test_set.sha256,
        "weights_sha256": classifier.weights_sha256(),
        "torch": torch.__version__,
        "threads": args.threads,
    }
    atomic_write_json(args.out / "mnist_cnn.json", record)
    print(json.dumps({k: record[k] for k in ("test_accuracy", "test_examples", "weights_sha256")}, indent=2))


if __name__ == "__main__":
    main()
