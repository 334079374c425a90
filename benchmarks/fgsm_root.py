"""FGSM minimal-eps: the bracketed root finder ("quadratic") against the reference bisection.

How to run
----------
From the repository root (trustlab's own environment is enough, no peers)::

    .venv/bin/python benchmarks/fgsm_root.py                 # 10,000 test images, both reference CNNs
    .venv/bin/python benchmarks/fgsm_root.py --n 1000 --repeats 1 --out /tmp/fgsm_root   # quicker

What it measures
----------------
``minimal_eps(model, x, y, "fgsm", eps_max=0.5, tol=1/512)`` on the MNIST test split for the
natural reference CNN ``mnist_cnn`` and the adversarially trained ``mnist_cnn_robust``, once
with ``root_finder="bisection"`` (the reference) and once with ``root_finder="quadratic"``
(the default), in the same process:

* agreement: share of examples whose eps* is the same within tol (both inf when censored),
  split by whether the example was flipped at eps_max (then the margin crosses zero more than
  once and the two found different crossings) or not (then the root finder skipped a midpoint
  where the bisection found a flip), and how many examples' flags (clean_wrong, censored,
  nonmonotonic) differ;
* forward passes per example (trustlab's own ``forward_calls``: examples through the model;
  both methods take the same single gradient per example) and their ratio;
* wall time of each, run alternately ``--repeats`` times (B, Q, Q, B, ...); the table keeps
  each method's fastest run, the JSON keeps all;
* the bracket invariant of the root finder's answer, re-checked outside the timed region by
  evaluating the model at clip(x + eps * direction) for eps = lower and upper: correct at
  lower (or lower = 0), flipped at upper, upper - lower <= tol.

Examples not flipped at eps_max have no sign change to follow: the bisection evaluates its 8
midpoints, the root finder only those a bound on the margin's rate does not clear (``search._guided_bisect``).
Results: ``benchmarks/results/fgsm_root.{json,md}`` (or ``--out``). Goals (issue 16): agreement
>= 99.5%, root finder's forward passes <= 60% of bisection's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from common import default_data_dir, environment, fmt_busy, log, markdown_table, other_cpu_load

from trustlab.data import load_dataset
from trustlab.models import Classifier, load_reference_model
from trustlab.robustness.attacks import FGSM
from trustlab.robustness.attacks.base import BatchContext, Counter
from trustlab.robustness.search import MinimalEps, minimal_eps

REPO = Path(__file__).resolve().parents[1]
EPS_MAX = 0.5
TOL = 1 / 512
MODELS = ("mnist_cnn", "mnist_cnn_robust")
FINDERS = ("bisection", "quadratic")
WARMUP_N = 8
GOAL_AGREEMENT = 0.995
GOAL_FORWARD_RATIO = 0.60


def search(model: Classifier, x: torch.Tensor, y: torch.Tensor, finder: str) -> tuple[MinimalEps, float]:
    start = time.perf_counter()
    result = minimal_eps(model, x, y, "fgsm", eps_max=EPS_MAX, tol=TOL, root_finder=finder, show_progress=False)
    return result, time.perf_counter() - start


def ray_predictions(model: Classifier, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Predictions at trustlab's FGSM point clip(x + eps * direction), batch by batch, computed afresh."""
    attack, out = FGSM(), []
    for start in range(0, x.shape[0], model.batch_size):
        part = slice(start, start + model.batch_size)
        ctx = BatchContext(
            model=model,
            x=x[part],
            y=y[part],
            eps=eps[part],
            mask=None,
            init=None,
            generator=torch.Generator(),
            counter=Counter(),
        )
        with torch.enable_grad():
            direction = attack.direction(ctx, x[part]).step
        with torch.no_grad():
            points = (x[part] + eps[part].view(-1, 1, 1, 1) * direction).clamp(*model.bounds)
            out.append(model.forward(points).argmax(1))
    return torch.cat(out)


def bracket_violations(model: Classifier, x: torch.Tensor, y: torch.Tensor, result: MinimalEps) -> dict[str, int]:
    searched = torch.nonzero(~result.clean_wrong & ~result.censored).squeeze(1)
    lower, upper = result.lower[searched], result.upper[searched]
    width = upper - lower
    at_upper = ray_predictions(model, x[searched], y[searched], upper)
    inside = lower > 0
    at_lower = ray_predictions(model, x[searched][inside], y[searched][inside], lower[inside])
    return {
        "checked": int(searched.numel()),
        "width_above_tol": int((width > TOL).sum()),
        "not_flipped_at_upper": int((at_upper == y[searched]).sum()),
        "flipped_at_lower": int((at_lower != y[searched][inside]).sum()),
    }


def compare(model: Classifier, name: str, x: torch.Tensor, y: torch.Tensor, repeats: int) -> dict[str, Any]:
    for finder in FINDERS:  # warm-up
        search(model, x[:WARMUP_N], y[:WARMUP_N], finder)
    order = [FINDERS if r % 2 == 0 else FINDERS[::-1] for r in range(repeats)]
    results: dict[str, MinimalEps] = {}
    times: dict[str, list[float]] = {f: [] for f in FINDERS}
    busy = other_cpu_load()
    for finders in order:
        for finder in finders:
            log(f"[{name}] {finder} on {x.shape[0]:,} images ...")
            results[finder], seconds = search(model, x, y, finder)
            times[finder].append(seconds)
            log(f"[{name}] {finder}: {seconds:.1f} s, {results[finder].forward_calls / x.shape[0]:.2f} fwd/ex")
    slow, fast = results["bisection"], results["quadratic"]
    both_inf = torch.isinf(slow.eps_star) & torch.isinf(fast.eps_star)
    close = (slow.eps_star - fast.eps_star).abs() <= TOL + 1e-6
    agree = both_inf | close
    later = ~agree & (fast.eps_star > slow.eps_star)
    flags = {f: int((getattr(slow, f) != getattr(fast, f)).sum()) for f in ("clean_wrong", "censored", "nonmonotonic")}
    not_flipped = ~slow.clean_wrong & (slow.censored | slow.nonmonotonic)
    not_flipped_at_max = int(not_flipped.sum())
    log(f"[{name}] re-checking the root finder's brackets ...")
    violations = bracket_violations(model, x, y, fast)
    n = x.shape[0]
    best = {f: min(times[f]) for f in FINDERS}
    return {
        "model": name,
        "n": n,
        "cpu_busy_before": busy,
        "agreement": float(agree.float().mean()),
        "disagree": int((~agree).sum()),
        "disagree_root_finder_later": int((later & ~not_flipped).sum()),
        "disagree_not_flipped_at_eps_max": int((~agree & not_flipped).sum()),
        "flags_differ": flags,
        "clean_wrong": int(slow.clean_wrong.sum()),
        "censored": int(slow.censored.sum()),
        "nonmonotonic": int(slow.nonmonotonic.sum()),
        "not_flipped_at_eps_max": not_flipped_at_max,
        "forward": {f: results[f].forward_calls for f in FINDERS},
        "gradient": {f: results[f].gradient_calls for f in FINDERS},
        "forward_per_example": {f: results[f].forward_calls / n for f in FINDERS},
        "forward_ratio": fast.forward_calls / slow.forward_calls,
        "seconds": times,
        "seconds_best": best,
        "time_ratio": best["quadratic"] / best["bisection"],
        "median_eps_star": {f: float(results[f].eps_star.median()) for f in FINDERS},
        "bracket_check": violations,
    }


def render_markdown(runs: list[dict[str, Any]], meta: dict[str, Any], command: str) -> str:
    header = [
        "model",
        "n",
        "eps* agree (±tol)",
        "flags differ",
        "fwd/ex bisection",
        "fwd/ex quadratic",
        "fwd ratio",
        "time s bisection",
        "time s quadratic",
        "time ratio",
        "not flipped at eps_max",
        "bracket violations",
    ]
    rows = []
    for r in runs:
        v = r["bracket_check"]
        bad = v["width_above_tol"] + v["not_flipped_at_upper"] + v["flipped_at_lower"]
        rows.append(
            [
                r["model"],
                f"{r['n']:,}",
                f"{100 * r['agreement']:.2f}% ({r['disagree']} differ)",
                ", ".join(f"{k} {v}" for k, v in r["flags_differ"].items() if v) or "none",
                f"{r['forward_per_example']['bisection']:.2f}",
                f"{r['forward_per_example']['quadratic']:.2f}",
                f"{r['forward_ratio']:.3f}",
                f"{r['seconds_best']['bisection']:.1f}",
                f"{r['seconds_best']['quadratic']:.1f}",
                f"{r['time_ratio']:.3f}",
                f"{r['not_flipped_at_eps_max']:,}",
                f"{bad} of {v['checked']:,}",
            ]
        )
    notes = []
    for r in runs:
        flipped_disagree = r["disagree"] - r["disagree_not_flipped_at_eps_max"]
        notes.append(
            f"- {r['model']}: {r['clean_wrong']} wrong before any perturbation, {r['censored']} censored and "
            f"{r['nonmonotonic']} non-monotonic by the bisection. Of the {r['disagree']} eps* that differ, "
            f"{flipped_disagree} were flipped at eps_max (the margin crosses zero more than once; both brackets "
            f"valid): {r['disagree_root_finder_later']} a later crossing found by the root finder, "
            f"{flipped_disagree - r['disagree_root_finder_later']} an earlier one; "
            f"{r['disagree_not_flipped_at_eps_max']} were not flipped at eps_max, where the root finder skipped a "
            f"midpoint at which the bisection found a flip. "
            f"Times of every run (s): {json.dumps({k: [round(t, 1) for t in v] for k, v in r['seconds'].items()})}; "
            f"CPUs busy with other work before: {fmt_busy(r['cpu_busy_before'])}."
        )
    goals = []
    for r in runs:
        goals.append(
            f"- {r['model']}: agreement {100 * r['agreement']:.2f}% "
            f"({'meets' if r['agreement'] >= GOAL_AGREEMENT else 'MISSES'} >= {100 * GOAL_AGREEMENT:.1f}%); "
            f"forward ratio {r['forward_ratio']:.3f} "
            f"({'meets' if r['forward_ratio'] <= GOAL_FORWARD_RATIO else 'MISSES'} <= {GOAL_FORWARD_RATIO:.2f})"
        )
    return "\n".join(
        [
            "# FGSM minimal eps: root finder vs bisection",
            "",
            "Generated by `benchmarks/fgsm_root.py` (see its docstring). `minimal_eps(..., 'fgsm', eps_max=0.5, "
            "tol=1/512)` on the MNIST test split with `root_finder='bisection'` (reference) and "
            "`root_finder='quadratic'` (default), same process. fwd/ex: trustlab's forward_calls per example "
            "(both also take 1 gradient per example). Times: fastest of the runs, wall-clock seconds.",
            "",
            f"Command: `{command}`; run {meta['date']}, {meta['torch_threads']} thread(s), "
            f"load average at start {meta['loadavg']}, at end {meta['loadavg_end']}.",
            "",
            markdown_table(header, rows),
            "",
            *notes,
            "",
            "Goals (issue 16):",
            "",
            *goals,
            "",
            "## Environment",
            "",
            "```",
            json.dumps(meta, indent=2),
            "```",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=default_data_dir(), help="folder holding mnist/")
    parser.add_argument("--n", type=int, default=10_000, help="test images (default: all 10,000)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each method (alternating order)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fgsm_root")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    test = load_dataset("mnist", "test", root=args.data_dir)
    x = torch.as_tensor(test.x, dtype=torch.float32)[: args.n]
    y = torch.as_tensor(test.y, dtype=torch.long)[: args.n]
    meta = environment(args.threads) | {
        "argv": sys.argv[1:],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "eps_max": EPS_MAX,
        "tol": TOL,
    }
    runs = [compare(load_reference_model(name), name, x, y, args.repeats) for name in args.models]
    meta["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    command = " ".join([".venv/bin/python", "benchmarks/fgsm_root.py", *sys.argv[1:]])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    safe = json.loads(json.dumps({"meta": meta, "runs": runs}, default=str).replace("Infinity", '"inf"'))
    args.out.with_suffix(".json").write_text(json.dumps(safe, indent=2) + "\n")
    text = render_markdown(runs, meta, command)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    log(f"wrote {args.out}.json and {args.out}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
