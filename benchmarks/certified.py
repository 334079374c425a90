"""Certified lower bounds beside attack upper bounds: verified error, soundness and bracket width.

How to run
----------
From the repository root (the full run takes about an hour on 2 cores)::

    .venv/bin/python benchmarks/certified.py
    .venv/bin/python benchmarks/certified.py --quick      # 200 images per model
    .venv/bin/python benchmarks/certified.py --soundness-only   # every attack on all 10,000 (certified model)

What it measures
----------------
``verified``
    For the IBP-trained reference ``mnist_cnn_certified`` on the 10,000-image test split, and the
    natural ``mnist_cnn`` and PGD-trained ``mnist_cnn_robust`` on the first ``--n-other`` test
    images: clean error, verified (certified) error at eps 0.1 and 0.3 under IBP and CROWN-IBP
    (the share of examples *not* certified; CROWN-IBP on the first ``--n-crown``), and the attack's
    error at the same budgets on the first ``--n-attack`` (PGD-40 with 5 restarts, then APGD-100 on
    what PGD left: the upper bound).
``soundness``
    Each example's certified radius (IBP, bisection to 1/512 on [0, 0.5]; the first
    ``--n-bracket`` images) is attacked *at that
    radius* by APGD-100 (every certified example), PGD-40 with 3 restarts and FMN-100's minimum
    norm (the certified examples among the first ``--n-attack``): a sound certificate admits no
    flip at or below its radius. Any flip is a bug and is counted.
``bracket``
    The median bracket width (the attack's minimal eps minus the IBP radius, over attackable
    examples) and the share of brackets at most 0.05 wide, with FGSM (root finder, the first
    ``--n-bracket`` images) and with PGD-20 bisection (the first ``--n-attack``).

Results go to ``benchmarks/results/certified.md`` and ``certified.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import default_data_dir, environment, log, markdown_table, other_cpu_load  # noqa: E402

from trustlab.core.progress import set_quiet  # noqa: E402
from trustlab.data import load_dataset  # noqa: E402
from trustlab.models import load_reference_model  # noqa: E402
from trustlab.robustness.attacks import APGD, FMN, PGD  # noqa: E402
from trustlab.robustness.bounds import certified, certified_radius  # noqa: E402
from trustlab.robustness.bracket import bracket_result  # noqa: E402
from trustlab.robustness.search import minimal_eps  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BUDGETS = (0.1, 0.3)
METHODS = ("ibp", "crown-ibp")


def attack_error(model, x, y, eps: float) -> float:
    """Share of examples wrong or flipped at ``eps`` by PGD-40 (5 restarts), then APGD-100 on the rest."""
    wrong = model.predict(x) != y
    rows = torch.nonzero(~wrong).squeeze(1)
    pgd = PGD(steps=40, restarts=5, early_stop=True).attack(model, x[rows], y[rows], eps=eps).success
    rest = rows[~pgd]
    wrong[rows[pgd]] = True
    if rest.numel():
        wrong[rest[APGD(steps=100, early_stop=True).attack(model, x[rest], y[rest], eps=eps).success]] = True
    return float(wrong.double().mean())


def soundness(model, x, y, radius: torch.Tensor, n_strong: int) -> dict[str, int]:
    """Flips found at or below each certified radius (must all be 0), by attack: APGD-100 on every
    certified example, PGD-40 with 3 restarts and FMN-100 on those among the first ``n_strong``."""
    rows = torch.nonzero(radius > 0).squeeze(1)
    xr, yr, r = x[rows], y[rows], radius[rows]
    first = rows < n_strong
    out = {"certified examples": int(rows.numel())}
    out["APGD-100 at the radius"] = int(APGD(steps=100).attack(model, xr, yr, eps=r).success.sum())
    out["of them attacked by PGD and FMN"] = int(first.sum())
    xs, ys, rs = xr[first], yr[first], r[first]
    pgd = PGD(steps=40, restarts=3).attack(model, xs, ys, eps=rs)
    out["PGD-40 x 3 restarts at the radius"] = int(pgd.success.sum())
    fmn = FMN(steps=100).attack(model, xs, ys, eps=0.5)
    out["FMN-100 norm <= radius"] = int((fmn.success & (fmn.norms <= rs)).sum())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--n-certified", type=int, default=10_000, help="test images for mnist_cnn_certified")
    parser.add_argument("--n-other", type=int, default=1_000, help="test images for the natural and PGD models")
    parser.add_argument("--n-crown", type=int, default=1_000, help="test images bounded with CROWN-IBP (costly)")
    parser.add_argument("--n-attack", type=int, default=1_000, help="test images attacked for the attack error")
    parser.add_argument(
        "--n-bracket", type=int, default=2_000, help="test images bracketed and attacked at their certified radius"
    )
    parser.add_argument(
        "--soundness-only",
        action="store_true",
        help="only the soundness check of mnist_cnn_certified on the first --n-certified images, every attack on "
        "every certified example (writes certified-soundness.md/.json)",
    )
    parser.add_argument("--quick", action="store_true", help="200 images per model")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_quiet(True)
    busy = other_cpu_load()
    began = time.perf_counter()
    test = load_dataset("mnist", "test", root=args.data_dir)
    if args.soundness_only:
        soundness_only(args, test, busy, began)
        return
    sizes = {"mnist_cnn_certified": args.n_certified, "mnist_cnn": args.n_other, "mnist_cnn_robust": args.n_other}
    if args.quick:
        sizes = dict.fromkeys(sizes, 200)
    verified_rows, sound_rows, bracket_rows, payload = [], [], [], {}
    for name, n in sizes.items():
        model = load_reference_model(name)
        x, y = test.x[:n], test.y[:n]
        record: dict = {"n": n}
        log(f"{name}: clean error and verified error on {n:,} images")
        record["clean_error"] = float((model.predict(x) != y).double().mean())
        for method in METHODS:
            m = min(n, args.n_crown) if method == "crown-ibp" else n
            for eps in BUDGETS:
                start = time.perf_counter()
                ok = certified(model, x[:m], y[:m], eps, method)
                record[f"verified_error_{method}_{eps}"] = float(1 - ok.double().mean())
                record[f"seconds_{method}_{eps}"] = time.perf_counter() - start
                record[f"n_{method}"] = m
        record["n_attack"] = min(n, args.n_attack)
        for eps in BUDGETS:
            log(f"{name}: attack error at {eps}")
            record[f"attack_error_{eps}"] = attack_error(model, x[: record["n_attack"]], y[: record["n_attack"]], eps)
        verified_rows.append(
            [name, f"{n:,}", f"{100 * record['clean_error']:.2f}%"]
            + [
                f"{100 * record[f'verified_error_{method}_{eps}']:.2f}%"
                + ("" if record[f"n_{method}"] == n else f" ({record[f'n_{method}']:,})")
                for eps in BUDGETS
                for method in METHODS
            ]
            + [
                f"{100 * record[f'attack_error_{eps}']:.2f}%"
                + ("" if record["n_attack"] == n else f" ({record['n_attack']:,})")
                for eps in BUDGETS
            ]
        )
        log(f"{name}: certified radius (IBP), FGSM and PGD minimal eps")
        record["n_bracket"] = min(n, args.n_bracket)
        x, y = x[: record["n_bracket"]], y[: record["n_bracket"]]
        radius = certified_radius(model, x, y, method="ibp", show_progress=False)
        m = record["n_attack"]
        searches = {
            "fgsm": (minimal_eps(model, x, y, "fgsm", show_progress=False), radius),
            "pgd-20": (
                minimal_eps(model, x[:m], y[:m], PGD(steps=20), show_progress=False),
                certified_radius(model, x[:m], y[:m], method="ibp", show_progress=False),
            ),
        }
        record["bracket"] = {}
        for attack_name, (found, certificate) in searches.items():
            bracket = bracket_result(certificate, found, test.class_names, attack_name=attack_name)
            record["bracket"][attack_name] = {
                "n": len(bracket.labels), "median_width": bracket.median_width, "narrow_share": bracket.narrow_share,
                "violations": bracket.violations, "certified_at_0.1": bracket.certified_accuracy,
                "radius_seconds": certificate.seconds, "attack_seconds": found.seconds,
            }  # fmt: skip
            bracket_rows.append(
                [name, attack_name, f"{len(bracket.labels):,}", f"{np.median(certificate.radius.numpy()):.4f}",
                 f"{bracket.median_width:.4f}", f"{100 * bracket.narrow_share:.1f}%", str(bracket.violations),
                 f"{certificate.seconds:.0f}", f"{found.seconds:.0f}"]
            )  # fmt: skip
        log(f"{name}: attacks at the certified radii")
        record["soundness"] = soundness(model, x, y, radius.radius, record["n_attack"])
        sound_rows.append([name, *(f"{v:,}" for v in record["soundness"].values())])
        payload[name] = record
        write(args, busy, began, verified_rows, bracket_rows, sound_rows, payload)


def soundness_only(args, test, busy, began) -> None:
    """The soundness check alone, on the certified model, with every attack on every certified example."""
    n = 200 if args.quick else args.n_certified
    model = load_reference_model("mnist_cnn_certified")
    x, y = test.x[:n], test.y[:n]
    log(f"mnist_cnn_certified: certified radius (IBP) of {n:,} images")
    start = time.perf_counter()
    radius = certified_radius(model, x, y, method="ibp", show_progress=False)
    seconds = {"radius": time.perf_counter() - start}
    log("mnist_cnn_certified: APGD-100, PGD-40 x 3 and FMN-100 at every certified radius")
    start = time.perf_counter()
    counts = soundness(model, x, y, radius.radius, n)
    seconds["attacks"] = time.perf_counter() - start
    record = {"n": n, "soundness": counts, "seconds": seconds, "median_radius": float(radius.radius.median())}
    table = markdown_table(
        ["model", "images", "certified examples", "APGD-100", "PGD-40 x 3", "FMN-100 norm <= radius"],
        [["mnist_cnn_certified", f"{n:,}", f"{counts['certified examples']:,}", str(counts["APGD-100 at the radius"]),
          str(counts["PGD-40 x 3 restarts at the radius"]), str(counts["FMN-100 norm <= radius"])]],
    )  # fmt: skip
    parts = [
        "# Soundness of the IBP certificate on the certified model",
        "Each test image's certified radius (IBP, bisection to 1/512 on [0, 0.5]) is attacked *at that radius* by "
        "APGD-100, PGD-40 with 3 restarts and FMN-100 (flip counted when its minimum norm is at most the radius). "
        "A sound certificate admits no flip: every count must be 0.",
        f"Other CPU load before the run: {'n/a' if busy is None else f'{busy:.0%}'}; {args.threads} threads. "
        f"Command: `.venv/bin/python benchmarks/certified.py --soundness-only{' --quick' if args.quick else ''}`.",
        table,
        f"Median certified radius {record['median_radius']:.4f}; radius search {seconds['radius']:.0f} s, "
        f"attacks {seconds['attacks']:.0f} s.",
        f"Versions: {json.dumps(environment(args.threads))}\n\nTotal time {time.perf_counter() - began:.0f} s.",
    ]
    save("certified-soundness", args, parts, record)


def write(args, busy, began, verified_rows, bracket_rows, sound_rows, payload) -> None:
    """The tables so far (written after every model, so a long run keeps what it measured)."""
    header = ["model", "images", "clean error"] + [f"verified {m} at {e:g}" for e in BUDGETS for m in METHODS]
    parts = [
        "# Certified lower bounds beside attack upper bounds",
        f"Other CPU load before the run: {'n/a' if busy is None else f'{busy:.0%}'}; {args.threads} threads.",
        "## Verified error (not certified) and attack error\n\n"
        "Attack error: PGD-40 with 5 restarts, then APGD-100 on what PGD left (the attack's upper bound on the "
        "robust accuracy's complement). CROWN-IBP and the attacks on the first images only where marked (count "
        "in brackets).\n\n" + markdown_table(header + [f"attack error at {e:g}" for e in BUDGETS], verified_rows),
        "## Bracket: IBP certified radius and the attack's minimal eps\n\n"
        + markdown_table(
            [
                "model",
                "attack",
                "images",
                "median certified radius",
                "median bracket width",
                "brackets <= 0.05",
                "violations",
                "radius search s",
                "attack search s",
            ],
            bracket_rows,
        ),  # fmt: skip
        "## Soundness: attacks at each example's certified radius (every count must be 0)\n\n"
        + markdown_table(
            [
                "model",
                "certified examples",
                "APGD-100 (all)",
                "attacked by PGD and FMN",
                "PGD-40 x 3",
                "FMN-100 norm <= radius",
            ],
            sound_rows,
        ),  # fmt: skip
        f"Versions: {json.dumps(environment(args.threads))}\n\nTotal time {time.perf_counter() - began:.0f} s.",
    ]
    save("certified", args, parts, payload)


def save(stem: str, args, parts: list[str], payload: dict) -> None:
    """``results/<stem>.md`` and ``.json`` (``<stem>-quick`` with --quick), and the tables on stdout."""
    RESULTS.mkdir(exist_ok=True)
    stem = f"{stem}-quick" if args.quick else stem
    (RESULTS / f"{stem}.md").write_text("\n\n".join(parts) + "\n")
    (RESULTS / f"{stem}.json").write_text(json.dumps(payload, indent=1))
    print("\n\n".join(parts))


if __name__ == "__main__":
    main()
