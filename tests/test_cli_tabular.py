"""A tabular model through every command: each does the right thing or says in one line why not."""

import pytest

from cli_helpers import assert_one_line_error, run_cli


@pytest.fixture()
def pima_model(capsys, tmp_path, reference_data):
    path = tmp_path / "pima.safetensors"
    code, _, err = run_cli(
        capsys, "train", "--dataset", "pima", "--data-dir", reference_data, "--epochs", "3", "--out", path
    )
    assert code == 0, err
    return path


def test_commands_that_do_not_apply_to_tabular_models_say_why(capsys, tmp_path, reference_data, pima_model):
    common = ["--model", pima_model, "--dataset", "pima", "--data-dir", reference_data]
    code, _, err = run_cli(capsys, "robustness", *common, "--out", tmp_path / "r")
    assert_one_line_error(code, err, "needs bounded inputs", "unbounded tabular features")
    code, _, err = run_cli(capsys, "explain", "images", *common, "--out", tmp_path / "e")
    assert_one_line_error(code, err, "attribution gallery shows images", "trustlab explain tabular")


def test_alarm_fit_picks_a_detector_that_works_for_the_model(capsys, tmp_path, reference_data, pima_model):
    from trustlab.ood.guard import GuardedClassifier

    code, out, err = run_cli(
        capsys, "alarm", "fit", "--model", pima_model, "--dataset", "pima", "--data-dir", reference_data,
        "--train-split", "train", "--holdout-split", "test", "--out", tmp_path / "guard.safetensors",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("mahalanobis: threshold") and GuardedClassifier.load(tmp_path / "guard.safetensors")


def test_explain_tabular_explains_the_users_model(capsys, tmp_path, reference_data, pima_model):
    import json

    code, out, err = run_cli(
        capsys, "explain", "tabular", "--dataset", "pima", "--data-dir", reference_data, "--model", pima_model,
        "--rows", "0,1", "--out", tmp_path / "t",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads((tmp_path / "t" / "results.json").read_text())["results"]["tabular-pima"]
    assert result["model"] == "given" and result["model_description"] == "mlp model"
    assert (
        out.startswith("mlp model: accuracy")
        and "model_card" in json.loads((tmp_path / "t" / "results.json").read_text())["results"]
    )
