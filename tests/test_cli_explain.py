"""`trustlab explain ...` and `trustlab study ...` end to end, on small inputs."""

import json

import pytest

from cli_helpers import assert_one_line_error, run_cli


@pytest.mark.parametrize("command", [("explain", "images"), ("explain", "tabular"), ("explain", "featurevis"),
                                     ("explain", "attack"), ("study", "robust-vs-natural")])  # fmt: skip
def test_commands_have_help(capsys, command):
    code, out, _ = run_cli(capsys, *command, "--help")
    assert code == 0 and "Usage: trustlab " + " ".join(command) in out


def _results(path):
    return json.loads((path / "results.json").read_text())["results"]


def test_images_attack_and_featurevis_write_reports(capsys, tmp_path, one_thread):
    code, out, err = run_cli(capsys, "explain", "images", "--model", "mnist_cnn", "--dataset", "mnist", "--split",
                             "sample", "--n", "2", "--methods", "saliency,gradcam",
                             "--out", tmp_path / "a")  # fmt: skip
    assert code == 0, err
    assert "gradcam:" in out and "Explanations" in (tmp_path / "a" / "report.html").read_text()
    code, out, err = run_cli(capsys, "explain", "attack", "--model", "mnist_cnn", "--dataset", "mnist", "--split",
                             "sample", "--limit", "50", "--eps", "0.2", "--out", tmp_path / "b")  # fmt: skip
    assert code == 0, err
    assert _results(tmp_path / "b")["attack-explanations-mnist"]["accuracy_after"] < 0.9
    code, out, err = run_cli(capsys, "explain", "featurevis", "--model", "mnist_cnn", "--steps", "20",
                             "--out", tmp_path / "c")  # fmt: skip
    assert code == 0, err
    assert len(_results(tmp_path / "c")["feature-visualisation"]["probabilities"]) == 10


def test_tabular_on_pima(capsys, tmp_path, reference_data):
    code, out, err = run_cli(capsys, "explain", "tabular", "--data-dir", reference_data, "--rows", "0,1",
                             "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    assert "LIME vs SHAP rank agreement" in out and "Glucose" in out
    assert _results(tmp_path)["tabular-pima"]["rows"] == [0, 1]


def test_study_runs_end_to_end(capsys, tmp_path, one_thread):
    code, out, err = run_cli(capsys, "study", "robust-vs-natural", "--split", "sample", "--limit", "20",
                             "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    assert "cosine_alignment: natural/clean" in out


def test_bad_requests_are_one_line_errors(capsys, tmp_path):
    code, _, err = run_cli(capsys, "explain", "images", "--model", "mnist_cnn", "--dataset", "mnist", "--split",
                           "sample", "--methods", "salency", "--out", tmp_path)  # fmt: skip
    assert_one_line_error(code, err, "unknown explanation method 'salency'")
    code, _, err = run_cli(capsys, "explain", "tabular", "--rows", "a,b", "--out", tmp_path)
    assert_one_line_error(code, err, "--rows must be comma-separated row numbers")
