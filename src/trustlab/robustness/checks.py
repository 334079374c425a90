"""Robustness checks on a model and data, written into a run directory: the minimal-eps search
with its per-class profile, robust accuracy at fixed budgets, and object vs background."""

from __future__ import annotations

import inspect
from typing import Any

from trustlab.core.exceptions import InputError
from trustlab.core.results import Result
from trustlab.models.classifier import Classifier
from trustlab.robustness.attacks import ATTACKS, Attack, make_attack
from trustlab.robustness.bracket import DEFAULT_HEADLINE_EPS, DEFAULT_WIDTH, bracket_result
from trustlab.robustness.evaluate import check_eps, require_bounded, robust_accuracy
from trustlab.robustness.profile import robustness_result
from trustlab.robustness.regions import region_result, region_search
from trustlab.robustness.search import minimal_eps


def build_attack(name: str, options: dict[str, Any]) -> Attack:
    """Attack ``name`` with the options that are not None, refusing options it does not take
    (named as command-line flags, since that is where they come from)."""
    given = {k: v for k, v in options.items() if v is not None}
    if name in ATTACKS:
        accepted = inspect.signature(ATTACKS[name]).parameters
        unknown = sorted(k for k in given if k not in accepted)
        if unknown:
            raise InputError(f"attack {name} does not take {', '.join('--' + k.replace('_', '-') for k in unknown)}")
    return make_attack(name, **given)


def run_robustness(
    run: Any,
    classifier: Classifier,
    data: Any,
    attack: Attack,
    *,
    search: bool = True,
    eps_max: float = 0.5,
    tol: float = 1 / 512,
    fixed_eps: tuple[float, ...] = (),
    regions: bool = False,
    quantile: float = 0.5,
    certify: str | None = None,
    width: float = DEFAULT_WIDTH,
    headline_eps: float = DEFAULT_HEADLINE_EPS,
) -> list[Result]:
    """Run the requested robustness checks into ``run`` and return their results; the minimal-eps
    search resumes from its last completed batch. Budgets above the input range (``eps_max`` for
    the search and regions, every ``fixed_eps``) are refused before any attack runs.

    ``certify`` ("ibp" or "crown-ibp") also bounds every searched example's certified radius and
    pairs it with the search's eps* into a bracket result (:mod:`~trustlab.robustness.bracket`);
    the model's layers are checked for it before any work."""
    if not search and not fixed_eps and not regions:
        raise InputError("nothing to do: use --search (default), --eps BUDGET or --regions")
    require_bounded(classifier)
    if certify is not None:
        from trustlab.robustness.bounds import check_method, check_supported

        if not search:
            raise InputError("--certify brackets the minimal-eps search's examples: drop --no-search")
        if attack.norm != "linf":
            raise InputError(f"certified bounds are L-inf; the attack's norm is {attack.norm}")
        check_method(certify)
        check_supported(classifier)
    if search or regions:
        check_eps(classifier, attack.norm, eps_max, option="--eps-max")
    for budget in fixed_eps:
        check_eps(classifier, attack.norm, budget, option="--eps")
    results: list[Result] = []
    where = f"{attack.name}-{data.name}-{data.split}"
    if search:
        key = f"robustness-{where}"
        fingerprint = {
            "model": classifier.weights_sha256(),
            "data": data.sha256,
            "n": len(data),
            "batch_size": classifier.batch_size,
            "attack": repr(attack),
            "eps_max": eps_max,
            "tol": tol,
        }
        checkpoint = run.checkpoint(key, fingerprint)
        with run.timed(key):
            found = minimal_eps(classifier, data.x, data.y, attack, eps_max=eps_max, tol=tol, checkpoint=checkpoint)
        profile = robustness_result(
            found, data.class_names, dataset=data.name, split=data.split, attack_name=attack.name
        )
        results.append(run.add(key, profile))
        checkpoint.clear()
        if certify is not None:
            results.append(_bracket(run, classifier, data, found, certify, where, attack.name, width, headline_eps))
    if fixed_eps:
        key = f"robust-accuracy-{where}"
        with run.timed(key):
            budgets = robust_accuracy(
                classifier, data.x, data.y, attack, sorted(fixed_eps), dataset=data.name, split=data.split
            )
        results.append(run.add(key, budgets))
    if regions:
        key = f"regions-{where}"
        with run.timed(key):
            searches, _ = region_search(classifier, data.x, data.y, attack, quantile=quantile, eps_max=eps_max, tol=tol)
        split = region_result(searches, data.class_names, quantile=quantile, dataset=data.name, split=data.split)
        results.append(run.add(key, split))
    return results


def _bracket(run, classifier, data, found, method, where, attack_name, width, headline_eps) -> Result:
    """The certified radius of the searched examples beside the search's eps*, as one result."""
    from trustlab.robustness.bounds import certified_radius

    key = f"bracket-{method}-{where}"
    with run.timed(key):
        certified = certified_radius(classifier, data.x, data.y, eps_max=found.eps_max, tol=found.tol, method=method)
    result = bracket_result(
        certified, found, data.class_names, width=width, headline_eps=min(headline_eps, found.eps_max),
        dataset=data.name, split=data.split, attack_name=attack_name,
    )  # fmt: skip
    return run.add(key, result)


def run_smoothing(
    run: Any,
    classifier: Classifier,
    data: Any,
    *,
    sigma: float,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    seed: int = 0,
) -> Result:
    """Randomised smoothing's CERTIFY on every example of ``data`` into ``run``; resumes from the
    last completed batch of examples."""
    from trustlab.robustness.smoothing import certify

    key = f"smoothing-{sigma:g}-{data.name}-{data.split}"
    fingerprint = {
        "model": classifier.weights_sha256(), "data": data.sha256, "n": len(data), "batch_size": classifier.batch_size,
        "sigma": sigma, "n0": n0, "samples": n, "alpha": alpha, "seed": seed,
    }  # fmt: skip
    checkpoint = run.checkpoint(key, fingerprint)
    with run.timed(key):
        result = certify(
            classifier, data.x, data.y, sigma=sigma, n0=n0, n=n, alpha=alpha, seed=seed, checkpoint=checkpoint,
            dataset=data.name, split=data.split,
        )  # fmt: skip
    stored = run.add(key, result)
    checkpoint.clear()
    return stored


def training_attack(kind: str | None, steps: int = 7) -> Attack | None:
    """The attack of an adversarial training recipe: ``"pgd"`` (Madry et al., PGD with ``steps``)
    or ``"fgsm-rs"`` (Wong et al., FGSM from a random start with a 1.25 eps step); None: natural."""
    if kind is None:
        return None
    if kind == "pgd":
        return make_attack("pgd", steps=steps)
    if kind == "fgsm-rs":
        return make_attack("fgsm", random_start=True, step_scale=1.25)
    raise InputError(f"adversarial training recipe must be pgd or fgsm-rs, got {kind!r}")
