"""The shift audit: hand-computed error ratios and mCE, a real run of the reference models on a few
digits cross-checked against direct computation, the report section's numbers, the audit step and
the command."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from cli_helpers import assert_one_line_error, run_cli
from shift_helpers import check_shift_section
from trustlab.core import format as fmt
from trustlab.core.exceptions import InputError
from trustlab.core.results import Result
from trustlab.data import load_dataset
from trustlab.data.mnist_c import NAMES, mnist_c_set
from trustlab.models import Classifier, load_reference_model
from trustlab.shift import ShiftResult, ShiftRow, calibrated_alarm, expected_calibration_error, shift_audit
from trustlab.shift.results import ratio

CORRUPTIONS = ["shot_noise", "stripe", "fog"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """The module runs two CNNs on every set (see ``one_thread``)."""


def _row(name, correct, baseline_correct, *, alarms=None, on_errors=None, n=100, ece=0.1) -> ShiftRow:
    return ShiftRow(
        corruption=name, severity=None if name == "clean" else 1, examples=n, correct=correct, accuracy_low=0.0,
        accuracy_high=1.0, ece=ece, mean_confidence=0.9, alarms=alarms, alarms_on_errors=on_errors,
        baseline_correct=baseline_correct, example=(0,) * 784, example_prediction=1,
    )  # fmt: skip


def _stub(**changes) -> ShiftResult:
    rows = (
        _row("clean", 98, 96, alarms=5, on_errors=1),
        _row("a", 90, 80, alarms=20, on_errors=8),
        _row("b", 70, 60, alarms=40, on_errors=15),
    )
    fields = dict(
        dataset="mnist/test", seed=0, rows=rows, class_names=tuple("0123456789"), example_label=1,
        baseline="reference model mnist_cnn", baseline_is_model=False, alarm="msp", alpha=0.05,
        calibration_examples=200, ece_bins=15, resamples=10, drop_interval=(15.0, 21.0),
        mean_accuracy_interval=(0.77, 0.83), mce_interval=(0.5, 0.7), relative_mce_interval=(0.5, 0.8), seconds=1.0,
    )  # fmt: skip
    return ShiftResult(**{**fields, **changes})


def test_error_ratios_and_mce_by_hand():
    result = _stub()
    a, b = result.corrupted
    # errors: clean 0.02, a 0.10, b 0.30; baseline 0.04, 0.20, 0.40
    assert result.relative_error(a) == pytest.approx(5.0) and result.relative_error(b) == pytest.approx(15.0)
    assert result.corruption_error(a) == pytest.approx(0.5) and result.corruption_error(b) == pytest.approx(0.75)
    assert result.mce == pytest.approx(0.625)
    assert result.relative_corruption_error(a) == pytest.approx(0.08 / 0.16)
    assert result.relative_corruption_error(b) == pytest.approx(0.28 / 0.36)
    assert result.relative_mce == pytest.approx((0.5 + 0.28 / 0.36) / 2)
    assert result.mean_accuracy == pytest.approx(0.8) and result.accuracy_drop == pytest.approx(18.0)
    assert result.worst is b and result.most_alarmed is b
    assert result.mean_alarm_rate == pytest.approx(0.3) and result.errors_caught == pytest.approx(23 / 40)
    assert result.mean_ece == pytest.approx(0.1)
    # without a baseline or an alarm those figures are absent, not zero
    bare = _stub(rows=tuple(replace(r, baseline_correct=None, alarms=None, alarms_on_errors=None) for r in result.rows))
    assert bare.mce is None and bare.relative_mce is None and bare.corruption_error(a) is None
    assert bare.mean_alarm_rate is None and bare.errors_caught is None
    # a perfect clean set: the relative error is infinite, 0 / 0 is undefined
    perfect = _stub(rows=(_row("clean", 100, 100), _row("a", 90, 100), _row("b", 100, 90)))
    assert perfect.relative_error(perfect.row("a")) == math.inf and math.isnan(perfect.relative_error(perfect.clean))
    assert perfect.corruption_error(perfect.row("a")) == math.inf and perfect.corruption_error(perfect.row("b")) == 0
    assert ratio(-1.0, 0.0) == -math.inf
    assert Result.from_json(perfect.to_json()) == perfect


def test_expected_calibration_error_by_hand():
    # confidences 0.9 (right), 0.9 (wrong), 0.55 (right): bins (13/15, 14/15] and (8/15, 9/15]
    probabilities = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.45, 0.55]])
    labels = torch.tensor([0, 1, 1])
    assert expected_calibration_error(probabilities, labels) == pytest.approx((abs(1 - 1.8) + abs(1 - 0.55)) / 3)
    # one bin holds everything: |accuracy - mean confidence|
    assert expected_calibration_error(probabilities, labels, bins=1) == pytest.approx(abs(2 - 2.35) / 3)
    assert expected_calibration_error(torch.eye(3), torch.arange(3)) == 0.0  # confident and right


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist", "sample")


@pytest.fixture(scope="module")
def audited(digits):
    """The robust reference CNN on 64 digits and 3 corruptions, against the natural one, with an MSP alarm
    calibrated on 120 other digits."""
    robust, natural = load_reference_model("mnist_cnn_robust"), load_reference_model("mnist_cnn")
    alarm = calibrated_alarm(robust, digits.x[500:620], alpha=0.1)
    x, y = digits.x[:64], digits.y[:64]
    result = shift_audit(
        robust, x, y, corruptions=list(reversed(CORRUPTIONS)), baseline=natural, baseline_name="mnist_cnn",
        alarm=alarm, resamples=200, dataset="mnist/sample", cache=False, show_progress=False,
    )  # fmt: skip
    return result, robust, natural, alarm, x, y


def test_accuracy_per_corruption_matches_direct_computation(audited):
    result, robust, natural, alarm, x, y = audited
    assert [r.corruption for r in result.rows] == ["clean", *CORRUPTIONS]  # MNIST-C's order
    sets = mnist_c_set(x, y, corruptions=CORRUPTIONS, cache=False, show_progress=False).images
    sets = {"clean": x, **sets}
    first = int((robust.predict(x) == y).nonzero()[0])  # the gallery's digit: the first read correctly when clean
    assert result.example_label == int(y[first])
    for row in result.rows:
        images = sets[row.corruption]
        assert row.correct == int((robust.predict(images) == y).sum())
        assert row.baseline_correct == int((natural.predict(images) == y).sum())
        assert row.alarms == int(alarm.predict(images).alarms.sum())
        assert 0.0 <= row.accuracy_low <= row.accuracy <= row.accuracy_high <= 1.0
        assert row.example == tuple(torch.round(images[first, 0] * 255).int().flatten().tolist())
        assert row.example_prediction == int(robust.predict(images[first : first + 1])[0])
    clean = result.clean.accuracy
    assert sum(r.accuracy <= clean for r in result.corrupted) >= 2  # clean at least as good as most corruptions
    assert result.row("fog").accuracy < clean and result.row("stripe").accuracy < clean
    assert result.drop_interval[0] <= result.accuracy_drop <= result.drop_interval[1]
    assert result.mce_interval[0] <= result.mce <= result.mce_interval[1]
    assert result.mean_accuracy_interval[0] <= result.mean_accuracy <= result.mean_accuracy_interval[1]
    assert result.alarm == "msp" and result.alpha == 0.1 and result.calibration_examples == 120
    assert not result.baseline_is_model and result.mce < 1  # the robust CNN errs less than the natural one here
    assert Result.from_json(result.to_json()) == result


def test_the_model_as_its_own_baseline_and_input_errors(digits):
    natural = load_reference_model("mnist_cnn")
    x, y = digits.x[:32], digits.y[:32]
    result = shift_audit(natural, x, y, corruptions=["stripe"], resamples=50, cache=False, show_progress=False)
    assert result.baseline == "reference model mnist_cnn" and result.baseline_is_model  # the default baseline
    assert result.corruption_error(result.row("stripe")) == 1.0 and result.notes
    other = Classifier(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)), input_shape=(3, 32, 32)
    )
    with pytest.raises(InputError, match=r"1 x 28 x 28 greyscale digits in \[0, 1\].*\(3, 32, 32\)"):
        shift_audit(other, torch.rand(2, 3, 32, 32), torch.zeros(2, dtype=torch.long))
    with pytest.raises(InputError, match="unknown MNIST-C corruption 'snow'"):
        shift_audit(natural, x, y, corruptions=["snow"])
    with pytest.raises(InputError, match="around the audited classifier"):
        shift_audit(natural, x, y, alarm=calibrated_alarm(load_reference_model("mnist_cnn"), digits.x[500:600]))


def test_the_section_summary_and_score_show_the_results_numbers(audited):
    from trustlab.capabilities import load_views
    from trustlab.core.views import render_sections, summary_lines, view_for

    result = audited[0]
    load_views()
    (section,) = render_sections({"shift": result})
    check_shift_section(section, result)
    with pytest.raises(AssertionError):  # the check compares real values
        check_shift_section(section, replace(result, rows=(result.rows[0], *reversed(result.corrupted))))
    lines = summary_lines([result])
    assert f"mCE {fmt.pct(result.mce)}" in lines[1] and f"{fmt.pct(result.mean_alarm_rate)} of corrupted" in lines[2]
    (score,) = view_for("shift").scores(result)
    assert score.axis == "distribution shift" and score.key == "shift.accuracy_drop" and not score.higher_is_better
    assert score.value == result.accuracy_drop and score.interval == result.drop_interval
    stub = _stub()
    (section,) = render_sections({"stub": stub})
    check_shift_section(section, stub)
    assert section.tables[0].rows[1][4:8] == ["5.00x", "20.00%", "50.00%", "50.00%"]


def test_the_policy_judges_the_drop():
    from trustlab.audit.scorecard import load_policy

    policy, _ = load_policy()
    assert policy["shift.accuracy_drop"]["green"] < policy["shift.accuracy_drop"]["red"]


def _context(classifier, data, **profile):
    from trustlab.audit.plan import PROFILES, AuditContext

    return AuditContext(classifier, data, replace(PROFILES["quick"], **profile))


def test_the_audit_step_runs_on_digit_models_and_says_why_not_on_others(digits, tmp_path):
    from tabular_helpers import synthetic_tabular
    from trustlab.audit.plan import PROFILES, STEPS
    from trustlab.report.run import RunDirectory

    (step,) = [s for s in STEPS if s.name == "shift"]
    assert step.axis == "distribution shift" and [s.name for s in STEPS].index("shift") > 0
    assert [PROFILES[p].shift_examples for p in ("quick", "standard", "full")] == [500, 2000, None]
    model = load_reference_model("mnist_cnn_robust")
    ctx = _context(model, digits.subset(slice(0, 120)), shift_examples=40)
    assert step.applies(ctx) is None and step.cost(ctx) == 40 * 16 * 2
    (result,) = step.run(RunDirectory(tmp_path / "run"), ctx)
    assert [r.corruption for r in result.rows] == ["clean", *NAMES] and result.examples == 40
    assert result.alarm == "msp" and result.calibration_examples == 24  # a fifth of the 120 digits, held out
    assert result.baseline == "reference model mnist_cnn" and result.mce is not None
    tabular = synthetic_tabular(50, 4, decisive=0)
    linear = Classifier(torch.nn.Linear(4, 2), input_shape=(4,), bounds=None)
    reason = step.applies(_context(linear, tabular))
    assert "1 x 28 x 28 greyscale digits" in reason and "(4,)" in reason and "tabular" in reason


def test_the_command_writes_results_and_report(capsys, tmp_path, monkeypatch):
    from trustlab.cli import cli
    from trustlab.cli.shift import CORRUPTIONS as LISTED
    from trustlab.cli.shift import shift

    assert LISTED == NAMES
    monkeypatch.setitem(cli.commands, "shift", shift)  # registered by trustlab.cli once it lists the module
    out = tmp_path / "run"
    args = ["shift", "--model", "mnist_cnn_robust", "--dataset", "mnist", "--split", "sample", "--examples", 32]
    code, printed, err = run_cli(capsys, *args, "--resamples", 100, "--out", out)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())["results"]
    stored = results["shift-mnist-sample"]
    assert stored["kind"] == "shift" and len(stored["rows"]) == 16 and stored["rows"][0]["examples"] == 32
    assert (
        "Accuracy falls from" in printed and "mCE" in printed and f"report written to {out / 'report.html'}" in printed
    )
    html = (out / "report.html").read_text()
    assert "Distribution shift: MNIST-C (mnist/sample)" in html and "CE (vs baseline)" in html
    code, _, err = run_cli(capsys, *args, "--baseline", tmp_path / "missing.safetensors", "--out", tmp_path / "r2")
    assert_one_line_error(code, err, "missing.safetensors")


def test_the_means_leave_out_corruptions_whose_ratio_the_baseline_leaves_undefined():
    # the baseline misreads nothing under "a" (CE 0 / 0 or infinite) and does better under "b" than clean
    result = _stub(rows=(_row("clean", 98, 96), _row("a", 90, 100), _row("b", 80, 98), _row("c", 70, 60)))
    assert result.mce_left_out == ("a",) and result.relative_mce_left_out == ("a", "b")
    assert result.mce == pytest.approx((0.2 / 0.02 + 0.3 / 0.4) / 2)
    assert result.relative_mce == pytest.approx(0.28 / 0.36)
    from trustlab.shift.evaluate import shift_bootstrap

    wrong = torch.zeros(3, 10, dtype=torch.bool)
    wrong[1, :3] = True  # the model errs under "a" only; the baseline never errs under "a"
    base = torch.zeros(3, 10, dtype=torch.bool)
    base[2, :5] = True
    intervals = shift_bootstrap(wrong.numpy(), base.numpy(), resamples=200, seed=0)
    assert intervals["mce"] == (0.0, 0.0)  # "b" alone: the model never errs there
    assert intervals["relative_mce"] == (0.0, 0.0)
    assert intervals["drop"][0] <= 15.0 <= intervals["drop"][1]  # clean 100%, mean corrupted 85%
