"""How robustness results appear: report sections, CLI summary lines and scorecard scores."""

from __future__ import annotations

from markupsafe import Markup

from trustlab.core import format as fmt
from trustlab.core.views import Figure, Score, Section, Table, register_view
from trustlab.robustness import figures
from trustlab.robustness.bracket import BracketResult
from trustlab.robustness.evaluate import RobustAccuracyResult
from trustlab.robustness.profile import RobustnessResult
from trustlab.robustness.regions import REGIONS, RegionResult
from trustlab.robustness.smoothing import SmoothingResult

SMOOTHING_RADII = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)


def _robustness(name: str, result: RobustnessResult) -> Section:
    paragraphs = [
        Markup(
            "Minimal {} perturbation flipping each prediction under <b>{}</b> on {}/{} ({:,} examples, region: {}). "
            "{:,} were already wrong (eps* = 0, left out of the statistics below); {:,} were not flipped by "
            "eps_max = {:g} (censored: eps* > eps_max); {:,} were non-monotonic (flipped at some eps, correct "
            "again at eps_max). Resolution {:.4g}."
        ).format(
            result.norm,
            result.attack_name,
            result.dataset,
            result.split,
            len(result.labels),
            result.region,
            result.clean_wrong,
            result.censored,
            result.eps_max,
            result.nonmonotonic,
            result.tol,
        ),
        Markup("Most sensitive classes: <b>{}</b>; most robust: <b>{}</b>.").format(
            ", ".join(result.most_sensitive), ", ".join(result.most_robust)
        ),
    ]
    facts = [
        ("attack", result.attack),
        (
            "median eps* of attackable examples (95% CI)",
            f"{fmt.eps(result.median_eps_star)} ({fmt.eps_interval(result.median_interval)})",
        ),
        ("model calls", f"{result.forward_calls:,} forward, {result.gradient_calls:,} gradient (per example)"),
        ("time", fmt.seconds(result.seconds)),
    ]
    table = Table(
        ["class", "examples", "wrong before attack", "censored", "median eps* (95% CI)", "mean eps* (95% CI)"],
        [
            [
                r.name,
                f"{r.examples:,}",
                str(r.clean_wrong),
                str(r.censored),
                f"{fmt.eps(r.median)} ({fmt.eps_interval(r.median_interval)})",
                f"{'>= ' if r.mean_is_lower_bound else ''}{fmt.eps(r.mean)} ({fmt.eps_interval(r.mean_interval)})",
            ]
            for r in result.per_class
        ],
        "Per-class minimal eps over the examples correct before the attack (censored examples enter the mean "
        "at eps_max: a lower bound, marked >=)",
    )
    figs = [
        Figure(
            f"{name}-per-class",
            "Median minimal eps per class, most sensitive first (hatched: median censored).",
            figures.per_class_eps_figure(
                result.class_names,
                [r.median for r in result.per_class],
                [r.median_interval for r in result.per_class],
                result.eps_max,
                result.norm,
            ),
        ),
        Figure(
            f"{name}-distribution",
            "Distribution of minimal eps per class.",
            figures.eps_distribution_figure(
                result.eps_star, result.labels, result.class_names, result.eps_max, result.norm
            ),
        ),
        Figure(
            f"{name}-curve",
            "Robust accuracy derived from the per-example minimal eps (no re-attack).",
            figures.robust_accuracy_figure(
                [(result.attack_name, result.curve_eps, result.curve_accuracy)], result.norm
            ),
        ),
    ]
    title = f"Robustness: {result.attack_name} ({result.dataset}/{result.split})"
    return Section(name, title, paragraphs=paragraphs, facts=facts, tables=[table], figures=figs)


def _robustness_summary(result: RobustnessResult) -> list[str]:
    return [
        f"{result.attack_name}: median minimal eps {fmt.eps(result.median_eps_star)} over "
        f"{result.attackable:,} attackable examples; {result.censored} censored, {result.clean_wrong} wrong "
        f"before attack, {result.nonmonotonic} non-monotonic; most sensitive classes "
        f"{', '.join(result.most_sensitive)}"
    ]


def _robustness_scores(result: RobustnessResult) -> list[Score]:
    unit = f"{result.norm} eps (input units)"
    fragile = result.most_sensitive[0] if result.most_sensitive else "n/a"
    if result.median_eps_star == float("inf"):
        flips = f"no change within {result.norm} eps {result.eps_max:g} flips half of the correct predictions"
    else:
        flips = f"a change of {fmt.eps(result.median_eps_star)} ({result.norm}) flips half of the correct predictions"
    sentence = f"{flips} under {result.attack_name}; the most fragile class is {fragile}."
    return [
        Score(
            "adversarial robustness", "robustness.median_eps", f"median minimal eps ({result.attack_name})",
            result.median_eps_star, unit, True, tuple(result.median_interval), sentence,
        )
    ]  # fmt: skip


def _regions(name: str, result: RegionResult) -> Section:
    paragraphs = [
        Markup(
            "Grad-CAM towards the true class splits each image at its {:g} quantile into an object region (the top "
            "{:.0f}% of pixels) and a background region; minimal eps is searched with the perturbation restricted to "
            "each. On <b>{}</b> of attackable examples the object is more fragile than the background."
        ).format(result.quantile, 100 * (1 - result.quantile), fmt.pct(result.object_more_fragile))
    ]
    table = Table(
        ["class", "examples", "median eps* whole", "object", "background", "object more fragile"],
        [
            [
                r.name,
                str(r.examples),
                *(fmt.eps(r.median(region)) for region in REGIONS),
                fmt.pct(r.object_more_fragile),
            ]
            for r in result.per_class
        ],
        "Per-class comparison over attackable examples (> eps_max = more than half censored)",
    )
    medians = {region: [r.median(region) for r in result.per_class] for region in REGIONS}
    fig = Figure(
        f"{name}-regions",
        "Median minimal eps per class when only one region may change.",
        figures.region_figure(result.class_names, medians, result.eps_max),
    )
    return Section(
        name,
        f"Object vs background ({result.dataset}/{result.split})",
        paragraphs=paragraphs,
        facts=[
            ("examples", f"{len(result.labels):,}"),
            ("eps_max", f"{result.eps_max:g} (medians above it are censored)"),
            ("attack", result.attack),
            ("time", fmt.seconds(result.seconds)),
        ],
        tables=[table],
        figures=[fig],
    )


def _regions_summary(result: RegionResult) -> list[str]:
    return [f"object more fragile than background on {fmt.pct(result.object_more_fragile)} of attackable examples"]


def _robust_accuracy(name: str, result: RobustAccuracyResult) -> Section:
    table = Table(
        ["eps", "robust accuracy"],
        [["0 (clean)", fmt.pct(result.clean_accuracy)]]
        + [[f"{e:g}", fmt.pct(a)] for e, a in zip(result.eps, result.accuracy)],
        "Robust accuracy at fixed budgets",
    )
    fig = Figure(
        f"{name}-curve",
        "Robust accuracy at each budget (attacked directly).",
        figures.robust_accuracy_figure(
            [(result.attack_name, (0.0, *result.eps), (result.clean_accuracy, *result.accuracy))], result.norm
        ),
    )
    facts = [("attack", result.attack), ("examples", f"{result.examples:,}"), ("time", fmt.seconds(result.seconds))]
    title = f"Robust accuracy: {result.attack_name} ({result.dataset}/{result.split})"
    return Section(name, title, facts=facts, tables=[table], figures=[fig])


def _robust_accuracy_summary(result: RobustAccuracyResult) -> list[str]:
    pairs = ", ".join(f"{e:g}: {fmt.pct(a)}" for e, a in zip(result.eps, result.accuracy))
    return [f"{result.attack_name} robust accuracy {pairs}"]


def _robust_accuracy_scores(result: RobustAccuracyResult) -> list[Score]:
    return [
        Score(
            "adversarial robustness", "robustness.robust_accuracy",
            f"robust accuracy at {result.norm} eps {e:g} ({result.attack_name})", a, "share of examples", True,
            sentence=f"{fmt.pct(a)} of the examples stay correct under {result.attack_name} at eps {e:g}.",
        )
        for e, a in zip(result.eps, result.accuracy)
    ]  # fmt: skip


def _bracket(name: str, result: BracketResult) -> Section:
    paragraphs = [
        Markup(
            "Each prediction's true minimal L-inf perturbation lies between a <b>certified</b> lower bound ({}: "
            "no perturbation up to it can flip the prediction, proven) and the <b>attack's</b> upper bound ({}: a "
            "flip was found there). {:,} examples on {}/{}; {:,} were wrong before any perturbation (no bracket); "
            "{:,} were not flipped by eps_max = {:g} (open brackets, width counted as infinite). Resolution {:.4g}."
        ).format(
            result.method,
            result.attack_name,
            len(result.labels),
            result.dataset,
            result.split,
            result.clean_wrong,
            result.censored,
            result.eps_max,
            result.tol,
        ),  # fmt: skip
        Markup(
            "At eps {:g}: <b>{}</b> of the examples are certified and <b>{}</b> survive the attack; the true robust "
            "accuracy lies between. Brackets at most {:g} wide (settled either way): <b>{}</b> of attackable examples."
        ).format(
            result.headline_eps,
            fmt.pct(result.certified_accuracy),
            fmt.pct(result.empirical_accuracy),
            result.width,
            fmt.pct(result.narrow_share),
        ),
    ]
    if result.violations:
        paragraphs.append(
            Markup(
                "<b>Warning</b>: {:,} examples are certified at or above an eps where the attack flipped them; a "
                "sound bound cannot do that, so the certificate or the search is wrong. Please report it."
            ).format(result.violations)
        )
    facts = [
        ("certificate", result.method),
        ("attack (upper bound)", result.attack),
        (
            "median bracket width (95% CI)",
            f"{fmt.eps(result.median_width)} ({fmt.eps_interval(result.median_width_interval)})",
        ),
        ("certified radius >= found flip (must be 0)", f"{result.violations:,}"),
        ("time", f"certificate {fmt.seconds(result.certify_seconds)}, attack {fmt.seconds(result.attack_seconds)}"),
    ]
    table = Table(
        ["class", "examples", "wrong before attack", "median certified", "median attacked", "median width",
         f"width <= {result.width:g}", f"certified at {result.headline_eps:g}"],
        [
            [
                r.name, f"{r.examples:,}", str(r.clean_wrong), fmt.eps(r.certified_median), fmt.eps(r.attacked_median),
                fmt.eps(r.width_median), fmt.pct(r.narrow_share), fmt.pct(r.certified_accuracy),
            ]
            for r in result.per_class
        ],
        "Per-class brackets over the examples correct before any perturbation (certified share: of all the class's "
        "examples)",
    )  # fmt: skip
    figs = [
        Figure(
            f"{name}-curve",
            "Certified and empirical robust accuracy against eps: the true robust accuracy lies in the band.",
            figures.bracket_curve_figure(
                result.curve_eps, result.certified_curve, result.empirical_curve, result.method, result.attack_name
            ),
        ),
        Figure(
            f"{name}-brackets",
            "Every example's bracket of its true minimal perturbation.",
            figures.bracket_figure(result.certified, result.attacked, result.eps_max),
        ),
    ]
    title = f"Certified bounds: {result.method} beside {result.attack_name} ({result.dataset}/{result.split})"
    return Section(name, title, paragraphs=paragraphs, facts=facts, tables=[table], figures=figs)


def _bracket_summary(result: BracketResult) -> list[str]:
    return [
        f"certified ({result.method}) at eps {result.headline_eps:g}: {fmt.pct(result.certified_accuracy)}; "
        f"{result.attack_name} leaves {fmt.pct(result.empirical_accuracy)}; median bracket width "
        f"{fmt.eps(result.median_width)}, {fmt.pct(result.narrow_share)} of brackets at most {result.width:g} wide"
        + (f"; {result.violations} UNSOUND" if result.violations else "")
    ]


def _bracket_scores(result: BracketResult) -> list[Score]:
    sentence = (
        f"{fmt.pct(result.certified_accuracy)} of the test inputs are provably stable against any L-inf change up "
        f"to {result.headline_eps:g} ({result.method}); the attack leaves {fmt.pct(result.empirical_accuracy)}."
    )
    return [
        Score(
            "adversarial robustness", "robustness.certified_accuracy",
            f"certified at eps {result.headline_eps:g} ({result.method})", result.certified_accuracy,
            "share of examples", True, sentence=sentence,
        )
    ]  # fmt: skip


def _smoothing(name: str, result: SmoothingResult) -> Section:
    paragraphs = [
        Markup(
            "Randomised smoothing (Cohen et al. 2019) of the model under Gaussian noise of sigma {:g} on {}/{} ({:,} "
            "examples): with probability at least {:g} each, the smoothed classifier's answer cannot change within the "
            "certified <b>L2</b> radius. The L-inf column is the budget each L2 radius implies (radius / sqrt({:,})), "
            "a loose consequence, not an L-inf certificate. With n = {:,} samples no radius above {:.3g} can be "
            "certified."
        ).format(
            result.sigma,
            result.dataset,
            result.split,
            result.examples,
            1 - result.alpha,
            result.input_dim,
            result.n,
            result.max_radius,
        )  # fmt: skip
    ]
    root = result.input_dim**0.5
    table = Table(
        ["L2 radius", "implied L-inf eps", "certified accuracy"],
        [[f"{r:g}", f"{r / root:.4f}", fmt.pct(result.certified_accuracy(r))] for r in SMOOTHING_RADII],
        "Share of examples predicted correctly and certified at the radius (abstentions count as wrong)",
    )
    facts = [
        ("samples", f"n0 = {result.n0:,} to select, n = {result.n:,} to estimate, alpha = {result.alpha:g}"),
        ("abstained", fmt.pct(result.abstention_rate)),
        ("time", f"{fmt.seconds(result.seconds)} ({result.seconds_per_example:.2f} s per example)"),
    ]
    grid = [result.max_radius * 1.25 * k / 100 for k in range(101)]
    fig = Figure(
        f"{name}-curve",
        "Certified L2 accuracy of the smoothed classifier against the radius.",
        figures.smoothing_figure(grid, result.curve(grid), result.max_radius, result.sigma),
    )
    title = f"Randomised smoothing: sigma {result.sigma:g} ({result.dataset}/{result.split})"
    return Section(name, title, paragraphs=paragraphs, facts=facts, tables=[table], figures=[fig])


def _smoothing_summary(result: SmoothingResult) -> list[str]:
    pairs = ", ".join(f"{r:g}: {fmt.pct(result.certified_accuracy(r))}" for r in SMOOTHING_RADII[1:4])
    return [
        f"randomised smoothing (sigma {result.sigma:g}, n {result.n:,}): certified L2 accuracy {pairs}; abstained "
        f"{fmt.pct(result.abstention_rate)}"
    ]


register_view(SmoothingResult, order=24, section=_smoothing, summary=_smoothing_summary)
register_view(BracketResult, order=23, section=_bracket, summary=_bracket_summary, scores=_bracket_scores)
register_view(RobustnessResult, order=20, section=_robustness, summary=_robustness_summary, scores=_robustness_scores)
register_view(
    RobustAccuracyResult,
    order=22,
    section=_robust_accuracy,
    summary=_robust_accuracy_summary,
    scores=_robust_accuracy_scores,
)
register_view(RegionResult, order=25, section=_regions, summary=_regions_summary)
