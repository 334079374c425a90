"""The audit: every applicable check on one model and one data set, in order, each isolated, into
one run directory, judged by a trust scorecard.

A plan is a list of :class:`Step` s. Each step says whether it applies to this model and data
(and if not, why), roughly what it costs (in forward-pass equivalents, turned into seconds by
timing the model once), and how to run it. Steps run in order; a step that raises is recorded as
a :class:`CheckFailure` and the audit goes on. A step whose results are already in the run
directory (same model, data, profile and options) is skipped, so re-running the same command
resumes an interrupted audit; long checks also resume from their own batch checkpoints.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from trustlab.core.exceptions import InputError, RunDirectoryError, TrustlabError
from trustlab.core.results import Result
from trustlab.models.classifier import Classifier

AUDIT_MANIFEST_KEY = "audit"


@dataclass(frozen=True)
class Profile:
    """Sample sizes and steps of one audit depth (None: every example)."""

    name: str
    search_examples: int | None  # minimal-eps search (FGSM, the fast search)
    region_examples: int  # object vs background (three FGSM searches)
    apgd_examples: int | None  # robust accuracy under APGD at each eps of the grid
    apgd_steps: int
    ood_examples: int | None  # inputs per OOD set
    generative: bool  # also train a VAE detector on the audit's fitting split
    gallery: int  # images in the attribution gallery
    sanity_examples: int  # images for the randomisation and faithfulness checks
    backdoor_examples: int  # clean images Neural Cleanse optimises the triggers on
    backdoor_seeds: int  # independent Neural Cleanse runs (the spread of each label's norm)
    shift_examples: int | None  # digits audited clean and under each MNIST-C corruption


PROFILES = {
    # about a minute on 2 cores for an MNIST-sized model on 1,000 inputs
    "quick": Profile("quick", 1000, 200, 200, 20, 500, False, 4, 16, 96, 1, 500),
    # about ten minutes on 2 cores for the full MNIST test split
    "standard": Profile("standard", None, 1000, 1000, 50, 2000, False, 6, 64, 200, 1, 2000),
    "full": Profile("full", None, 2000, None, 100, None, True, 8, 128, 200, 3, None),
}
DEFAULT_EPS_GRID = (0.05, 0.1, 0.2)  # fractions of the input range (L-inf)
POSTHOC_DETECTORS = ("msp", "energy", "maxlogit", "mahalanobis", "knn")


@dataclass(frozen=True)
class CheckFailure(Result):
    """A check that raised: the audit recorded it and went on."""

    measures_model = False

    kind = "audit.failure"
    step: str
    axis: str
    error: str  # the exception's type
    message: str
    user_error: bool  # a TrustlabError (something about the model, data or options) rather than a bug
    where: str  # last frames of the traceback, for bugs


@dataclass
class AuditContext:
    """What every step reads: the model, the data, the options."""

    classifier: Classifier
    data: Any  # the Dataset to audit on
    profile: Profile
    ood_sets: dict[str, Any] = field(default_factory=dict)  # the user's own OOD inputs (name -> OODSet)
    eps: tuple[float, ...] = ()  # robust-accuracy grid in input units
    detector_files: tuple[Any, ...] = ()  # detectors the user trained (save_detector files), e.g. a VAE
    data_dir: Any = None
    seed: int = 0

    @property
    def is_image(self) -> bool:
        return len(self.classifier.input_shape) == 3 and self.classifier.bounds is not None

    def sample(self, count: int | None) -> Any:
        """``count`` examples of the data drawn at random with the audit's seed (``Dataset.sample``)."""
        return self.data.sample(count, seed=self.seed)


@dataclass(frozen=True)
class Step:
    """One audit check: its name, the axis it speaks for, how to run it, what it costs and whether it
    applies (``applies`` gives None, or why not)."""

    name: str
    axis: str
    description: str
    run: Callable[[Any, AuditContext], list[Result]]
    cost: Callable[[AuditContext], float]  # forward-pass equivalents
    applies: Callable[[AuditContext], str | None] = lambda ctx: None  # None, or why not


def _needs_gradients(ctx: AuditContext) -> str | None:
    if not ctx.classifier.requires_gradients:
        return "the model gives probabilities only, and this check needs its gradients"
    return None


def _needs_image_gradients(ctx: AuditContext) -> str | None:
    if not ctx.is_image:
        return "the check is for images (C x H x W inputs with pixel bounds); this model takes tabular inputs"
    return _needs_gradients(ctx)


def _needs_gradcam(ctx: AuditContext) -> str | None:
    """Image gradients, and a layer Grad-CAM can read (found by probing, or --gradcam-layer)."""
    reason = _needs_image_gradients(ctx)
    if reason is None:
        from trustlab.models.probe import gradcam_layer, hookable

        try:
            gradcam_layer(hookable(ctx.classifier))
        except TrustlabError as exc:
            return f"Grad-CAM cannot run: {exc}"
    return reason


def _n(ctx: AuditContext, count: int | None) -> int:
    return len(ctx.data) if count is None else min(count, len(ctx.data))


# ------------------------------------------------------------------------- the steps ---------
def _accuracy(run: Any, ctx: AuditContext) -> list[Result]:
    from trustlab.models.checks import run_accuracy

    return [run_accuracy(run, ctx.classifier, ctx.data, source=run.manifest["model"].get("source", "model"))]


def _certificate(ctx: AuditContext) -> str | None:
    """IBP where interval bounds can follow every layer of the model (about 30 forward passes per
    example for the whole radius search); CROWN-IBP is tighter on naturally trained models but
    costs about ten times more, so the audit leaves it to ``trustlab robustness --certify``."""
    from trustlab.robustness.bounds import check_supported

    try:
        check_supported(ctx.classifier)
    except TrustlabError:
        return None
    return "ibp"


def _robustness(run: Any, ctx: AuditContext) -> list[Result]:
    from trustlab.robustness.attacks import FGSM
    from trustlab.robustness.checks import run_robustness

    low, high = ctx.classifier.bounds
    data = ctx.sample(ctx.profile.search_examples)
    return run_robustness(run, ctx.classifier, data, FGSM(), eps_max=0.5 * (high - low), certify=_certificate(ctx))


def _robust_accuracy(run: Any, ctx: AuditContext) -> list[Result]:
    from trustlab.robustness.attacks import APGD
    from trustlab.robustness.checks import run_robustness

    attack = APGD(steps=ctx.profile.apgd_steps)
    return run_robustness(
        run, ctx.classifier, ctx.sample(ctx.profile.apgd_examples), attack, search=False, fixed_eps=ctx.eps
    )


def _regions(run: Any, ctx: AuditContext) -> list[Result]:
    from trustlab.robustness.attacks import FGSM
    from trustlab.robustness.checks import run_robustness

    low, high = ctx.classifier.bounds
    data = ctx.sample(ctx.profile.region_examples)
    return run_robustness(run, ctx.classifier, data, FGSM(), search=False, regions=True, eps_max=0.5 * (high - low))


def _alarm(run: Any, ctx: AuditContext) -> list[Result]:
    from trustlab.data.registry import split_status
    from trustlab.ood.calibration import split_holdout
    from trustlab.ood.checks import LOGIT_DETECTORS, features_unavailable, run_alarm

    data = ctx.data
    fit, rest = split_holdout(len(data), fraction=0.4, seed=ctx.seed)
    # random halves of the rest: data sets are often ordered (by class, by writer), and the
    # conformal guarantee needs calibration and evaluation inputs drawn alike
    first, second = split_holdout(len(rest), fraction=0.5, seed=ctx.seed + 1)
    calibration, evaluation = rest[first], rest[second]
    unreadable = features_unavailable(ctx.classifier)
    posthoc = LOGIT_DETECTORS if unreadable else POSTHOC_DETECTORS
    detectors = list(posthoc) + (["vae:recon"] if ctx.profile.generative and ctx.is_image else [])
    sets = {**generic_ood_sets(ctx, data.x[evaluation]), **ctx.ood_sets}
    result = run_alarm(
        run,
        ctx.classifier,
        data.subset(fit),
        data.subset(calibration),
        data.subset(evaluation),
        detectors=detectors,
        pretrained=False,
        limit=ctx.profile.ood_examples,
        data_dir=ctx.data_dir,
        seed=ctx.seed,
        extra_sets=sets,
        notmnist_split="test" if split_status("notmnist", "test", root=ctx.data_dir) == "available" else "sample",
        fitted_detectors=user_detectors(ctx),
        notes=(unreadable,) if unreadable else (),
    )
    return [result]


def _gallery(run: Any, ctx: AuditContext) -> list[Result]:
    from trustlab.explain.checks import run_attributions

    methods = ("saliency", "gradcam", "integrated_gradients", "smoothgrad")
    if _needs_gradcam(ctx) is not None:  # no layer Grad-CAM can read: the other methods still explain
        methods = tuple(m for m in methods if m != "gradcam")
    return [run_attributions(run, ctx.classifier, ctx.sample(ctx.profile.gallery), methods=methods)]


def _sanity(run: Any, ctx: AuditContext) -> list[Result]:
    from trustlab.explain.checks import run_explanation_sanity

    return [run_explanation_sanity(run, ctx.classifier, ctx.sample(ctx.profile.sanity_examples), seed=ctx.seed)]


def _backdoor(run: Any, ctx: AuditContext) -> list[Result]:
    from trustlab.backdoor.checks import run_backdoor_scan

    seeds = range(ctx.seed, ctx.seed + ctx.profile.backdoor_seeds)
    return [run_backdoor_scan(run, ctx.classifier, ctx.data, examples=ctx.profile.backdoor_examples, seeds=seeds)]


def _backdoor_cost(ctx: AuditContext) -> float:
    from trustlab.backdoor.cleanse import CleanseSettings

    settings = CleanseSettings()
    per_epoch = _n(ctx, ctx.profile.backdoor_examples) // settings.batch_size * settings.batch_size
    return 3 * settings.epochs * per_epoch * ctx.classifier.num_classes * ctx.profile.backdoor_seeds


def _backdoor_applies(ctx: AuditContext) -> str | None:
    from trustlab.backdoor.cleanse import CleanseSettings

    if len(ctx.data) < CleanseSettings().batch_size:
        return f"Neural Cleanse needs at least {CleanseSettings().batch_size} clean images"
    return _needs_image_gradients(ctx)


def _fairness_attributes(ctx: AuditContext) -> list[str]:
    """The data's protected attributes that split it into at least two groups."""
    protected = getattr(ctx.data, "protected", {}) or {}
    return [name for name, attr in protected.items() if len(torch.unique(attr.codes)) >= 2]


def _fairness(run: Any, ctx: AuditContext) -> list[Result]:
    from trustlab.fairness.checks import run_fairness

    return [
        run_fairness(run, ctx.classifier, ctx.data, protected=[name], seed=ctx.seed)
        for name in _fairness_attributes(ctx)
    ]


def _fairness_applies(ctx: AuditContext) -> str | None:
    if not getattr(ctx.data, "protected", None):
        return "the data has no protected attributes (a CSV file names them with --protected)"
    if ctx.classifier.num_classes != 2:
        return f"fairness metrics need a binary classifier; this model has {ctx.classifier.num_classes} classes"
    if not _fairness_attributes(ctx):
        return "every protected attribute of the data holds a single group"
    return None


def _shift(run: Any, ctx: AuditContext) -> list[Result]:
    from trustlab.shift.checks import run_shift

    return [run_shift(run, ctx.classifier, ctx.data, examples=ctx.profile.shift_examples, seed=ctx.seed)]


def _shift_applies(ctx: AuditContext) -> str | None:
    """None for models of 1 x 28 x 28 digits in [0, 1] (what MNIST-C corrupts; no gradients needed), else why not."""
    from trustlab.shift.evaluate import check_shiftable

    try:
        check_shiftable(ctx.classifier)
    except InputError as exc:
        return str(exc)
    return None


def _search_cost(ctx: AuditContext, count: int | None) -> float:
    low, high = ctx.classifier.bounds or (0.0, 1.0)
    return _n(ctx, count) * (3 + math.log2(0.5 * (high - low) / (1 / 512)) + 1)


STEPS = (
    Step("accuracy", "accuracy", "accuracy, per class and confusions", _accuracy, lambda c: len(c.data)),
    Step(
        "robustness",
        "adversarial robustness",
        "minimal eps per example and per class (FGSM search), beside the certified radius (IBP) where the layers allow",
        _robustness,
        lambda c: _search_cost(c, c.profile.search_examples) + 30 * _n(c, c.profile.search_examples),
        _needs_image_gradients,
    ),
    Step(
        "robust-accuracy",
        "adversarial robustness",
        "robust accuracy under APGD at the eps grid",
        _robust_accuracy,
        lambda c: _n(c, c.profile.apgd_examples) * c.profile.apgd_steps * 3 * max(1, len(c.eps)),
        _needs_image_gradients,
    ),
    Step(
        "regions",
        "adversarial robustness",
        "object vs background (Grad-CAM split, FGSM)",
        _regions,
        lambda c: 3 * _search_cost(c, c.profile.region_examples) + 3 * _n(c, c.profile.region_examples),
        _needs_gradcam,
    ),
    Step(
        "alarm",
        "OOD alarm",
        "reliability alarm: detectors fitted, calibrated (conformal) and tested on OOD sets",
        _alarm,
        lambda c: 2 * len(c.data) + 6 * (c.profile.ood_examples or len(c.data)) * 5,
        lambda c: None if len(c.data) >= 64 else "the alarm needs at least 64 examples (19 to calibrate a 5% alarm)",
    ),
    Step(
        "explanations",
        "explanation sanity",
        "attribution gallery (saliency, Grad-CAM, integrated gradients, SmoothGrad)",
        _gallery,
        lambda c: _n(c, c.profile.gallery) * 250,
        _needs_image_gradients,
    ),
    Step(
        "explanation-sanity",
        "explanation sanity",
        "randomisation sanity check and deletion faithfulness (saliency)",
        _sanity,
        lambda c: _n(c, c.profile.sanity_examples) * 80,
        _needs_image_gradients,
    ),
    Step(
        "backdoor",
        "backdoor",
        "backdoor scan (Neural Cleanse, every label in one batched optimisation)",
        _backdoor,
        _backdoor_cost,
        _backdoor_applies,
    ),
    Step(
        "fairness",
        "fairness",
        "group fairness of the decisions over each protected attribute, with bootstrap intervals",
        _fairness,
        lambda c: len(c.data) * (1 + len(_fairness_attributes(c))),
        _fairness_applies,
    ),
    Step(
        "shift",
        "distribution shift",
        "accuracy, calibration and alarm rate under the 15 MNIST-C corruptions; mCE against the reference CNN",
        _shift,
        lambda c: _n(c, c.profile.shift_examples) * 16 * 2,  # clean + 15 corrupted sets, model and baseline
        _shift_applies,
    ),
)


def user_detectors(ctx: AuditContext) -> dict[str, Any]:
    """The user's trained detectors (files written by ``trustlab.ood.save_detector``), by file name."""
    from pathlib import Path

    from trustlab.ood.base import load_detector
    from trustlab.ood.evaluate import FittedDetector

    found = {}
    for path in ctx.detector_files:
        detector = load_detector(path, classifier=ctx.classifier)
        found[f"{detector.name}:{Path(path).stem}"] = FittedDetector(
            detector, None, f"your detector from {Path(path).name}"
        )
    return found


def generic_ood_sets(ctx: AuditContext, evaluation_x: torch.Tensor) -> dict[str, Any]:
    """OOD sets for any input shape: noise of the model's shape and corruptions of held-out
    in-distribution inputs for images (plus the full MNIST suite for 1 x 28 x 28 greyscale, added
    by the alarm check itself); for tabular inputs, rows drawn uniformly over the training
    range and over three times it."""
    from trustlab.data.ood_sets import MNIST_SHAPE, OODSet, corrupted, gaussian_noise, uniform_noise

    n = ctx.profile.ood_examples or len(evaluation_x)
    shape = tuple(ctx.classifier.input_shape)
    if ctx.is_image:
        if shape == MNIST_SHAPE:
            return {}  # run_alarm uses the MNIST suite, which has these and more
        sets = {
            "uniform_noise": uniform_noise(n, shape, seed=ctx.seed),
            "gaussian_noise": gaussian_noise(n, shape, seed=ctx.seed),
        }
        for name in ("rotate90", "invert", "blur", "shift"):
            sets[name] = corrupted(evaluation_x[:n], name)
        return sets
    low, high = ctx.data.x.min(0).values, ctx.data.x.max(0).values
    generator = torch.Generator().manual_seed(ctx.seed)
    inside = low + (high - low) * torch.rand((n, *shape), generator=generator)
    centre, half = (low + high) / 2, (high - low) / 2
    far = centre + 3 * half * (2 * torch.rand((n, *shape), generator=generator) - 1)
    return {
        "uniform_in_range": OODSet(
            "uniform_in_range", inside.float(), "rows uniform over each feature's training range"
        ),
        "uniform_3x_range": OODSet(
            "uniform_3x_range", far.float(), "rows uniform over three times each feature's range"
        ),
    }


# ------------------------------------------------------------------------- running -----------
@dataclass(frozen=True)
class PlannedStep:
    """A step as planned for this audit: why it is skipped (None: it runs) and its estimated seconds."""

    step: Step
    skip_reason: str | None
    seconds: float  # estimate


def plan(ctx: AuditContext, *, seconds_per_forward: float) -> list[PlannedStep]:
    """Every step with whether it applies and an estimate of its time."""
    planned = []
    for step in STEPS:
        reason = step.applies(ctx)
        planned.append(PlannedStep(step, reason, 0.0 if reason else step.cost(ctx) * seconds_per_forward))
    return planned


def seconds_per_forward(classifier: Classifier, x: torch.Tensor) -> float:
    """Wall time of one example's forward pass, timed on a batch of the data (after a warm-up)."""
    batch = x[: min(len(x), classifier.batch_size)]
    classifier.logits(batch[:2])
    start = time.perf_counter()
    classifier.logits(batch)
    return (time.perf_counter() - start) / max(1, len(batch))


def fingerprint(ctx: AuditContext) -> dict[str, Any]:
    """What identifies an audit (model and data digests, profile, options); resuming needs the same one."""
    return {
        "model": ctx.classifier.weights_sha256(),
        "data": ctx.data.sha256,
        "examples": len(ctx.data),
        "profile": ctx.profile.name,
        "eps": list(ctx.eps),
        "ood": sorted(ctx.ood_sets),
        "detectors": [str(p) for p in ctx.detector_files],
        "seed": ctx.seed,
    }


def run_plan(
    run: Any,
    ctx: AuditContext,
    planned: Sequence[PlannedStep],
    *,
    on_step: Callable[[PlannedStep, str, float], None] | None = None,
) -> dict[str, str]:
    """Run the planned steps into ``run`` (see module doc); return, per axis with no figure, why."""
    state = run.manifest.get(AUDIT_MANIFEST_KEY)
    current = fingerprint(ctx)
    if state and state.get("fingerprint") != current:
        changed = sorted(k for k in current if state["fingerprint"].get(k) != current[k])
        raise RunDirectoryError(
            f"run directory {run.path} holds an audit with other {', '.join(changed)}; use a new --out for this one"
        )
    state = state or {"fingerprint": current, "completed": {}}
    run.manifest[AUDIT_MANIFEST_KEY] = state
    run.write_manifest()
    skipped: dict[str, str] = {}
    remaining = sum(p.seconds for p in planned)
    for item in planned:
        step = item.step
        remaining -= item.seconds
        if item.skip_reason:
            # the axis names the line; the step's name only adds where it differs (robustness: apgd: ...)
            named = "" if step.name == step.axis else f"{step.name}: "
            skipped.setdefault(step.axis, f"{named}{item.skip_reason}")
            _notify(on_step, item, "skipped", remaining)
            continue
        failure_key = f"failed-{step.name}"
        if step.name in state["completed"] and all(k in run.results for k in state["completed"][step.name]):
            _notify(on_step, item, "done before", remaining)
            continue
        _notify(on_step, item, "running", remaining + item.seconds)
        before = set(run.results)
        try:
            with run.timed(f"audit: {step.name}"):
                step.run(run, ctx)
        except (KeyboardInterrupt, RunDirectoryError):
            raise
        except Exception as exc:  # isolated: record and go on
            run.add(failure_key, _failure(step, exc))
            skipped.setdefault(step.axis, f"{step.name} failed: {exc}")
            _notify(on_step, item, "failed", remaining)
        else:
            run.results.pop(failure_key, None)  # an earlier failure of this step; the next add() saves its removal
            state["completed"][step.name] = sorted(set(run.results) - before) or state["completed"].get(step.name, [])
            run.write_manifest()
            _notify(on_step, item, "done", remaining)
    return skipped


def _notify(on_step: Callable[..., None] | None, item: PlannedStep, status: str, remaining: float) -> None:
    if on_step is not None:
        on_step(item, status, remaining)


def _failure(step: Step, exc: Exception) -> CheckFailure:
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = "; ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} in {f.name}" for f in frames)
    text = str(exc).strip().splitlines()
    return CheckFailure(
        step=step.name,
        axis=step.axis,
        error=type(exc).__name__,
        message=text[-1] if text else type(exc).__name__,
        user_error=isinstance(exc, TrustlabError),
        where="" if isinstance(exc, TrustlabError) else where,
    )


def eps_grid(classifier: Classifier, eps: Sequence[float] | None) -> tuple[float, ...]:
    """The robust-accuracy grid in input units: the user's, checked against the input range, or
    the default fractions of the range."""
    if classifier.bounds is None:
        return tuple(float(e) for e in eps or ())
    low, high = classifier.bounds
    if not eps:
        return tuple(round(f * (high - low), 6) for f in DEFAULT_EPS_GRID)
    for e in eps:
        if not 0 < e <= high - low:
            raise InputError(f"--eps must lie in (0, {high - low:g}] (the input range), got {e:g}")
    return tuple(sorted(float(e) for e in eps))
