"""Build the data sample shipped inside trustlab (src/trustlab/data/sample/).

From the reference data: the first 100 images of each digit in the official MNIST test split
(1,000 digits) and the first 50 letters of each class in notMNIST (500 letters), in their
original order, written as gzipped IDX files with a fixed mtime so the bytes are reproducible.

    python scripts/build_sample.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from trustlab.data import load_dataset, write_idx

OUT = Path(__file__).resolve().parents[1] / "src" / "trustlab" / "data" / "sample"


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])
    return np.sort(keep)


def write(name: str, per_class: int, data_dir: str | None) -> None:
    data = load_dataset(name, "test", root=data_dir)
    labels = data.y.numpy()
    index = first_per_class(labels, per_class)
    images = (data.x[index, 0] * 255).round().to(torch.uint8).numpy()
    write_idx(OUT / f"{name}-images-idx3-ubyte.gz", images)
    write_idx(OUT / f"{name}-labels-idx1-ubyte.gz", labels[index].astype(np.uint8))
    print(f"{name}: {len(index)} examples -> {OUT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ and notmnist/")
    args = parser.parse_args()
    write("mnist", 100, args.data_dir)
    write("notmnist", 50, args.data_dir)


if __name__ == "__main__":
    main()
