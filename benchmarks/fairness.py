"""Fairness benchmark, first part: time of the metric table with 1,000 bootstrap resamples on
the 32,561 Adult rows (logistic regression fitted on the train split; sex, race, sex x race).
The comparisons against AIF360 and fairlearn come with the rest of issue 12.

    python benchmarks/fairness.py [--data-dir DIR] [--resamples 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import default_data_dir, other_cpu_load  # noqa: E402

from trustlab.data import load_dataset  # noqa: E402
from trustlab.fairness import fairness_table, protected_groups  # noqa: E402
from trustlab.models.tabular import fit_tabular_model, positive_probability  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("adult", "all", root=args.data_dir)
    model = fit_tabular_model(load_dataset("adult", "train", root=args.data_dir), kind="logistic")
    score = positive_probability(model, data.x.numpy())
    decisions = (score >= 0.5).astype(int)
    print(f"Adult, {len(data):,} rows, {args.resamples} resamples; other CPU load before: {other_cpu_load()}")
    for names in (["sex"], ["race"], ["sex", "race"]):
        groups = protected_groups(data, names)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            table = fairness_table(data.y.numpy(), decisions, score, groups, resamples=args.resamples, seed=0)
            times.append(time.perf_counter() - start)
        ratio = table.four_fifths_ratio
        print(
            f"{' x '.join(names)}: {len(table.groups)} groups, best of {args.repeats} {min(times):.2f} s, "
            f"worst {max(times):.2f} s; disparate impact (lower/higher) {ratio.value:.3f} "
            f"[{ratio.low:.3f}, {ratio.high:.3f}]"
        )


if __name__ == "__main__":
    main()
