"""Robustness benchmark: trustlab against ART, Foolbox, Captum, torchattacks and plain PyTorch.

How to run
----------
From the repository root::

    make bench-robustness                        # builds .venv-bench once, then the full run
    make bench-robustness ARGS=--quick           # smoke test: every sample 10-50x smaller (minutes)
    make bench-robustness ARGS="--only pgd40"    # one comparison (repeat --only for several)
    .venv-bench/bin/python benchmarks/robustness.py --help

``.venv-bench`` holds trustlab (editable) plus the peers pinned in ``benchmarks/requirements.txt``;
none of them is a dependency of trustlab, and they are imported only here. A peer that is not
installed gets a "not installed" row instead of stopping the run. Each table is printed as soon
as its comparison finishes; all of them are written to ``benchmarks/results/robustness.json``
and ``robustness.md`` (``robustness-quick.*`` with ``--quick``, so a smoke test never overwrites
a real run). With ``--only`` the other sections already in those files are kept.

What it compares (all on the natural reference MNIST CNN unless said otherwise)
--------------------------------------------------------------------------------
``fgsm-min-eps``
    Per-example minimal L-inf epsilon under FGSM on the 10,000-image test split, eps_max 0.5,
    tolerance 1/512: trustlab's batched bisection (``minimal_eps(attack="fgsm",
    root_finder="bisection")``, the reference search; the default root finder is compared with it in
    ``benchmarks/fgsm_root.py``); the
    one-example-at-a-time bisection loop of the published study (timed on a subset, scaled);
    ART's ``FastGradientMethod(minimal=True)`` (a linear scan in steps of 1/512; time-boxed and
    scaled if it would run past ``--art-budget`` seconds); Captum's ``MinParamPerturbation`` in
    binary mode, one example at a time (subset, scaled); and the floor: one forward+backward plus
    ceil(log2(eps_max / tol)) = 8 batched forward passes over the split in plain PyTorch.
    Correctness: trustlab's eps* is checked against ``linear_scan`` (brute force on the grid),
    and every subset method is compared with trustlab's eps* on the same examples.
``pgd-min-eps-vs-fmn``
    Minimal L-inf epsilon on 1,000 test images with a stronger attack: trustlab's bisection over
    PGD (settings in PGD_SEARCH / PGD_SEARCH_TOL below) against Foolbox's ``LInfFMNAttack``
    (steps=100); trustlab's own FMN is run too, like for like with Foolbox's.
``pgd40``
    PGD-40 L-inf, eps 0.3, step 0.01, random start, on 1,024 test images: trustlab, a hand-written
    PyTorch loop, torchattacks, Foolbox and ART. Robust accuracies should all be close.
``robust-accuracy``
    trustlab's FGSM, PGD-40 and APGD-100 (early stop where supported) at eps 0.05/0.1/0.2/0.3 on
    ``--robust-n`` images, for the natural and (when it exists) the adversarially trained
    reference model, with the check APGD <= PGD <= FGSM; plus PGD-40 at eps 0.2 and 0.3 on the
    full split for the robust model.

Conventions
-----------
* Every library sees the same computation: the trustlab model's ``nn.Module`` behind the same
  normalisation, on pixel-space inputs in [0, 1]. Parameters are frozen (``requires_grad=False``)
  for everyone, so no library pays for weight gradients an attack never uses.
* Model calls are counted by one wrapper around the module, identically for every row: each
  forward adds the number of examples passed through; an example whose output is later
  back-propagated counts as one gradient evaluation instead (a gradient includes its forward,
  as in trustlab's own ``forward_calls``/``gradient_calls``). Columns are per example.
* ``torch.set_num_threads`` is the same for all; every method is warmed up once on a few images
  before timing; times are wall-clock (``time.perf_counter``) of the library call only, without
  data conversion before or evaluation after it. Rows timed on a subset are scaled linearly to
  the comparison's full size and say so in the ``scaled`` column.
* FGSM's direction is the sign of the cross-entropy's gradient. trustlab takes the cross-entropy
  in float64: in float32 the gradient of a very confident example is largely rounding noise and
  its sign is another, weaker direction (on the natural CNN about one example in seven then
  flips only at a larger eps). The one-at-a-time loop, the floor and the Captum perturbation
  function therefore take it in float64 too, so they search trustlab's direction and must agree
  with its eps*; ART's FastGradientMethod uses its own float32 loss and disagrees on those
  examples ("trustlab <= it + tol" shows which side is smaller). The PGD rows keep each
  library's own loss: iterating washes the difference out.
* "x trustlab" is a row's (scaled) time divided by the trustlab row's time of that comparison.
"""

from __future__ import annotations

import argparse
import functools
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
import torch.nn.functional as F
from common import default_data_dir, environment, fmt_busy, log, other_cpu_load, peer
from torch import nn

from trustlab.core.exceptions import ModelLoadError, UnknownNameError
from trustlab.data import load_dataset
from trustlab.models import Classifier, load_reference_model
from trustlab.robustness.attacks import APGD, FGSM, FMN, PGD
from trustlab.robustness.search import linear_scan, minimal_eps

# ----------------------------------------------------------------------------- settings -------
REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
SEED = 0
BATCH = 256  # trustlab's Classifier.batch_size; every batched peer gets the same
WARMUP_N = 8  # images each method sees once before it is timed

# fgsm-min-eps
EPS_MAX = 0.5
TOL = 1 / 512
ART_BUDGET_S = 600.0  # ART's FGSM scan is time-boxed to about this, then scaled
ART_CHUNK = 4 * BATCH  # ART is called on chunks of this many images (it batches by BATCH inside)

# pgd-min-eps-vs-fmn: trustlab's bisection over PGD (warm-started, early stop, Madry's step rule)
PGD_SEARCH = {"steps": 10, "early_stop": True}
PGD_SEARCH_TOL = 1 / 512
FMN_STEPS = 100

# pgd40
PGD40 = {"eps": 0.3, "step_size": 0.01, "steps": 40}

# robust-accuracy
ROBUST_EPS = (0.05, 0.1, 0.2, 0.3)
ROBUST_FULL_EPS = (0.2, 0.3)
ROBUST_MODEL = "mnist_cnn_robust"


@dataclass(frozen=True)
class Sizes:
    fgsm_n: int = 10_000  # fgsm-min-eps: trustlab, ART, floor, linear_scan
    loop_n: int = 500  # one-at-a-time bisection loop (scaled to fgsm_n)
    captum_n: int = 100  # Captum MinParamPerturbation (scaled to fgsm_n)
    art_budget_s: float = ART_BUDGET_S
    art_chunk: int = ART_CHUNK
    min_eps_n: int = 1_000  # pgd-min-eps-vs-fmn
    pgd40_n: int = 1_024
    robust_n: int = 1_000
    robust_full_n: int = 10_000


FULL = Sizes()
QUICK = Sizes(
    fgsm_n=256,
    loop_n=32,
    captum_n=8,
    art_budget_s=15.0,
    art_chunk=64,
    min_eps_n=32,
    pgd40_n=64,
    robust_n=32,
    robust_full_n=128,
)

SECTIONS = ("fgsm-min-eps", "pgd-min-eps-vs-fmn", "pgd40", "robust-accuracy")


# ----------------------------------------------------------------------------- model calls ----
class CallCounter:
    """Per-example model evaluations: ``examples`` through forward, ``gradients`` back-propagated."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.examples = 0
        self.gradients = 0

    @property
    def forward(self) -> int:
        return self.examples - self.gradients

    def count_gradient(self, n: int, _grad: torch.Tensor) -> None:
        self.gradients += n


class CountingModule(nn.Module):
    """``inner`` that counts every example it evaluates.

    A tensor hook on the output fires when a backward pass goes through it, for peers that call
    ``loss.backward()`` and for ``torch.autograd.grad`` alike.
    """

    def __init__(self, inner: nn.Module, counter: CallCounter) -> None:
        super().__init__()
        self.inner = inner
        self.counter = counter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        n = x.shape[0]
        self.counter.examples += n
        if out.requires_grad:
            out.register_hook(functools.partial(self.counter.count_gradient, n))
        return out


@dataclass
class Subject:
    """One model under test, in the three forms the benchmark needs (all one ``nn.Module``)."""

    name: str
    model: Classifier  # trustlab's, uncounted: used to evaluate results outside the timed regions
    counted: Classifier  # trustlab's, its module counting calls: what trustlab rows run on
    net: nn.Module  # pixel-space logits with the normalisation inside, counting: what peers run on
    counter: CallCounter


def make_subject(name: str, model: Classifier) -> Subject:
    model.module.requires_grad_(False)
    counter = CallCounter()
    counted = model.with_module(CountingModule(model.module, counter))
    net = CountingModule(model.as_module(), counter).eval()  # pixel space: normalisation inside
    return Subject(name=name, model=model, counted=counted, net=net, counter=counter)


# ----------------------------------------------------------------------------- rows -----------
@dataclass
class Row:
    method: str
    n: int | None = None  # examples actually run
    seconds: float | None = None  # measured on those n
    scaled_seconds: float | None = None  # linearly scaled to the section's size (None: not scaled)
    forward: int | None = None  # per-example forward-only evaluations, total over the n examples
    gradient: int | None = None  # per-example gradient evaluations, total
    metrics: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    status: str = "ok"  # or "not installed", "error: ..."


@dataclass
class Measured:
    value: Any
    seconds: float
    forward: int
    gradient: int


def measure(counter: CallCounter, fn: Callable[[], Any]) -> Measured:
    """Wall-clock time and model calls of ``fn()`` (counts read before anything else runs)."""
    counter.reset()
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    return Measured(value, seconds, counter.forward, counter.gradients)


def timed_row(method: str, m: Measured, n: int, n_ref: int, note: str = "", **metrics: Any) -> Row:
    scaled = m.seconds * n_ref / n if n < n_ref else None
    return Row(
        method=method,
        n=n,
        seconds=m.seconds,
        scaled_seconds=scaled,
        forward=m.forward,
        gradient=m.gradient,
        metrics=metrics,
        note=note,
    )


def own_counts_note(m: Measured, forward: int, gradient: int) -> str:
    """Empty when trustlab's self-reported counts equal the wrapper's, else a note saying so."""
    if (m.forward, m.gradient) == (forward, gradient):
        return ""
    return f"; trustlab's own counts differ: {forward:,} fwd, {gradient:,} grad"


def seed_everything(seed: int = SEED) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


@dataclass
class Section:
    name: str
    title: str
    n_ref: int | None  # size the times are scaled to (None: rows have their own sizes)
    baseline: str | None  # method whose time the "x trustlab" column divides by
    columns: dict[str, str]  # metric name -> format ("eps", "pct", "int", "float", "str")
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def run(self, method: str, fn: Callable[[], Row]) -> Row:
        """Run one method's row; a missing peer or a failure becomes a row, not a crash."""
        log(f"[{self.name}] {method} ...")
        try:
            row = fn()
        except ImportError as exc:
            row = Row(method=method, status="not installed", note=str(exc))
        except Exception as exc:  # noqa: BLE001 - one failing peer must not lose a long run
            traceback.print_exc()
            row = Row(method=method, status=f"error: {type(exc).__name__}", note=str(exc).splitlines()[0][:200])
        self.rows.append(row)
        if row.seconds is not None:
            log(f"[{self.name}] {method}: {row.seconds:.2f} s on {row.n:,} examples")
        return row

    def to_dict(self, run_info: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "n_ref": self.n_ref,
            "baseline": self.baseline,
            "columns": self.columns,
            "rows": [asdict(r) for r in self.rows],
            "notes": self.notes,
            "data": self.data,
            "run": run_info,
        }


# ----------------------------------------------------------------------------- helpers --------
def one_hot(y: torch.Tensor, classes: int = 10) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[y.numpy()]


def chunks(n: int, size: int = BATCH) -> list[slice]:
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def linf(adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (adv - x).flatten(1).abs().amax(1)


def eps_from_adversarials(subject: Subject, x: torch.Tensor, y: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """eps* of a method that returns points: their L-inf norm where misclassified, else inf."""
    fooled = subject.model.predict(adv) != y
    return torch.where(fooled, linf(adv, x).double(), torch.tensor(math.inf, dtype=torch.float64))


def median(values: torch.Tensor) -> float:
    return float(np.median(values.double().numpy())) if values.numel() else math.nan


def agreement(a: torch.Tensor, b: torch.Tensor, tol: float) -> torch.Tensor:
    """Same answer up to ``tol``: both infinite (censored) or both finite and within tol."""
    a, b = a.double(), b.double()
    both_inf = torch.isinf(a) & torch.isinf(b)
    close = torch.isfinite(a) & torch.isfinite(b) & ((a - b).abs() <= tol + 1e-6)
    return both_inf | close


def robust_accuracy(subject: Subject, x: torch.Tensor, y: torch.Tensor, adv: torch.Tensor) -> float:
    """Share of examples correct on the clean input AND on the adversarial one."""
    clean = subject.model.predict(x) == y
    return float((clean & (subject.model.predict(adv) == y)).float().mean())


def art_classifier(subject: Subject) -> Any:
    art_est = peer("art.estimators.classification")
    return art_est.PyTorchClassifier(
        model=subject.net,
        loss=nn.CrossEntropyLoss(),
        input_shape=(1, 28, 28),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


# ============================================================================= fgsm-min-eps =====
def fgsm_trustlab(subject: Subject, x: torch.Tensor, y: torch.Tensor) -> Measured:
    options = {"attack": "fgsm", "eps_max": EPS_MAX, "tol": TOL, "show_progress": False, "root_finder": "bisection"}
    minimal_eps(subject.counted, x[:WARMUP_N], y[:WARMUP_N], **options)
    return measure(subject.counter, lambda: minimal_eps(subject.counted, x, y, **options))


def bisection_one_at_a_time(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The published study's loop: each example alone, one gradient, then bisection on eps.

    The cross-entropy is taken in float64, as trustlab does (see Conventions in the module docstring), so the loop
    searches along the same direction and must find the same eps*.
    """
    eps_star = torch.empty(x.shape[0], dtype=torch.float64)
    for i in range(x.shape[0]):
        xi, yi = x[i : i + 1], y[i : i + 1]
        xg = xi.clone().requires_grad_(True)
        logits = net(xg)
        (grad,) = torch.autograd.grad(F.cross_entropy(logits.double(), yi), xg)
        if logits.argmax(1).item() != yi.item():
            eps_star[i] = 0.0
            continue
        direction = grad.sign()
        with torch.no_grad():

            def fooled(eps: float, xi=xi, yi=yi, direction=direction) -> bool:
                return net((xi + eps * direction).clamp(0.0, 1.0)).argmax(1).item() != yi.item()

            if not fooled(EPS_MAX):
                eps_star[i] = math.inf
                continue
            low, high = 0.0, EPS_MAX
            while high - low > TOL:
                mid = (low + high) / 2
                low, high = (low, mid) if fooled(mid) else (mid, high)
            eps_star[i] = high
    return eps_star


def fgsm_loop(subject: Subject, x: torch.Tensor, y: torch.Tensor) -> Measured:
    bisection_one_at_a_time(subject.net, x[:WARMUP_N], y[:WARMUP_N])
    return measure(subject.counter, lambda: bisection_one_at_a_time(subject.net, x, y))


def fgsm_art(subject: Subject, x: torch.Tensor, y: torch.Tensor, sizes: Sizes) -> tuple[Measured, int]:
    """ART's minimal FGSM, called chunk by chunk until done or past the time budget."""
    evasion = peer("art.attacks.evasion")
    attack = evasion.FastGradientMethod(
        art_classifier(subject), norm=np.inf, eps=EPS_MAX, eps_step=TOL, minimal=True, batch_size=BATCH
    )
    x_np, y_np = x.numpy(), one_hot(y)
    attack.generate(x_np[:WARMUP_N], y=y_np[:WARMUP_N])

    def run() -> np.ndarray:
        start, parts = time.perf_counter(), []
        for part in chunks(x.shape[0], sizes.art_chunk):
            parts.append(attack.generate(x_np[part], y=y_np[part]))
            if time.perf_counter() - start > sizes.art_budget_s:
                break
        return np.concatenate(parts)

    m = measure(subject.counter, run)
    return m, m.value.shape[0]


def captum_min_param(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Captum's MinParamPerturbation (binary mode), one example at a time, FGSM perturbation."""
    robust = peer("captum.robust")

    def fgsm(inputs: torch.Tensor, eps: float, target: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xg = inputs.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(net(xg).double(), target), xg)
        return (inputs + eps * grad.sign()).clamp(0.0, 1.0).detach()

    search = robust.MinParamPerturbation(
        forward_func=net, attack=fgsm, arg_name="eps", arg_min=0.0, arg_max=EPS_MAX, arg_step=TOL, mode="binary"
    )
    eps_star = torch.empty(x.shape[0], dtype=torch.float64)
    for i in range(x.shape[0]):
        target = y[i : i + 1]
        _, eps = search.evaluate(x[i : i + 1], target=target, attack_kwargs={"target": target})
        eps_star[i] = math.inf if eps is None else float(eps)
    return eps_star


def fgsm_captum(subject: Subject, x: torch.Tensor, y: torch.Tensor) -> Measured:
    captum_min_param(subject.net, x[:WARMUP_N], y[:WARMUP_N])
    return measure(subject.counter, lambda: captum_min_param(subject.net, x, y))


def fgsm_floor_pass(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """The least work any FGSM bisection must do: 1 gradient + 8 batched forwards per example (the
    root finder of ``benchmarks/fgsm_root.py`` does less: it uses the margin values)."""
    rounds = math.ceil(math.log2(EPS_MAX / TOL))
    for part in chunks(x.shape[0]):
        xb, yb = x[part], y[part]
        xg = xb.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(net(xg).double(), yb, reduction="sum"), xg)
        direction = grad.sign()
        low, high = torch.zeros(len(yb)), torch.full((len(yb),), EPS_MAX)
        with torch.no_grad():
            for _ in range(rounds):
                mid = (low + high) / 2
                fooled = net((xb + mid.view(-1, 1, 1, 1) * direction).clamp(0.0, 1.0)).argmax(1) != yb
                high, low = torch.where(fooled, mid, high), torch.where(fooled, low, mid)


def fgsm_floor(subject: Subject, x: torch.Tensor, y: torch.Tensor) -> Measured:
    fgsm_floor_pass(subject.net, x[:WARMUP_N], y[:WARMUP_N])
    return measure(subject.counter, lambda: fgsm_floor_pass(subject.net, x, y))


def section_fgsm_min_eps(subject: Subject, x_all: torch.Tensor, y_all: torch.Tensor, sizes: Sizes) -> Section:
    n = min(sizes.fgsm_n, x_all.shape[0])
    x, y = x_all[:n], y_all[:n]
    sec = Section(
        "fgsm-min-eps",
        f"Minimal L-inf epsilon under FGSM, eps_max {EPS_MAX}, tol 1/{round(1 / TOL)}, "
        f"{subject.name}, {n:,} MNIST test images",
        n_ref=n,
        baseline="trustlab minimal_eps(fgsm)",
        columns={
            "median eps*": "eps",
            "median eps* trustlab, same examples": "eps",
            "agrees with trustlab (±tol)": "pct",
            "trustlab <= it + tol": "pct",
            "censored": "int",
        },
    )
    eps: dict[str, torch.Tensor] = {}

    def trustlab_row() -> Row:
        m = fgsm_trustlab(subject, x, y)
        res = m.value
        eps["trustlab"] = res.eps_star.double()
        eps["trustlab_nonmonotonic"] = res.nonmonotonic
        note = (
            f"batched bisection, 1 gradient + forwards only; {int(res.clean_wrong.sum())} wrong before any "
            f"perturbation (eps* 0); {int(res.nonmonotonic.sum())} flagged non-monotonic"
            + own_counts_note(m, res.forward_calls, res.gradient_calls)
        )
        return timed_row(
            "trustlab minimal_eps(fgsm)",
            m,
            n,
            n,
            note,
            **{"median eps*": median(res.eps_star), "censored": int(res.censored.sum())},
        )

    def subset_row(method: str, m: Measured, values: torch.Tensor, note: str) -> Row:
        """A row timed on the first k examples, its eps* compared with trustlab's on the same ones."""
        k = values.shape[0]
        metrics: dict[str, Any] = {"median eps*": median(values), "censored": int(torch.isinf(values).sum())}
        if "trustlab" in eps:
            ours = eps["trustlab"][:k]
            agree = agreement(values, ours, TOL)
            metrics["median eps* trustlab, same examples"] = median(ours)
            metrics["agrees with trustlab (±tol)"] = float(agree.float().mean())
            metrics["trustlab <= it + tol"] = float((ours <= values + TOL + 1e-6).float().mean())
            if not agree.all():
                flagged = int((~agree & eps["trustlab_nonmonotonic"][:k]).sum())
                note += f"; {int((~agree).sum())} disagree with trustlab, {flagged} of them flagged non-monotonic"
        return timed_row(method, m, k, n, note, **metrics)

    def loop_row() -> Row:
        k = min(sizes.loop_n, n)
        m = fgsm_loop(subject, x[:k], y[:k])
        return subset_row(
            "one-at-a-time bisection (PyTorch)",
            m,
            m.value,
            "published study's loop: per example 1 gradient + bisection with single-example forwards "
            "(censored if not flipped at eps_max)",
        )

    def art_row() -> Row:
        m, k = fgsm_art(subject, x, y, sizes)
        values = eps_from_adversarials(subject, x[:k], y[:k], torch.from_numpy(m.value))
        note = "FastGradientMethod(minimal=True): linear scan in steps of tol, whole batch each step"
        if k < n:
            note += f"; stopped after {k:,} images (budget {sizes.art_budget_s:.0f} s)"
        return subset_row("ART FastGradientMethod(minimal=True)", m, values, note)

    def captum_row() -> Row:
        k = min(sizes.captum_n, n)
        m = fgsm_captum(subject, x[:k], y[:k])
        return subset_row(
            "Captum MinParamPerturbation(binary)",
            m,
            m.value,
            "one example at a time; gradient recomputed at each eps it tries",
        )

    def floor_row() -> Row:
        m = fgsm_floor(subject, x, y)
        return timed_row(
            "floor: 1 fwd+bwd + 8 fwd, batched (PyTorch)",
            m,
            n,
            n,
            f"batch {BATCH}; timing floor only (no clean/censoring checks, eps* not kept)",
        )

    sec.run("trustlab minimal_eps(fgsm)", trustlab_row)
    sec.run("one-at-a-time bisection (PyTorch)", loop_row)
    sec.run("ART FastGradientMethod(minimal=True)", art_row)
    sec.run("Captum MinParamPerturbation(binary)", captum_row)
    floor = sec.run("floor: 1 fwd+bwd + 8 fwd, batched (PyTorch)", floor_row)
    trustlab = sec.rows[0]
    if trustlab.seconds and floor.seconds:
        sec.notes.append(f"trustlab / floor time: {trustlab.seconds / floor.seconds:.2f}")
    if "trustlab" in eps:
        fgsm_agreement_check(sec, subject, x, y, eps["trustlab"])
    return sec


def fgsm_agreement_check(
    sec: Section, subject: Subject, x: torch.Tensor, y: torch.Tensor, eps_star: torch.Tensor
) -> None:
    """trustlab's eps* against the brute-force grid scan on the same images."""
    log(f"[{sec.name}] linear_scan on {x.shape[0]:,} images (agreement check, not a timed comparison) ...")
    start = time.perf_counter()
    scan = linear_scan(subject.model, x, y, eps_max=EPS_MAX, tol=TOL, show_progress=False)
    scan_seconds = time.perf_counter() - start
    agree = agreement(eps_star, scan.first_flip.double(), TOL)
    disagree = torch.nonzero(~agree).squeeze(1)
    nonmonotonic = 0
    if disagree.numel():
        exhaustive = linear_scan(
            subject.model, x[disagree], y[disagree], eps_max=EPS_MAX, tol=TOL, exhaustive=True, show_progress=False
        )
        nonmonotonic = int(exhaustive.nonmonotonic.sum())
    n = x.shape[0]
    sec.data["agreement"] = {
        "examples": n,
        "agree": int(agree.sum()),
        "share": float(agree.float().mean()),
        "disagree": int(disagree.numel()),
        "disagree_nonmonotonic_in_exhaustive_scan": nonmonotonic,
        "scan_nonmonotonic": int(scan.nonmonotonic.sum()),
        "scan_seconds": scan_seconds,
        "median_first_flip": median(scan.first_flip),
    }
    sec.notes.append(
        f"agreement with linear_scan (brute force on the grid, {scan_seconds:.0f} s): "
        f"{int(agree.sum()):,} / {n:,} = {100 * float(agree.float().mean()):.2f}% of eps* within tol; "
        f"{disagree.numel()} disagree, of which {nonmonotonic} are non-monotonic in an exhaustive scan "
        f"(flipped at some eps, correct again at a larger one)"
    )
    sec.notes.append(
        f"median eps*: trustlab {median(eps_star):.4f}, linear_scan first flip {median(scan.first_flip):.4f}"
    )


# ============================================================================= pgd-min-eps-vs-fmn
def section_pgd_min_eps_vs_fmn(subject: Subject, x_all: torch.Tensor, y_all: torch.Tensor, sizes: Sizes) -> Section:
    n = min(sizes.min_eps_n, x_all.shape[0])
    x, y = x_all[:n], y_all[:n]
    settings = ", ".join(f"{k}={v}" for k, v in PGD_SEARCH.items())
    sec = Section(
        "pgd-min-eps-vs-fmn",
        f"Minimal L-inf epsilon, strong attacks, eps_max {EPS_MAX}, {subject.name}, {n:,} MNIST test images",
        n_ref=n,
        baseline=f"trustlab minimal_eps(PGD({settings}))",
        columns={
            "median eps*": "eps",
            "mean eps* (successes)": "eps",
            "success (eps* <= eps_max)": "pct",
            "clean wrong": "int",
        },
    )
    eps: dict[str, torch.Tensor] = {}

    def metrics(key: str, values: torch.Tensor, clean_wrong: int) -> dict[str, Any]:
        eps[key] = values
        finite = values[torch.isfinite(values)]
        return {
            "median eps*": median(values),
            "mean eps* (successes)": float(finite.mean()) if finite.numel() else math.nan,
            "success (eps* <= eps_max)": float(torch.isfinite(values).float().mean()),
            "clean wrong": clean_wrong,
        }

    def trustlab_row(key: str, attack: Any, tol: float, note: str) -> Row:
        minimal_eps(
            subject.counted, x[:WARMUP_N], y[:WARMUP_N], attack=attack, eps_max=EPS_MAX, tol=tol, show_progress=False
        )
        m = measure(
            subject.counter,
            lambda: minimal_eps(subject.counted, x, y, attack=attack, eps_max=EPS_MAX, tol=tol, show_progress=False),
        )
        res = m.value
        note += own_counts_note(m, res.forward_calls, res.gradient_calls)
        return timed_row(
            f"trustlab minimal_eps({key})",
            m,
            n,
            n,
            note,
            **metrics(key, res.eps_star.double(), int(res.clean_wrong.sum())),
        )

    def foolbox_row() -> Row:
        fb = peer("foolbox")
        fmodel = fb.PyTorchModel(subject.net, bounds=(0.0, 1.0))
        attack = fb.attacks.LInfFMNAttack(steps=FMN_STEPS)

        def run(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
            out = []
            for part in chunks(xs.shape[0]):
                raw, _, success = attack(fmodel, xs[part], fb.criteria.Misclassification(ys[part]), epsilons=None)
                out.append(torch.where(success, linf(raw, xs[part]).double(), math.inf))
            return torch.cat(out)

        run(x[:WARMUP_N], y[:WARMUP_N])
        m = measure(subject.counter, lambda: run(x, y))
        values = m.value
        above = int((torch.isfinite(values) & (values > EPS_MAX)).sum())
        values = torch.where(values > EPS_MAX, math.inf, values)  # censored at eps_max, like the search
        clean_wrong = int((subject.model.predict(x) != y).sum())
        return timed_row(
            f"Foolbox LInfFMNAttack(steps={FMN_STEPS})",
            m,
            n,
            n,
            f"Misclassification criterion, batches of {BATCH}; failures and {above} results above eps_max count as inf",
            **metrics("foolbox", values, clean_wrong),
        )

    search = PGD(**PGD_SEARCH)
    sec.run(
        sec.baseline,
        lambda: trustlab_row(
            f"PGD({settings})", search, PGD_SEARCH_TOL, f"bisection to tol 1/{round(1 / PGD_SEARCH_TOL)}, warm-started"
        ),
    )
    sec.run(
        f"trustlab minimal_eps(FMN(steps={FMN_STEPS}))",
        lambda: trustlab_row(f"FMN(steps={FMN_STEPS})", FMN(steps=FMN_STEPS), TOL, "one run, eps* = its norm"),
    )
    sec.run(f"Foolbox LInfFMNAttack(steps={FMN_STEPS})", foolbox_row)
    pgd_key = f"PGD({settings})"
    for other, label in (("foolbox", "Foolbox FMN"), (f"FMN(steps={FMN_STEPS})", "trustlab FMN")):
        if pgd_key in eps and other in eps:
            a, b = median(eps[pgd_key]), median(eps[other])
            ratio = a / b if b else math.nan
            sec.data[f"median_ratio_trustlab_pgd_over_{other}"] = ratio
            sec.notes.append(f"median eps*: trustlab PGD search / {label} = {a:.4f} / {b:.4f} = {ratio:.3f}")
    if pgd_key in eps and "foolbox" in eps:
        both = torch.isfinite(eps[pgd_key]) & torch.isfinite(eps["foolbox"])
        smaller = float((eps[pgd_key][both] <= eps["foolbox"][both] + PGD_SEARCH_TOL).float().mean())
        sec.notes.append(
            f"trustlab's PGD search finds an eps* no larger than Foolbox FMN's (+ tol) on "
            f"{100 * smaller:.1f}% of the {int(both.sum())} examples both flipped"
        )
    return sec


# ============================================================================= pgd40 ==========
def hand_pgd(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain-PyTorch PGD: uniform start in the ball, sign steps on cross-entropy, projection."""
    eps, alpha = PGD40["eps"], PGD40["step_size"]
    adversarials, correct = [], []
    for part in chunks(x.shape[0]):
        xb, yb = x[part], y[part]
        adv = (xb + torch.empty_like(xb).uniform_(-eps, eps)).clamp(0.0, 1.0)
        for _ in range(PGD40["steps"]):
            adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(net(adv), yb), adv)
            adv = adv.detach() + alpha * grad.sign()
            adv = torch.min(torch.max(adv, xb - eps), xb + eps).clamp(0.0, 1.0)
        with torch.no_grad():
            correct.append(net(adv).argmax(1) == yb)
        adversarials.append(adv)
    return torch.cat(adversarials), torch.cat(correct)


def section_pgd40(subject: Subject, x_all: torch.Tensor, y_all: torch.Tensor, sizes: Sizes) -> Section:
    n = min(sizes.pgd40_n, x_all.shape[0])
    x, y = x_all[:n], y_all[:n]
    eps, alpha, steps = PGD40["eps"], PGD40["step_size"], PGD40["steps"]
    sec = Section(
        "pgd40",
        f"PGD-{steps} L-inf, eps {eps}, step {alpha}, random start, {subject.name}, {n:,} MNIST test images",
        n_ref=n,
        baseline="trustlab PGD",
        columns={"robust accuracy": "pct", "max |delta|_inf": "float"},
    )
    clean = float((subject.model.predict(x) == y).float().mean())
    sec.notes.append(f"clean accuracy on these images: {100 * clean:.2f}%")

    def row(method: str, run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], note: str) -> Row:
        seed_everything()
        run(x[:WARMUP_N], y[:WARMUP_N])
        seed_everything()
        own.clear()
        m = measure(subject.counter, lambda: run(x, y))
        adv = m.value
        if own:
            note += own_counts_note(m, own["forward"], own["gradient"])
        return timed_row(
            method,
            m,
            n,
            n,
            note,
            **{"robust accuracy": robust_accuracy(subject, x, y, adv), "max |delta|_inf": float(linf(adv, x).max())},
        )

    own: dict[str, int] = {}

    def trustlab_run(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        result = PGD(steps=steps, step_size=alpha, random_start=True).attack(subject.counted, xs, ys, eps=eps)
        own.update(forward=result.forward_calls, gradient=result.gradient_calls)
        return result.adversarials

    def torchattacks_run() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        ta = peer("torchattacks")
        attack = ta.PGD(subject.net, eps=eps, alpha=alpha, steps=steps, random_start=True)
        return lambda xs, ys: torch.cat([attack(xs[p], ys[p]) for p in chunks(xs.shape[0])])

    def foolbox_run() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        fb = peer("foolbox")
        fmodel = fb.PyTorchModel(subject.net, bounds=(0.0, 1.0))
        attack = fb.attacks.LinfPGD(abs_stepsize=alpha, steps=steps, random_start=True)
        return lambda xs, ys: torch.cat([attack(fmodel, xs[p], ys[p], epsilons=eps)[1] for p in chunks(xs.shape[0])])

    def art_run() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        evasion = peer("art.attacks.evasion")
        attack = evasion.ProjectedGradientDescent(
            art_classifier(subject),
            norm=np.inf,
            eps=eps,
            eps_step=alpha,
            max_iter=steps,
            num_random_init=1,
            batch_size=BATCH,
            verbose=False,
        )
        return lambda xs, ys: torch.from_numpy(attack.generate(xs.numpy(), y=one_hot(ys)))

    sec.run("trustlab PGD", lambda: row("trustlab PGD", trustlab_run, "includes a final forward (success)"))
    sec.run(
        "plain PyTorch loop",
        lambda: row(
            "plain PyTorch loop",
            lambda xs, ys: hand_pgd(subject.net, xs, ys)[0],
            f"batch {BATCH}, includes the final forward",
        ),
    )
    sec.run("torchattacks PGD", lambda: row("torchattacks PGD", torchattacks_run(), f"called on batches of {BATCH}"))
    sec.run("Foolbox LinfPGD", lambda: row("Foolbox LinfPGD", foolbox_run(), f"called on batches of {BATCH}"))
    sec.run(
        "ART ProjectedGradientDescent",
        lambda: row("ART ProjectedGradientDescent", art_run(), f"batch_size {BATCH}, num_random_init 1"),
    )
    return sec


# ============================================================================= robust-accuracy ==
ROBUST_ATTACKS: dict[str, Callable[[], Any]] = {
    "FGSM": lambda: FGSM(),
    "PGD-40": lambda: PGD(steps=40, step_size=0.01, early_stop=True),
    "APGD-100": lambda: APGD(steps=100, early_stop=True),
}


def load_robust_model() -> tuple[Classifier | None, str]:
    try:
        return load_reference_model(ROBUST_MODEL), ""
    except (UnknownNameError, ModelLoadError, FileNotFoundError) as exc:  # not registered, or no weights yet
        return None, f"{type(exc).__name__}: {exc}"


def attack_robust_accuracy(
    subject: Subject, attack: Any, x: torch.Tensor, y: torch.Tensor, eps_values: tuple[float, ...], clean: torch.Tensor
) -> tuple[Measured, dict[str, float]]:
    """One attack at several eps; returns total time/calls and robust accuracy per eps."""
    attack.attack(subject.counted, x[:WARMUP_N], y[:WARMUP_N], eps=eps_values[0])
    results = {}
    total = Measured(None, 0.0, 0, 0)
    for eps in eps_values:
        m = measure(subject.counter, lambda eps=eps: attack.attack(subject.counted, x, y, eps=eps))
        if own_counts_note(m, m.value.forward_calls, m.value.gradient_calls):
            log(
                f"WARNING: {attack!r} at eps {eps}: trustlab's own counts ({m.value.forward_calls} fwd, "
                f"{m.value.gradient_calls} grad) differ from the wrapper's ({m.forward}, {m.gradient})"
            )
        results[f"eps={eps}"] = float((clean & ~m.value.success).float().mean())
        total = Measured(None, total.seconds + m.seconds, total.forward + m.forward, total.gradient + m.gradient)
    return total, results


def section_robust_accuracy(natural: Subject, x_all: torch.Tensor, y_all: torch.Tensor, sizes: Sizes) -> Section:
    n = min(sizes.robust_n, x_all.shape[0])
    x, y = x_all[:n], y_all[:n]
    columns = {"clean": "pct"} | {f"eps={e}": "pct" for e in ROBUST_EPS}
    sec = Section(
        "robust-accuracy",
        f"Robust accuracy (correct clean AND not fooled), trustlab attacks, {n:,} "
        "MNIST test images unless n says otherwise",
        n_ref=None,
        baseline=None,
        columns=columns,
    )
    subjects = [natural]
    robust_model, why = load_robust_model()
    if robust_model is None:
        sec.notes.append(f"{ROBUST_MODEL}: not available yet ({why}); skipped")
    else:
        subjects.append(make_subject(ROBUST_MODEL, robust_model))

    table: dict[tuple[str, str], dict[str, float]] = {}
    for subject in subjects:
        clean = subject.model.predict(x) == y
        for attack_name, make in ROBUST_ATTACKS.items():
            method = f"{subject.name} / {attack_name}"

            def row(subject=subject, clean=clean, make=make, method=method, attack_name=attack_name) -> Row:
                m, accuracies = attack_robust_accuracy(subject, make(), x, y, ROBUST_EPS, clean)
                table[(subject.name, attack_name)] = accuracies
                note = "early_stop" if attack_name != "FGSM" else ""
                return timed_row(
                    method,
                    m,
                    n,
                    n,
                    f"{note}; time and calls summed over the {len(ROBUST_EPS)} eps".lstrip("; "),
                    clean=float(clean.float().mean()),
                    **accuracies,
                )

            sec.run(method, row)
        ordering_check(sec, subject.name, table)

    if robust_model is not None:
        subject = subjects[-1]
        k = min(sizes.robust_full_n, x_all.shape[0])
        xf, yf = x_all[:k], y_all[:k]

        def full_row() -> Row:
            clean = subject.model.predict(xf) == yf
            m, accuracies = attack_robust_accuracy(subject, ROBUST_ATTACKS["PGD-40"](), xf, yf, ROBUST_FULL_EPS, clean)
            return timed_row(
                f"{subject.name} / PGD-40, {k:,} images",
                m,
                k,
                k,
                "early_stop; time and calls summed over eps " + " and ".join(str(e) for e in ROBUST_FULL_EPS),
                clean=float(clean.float().mean()),
                **accuracies,
            )

        sec.run(f"{subject.name} / PGD-40 full split", full_row)
    return sec


def ordering_check(sec: Section, model: str, table: dict[tuple[str, str], dict[str, float]]) -> None:
    names = ("APGD-100", "PGD-40", "FGSM")
    if not all((model, a) in table for a in names):
        sec.notes.append(f"{model}: APGD <= PGD <= FGSM not checked (an attack failed)")
        return
    broken = [
        f"eps={e}"
        for e in ROBUST_EPS
        if not table[(model, "APGD-100")][f"eps={e}"]
        <= table[(model, "PGD-40")][f"eps={e}"]
        <= table[(model, "FGSM")][f"eps={e}"]
    ]
    holds = "holds at every eps" if not broken else f"VIOLATED at {', '.join(broken)}"
    sec.notes.append(f"{model}: robust accuracy APGD <= PGD <= FGSM {holds}")
    sec.data.setdefault("ordering_holds", {})[model] = not broken


# ============================================================================= output =========
def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s:.3f}" if s < 1 else f"{s:.2f}" if s < 100 else f"{s:,.0f}"


def fmt_metric(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if kind == "eps":
        return f"{value:.4f}"
    if kind == "pct":
        return f"{100 * value:.2f}%"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "float":
        return f"{value:.4g}"
    return str(value)


def table_cells(sec: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    n_ref = sec["n_ref"]
    rows = sec["rows"]
    base = next((r for r in rows if r["method"] == sec["baseline"] and r["seconds"] is not None), None)
    base_time = None if base is None else (base["scaled_seconds"] or base["seconds"])
    header = ["method", "n", "time s (measured)"]
    if n_ref is not None:
        header += [f"time s @ {n_ref:,}", "scaled"]
    header += ["fwd/ex", "grad/ex"]
    if base_time:
        header.append("x trustlab")
    header += list(sec["columns"]) + ["note"]
    body = []
    for r in rows:
        if r["status"] != "ok":
            cells = [r["method"], "—", r["status"]]
            cells += ["—", "—"] if n_ref is not None else []
            cells += ["—", "—"] + (["—"] if base_time else []) + ["—"] * len(sec["columns"]) + [r["note"]]
            body.append(cells)
            continue
        at_ref = r["scaled_seconds"] if r["scaled_seconds"] is not None else r["seconds"]
        cells = [r["method"], f"{r['n']:,}", fmt_seconds(r["seconds"])]
        if n_ref is not None:
            scaled = f"yes, from {r['n']:,}" if r["scaled_seconds"] is not None else "no"
            cells += [fmt_seconds(at_ref), scaled]
        cells += [f"{r['forward'] / r['n']:.1f}", f"{r['gradient'] / r['n']:.1f}"]
        if base_time:
            cells.append(f"{at_ref / base_time:.2f}")
        cells += [fmt_metric(r["metrics"].get(k), kind) for k, kind in sec["columns"].items()]
        cells.append(r["note"])
        body.append(cells)
    return header, body


def render_text(sec: dict[str, Any]) -> str:
    header, body = table_cells(sec)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header) - 1)]
    lines = [f"== {sec['name']}: {sec['title']}"]
    for row in [header, *body]:
        lines.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
            + "  "
            + row[-1]
        )
        if row is header:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 4)
    lines += [f"  * {note}" for note in sec["notes"]]
    return "\n".join(lines)


def render_markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    out = [
        "# Robustness benchmark",
        "",
        "Generated by `benchmarks/robustness.py` (see its docstring and `benchmarks/README.md`). "
        "Times are wall-clock seconds; fwd/ex and grad/ex are per-example model evaluations; "
        "\"x trustlab\" divides a row's time (scaled to the section size) by the trustlab row's.",
        "",
    ]
    for sec in results["sections"].values():
        run = sec["run"]
        header, body = table_cells(sec)
        out += [
            f"## {sec['name']}",
            "",
            sec["title"],
            "",
            f"Run {run['date']}, {'QUICK (smoke test), ' if run['quick'] else ''}{run['threads']} threads, "
            f"CPUs busy with other work just before: {fmt_busy(run.get('cpu_busy_before'))}; load average "
            f"(1, 5, 15 min) at start {run['loadavg']}, at end {run.get('loadavg_end')}.",
            "",
        ]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join("---" if i in (0, len(header) - 1) else "---:" for i in range(len(header))) + "|")
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        out += [""] + [f"- {note}" for note in sec["notes"]] + [""]
    out += ["## Environment", "", "```", json.dumps(meta, indent=2), "```", ""]
    return "\n".join(out)


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def json_load(value: Any) -> Any:
    if value in ("inf", "-inf", "nan"):
        return float(value)
    if isinstance(value, dict):
        return {k: json_load(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_load(v) for v in value]
    return value


def write_results(stem: Path, sections: dict[str, dict[str, Any]], meta: dict[str, Any], merge: bool) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path = stem.with_suffix(".json")
    merged: dict[str, Any] = {}
    if merge and json_path.exists():
        try:
            merged = json_load(json.loads(json_path.read_text()))["sections"]
        except (ValueError, KeyError):
            merged = {}
    merged.update(sections)
    ordered = {name: merged[name] for name in SECTIONS if name in merged}
    results = {"meta": meta, "sections": ordered}
    json_path.write_text(json.dumps(json_safe(results), indent=2) + "\n")
    stem.with_suffix(".md").write_text(render_markdown(results))


# ============================================================================= main ===========
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: every sample size 10-50x smaller")
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        metavar="NAME",
        help=f"run only this comparison (repeatable): {', '.join(SECTIONS)}",
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
        help="torch.set_num_threads for every method (default: the cores available)",
    )
    parser.add_argument("--robust-n", type=int, default=None, help="images for robust-accuracy (default 1,000)")
    parser.add_argument(
        "--art-budget",
        type=float,
        default=None,
        help="seconds after which ART's FGSM scan stops and is scaled (default 600)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output path without suffix (default benchmarks/results/robustness[-quick])",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    sizes = QUICK if args.quick else FULL
    if args.robust_n is not None:
        sizes = Sizes(**{**asdict(sizes), "robust_n": args.robust_n})
    if args.art_budget is not None:
        sizes = Sizes(**{**asdict(sizes), "art_budget_s": args.art_budget})
    stem = args.out or RESULTS_DIR / ("robustness-quick" if args.quick else "robustness")
    torch.set_num_threads(args.threads)

    test = load_dataset("mnist", "test", root=args.data_dir)
    x_all, y_all = torch.as_tensor(test.x, dtype=torch.float32), torch.as_tensor(test.y, dtype=torch.long)
    natural = make_subject("mnist_cnn", load_reference_model())
    meta = environment(
        args.threads,
        (
            ("adversarial-robustness-toolbox", "art"),
            ("foolbox", "foolbox"),
            ("captum", "captum"),
            ("torchattacks", "torchattacks"),
        ),
    ) | {"argv": sys.argv[1:], "sizes": asdict(sizes)}
    log(
        f"robustness benchmark: {'QUICK ' if args.quick else ''}{x_all.shape[0]:,} test images, "
        f"{args.threads} threads, results -> {stem}.json/.md"
    )

    builders = {
        "fgsm-min-eps": lambda: section_fgsm_min_eps(natural, x_all, y_all, sizes),
        "pgd-min-eps-vs-fmn": lambda: section_pgd_min_eps_vs_fmn(natural, x_all, y_all, sizes),
        "pgd40": lambda: section_pgd40(natural, x_all, y_all, sizes),
        "robust-accuracy": lambda: section_robust_accuracy(natural, x_all, y_all, sizes),
    }
    done: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for name in args.only or SECTIONS:
        busy = other_cpu_load()
        if busy is not None and busy > 0.2:
            log(
                f"WARNING: the CPUs are {100 * busy:.0f}% busy with other work before {name}; "
                "its timings will be noisy (run the benchmark on a quiet machine)"
            )
        run_info = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "threads": args.threads,
            "cpu_busy_before": busy,
            "loadavg": [round(v, 2) for v in os.getloadavg()],
        }
        start = time.perf_counter()
        try:
            section = builders[name]()
        except Exception as exc:  # noqa: BLE001 - keep the other sections of a long run
            traceback.print_exc()
            section = Section(name, f"FAILED: {type(exc).__name__}: {exc}", n_ref=None, baseline=None, columns={})
            failed.append(name)
        run_info["section_seconds"] = round(time.perf_counter() - start, 1)
        run_info["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
        done[name] = json_load(json_safe(section.to_dict(run_info)))
        print("\n" + render_text(done[name]) + "\n", flush=True)
        write_results(stem, done, meta, merge=bool(args.only))
    log(f"wrote {stem}.json and {stem}.md")
    if failed:
        log(f"FAILED sections: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
