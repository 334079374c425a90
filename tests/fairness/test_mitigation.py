"""Every mitigation fitted and measured on the same split (trustlab.fairness.mitigation), its report
section, and ``trustlab fairness mitigate`` on Adult with one-line errors for the user's mistakes."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from cli_helpers import assert_one_line_error, run_cli
from fairness_helpers import toy_dataset
from trustlab.cli.fairness import MITIGATIONS
from trustlab.core.exceptions import InputError
from trustlab.fairness.mitigation import METHODS, MitigationResult, MitigationRow, check_methods, mitigate
from trustlab.fairness.table import Estimate


@pytest.fixture(scope="module")
def toy_result():
    data = toy_dataset(1200, seed=1)
    # feature f1 becomes a proxy of sex, so the model learns the label's dependence on sex
    sex = data.protected["sex"].codes.float()
    x = data.x.clone()
    x[:, 1] = sex + 0.3 * torch.from_numpy(np.random.default_rng(2).normal(size=len(data))).float()
    data = replace(data, x=x)
    train, test = data.subset(slice(0, 800)), data.subset(slice(800, 1200))
    return mitigate(train, test, protected=["sex"], resamples=100, lfr_iterations=50, show_progress=False)


def test_every_method_runs_against_the_baselines_privileged_group(toy_result):
    assert [r.method for r in toy_result.rows] == list(METHODS)
    assert toy_result.privileged == "Male" and toy_result.test_examples == 400
    base = toy_result.row("baseline")
    assert base.disparate_impact.value < 0.8  # the toy label favours sex = Male
    for method in ("thresholds_dp", "massaging", "reweighing"):
        row = toy_result.row(method)
        assert row.disparate_impact.value > base.disparate_impact.value, method
    assert abs(toy_result.row("thresholds_dp").statistical_parity_difference.value) < 0.1
    assert toy_result.row("thresholds_eo").equalized_odds_difference.value < base.equalized_odds_difference.value + 0.05
    assert toy_result.accuracy_cost("baseline") == 0.0
    assert MitigationResult.from_dict(json.loads(json.dumps(toy_result.to_dict()))) == toy_result


def test_best_and_accuracy_cost_by_hand(toy_result):
    def row(method, acc, di):
        return MitigationRow(
            method=method, stage="x", change="", accuracy=Estimate(acc, acc, acc),
            disparate_impact=Estimate(di, di, di),
            statistical_parity_difference=Estimate(0, 0, 0), equal_opportunity_difference=Estimate(0, 0, 0),
            equalized_odds_difference=Estimate(0, 0, 0), seconds=0.0,
        )  # fmt: skip

    result = replace(toy_result, rows=(row("baseline", 0.86, 0.3), row("a", 0.84, 0.81), row("b", 0.85, 0.79)))
    assert result.best.method == "a"  # b is more accurate but below the four-fifths line
    assert result.accuracy_cost("a") == pytest.approx(2.0)
    assert replace(result, rows=result.rows[:1] + result.rows[2:]).best is None


def test_method_names_are_checked_and_the_cli_lists_them_all():
    assert check_methods(["thresholds_eo", "baseline"]) == ("baseline", "thresholds_eo")
    assert MITIGATIONS == tuple(m for m in METHODS if m != "baseline")
    with pytest.raises(InputError, match="unknown mitigation 'magic'; expected some of: baseline, reweighing"):
        check_methods(["magic"])


def test_mitigate_on_adult_writes_the_table_and_the_tradeoff_figure(capsys, tmp_path, reference_data):
    out = tmp_path / "run"
    code, printed, err = run_cli(
        capsys, "fairness", "mitigate", "--dataset", "adult", "--data-dir", reference_data, "--protected", "sex",
        "--method", "reweighing", "--method", "thresholds_dp", "--resamples", 50, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    result = json.loads((out / "results.json").read_text())["results"]["mitigation-adult-sex"]
    assert [r["method"] for r in result["rows"]] == ["baseline", "reweighing", "thresholds_dp"]
    base, parity = result["rows"][0], result["rows"][2]
    assert base["disparate_impact"]["value"] < 0.5 < parity["disparate_impact"]["value"]
    assert "mitigations by sex" in printed and (out / "figures" / "mitigation-adult-sex-tradeoff.png").is_file()
    assert "Fairness mitigations by sex" in (out / "report.html").read_text()


def test_mitigate_mistakes_are_one_line_errors(capsys, tmp_path, reference_data):
    base = ["fairness", "mitigate", "--data-dir", reference_data, "--out", tmp_path / "r"]
    code, _, err = run_cli(capsys, *base, "--dataset", "adult", "--protected", "age")
    assert_one_line_error(code, err, "protected attribute 'age' is not in data set 'adult'; it has: race, sex")
    code, _, err = run_cli(capsys, *base, "--dataset", "nope.csv", "--protected", "sex")
    assert_one_line_error(code, err, "mitigate needs a registered data set with train and test splits")
    code, _, err = run_cli(capsys, *base, "--dataset", "mnist", "--protected", "sex")
    assert_one_line_error(code, err, "protected attribute 'sex' is not in data set 'mnist'")


def test_the_section_shows_every_rows_numbers(toy_result):
    from trustlab.capabilities import load_views
    from trustlab.core.views import render_sections
    from trustlab.fairness.views import number, share

    load_views()
    (section,) = render_sections({"mitigation-toy-sex": toy_result})
    table = section.tables[0]
    for row, cells in zip(toy_result.rows, table.rows):
        assert cells[:3] == [row.method, row.stage, share(row.accuracy)]
        assert cells[4] == number(row.disparate_impact) and cells[-1] == row.change
    assert table.rows[1][3] == f"{toy_result.accuracy_cost(toy_result.rows[1].method):+.2f}"
    assert section.figures and section.figures[0].png.startswith(b"\x89PNG")
