"""The trustlab command: user mistakes are one line and exit code 2; real work writes runs."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run_cli
from trustlab.data.idx import write_idx


class _TouchOnUnpickle:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("command", ["datasets", "train", "evaluate", "report", "demo"])
def test_every_command_has_help(capsys, command):
    code, out, _ = run_cli(capsys, command, "--help")
    assert code == 0 and "Usage: trustlab " + command in out


def test_datasets_lists_availability(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "datasets", "--data-dir", tmp_path)
    assert code == 0
    assert "mnist:" in out and "sample   bundled" in out and "missing: t10k-images-idx3-ubyte.gz" in out
    assert f"data directory: {tmp_path} (from argument)" in out


def test_demo_writes_a_report(demo_run):
    run, out = demo_run
    assert f"report written to {run / 'report.html'}" in out and "median minimal eps" in out
    assert "audit plan: profile quick" in out and "trust scorecard:" in out and (run / "scorecard.json").is_file()
    html = (run / "report.html").read_text()
    assert "Accuracy (mnist/sample)" in html and "Model card" in html and "Training" in html
    results = json.loads((run / "results.json").read_text())["results"]
    assert results["accuracy-mnist-sample"]["accuracy"] >= 0.97
    assert "Reliability alarm" in html and results["alarm-mnist"]["sets"][0] == "notmnist"
    assert not (run / "checkpoints").exists()


def test_unknown_dataset(capsys, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", "--model", "mnist_cnn", "--dataset", "mnits", "--out", tmp_path)
    assert_one_line_error(code, err, "unknown dataset 'mnits'")


def test_missing_data_offline(capsys, tmp_path):
    code, _, err = run_cli(
        capsys,
        "evaluate",
        "--model",
        "mnist_cnn",
        "--dataset",
        "mnist",
        "--split",
        "test",
        "--data-dir",
        tmp_path / "nowhere",
        "--out",
        tmp_path / "run",
    )
    assert_one_line_error(code, err, "t10k-images-idx3-ubyte.gz", str(tmp_path / "nowhere" / "mnist"))


def test_truncated_idx(capsys, tmp_path):
    folder = tmp_path / "data" / "mnist"
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(10, np.uint8))
    raw = b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 100
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(raw)
    code, _, err = run_cli(
        capsys,
        "evaluate",
        "--model",
        "mnist_cnn",
        "--dataset",
        "mnist",
        "--split",
        "test",
        "--data-dir",
        tmp_path / "data",
        "--out",
        tmp_path / "run",
    )
    assert_one_line_error(code, err, "truncated")


def test_model_input_shape_mismatch(capsys, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", "--model", "mnist_cnn", "--dataset", "digits", "--out", tmp_path)
    assert_one_line_error(code, err, "(1797, 1, 8, 8)", "(N, 1, 28, 28)")


def test_nan_inputs(capsys, tmp_path):
    x = np.random.default_rng(0).random((8, 1, 28, 28)).astype(np.float32)
    x[3, 0, 5, 5] = np.nan
    np.savez(tmp_path / "bad.npz", x=x, y=np.arange(8) % 10)
    code, _, err = run_cli(
        capsys, "evaluate", "--model", "mnist_cnn", "--dataset", tmp_path / "bad.npz", "--out", tmp_path / "r"
    )
    assert_one_line_error(code, err, "1 NaN or infinite values")


def test_missing_model_file_and_bad_option(capsys, tmp_path):
    code, _, err = run_cli(
        capsys, "evaluate", "--model", tmp_path / "nope.pt", "--dataset", "mnist", "--split", "sample"
    )
    assert_one_line_error(code, err, "does not exist")
    code, _, err = run_cli(capsys, "train", "--dataset", "digits", "--epochs", "0", "--out", tmp_path / "m.safetensors")
    assert_one_line_error(code, err, "--epochs")


def test_report_without_results(capsys, tmp_path):
    code, _, err = run_cli(capsys, "report", tmp_path)
    assert_one_line_error(code, err, "no results.json")


def test_train_evaluate_report_round_trip(capsys, tmp_path):
    model = tmp_path / "digits.safetensors"
    code, out, err = run_cli(
        capsys,
        "train",
        "--dataset",
        "digits",
        "--split",
        "train",
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--lr",
        "3e-3",
        "--out",
        model,
        "--run",
        tmp_path / "run",
    )
    assert code == 0, err
    assert model.is_file() and "trained mnist_cnn on digits/train" in out
    code, out, err = run_cli(
        capsys, "evaluate", "--model", model, "--dataset", "digits", "--split", "test", "--out", tmp_path / "run"
    )
    assert code == 0, err
    accuracy = float(out.split("accuracy ")[1].split("%")[0])
    assert accuracy > 80
    code, out, err = run_cli(capsys, "report", tmp_path / "run")
    assert code == 0 and (tmp_path / "run" / "report.html").is_file()
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Training" in html and "Accuracy (digits/test)" in html


def test_pickle_that_would_create_a_file_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "created-by-unpickling"
    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps(_TouchOnUnpickle(marker)))
    env = {**os.environ, "TRUSTLAB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trustlab.cli",
            "--quiet",
            "evaluate",
            "--model",
            str(evil),
            "--dataset",
            "mnist",
            "--split",
            "sample",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "full pickle" in proc.stderr and "--allow-pickle" in proc.stderr
    assert not marker.exists()


def test_robustness_command_writes_results_and_report(capsys, tmp_path):
    code, out, err = run_cli(
        capsys,
        "robustness",
        "--model",
        "mnist_cnn",
        "--dataset",
        "mnist",
        "--split",
        "sample",
        "--limit",
        "48",
        "--eps",
        "0.1",
        "--regions",
        "--eps-max",
        "1.0",
        "--tol",
        "0.01",
        "--out",
        tmp_path / "run",
    )
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())["results"]
    assert {"robustness-fgsm-mnist-sample", "robust-accuracy-fgsm-mnist-sample", "regions-fgsm-mnist-sample"} <= set(
        results
    )
    search = results["robustness-fgsm-mnist-sample"]
    assert len(search["eps_star"]) == 48 and len(search["per_class"]) == 10
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Robustness: fgsm (mnist/sample)" in html and "Object vs background" in html
    assert "median minimal eps" in out and not (tmp_path / "run" / "checkpoints").exists()


def test_robustness_rejects_options_the_attack_does_not_take(capsys, tmp_path):
    code, _, err = run_cli(
        capsys,
        "robustness",
        "--model",
        "mnist_cnn",
        "--dataset",
        "mnist",
        "--split",
        "sample",
        "--attack",
        "fgsm",
        "--steps",
        "5",
        "--out",
        tmp_path,
    )
    assert_one_line_error(code, err, "attack fgsm does not take --steps")


def test_adversarial_training_from_the_cli(capsys, tmp_path):
    code, out, err = run_cli(
        capsys,
        "train",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--adversarial",
        "fgsm-rs",
        "--adv-eps",
        "0.1",
        "--out",
        tmp_path / "robust.safetensors",
        "--run",
        tmp_path / "run",
    )
    assert code == 0, err
    training = json.loads((tmp_path / "run" / "results.json").read_text())["results"]["training"]
    assert training["adversary"].startswith("FGSM(") and training["adversary_eps"] == 0.1


def test_regions_on_a_model_grad_cam_cannot_read_fails_before_any_search(capsys, tmp_path):
    import torch
    from torch import nn

    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    torch.jit.save(torch.jit.trace(mlp, torch.rand(2, 1, 28, 28)), tmp_path / "mlp.pt")
    code, _, err = run_cli(
        capsys, "robustness", "--model", tmp_path / "mlp.pt", "--dataset", "mnist", "--split", "sample",
        "--mean", "0", "--std", "1", "--regions", "--out", tmp_path / "run",
    )  # fmt: skip
    assert_one_line_error(code, err, "--gradcam-layer")
    assert not (tmp_path / "run").exists()
