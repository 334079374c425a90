"""The bracket result: certified radius beside the attack's minimal eps, per example and per class."""

import json
import math

import pytest
import torch

from trustlab.core.exceptions import InputError
from trustlab.core.results import record_type
from trustlab.robustness.bounds import CertifiedRadius
from trustlab.robustness.bracket import bracket_result
from trustlab.robustness.search import MinimalEps

INF = math.inf


def _pair(lower, upper, labels, wrong, eps_max=0.5):
    n = len(labels)
    labels = torch.tensor(labels)
    wrong = torch.tensor(wrong)
    certified = CertifiedRadius(
        radius=torch.tensor(lower), upper=torch.tensor(lower) + 0.01, clean_wrong=wrong, labels=labels,
        method="ibp", eps_max=eps_max, tol=0.01, seconds=1.0,
    )  # fmt: skip
    eps_star = torch.tensor(upper)
    attacked = MinimalEps(
        eps_star=eps_star, lower=eps_star, upper=eps_star, clean_wrong=wrong, censored=torch.isinf(eps_star),
        nonmonotonic=torch.zeros(n, dtype=torch.bool), labels=labels, eps_max=eps_max, tol=0.01, attack="FGSM()",
        norm="linf", forward_calls=0, gradient_calls=0, seconds=2.0,
    )  # fmt: skip
    return certified, attacked


def test_hand_computed_brackets():
    """Six examples of two classes; one wrong before any perturbation, one never flipped."""
    certified, attacked = _pair(
        lower=[0.10, 0.02, 0.00, 0.30, 0.05, 0.12],
        upper=[0.12, 0.20, 0.00, INF, 0.08, 0.13],
        labels=[0, 0, 0, 1, 1, 1],
        wrong=[False, False, True, False, False, False],
    )
    result = bracket_result(certified, attacked, ("a", "b"), width=0.05, headline_eps=0.1, attack_name="fgsm")
    # attackable widths: 0.02, 0.18, inf, 0.03, 0.01 -> median 0.03; settled (<= 0.05): 3 of 5
    assert result.median_width == pytest.approx(0.03)
    assert result.narrow_share == pytest.approx(3 / 5)
    assert result.clean_wrong == 1 and result.censored == 1 and result.violations == 0
    # certified at 0.1: radii 0.10, 0.30, 0.12 -> 3 of all 6; attack leaves eps* > 0.1: 0.12, 0.20, inf, 0.13 -> 4
    assert result.certified_accuracy == pytest.approx(3 / 6)
    assert result.empirical_accuracy == pytest.approx(4 / 6)
    a, b = result.per_class
    assert (a.examples, a.clean_wrong) == (3, 1)
    assert (a.certified_median, a.attacked_median) == pytest.approx((0.06, 0.16))
    assert a.width_median == pytest.approx(0.10) and a.narrow_share == pytest.approx(0.5)
    assert b.attacked_median == pytest.approx(0.13) and b.width_median == pytest.approx(0.03)
    assert a.certified_accuracy == pytest.approx(1 / 3) and b.certified_accuracy == pytest.approx(2 / 3)
    # curves: the certified one never above the empirical one, both start at clean accuracy
    assert result.certified_curve[0] == result.empirical_curve[0] == pytest.approx(5 / 6)
    assert all(c <= e for c, e in zip(result.certified_curve, result.empirical_curve))
    restored = record_type(result.kind).from_dict(json.loads(json.dumps(result.to_dict())))
    assert restored == result


def test_a_certificate_above_a_found_flip_is_counted_as_unsound():
    certified, attacked = _pair([0.2, 0.05], [0.1, 0.3], [0, 1], [False, False])
    assert bracket_result(certified, attacked, ("a", "b")).violations == 1


def test_mismatched_searches_are_refused():
    certified, attacked = _pair([0.2, 0.05], [0.3, 0.3], [0, 1], [False, False])
    other, _ = _pair([0.2, 0.05], [0.3, 0.3], [1, 1], [False, False])
    with pytest.raises(InputError, match="same examples"):
        bracket_result(other, attacked, ("a", "b"))
    with pytest.raises(InputError, match="headline eps"):
        bracket_result(certified, attacked, ("a", "b"), headline_eps=0.7)


def test_cli_certify_brackets_every_searched_example(capsys, tmp_path):
    from cli_helpers import run_cli

    code, out, err = run_cli(
        capsys, "robustness", "--model", "mnist_cnn", "--dataset", "mnist", "--split", "sample", "--limit", "32",
        "--certify", "ibp", "--tol", "0.01", "--out", tmp_path / "run",
    )  # fmt: skip
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())["results"]
    bracket = results["bracket-ibp-fgsm-mnist-sample"]
    assert len(bracket["certified"]) == 32 and bracket["violations"] == 0
    assert all(c <= a for c, a in zip(bracket["certified"], bracket["attacked"]))
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Certified bounds: ibp beside fgsm" in html and "certified (ibp) at eps 0.1" in out


def test_the_scorecard_row_is_the_results_own_figure():
    from trustlab.capabilities import load_views
    from trustlab.core import format as fmt
    from trustlab.core.views import summary_lines, view_for

    load_views()
    certified, attacked = _pair([0.2, 0.05], [0.3, 0.3], [0, 1], [False, False])
    result = bracket_result(certified, attacked, ("a", "b"), attack_name="fgsm")
    (score,) = view_for(result.kind).scores(result)
    assert score.value == result.certified_accuracy == 0.5 and score.key == "robustness.certified_accuracy"
    assert fmt.pct(result.empirical_accuracy) in summary_lines([result])[0]
