"""`trustlab alarm fit | evaluate | predict` end to end, and their one-line errors."""

import json

import numpy as np
import pytest
from PIL import Image

from cli_helpers import assert_one_line_error, run_cli
from trustlab.data import load_dataset
from trustlab.ood.guard import GuardedClassifier


@pytest.mark.parametrize("command", ["fit", "evaluate", "predict"])
def test_alarm_commands_have_help(capsys, command):
    code, out, _ = run_cli(capsys, "alarm", command, "--help")
    assert code == 0 and f"Usage: trustlab alarm {command}" in out


@pytest.fixture(scope="module")
def guard_file(tmp_path_factory, reference_data):
    """A KNN guard fitted on the MNIST training sample, calibrated on half the test split."""
    from trustlab.cli import main

    path = tmp_path_factory.mktemp("guard") / "guard.safetensors"
    with pytest.raises(SystemExit) as info:
        main(["--quiet", "alarm", "fit", "--model", "mnist_cnn", "--dataset", "mnist", "--detector", "knn",
              "--data-dir", str(reference_data), "--out", str(path)])  # fmt: skip
    assert info.value.code == 0
    return path


def test_fit_writes_a_guard_with_the_promised_false_alarm_rate(guard_file, reference_data):
    guard = GuardedClassifier.load(guard_file)
    assert guard.alpha == 0.05 and guard.threshold.n == 5000 and guard.detector.name == "knn"
    test = load_dataset("mnist", "test", root=reference_data)
    assert abs(guard.predict(test.x[:2000]).alarms.double().mean().item() - 0.05) < 0.03


def test_predict_reads_arrays_and_images(capsys, guard_file, tmp_path, reference_data):
    digits = load_dataset("mnist", "test", root=reference_data).x[:3].numpy()
    np.save(tmp_path / "digits.npy", digits)
    np.savez(tmp_path / "noise.npz", x=np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32))
    Image.fromarray((digits[0, 0] * 255).astype(np.uint8)).resize((56, 56)).save(tmp_path / "digit.png")
    code, out, err = run_cli(
        capsys, "alarm", "predict", "--guard", guard_file, "--json",
        tmp_path / "digits.npy", tmp_path / "noise.npz", tmp_path / "digit.png",
    )  # fmt: skip
    assert code == 0, err
    records = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["input"] for r in records] == ["digits.npy[0]", "digits.npy[1]", "digits.npy[2]", "noise.npz[0]",
                                             "noise.npz[1]", "digit.png"]  # fmt: skip
    assert [r["alarm"] for r in records[3:5]] == [True, True]
    assert records[0]["class"] == "7" and not records[0]["alarm"]
    code, out, _ = run_cli(capsys, "alarm", "predict", "--guard", guard_file, tmp_path / "noise.npz")
    assert code == 0 and "2 of 2 inputs raised the alarm" in out


def test_predict_bad_inputs_are_one_line_errors(capsys, guard_file, tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((2, 28, 28), dtype=np.float32))
    code, _, err = run_cli(capsys, "alarm", "predict", "--guard", guard_file, tmp_path / "wrong.npy")
    assert_one_line_error(code, err, "shape (2, 28, 28)")
    np.save(tmp_path / "bright.npy", np.full((1, 1, 28, 28), 255.0, dtype=np.float32))
    code, _, err = run_cli(capsys, "alarm", "predict", "--guard", guard_file, tmp_path / "bright.npy")
    assert_one_line_error(code, err, "bounds [0, 1]")
    np.save(tmp_path / "objects.npy", np.array([object()], dtype=object), allow_pickle=True)
    code, _, err = run_cli(capsys, "alarm", "predict", "--guard", guard_file, tmp_path / "objects.npy")
    assert_one_line_error(code, err, "cannot read inputs from")
    (tmp_path / "fake.png").write_bytes(b"not an image")
    code, _, err = run_cli(capsys, "alarm", "predict", "--guard", guard_file, tmp_path / "fake.png")
    assert_one_line_error(code, err, "cannot read image")
    code, _, err = run_cli(capsys, "alarm", "predict", "--guard", tmp_path / "fake.png", tmp_path / "wrong.npy")
    assert_one_line_error(code, err, "damaged safetensors file")


def test_fit_refuses_unknown_detectors(capsys, tmp_path):
    code, _, err = run_cli(capsys, "alarm", "fit", "--model", "mnist_cnn", "--dataset", "mnist",
                           "--detector", "vea", "--out", tmp_path / "g.safetensors")  # fmt: skip
    assert_one_line_error(code, err, "unknown detector 'vea'")


def test_evaluate_writes_table_figures_and_report(capsys, tmp_path, reference_data):
    out_dir = tmp_path / "alarm"
    code, out, err = run_cli(
        capsys, "alarm", "evaluate", "--model", "mnist_cnn", "--dataset", "mnist", "--data-dir", reference_data,
        "--detector", "mahalanobis", "--detector", "vae:recon", "--sets", "notmnist,uniform_noise",
        "--limit", "300", "--out", out_dir,
    )  # fmt: skip
    assert code == 0, err
    assert "notmnist AUROC" in out
    result = json.loads((out_dir / "results.json").read_text())["results"]["alarm-mnist"]
    assert result["detectors"] == ["mahalanobis", "vae:recon"] and result["sets"] == ["notmnist", "uniform_noise"]
    assert result["metrics"]["vae:recon"]["uniform_noise"]["auroc"] > 0.99
    html = (out_dir / "report.html").read_text()
    assert "Reliability alarm" in html and "OOD inputs accepted when 95% of in-distribution is accepted" in html
    assert len(list((out_dir / "figures").glob("alarm-mnist-*.png"))) == 3


def test_evaluate_tabular_model_on_its_own_ood_file(capsys, tmp_path, reference_data):
    model = tmp_path / "pima.safetensors"
    code, _, err = run_cli(capsys, "train", "--dataset", "pima", "--epochs", "5", "--data-dir", reference_data,
                           "--out", model)  # fmt: skip
    assert code == 0, err
    code, _, err = run_cli(capsys, "alarm", "evaluate", "--model", model, "--dataset", "pima", "--data-dir",
                           reference_data, "--out", tmp_path / "a")  # fmt: skip
    assert_one_line_error(code, err, "pass your own out-of-distribution inputs with --ood-file")
    far = np.random.default_rng(0).random((100, 8)).astype(np.float32) * 1000  # far outside the data
    np.savez(tmp_path / "far.npz", x=far)
    code, out, err = run_cli(capsys, "alarm", "evaluate", "--model", model, "--dataset", "pima", "--data-dir",
                             reference_data, "--ood-file", tmp_path / "far.npz", "--out", tmp_path / "b")  # fmt: skip
    assert code == 0, err
    result = json.loads((tmp_path / "b" / "results.json").read_text())["results"]["alarm-pima"]
    assert result["detectors"] == ["msp", "energy", "maxlogit", "mahalanobis", "knn"]
    assert result["sets"] == ["far"] and result["metrics"]["mahalanobis"]["far"]["auroc"] > 0.99
