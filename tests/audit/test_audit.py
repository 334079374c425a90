"""The audit end to end on a few bundled digits: steps in order, isolation of a failing check,
resume after an interruption, the scorecard files and the CI exit code."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run_cli
from trustlab.audit import plan as audit_plan
from trustlab.audit.runner import JUNIT_FILE, SCORECARD_FILE, prepare, run_audit
from trustlab.data import load_dataset
from trustlab.models import load_reference_model
from trustlab.report.run import RunDirectory

TIMINGS = {"seconds", "fit_seconds", "score_ms_per_1000", "certify_seconds", "attack_seconds"}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist", "sample").subset(slice(0, 70))  # the alarm needs 64


def _audit(out, data, on_step=None, steps=None):
    """The quick audit of the reference CNN on ``data``; only the named ``steps`` when given."""
    with pytest.MonkeyPatch.context() as patch:  # module fixtures run before the autouse offline one
        patch.delenv("TRUSTLAB_DATA", raising=False)  # the bundled notMNIST sample every time
        ctx, planned = prepare(load_reference_model(), data, profile="quick")
        planned = [p for p in planned if steps is None or p.step.name in steps]
        return run_audit(RunDirectory(out), ctx, planned, source="reference model mnist_cnn", on_step=on_step)


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _results(out):
    return _without_timings(json.loads((out / "results.json").read_text())["results"])


@pytest.fixture(scope="module")
def audited(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("audit") / "run"
    return out, _audit(out, digits)


def test_every_step_runs_and_the_scorecard_covers_every_axis(audited):
    out, outcome = audited
    assert [p.step.name for p in outcome.planned] == [s.name for s in audit_plan.STEPS]
    # every step runs but fairness: the digits have ten classes and no protected attribute
    assert {p.step.name: p.skip_reason for p in outcome.planned if p.skip_reason} == {
        "fairness": "the data has no protected attributes (a CSV file names them with --protected)"
    }
    card = outcome.scorecard
    axes = {g.axis for g in card.gates}
    assert axes == {
        "accuracy", "adversarial robustness", "OOD alarm", "explanation sanity", "backdoor", "distribution shift"
    }  # fmt: skip
    assert json.loads((out / SCORECARD_FILE).read_text()) == json.loads(card.to_json())
    suite = ET.parse(out / JUNIT_FILE).getroot()
    assert len(suite.findall("testcase")) == len(card.gates) + len(card.skipped)
    assert int(suite.get("failures")) == len(card.failed)
    html = outcome.report.read_text()
    assert html.index("Trust scorecard") < html.index("Model card") < html.index("Reliability alarm")


def test_rerunning_resumes_without_redoing_completed_checks(audited, digits):
    out, _ = audited
    before = _results(out)
    statuses = []
    _audit(out, digits, on_step=lambda item, status, left: statuses.append((item.step.name, status)))
    # every step that ran is done before; fairness (no protected attribute in the digits) is skipped again
    assert {status for name, status in statuses if name != "fairness"} == {"done before"}
    assert ("fairness", "skipped") in statuses and _results(out) == before


def test_an_interrupted_audit_resumes_to_the_same_results(audited, digits, tmp_path):
    out, _ = audited

    def interrupt(item, status, left):
        if item.step.name == "alarm" and status == "running":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _audit(tmp_path / "run", digits, on_step=interrupt)
    assert "robustness-fgsm-mnist-sample" in _results(tmp_path / "run")  # what finished was kept
    _audit(tmp_path / "run", digits)
    assert _results(tmp_path / "run") == _results(out)


def test_a_failing_check_is_recorded_and_the_audit_goes_on(monkeypatch, tmp_path, digits):
    def broken(run, ctx):
        raise RuntimeError("simulated failure in a check")

    steps = tuple(s if s.name != "regions" else audit_plan.Step(**{**vars(s), "run": broken}) for s in audit_plan.STEPS)
    monkeypatch.setattr(audit_plan, "STEPS", steps)
    outcome = _audit(tmp_path / "run", digits, steps={"regions", "alarm"})  # alarm is planned after regions
    failure = outcome.run.results["failed-regions"]
    assert failure.message == "simulated failure in a check" and not failure.user_error and failure.where
    assert "alarm-mnist" in outcome.run.results  # later checks still ran
    assert "Check failed: regions" in outcome.report.read_text()


def test_a_different_audit_in_the_same_folder_is_refused(audited, digits):
    from trustlab.core.exceptions import RunDirectoryError

    out, _ = audited
    with pytest.raises(RunDirectoryError, match="holds an audit with other examples"):
        _audit(out, digits.subset(slice(0, 66)))


def test_cli_fail_on_red_exits_1_and_bad_options_exit_2(capsys, tmp_path, digits):
    np.savez(tmp_path / "digits.npz", x=digits.x.numpy(), y=digits.y.numpy())
    args = ["audit", "--model", "mnist_cnn", "--data", tmp_path / "digits.npz", "--profile", "quick"]
    code, out, err = run_cli(capsys, *args, "--fail-on", "red", "--eps", "0.3", "--out", tmp_path / "run")
    assert code == 1, err  # a natural MNIST CNN does not survive APGD at eps 0.3
    assert "audit plan: profile quick" in out and "trust scorecard:" in out and "gate(s) at red" in err
    code, _, err = run_cli(capsys, *args, "--eps", "5", "--out", tmp_path / "r2")
    assert_one_line_error(code, err, "--eps must lie in (0, 1]")
    (tmp_path / "policy.toml").write_text("[accuracy]\nyellow = 1\n")
    code, _, err = run_cli(capsys, *args, "--policy", tmp_path / "policy.toml", "--out", tmp_path / "r3")
    assert_one_line_error(code, err, "green and/or red thresholds only")
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()  # nothing written before the checks


def test_a_detector_the_user_trained_joins_the_alarm(tmp_path, digits, monkeypatch):
    from importlib import resources

    monkeypatch.delenv("TRUSTLAB_DATA", raising=False)
    vae = Path(str(resources.files("trustlab.ood.weights").joinpath("vae_mnist.safetensors")))
    ctx, planned = prepare(load_reference_model(), digits, profile="quick", detector_files=[vae])
    planned = [p for p in planned if p.step.name == "alarm"]
    outcome = run_audit(RunDirectory(tmp_path / "run"), ctx, planned, source="reference model mnist_cnn")
    alarm = outcome.run.results["alarm-mnist"]
    assert "vae:vae_mnist" in alarm.detectors and alarm.fit_notes["vae:vae_mnist"].startswith("your detector")
    with pytest.raises(Exception, match="does not exist|not a trustlab-detector"):
        prepare(load_reference_model(), digits, profile="quick", detector_files=[tmp_path / "missing.safetensors"])
