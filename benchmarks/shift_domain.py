"""A second digit domain: the reference MNIST models on scikit-learn's 8x8 digits upsampled to 28x28,
zero-shot and fine-tuned on 10, 50 and all labelled examples per class (last layer only and full), three
seeds each, with intervals. Writes benchmarks/results/shift_domain.md and .json.

Run: .venv/bin/python benchmarks/shift_domain.py [--models mnist_cnn mnist_cnn_robust] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, environment, log  # noqa: E402

from trustlab.data import load_dataset  # noqa: E402
from trustlab.models import load_reference_model  # noqa: E402
from trustlab.shift.domain import domain_transfer  # noqa: E402
from trustlab.shift.views import TRANSFER_HEADER, transfer_headline, transfer_rows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mnist_cnn", "mnist_cnn_robust"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "shift_domain"))
    args = parser.parse_args()
    threads = torch.get_num_threads()
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    results, lines = [], ["# Second digit domain: MNIST models on upsampled 8x8 digits", ""]
    started = time.perf_counter()
    for name in args.models:
        log(f"{name} ...")
        result = domain_transfer(load_reference_model(name), name, train, test, epochs=args.epochs)
        results.append(result)
        lines += [f"## {name}", "", transfer_headline(result), ""]
        lines += ["| " + " | ".join(TRANSFER_HEADER) + " |", "|" + " --- |" * len(TRANSFER_HEADER)]
        lines += ["| " + " | ".join(row) + " |" for row in transfer_rows(result)]
        lines += ["", f"{result.epochs} epochs, batch {result.batch_size}, Adam lr {result.learning_rate:g} (cosine); "
                  f"intervals: Wilson (zero-shot), bootstrap over seeds x test digits ({result.resamples} resamples); "
                  f"{result.seconds:.0f} s.", ""]  # fmt: skip
    env = environment(threads)
    total = time.perf_counter() - started
    lines += [f"Train split {len(train)} digits, test split {len(test)}; total {total:.0f} s; {threads} threads.", ""]
    out = Path(args.out)
    out.with_suffix(".md").write_text("\n".join(lines))
    out.with_suffix(".json").write_text(
        json.dumps({"environment": env, "results": [r.to_dict() for r in results]}, indent=1, allow_nan=False)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
