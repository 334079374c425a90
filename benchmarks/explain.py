"""Explanation benchmark: trustlab's attribution methods against Captum's defaults, and its
explanation-quality metrics against Quantus.

How to run
----------
From the repository root::

    make bench-explain                           # builds .venv-bench once, then the full run (a few minutes)
    make bench-explain ARGS=--quick              # smoke test on 32 images
    make bench-explain ARGS="--only metrics"     # one section (repeat --only for several)
    .venv-bench/bin/python benchmarks/explain.py --help

``.venv-bench`` holds trustlab (editable) plus the peers pinned in ``benchmarks/requirements.txt``,
Quantus among them; it is imported only here, and a missing peer gives a "not installed" row
instead of stopping the run. Each table is printed when its section finishes; all of them are
written to ``benchmarks/results/explain.json`` and ``explain.md`` (``explain-quick.*`` with
``--quick``, so a smoke test never overwrites a real run). With ``--only``, the other sections
already in those files are kept.

What it compares
----------------
``metrics``
    On the first 256 MNIST test images and the natural reference CNN (``mnist_cnn``), with plain
    gradient maps (the gradient of the label's logit with respect to the input, computed once
    here) and the labels as targets, the same inputs for both libraries:

    * Quantus ``Sparseness`` against ``gini`` (Chalasani et al. 2020);
    * Quantus ``Complexity`` against ``entropy_complexity`` (Bhatt et al. 2020);
    * Quantus ``PixelFlipping(features_in_step=7, perturb_baseline=0.0)`` against
      ``pixel_flipping(features_in_step=7)``: the whole curve (112 steps) is compared, and the
      per-sample AUC (Quantus's helper is ``numpy.trapz`` with unit spacing, removed in numpy 2.4,
      so it is recomputed here with ``numpy.trapezoid``); trustlab's ``deletion_auc`` (Petsiuk
      et al.: the same 112 chunks plus the starting point, AUC over [0, 1]) and ``insertion_auc``
      (blurred start) are timed beside them;
    * Quantus ``MPRT`` (cascading, top-down, Spearman on absolute maps, seed 42) against
      ``model_parameter_randomisation(seed=43)`` (the same weights: Quantus seeds the global
      generator with seed + 1), with the same gradient function and the precomputed maps as the
      originals. Quantus also explains once more with the unmodified model (its "original" entry).

    Columns: time (best of 5 calls for the sub-second metrics, of 2 for the others), "x trustlab"
    (the row's time divided by trustlab's for the same comparison), model evaluations (forward or
    gradient) per example, counted by one hook on the shared module, and the largest absolute
    difference between the two libraries' values where the definitions match. trustlab's
    perturbation curves skip the steps that change no pixel (on MNIST, removing black background
    with baseline 0) and reuse the previous probability: same values, fewer model evaluations.

Conventions
-----------
* One model for both: the trustlab module behind the same normalisation, pixel-space inputs in
  [0, 1], eval mode, parameters frozen. Same ``torch.set_num_threads`` for everyone, batch size
  256 wherever a library batches, one warm-up call on 8 images per method before timing, times
  are wall-clock (``time.perf_counter``) of the library call only.
* Timings taken while other jobs share the CPUs are noisy: the script records how busy the CPUs
  were before each section and warns.

``attributions``
    Every ``explain()`` method on the same 256 images, towards the label, against the same Captum
    class called with its defaults (LIME and Kernel SHAP on 16 images, one surrogate each):
    time, "x trustlab", model evaluations per example, and the largest absolute difference of the
    maps (correlation for the randomised methods).

Adding a section: write ``def section_NAME(ctx: Context) -> Section`` and register it in
``SECTIONS``; rows, rendering, merging with earlier runs and output files come for free.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import default_data_dir, environment, fmt_busy, log, other_cpu_load, peer
from torch import nn

from trustlab.core.progress import set_quiet
from trustlab.data import load_dataset
from trustlab.explain import metrics as tm
from trustlab.models import Classifier, load_reference_model

# ----------------------------------------------------------------------------- settings -------
REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
SEED = 42  # Quantus MPRT's seed; trustlab gets SEED + 1 (see the module docstring)
BATCH = 256
WARMUP_N = 8
REPEATS = 5  # timings of sub-second calls: best of this many
SLOW_REPEATS = 2  # timings of calls running the model many times: best of this many
FEATURES_IN_STEP = 7  # PixelFlipping: 784 / 7 = 112 steps
FULL_N, QUICK_N = 256, 32


# ----------------------------------------------------------------------------- context --------
class Counter:
    """Examples the model evaluates (forward or gradient), counted by a forward pre-hook on the
    module; the hook and so the count are shared by deep copies (MPRT randomises copies)."""

    def __init__(self, module: nn.Module) -> None:
        self.examples = 0
        module.register_forward_pre_hook(self._count)

    def _count(self, _module: nn.Module, args: tuple[Any, ...]) -> None:
        self.examples += int(args[0].shape[0])

    def __deepcopy__(self, memo: dict[int, Any]) -> Counter:
        return self


@dataclass
class Context:
    """What every section gets: the model in both forms, the images, labels and maps."""

    model: Classifier
    net: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    maps: torch.Tensor  # plain gradients of the label's logit, (N, 1, 28, 28)
    counter: Counter


def plain_gradients(model: Classifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient of each target logit with respect to the input, ``BATCH`` images at a time."""
    maps = []
    for start in range(0, x.shape[0], BATCH):
        xb = x[start : start + BATCH].clone().requires_grad_(True)
        logit = model.forward(xb).gather(1, target[start : start + BATCH, None]).sum()
        maps.append(torch.autograd.grad(logit, xb)[0])
    return torch.cat(maps)


def quantus_gradients(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: Any) -> np.ndarray:
    """The same gradients as ``plain_gradients``, in Quantus's ``explain_func`` form."""
    x = torch.as_tensor(inputs).clone().requires_grad_(True)
    logit = model(x).gather(1, torch.as_tensor(targets).long()[:, None]).sum()
    return torch.autograd.grad(logit, x)[0].numpy()


# ----------------------------------------------------------------------------- rows -----------
@dataclass
class Row:
    comparison: str
    library: str
    seconds: float | None = None
    evaluations: float | None = None  # model evaluations (forward or gradient) per example
    max_abs_diff: float | None = None  # against trustlab's values, where the definitions match
    note: str = ""
    status: str = "ok"  # or "not installed", "error: ..."


@dataclass
class Section:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def run(self, comparison: str, library: str, fn: Callable[[], Row]) -> Row:
        """One row; a missing peer or a failure becomes a row, not a crash."""
        log(f"[{self.name}] {comparison}: {library} ...")
        try:
            row = fn()
        except ImportError as exc:
            row = Row(comparison, library, status="not installed", note=str(exc))
        except Exception as exc:  # noqa: BLE001 - one failing peer must not lose the run
            traceback.print_exc()
            row = Row(comparison, library, status=f"error: {type(exc).__name__}", note=str(exc).splitlines()[0][:200])
        self.rows.append(row)
        if row.seconds is not None:
            log(f"[{self.name}] {comparison}: {library} {row.seconds:.3f} s")
        return row


def timed(fn: Callable[[], Any], counter: Counter, repeats: int = 1) -> tuple[Any, float, int]:
    """``fn()``'s value, its best wall-clock time over ``repeats`` calls, and the examples the
    model evaluated in one call."""
    best, value = math.inf, None
    for _ in range(repeats):
        counter.examples = 0
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return value, best, counter.examples


def max_diff(ours: Any, theirs: Any) -> float:
    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(theirs, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: trustlab {a.shape}, peer {b.shape}")
    return float(np.abs(a - b).max()) if a.size else 0.0


# ============================================================================= metrics ========
def section_metrics(ctx: Context) -> Section:
    n = ctx.x.shape[0]
    steps = ctx.x[0].numel() // FEATURES_IN_STEP
    section = Section(
        "metrics",
        f"Explanation metrics on {n} MNIST test images, natural reference CNN, plain-gradient maps, labels as targets",
    )
    x_np, y_np, a_np = ctx.x.numpy(), ctx.y.numpy(), ctx.maps.numpy()
    values: dict[str, Any] = {}  # trustlab's results by key
    peer_values: dict[str, Any] = {}  # Quantus's

    def trustlab_row(comparison: str, key: str, fn: Callable[[], Any], repeats: int, note: str = "") -> Callable:
        def run() -> Row:
            fn(WARMUP_N)
            value, seconds, examples = timed(lambda: fn(n), ctx.counter, repeats)
            values[key] = value
            return Row(comparison, "trustlab", seconds, examples / n, note=note)

        return run

    def quantus_row(comparison: str, key: str, fn: Callable[[Any, int], Any], repeats: int, note: str = "") -> Callable:
        def run() -> Row:
            quantus = peer("quantus")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn(quantus, WARMUP_N)
                value, seconds, examples = timed(lambda: fn(quantus, n), ctx.counter, repeats)
            peer_values[key] = value
            diff = max_diff(values[key], value)
            return Row(comparison, f"Quantus {quantus.__version__}", seconds, examples / n, diff, note)

        return run

    def sub(k: int) -> dict[str, Any]:
        return {"model": ctx.net, "x_batch": x_np[:k], "y_batch": y_np[:k], "a_batch": a_np[:k].copy()}

    # Sparseness / gini
    section.run(
        "Sparseness (Gini)",
        "trustlab",
        trustlab_row("Sparseness (Gini)", "gini", lambda k: tm.gini(ctx.maps[:k]), REPEATS),
    )
    section.run(
        "Sparseness (Gini)",
        "Quantus",
        quantus_row(
            "Sparseness (Gini)",
            "gini",
            lambda q, k: q.Sparseness(disable_warnings=True)(**sub(k), batch_size=BATCH),
            REPEATS,
        ),
    )
    # Complexity / entropy
    section.run(
        "Complexity (entropy)",
        "trustlab",
        trustlab_row("Complexity (entropy)", "entropy", lambda k: tm.entropy_complexity(ctx.maps[:k]), REPEATS),
    )
    section.run(
        "Complexity (entropy)",
        "Quantus",
        quantus_row(
            "Complexity (entropy)",
            "entropy",
            lambda q, k: q.Complexity(disable_warnings=True)(**sub(k), batch_size=BATCH),
            REPEATS,
        ),
    )
    # PixelFlipping / deletion
    pf = f"PixelFlipping curve ({steps} steps of {FEATURES_IN_STEP} px)"

    def trustlab_pf(k: int) -> torch.Tensor:
        return tm.pixel_flipping(
            ctx.model, ctx.x[:k], ctx.maps[:k], ctx.y[:k], features_in_step=FEATURES_IN_STEP, batch_size=BATCH
        )

    def quantus_pf(q: Any, k: int) -> np.ndarray:
        metric = q.PixelFlipping(features_in_step=FEATURES_IN_STEP, perturb_baseline=0.0, disable_warnings=True)
        return np.asarray(metric(**sub(k), batch_size=BATCH))

    section.run(pf, "trustlab", trustlab_row(pf, "pixel_flipping", trustlab_pf, SLOW_REPEATS))
    section.run(pf, "Quantus", quantus_row(pf, "pixel_flipping", quantus_pf, SLOW_REPEATS))
    if "pixel_flipping" in values and "pixel_flipping" in peer_values:
        # Quantus's per-sample AUC is numpy.trapz(curve, dx=1); recomputed from its curve (see the docstring)
        ours = torch.trapezoid(values["pixel_flipping"], dim=1).numpy()
        theirs = np.trapezoid(peer_values["pixel_flipping"], dx=1, axis=1)
        section.notes.append(
            f"PixelFlipping per-sample AUC (unit spacing, {steps} points): largest |trustlab - Quantus| = "
            f"{max_diff(ours, theirs):.2e}; mean AUC {ours.mean():.4f}."
        )
    deletion = f"deletion AUC, Petsiuk ({steps} chunks + start)"
    section.run(
        deletion,
        "trustlab",
        trustlab_row(
            deletion,
            "deletion",
            lambda k: tm.deletion_curve(ctx.model, ctx.x[:k], ctx.maps[:k], ctx.y[:k], steps=steps, batch_size=BATCH),
            SLOW_REPEATS,
            note="no Quantus equivalent; its curve without the start point is the PixelFlipping curve",
        ),
    )
    if "deletion" in values and "pixel_flipping" in values:
        curve = values["deletion"]
        gap = max_diff(curve.scores[:, 1:], values["pixel_flipping"])
        section.notes.append(
            f"deletion_curve(steps={steps}) without its first point against pixel_flipping: largest difference "
            f"{gap:.2e}; mean deletion AUC over [0, 1] {curve.auc.mean():.4f}."
        )
    insertion = f"insertion AUC, Petsiuk, blurred start ({steps} chunks + start)"
    section.run(
        insertion,
        "trustlab",
        trustlab_row(
            insertion,
            "insertion",
            lambda k: tm.insertion_auc(ctx.model, ctx.x[:k], ctx.maps[:k], ctx.y[:k], steps=steps, batch_size=BATCH),
            SLOW_REPEATS,
            note="no Quantus equivalent (Quantus has no insertion metric)",
        ),
    )
    # MPRT / model_parameter_randomisation
    mprt = "MPRT (cascading top-down, Spearman of absolute maps)"

    def trustlab_mprt(k: int) -> torch.Tensor:
        result = tm.model_parameter_randomisation(
            ctx.model, ctx.x[:k], ctx.y[:k], plain_gradients, seed=SEED + 1, original=ctx.maps[:k]
        )
        values["mprt_layers"] = result.layers
        return result.scores

    def quantus_mprt(q: Any, k: int) -> np.ndarray:
        scores = q.MPRT(seed=SEED, disable_warnings=True)(**sub(k), explain_func=quantus_gradients, batch_size=BATCH)
        layers = [name for name in scores if name != "original"]
        if [name.removeprefix("inner.") for name in layers] != list(values["mprt_layers"]):
            raise ValueError(f"layers differ: Quantus {layers}, trustlab {values['mprt_layers']}")
        return np.array([scores[name] for name in layers])

    section.run(mprt, "trustlab", trustlab_row(mprt, "mprt", trustlab_mprt, SLOW_REPEATS))
    section.run(mprt, "Quantus", quantus_row(mprt, "mprt", quantus_mprt, SLOW_REPEATS))
    if "mprt" in values:
        medians = ", ".join(
            f"{layer} {float(row.median()):.3f}"
            for layer, row in zip(values["mprt_layers"], values["mprt"], strict=True)
        )
        section.notes.append(f"MPRT median Spearman per randomised layer (cumulative): {medians}.")
    section.notes.append(
        "Sparseness: Quantus adds 1e-7 to the max-normalised |map| before the Gini index, trustlab does not "
        "(a relative difference of about 1e-7 n / sum); Complexity: Quantus adds 1e-12 inside the logarithm."
    )
    return section


# ========================================================================= attributions =======
def section_attributions(ctx: Context) -> Section:
    """trustlab's ``explain()`` against Captum called with its defaults, on the same images."""
    from captum.attr import (
        GuidedBackprop,
        GuidedGradCam,
        IntegratedGradients,
        KernelShap,
        LayerAttribution,
        LayerGradCam,
        Lime,
        NoiseTunnel,
        Occlusion,
        Saliency,
    )

    from trustlab.explain import explain
    from trustlab.explain.attributions import last_conv_layer, patch_mask

    n = ctx.x.shape[0]
    section = Section("attributions", f"Attribution methods on {n} MNIST test images, natural reference CNN")
    x, y, net = ctx.x, ctx.y, ctx.net
    layer = last_conv_layer(ctx.model.module)
    surrogate_n = min(n, 16)  # LIME / Kernel SHAP fit one surrogate per image: timed on a subset
    mask = patch_mask((1, 28, 28), 4)

    def gradcam_captum(k: int) -> torch.Tensor:
        a = LayerGradCam(net, layer).attribute(x[:k], target=y[:k], relu_attributions=True)
        return LayerAttribution.interpolate(a, (28, 28), interpolate_mode="bilinear")

    def smoothgrad_captum(k: int) -> torch.Tensor:
        torch.manual_seed(0)
        return NoiseTunnel(Saliency(net)).attribute(x[:k], target=y[:k], nt_samples=50, stdevs=0.15, abs=False)

    cases: list[tuple[str, Callable[[int], Any], Callable[[int], Any], str, int]] = [
        ("saliency", lambda k: explain(ctx.model, x[:k], y[:k], method="saliency"),
         lambda k: Saliency(net).attribute(x[:k], target=y[:k], abs=False), "diff", n),
        ("guided backprop", lambda k: explain(ctx.model, x[:k], y[:k], method="guided_backprop"),
         lambda k: GuidedBackprop(net).attribute(x[:k], target=y[:k]), "diff", n),
        ("Grad-CAM", lambda k: explain(ctx.model, x[:k], y[:k], method="gradcam"), gradcam_captum, "diff", n),
        ("guided Grad-CAM", lambda k: explain(ctx.model, x[:k], y[:k], method="guided_gradcam"),
         lambda k: GuidedGradCam(net, layer).attribute(x[:k], target=y[:k]), "diff", n),
        ("SmoothGrad, 50 samples, sigma 0.15", lambda k: explain(ctx.model, x[:k], y[:k], method="smoothgrad"),
         smoothgrad_captum, "correlation", n),
        ("integrated gradients, 50 steps", lambda k: explain(ctx.model, x[:k], y[:k], method="integrated_gradients"),
         lambda k: IntegratedGradients(net).attribute(x[:k], target=y[:k], n_steps=50), "diff", n),
        ("occlusion, 4x4 window, stride 2", lambda k: explain(ctx.model, x[:k], y[:k], method="occlusion"),
         lambda k: Occlusion(net).attribute(x[:k], sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2),
                                            target=y[:k]), "diff", n),
        (f"LIME, 4x4 patches, 300 samples ({surrogate_n} images)",
         lambda k: explain(ctx.model, x[:k], y[:k], method="lime"),
         lambda k: torch.cat([Lime(net).attribute(x[i : i + 1], target=y[i : i + 1], feature_mask=mask,
                                                  n_samples=300) for i in range(k)]), "correlation", surrogate_n),
        (f"Kernel SHAP, 4x4 patches, 300 samples ({surrogate_n} images)",
         lambda k: explain(ctx.model, x[:k], y[:k], method="kernelshap"),
         lambda k: torch.cat([KernelShap(net).attribute(x[i : i + 1], target=y[i : i + 1], feature_mask=mask,
                                                        n_samples=300) for i in range(k)]), "correlation",
         surrogate_n),
    ]  # fmt: skip

    for comparison, ours_fn, captum_fn, compare, count in cases:
        values: dict[str, torch.Tensor] = {}

        def ours_row(fn=ours_fn, count=count, comparison=comparison, values=values) -> Row:
            fn(WARMUP_N)
            value, seconds, examples = timed(lambda: fn(count), ctx.counter, SLOW_REPEATS)
            values["ours"] = value
            return Row(comparison, "trustlab", seconds, examples / count)

        def captum_row(fn=captum_fn, count=count, comparison=comparison, compare=compare, values=values) -> Row:
            captum = peer("captum")
            fn(WARMUP_N)
            value, seconds, examples = timed(lambda: fn(count), ctx.counter, SLOW_REPEATS)
            ours = values["ours"].flatten(1).double()
            theirs = value.detach().flatten(1).double()
            if compare == "diff":
                return Row(comparison, f"Captum {captum.__version__} defaults", seconds, examples / count,
                           float((ours - theirs).abs().max()))  # fmt: skip
            a, b = ours - ours.mean(1, keepdim=True), theirs - theirs.mean(1, keepdim=True)
            corr = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)
            note = f"random sampling differs: mean per-image correlation with trustlab {corr.mean():.3f}"
            return Row(comparison, f"Captum {captum.__version__} defaults", seconds, examples / count, note=note)

        section.run(comparison, "trustlab", ours_row)
        section.run(comparison, "Captum", captum_row)
    section.notes.append(
        "Captum defaults: NoiseTunnel puts all N x 50 noisy copies in one batch, IntegratedGradients all "
        "N x 50 path points, Occlusion and Lime / KernelShap evaluate one perturbation per forward pass. "
        "trustlab processes at most 256 images per pass. SmoothGrad, LIME and Kernel SHAP draw random "
        "samples differently, so their values are compared by correlation."
    )
    return section


SECTIONS: dict[str, Callable[[Context], Section]] = {"metrics": section_metrics, "attributions": section_attributions}


# ============================================================================= output =========
def ratios(rows: list[dict[str, Any]]) -> dict[int, float | None]:
    """Row index -> its time divided by the trustlab row's time of the same comparison."""
    base = {r["comparison"]: r["seconds"] for r in rows if r["library"] == "trustlab" and r["seconds"]}
    return {
        i: (r["seconds"] / base[r["comparison"]] if r["seconds"] and r["comparison"] in base else None)
        for i, r in enumerate(rows)
    }


def table(section: dict[str, Any]) -> list[str]:
    header = [
        "comparison",
        "library",
        "time s",
        "x trustlab",
        "model evals / example",
        "max abs diff vs trustlab",
        "note",
    ]
    rx = ratios(section["rows"])
    lines = ["| " + " | ".join(header) + " |", "|---|---|---:|---:|---:|---:|---|"]
    for i, r in enumerate(section["rows"]):
        seconds = "" if r["seconds"] is None else f"{r['seconds']:.4f}" if r["seconds"] < 1 else f"{r['seconds']:.2f}"
        ratio = "" if rx[i] is None else f"{rx[i]:.1f}x"
        diff = "" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.2e}"
        note = r["note"] if r["status"] == "ok" else f"{r['status']}: {r['note']}"
        evals = "" if r["evaluations"] is None else f"{r['evaluations']:.1f}"
        cells = [r["comparison"], r["library"], seconds, ratio, evals, diff, note]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    out = [
        "# Explanation benchmark",
        "",
        "Generated by `benchmarks/explain.py`; do not edit by hand. See the script's docstring for what is compared.",
        "",
    ]
    for sec in results["sections"].values():
        run = sec["run"]
        out += [
            f"## {sec['name']}",
            "",
            sec["title"],
            "",
            f"Run {run['date']}, {'QUICK (smoke test), ' if run['quick'] else ''}{run['threads']} threads, "
            f"{run['section_seconds']} s; CPUs busy with other work just before: {fmt_busy(run['cpu_busy_before'])}; "
            f"load average (1, 5, 15 min) at start {run['loadavg']}, at end {run['loadavg_end']}.",
            "",
            *table(sec),
            "",
            *[f"- {note}" for note in sec["notes"]],
            "",
        ]
    out += ["## Environment", "", "```", json.dumps(meta, indent=2), "```", ""]
    return "\n".join(out)


def write_results(stem: Path, sections: dict[str, dict[str, Any]], meta: dict[str, Any], merge: bool) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path = stem.with_suffix(".json")
    merged: dict[str, Any] = {}
    if merge and json_path.exists():
        try:
            merged = json.loads(json_path.read_text())["sections"]
        except (ValueError, KeyError):
            merged = {}
    merged.update(sections)
    results = {"meta": meta, "sections": {name: merged[name] for name in SECTIONS if name in merged}}
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    stem.with_suffix(".md").write_text(render_markdown(results))


# ============================================================================= main ===========
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=f"smoke test on {QUICK_N} images instead of {FULL_N}")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(SECTIONS),
        metavar="NAME",
        help=f"run only this section: {list(SECTIONS)}",
    )
    parser.add_argument(
        "--data-dir",
        default=default_data_dir(),
        help="folder holding mnist/ (default: $TRUSTLAB_DATA or ../shared/data)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="torch.set_num_threads for every library (default: the cores available)",
    )
    parser.add_argument("--out", type=Path, default=None, help="output path without suffix")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(args.threads)
    set_quiet(not sys.stderr.isatty())
    stem = args.out or RESULTS_DIR / ("explain-quick" if args.quick else "explain")
    n = QUICK_N if args.quick else FULL_N

    test = load_dataset("mnist", "test", root=args.data_dir)
    model = load_reference_model("mnist_cnn", batch_size=BATCH)
    model.module.requires_grad_(False)
    counter = Counter(model.module)
    x = torch.as_tensor(test.x[:n], dtype=torch.float32)
    y = torch.as_tensor(test.y[:n], dtype=torch.long)
    ctx = Context(model, model.as_module().eval(), x, y, plain_gradients(model, x, y), counter)
    meta = environment(args.threads, (("captum", "captum"), ("quantus", "quantus"))) | {
        "argv": sys.argv[1:] if argv is None else argv,
        "images": n,
    }
    log(f"explain benchmark: {'QUICK ' if args.quick else ''}{n} images, {args.threads} threads -> {stem}.json/.md")

    done: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for name in args.only or list(SECTIONS):
        busy = other_cpu_load()
        if busy is not None and busy > 0.2:
            log(f"WARNING: the CPUs are {100 * busy:.0f}% busy with other work before {name}; timings will be noisy")
        run = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "threads": args.threads,
            "cpu_busy_before": busy,
            "loadavg": [round(v, 2) for v in os.getloadavg()],
        }
        start = time.perf_counter()
        try:
            section = SECTIONS[name](ctx)
        except Exception as exc:  # noqa: BLE001 - keep the other sections
            traceback.print_exc()
            section = Section(name, f"FAILED: {type(exc).__name__}: {exc}")
            failed.append(name)
        run["section_seconds"] = round(time.perf_counter() - start, 1)
        run["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
        done[name] = {
            "name": section.name,
            "title": section.title,
            "rows": [asdict(r) for r in section.rows],
            "notes": section.notes,
            "run": run,
        }
        print("\n" + "\n".join([f"== {name}: {section.title}", *table(done[name]), *section.notes]) + "\n", flush=True)
        write_results(stem, done, meta, merge=bool(args.only))
    log(f"wrote {stem}.json and {stem}.md")
    if failed:
        log(f"FAILED sections: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
