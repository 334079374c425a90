"""``trustlab robustness``: how small a perturbation flips each prediction."""

from __future__ import annotations

import click

from trustlab.cli.options import (
    backend_options,
    batch_size_option,
    data_dir_option,
    echo_and_report,
    limit_option,
    model_and_data_options,
    new_run,
    open_data,
    open_model,
    out_option,
)


@click.command()
@model_and_data_options
@click.option(
    "--attack", "attack_name", type=click.Choice(["fgsm", "pgd", "apgd", "fmn", "square"]), default="fgsm",
    show_default=True,
)  # fmt: skip
@click.option("--norm", type=click.Choice(["linf", "l2"]), default="linf", show_default=True)
@click.option(
    "--search/--no-search",
    default=True,
    show_default=True,
    help="per-example minimal-eps search with per-class profile",
)
@click.option("--eps-max", type=click.FloatRange(min=0, min_open=True), default=0.5, show_default=True)
@click.option(
    "--tol", type=click.FloatRange(min=0, min_open=True), default=1 / 512, show_default=True,
    help="resolution of the minimal eps",
)  # fmt: skip
@click.option(
    "--eps", "fixed_eps", type=click.FloatRange(min=0), multiple=True,
    help="also attack at this fixed budget (repeatable): robust accuracy table",
)  # fmt: skip
@click.option("--steps", type=click.IntRange(min=1), default=None, help="iterations (pgd, apgd, fmn)")
@click.option("--step-size", type=click.FloatRange(min=0, min_open=True), default=None, help="pgd step size")
@click.option("--restarts", type=click.IntRange(min=1), default=None, help="random restarts (pgd, apgd)")
@click.option("--queries", type=click.IntRange(min=1), default=None, help="query budget (square)")
@click.option("--regions", is_flag=True, help="also compare object vs background perturbation (Grad-CAM)")
@click.option(
    "--quantile", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.5, show_default=True,
    help="Grad-CAM quantile splitting object from background",
)  # fmt: skip
@click.option(
    "--certify", type=click.Choice(["ibp", "crown-ibp", "smoothing"]), default=None,
    help="also certify each example: ibp / crown-ibp bound the certified L-inf radius beside the attack's upper "
    "bound (proven); smoothing certifies an L2 radius of the randomised-smoothing classifier (Cohen et al.)",
)  # fmt: skip
@click.option(
    "--sigma", type=click.FloatRange(min=0, min_open=True), default=0.25, show_default=True,
    help="noise level of randomised smoothing (pixel units; train the model under the same noise)",
)  # fmt: skip
@click.option(
    "--samples", type=click.IntRange(min=1), default=100_000, show_default=True,
    help="noise samples per example estimating the smoothed class's probability (CERTIFY's n; n0 = 100)",
)  # fmt: skip
@click.option(
    "--certified-eps", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True,
    help="budget of the certified-accuracy headline (with --certify)",
)  # fmt: skip
@click.option(
    "--bracket-width", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True,
    help="a bracket at most this wide counts as settled (with --certify)",
)  # fmt: skip
@limit_option
@batch_size_option
@out_option("runs/robustness", "run directory (re-running resumes an interrupted search)")
@data_dir_option
@backend_options
def robustness(
    model, dataset, split, arch, allow_pickle, attack_name, norm, search, eps_max, tol, fixed_eps, steps, step_size,
    restarts, queries, regions, quantile, certify, sigma, samples, certified_eps, bracket_width, limit, batch_size,
    out, data_dir,
) -> None:  # fmt: skip
    """How small a perturbation flips each prediction: minimal eps per example and per class (with
    --certify, also the certified radius below which no perturbation can flip it)."""
    from trustlab.models.checks import run_accuracy
    from trustlab.robustness.checks import build_attack, run_robustness, run_smoothing
    from trustlab.robustness.evaluate import check_eps, require_bounded

    data = open_data(dataset, split, data_dir, limit=limit)
    classifier, source = open_model(model, arch, allow_pickle, data.input_shape, batch_size)
    options = {"norm": norm, "steps": steps, "step_size": step_size, "restarts": restarts, "queries": queries}
    attack = build_attack(attack_name, options)
    require_bounded(classifier)
    if regions:  # Grad-CAM must be able to read the model before any search runs
        from trustlab.models.probe import gradcam_layer, hookable

        gradcam_layer(hookable(classifier))
    bound = certify if certify in ("ibp", "crown-ibp") else None
    if bound is not None:  # the model's layers must be boundable before any search runs
        from trustlab.robustness.bounds import check_supported

        check_supported(classifier)
    check_eps(classifier, attack.norm, eps_max, option="--eps-max")  # before any work, not after the accuracy
    for budget in fixed_eps:
        check_eps(classifier, attack.norm, budget, option="--eps")
    run = new_run(out)
    run_accuracy(run, classifier, data, source=source, batch_size=batch_size)
    results = []
    if search or fixed_eps or regions or certify != "smoothing":
        results += run_robustness(
            run, classifier, data, attack, search=search, eps_max=eps_max, tol=tol, fixed_eps=fixed_eps,
            regions=regions, quantile=quantile, certify=bound, width=bracket_width, headline_eps=certified_eps,
        )  # fmt: skip
    if certify == "smoothing":
        results.append(run_smoothing(run, classifier, data, sigma=sigma, n=samples))
    echo_and_report(run, results)


COMMANDS = (robustness,)
