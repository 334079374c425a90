"""Train the Gaussian-noise reference MNIST CNN shipped in trustlab for randomised smoothing
(deterministic given the seed).

The reference CNN's recipe (scripts/train_reference_cnn.py: Adam lr 1e-3 with cosine decay, batch
64, 15 epochs, random translations of up to 2 pixels, seed 0, 2 CPU threads) plus Gaussian noise of
a *fixed* standard deviation SIGMA = 0.25 added to every training image, not clipped to [0, 1].
That is Cohen, Rosenfeld & Kolter (2019)'s recipe: the base classifier is trained under the very
noise distribution the smoothed classifier samples at certification time
(``trustlab.robustness.smoothing`` adds unclipped N(0, sigma^2 I) noise in pixel space).

Hence ``Augmentation(noise_sigma=SIGMA, noise_fixed=True)``: the default noise augmentation draws
each image's sigma from [0, noise_sigma] and clips, a different distribution.

Writes mnist_cnn_noise.safetensors and mnist_cnn_noise.json (training record, clean test accuracy
and the base classifier's accuracy on noisy test images at SIGMA on the official 10,000-image test
split).

    python scripts/train_smoothing_cnn.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from trustlab.core.files import atomic_write_json
from trustlab.data import load_dataset
from trustlab.data.augment import Augmentation
from trustlab.models import save_model, train
from trustlab.models.evaluation import evaluate
from trustlab.models.reference import untrained_mnist_cnn

OUT = Path(__file__).resolve().parents[1] / "src" / "trustlab" / "models" / "weights"
SIGMA = 0.25
RECIPE = {"epochs": 15, "batch": 64, "lr": 1e-3, "shift": 2, "noise_sigma": SIGMA, "noise_clipped": False}


def noisy_accuracy(classifier, x: torch.Tensor, y: torch.Tensor, sigma: float, seed: int = 0) -> float:
    """Accuracy of the base classifier on one noisy copy (unclipped N(0, sigma^2)) of each image."""
    generator = torch.Generator().manual_seed(seed)
    correct = 0
    with torch.no_grad():
        for start in range(0, x.shape[0], classifier.batch_size):
            xb = x[start : start + classifier.batch_size]
            noisy = xb + sigma * torch.randn(xb.shape, generator=generator, dtype=xb.dtype)
            correct += int((classifier.forward(noisy).argmax(1) == y[start : start + len(xb)]).sum())
    return correct / x.shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ (default: TRUSTLAB_DATA)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for mnist_cnn_noise.safetensors and its record")
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
        epochs=RECIPE["epochs"],
        batch_size=RECIPE["batch"],
        learning_rate=RECIPE["lr"],
        augment_shift=RECIPE["shift"],
        augment=Augmentation(noise_sigma=SIGMA, noise_fixed=True),
        seed=0,
        dataset_name="mnist/train (5,000-image sample)",
    )
    accuracy = evaluate(classifier, test_set)
    save_model(classifier, args.out / "mnist_cnn_noise.safetensors")
    record = {
        "recipe": RECIPE,
        "training": history.to_dict(),
        "test_accuracy": accuracy.accuracy,
        "test_examples": accuracy.examples,
        "test_accuracy_under_noise": noisy_accuracy(classifier, test_set.x, test_set.y.long(), SIGMA),
        "train_data_sha256": train_set.sha256,
        "test_data_sha256": test_set.sha256,
        "weights_sha256": classifier.weights_sha256(),
        "torch": torch.__version__,
        "threads": args.threads,
    }
    atomic_write_json(args.out / "mnist_cnn_noise.json", record)
    keys = ("test_accuracy", "test_accuracy_under_noise", "test_examples", "weights_sha256")
    print(json.dumps({k: record[k] for k in keys}, indent=2))


if __name__ == "__main__":
    main()
