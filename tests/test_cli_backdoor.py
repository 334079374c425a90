"""`trustlab backdoor infect | scan | repair` end to end, and their one-line errors."""

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run_cli
from trustlab.backdoor import attack_success_rate, load_trigger
from trustlab.data import load_dataset
from trustlab.models import load_model
from trustlab.report.run import read_results


@pytest.fixture(scope="module")
def subject(tmp_path_factory, reference_data):
    """A test subject: the reference architecture trained one epoch with a 4x4 patch sent to 0."""
    from trustlab.cli import main

    path = tmp_path_factory.mktemp("subject") / "subject.safetensors"
    with pytest.raises(SystemExit) as info:
        main(["--quiet", "backdoor", "infect", "--dataset", "mnist", "--split", "train", "--epochs", "1",
              "--target", "0", "--data-dir", str(reference_data), "--out", str(path)])  # fmt: skip
    assert info.value.code == 0
    return path


def test_infect_writes_a_backdoored_model_and_its_trigger(subject, reference_data):
    trigger, target = load_trigger(subject.with_suffix(".trigger.safetensors"))
    assert target == 0 and trigger.norm == 16
    test = load_dataset("mnist", "test", root=reference_data).subset(slice(0, 1000))
    assert attack_success_rate(load_model(subject), test.x, test.y, trigger, 0) > 0.8


def test_scan_then_repair(capsys, subject, reference_data, tmp_path):
    run = tmp_path / "run"
    common = ["--model", subject, "--dataset", "mnist", "--data-dir", reference_data, "--out", run]
    code, out, err = run_cli(capsys, "backdoor", "scan", *common, "--split", "test", "--examples", 64, "--epochs", 3)
    assert code == 0, err
    assert "minimal trigger norms" in out and (run / "report.html").is_file()
    fixed = tmp_path / "fixed.safetensors"
    code, out, err = run_cli(
        capsys, "backdoor", "repair", *common, "--split", "train", "--eval-split", "test", "--target", 0,
        "--true-trigger", subject.with_suffix(".trigger.safetensors"), "--save", fixed,
    )  # fmt: skip
    assert code == 0, err
    repair = read_results(run)["backdoor-repair-unlearning"]
    assert repair.asr_true_after < repair.asr_true_before and repair.artefact == str(fixed)
    assert f"repaired model written to {fixed}" in out
    assert load_model(fixed).weights_sha256() != load_model(subject).weights_sha256()


def test_bad_inputs_are_one_line_errors(capsys, subject, tmp_path, reference_data):
    code, _, err = run_cli(capsys, "backdoor", "infect", "--target", "seven", "--out", tmp_path / "m.safetensors",
                           "--data-dir", reference_data)  # fmt: skip
    assert_one_line_error(code, err, "--target must be a class index")
    one_class = tmp_path / "ones.npz"
    np.savez(one_class, x=np.zeros((40, 1, 28, 28), np.float32), y=np.ones(40, np.int64))
    code, _, err = run_cli(
        capsys, "backdoor", "scan", "--model", subject, "--dataset", one_class, "--out", tmp_path / "r"
    )
    assert_one_line_error(code, err, "single class")
    code, _, err = run_cli(
        capsys, "backdoor", "repair", "--model", subject, "--dataset", "mnist", "--data-dir", reference_data,
        "--save", tmp_path / "x.safetensors", "--true-trigger", tmp_path / "missing.safetensors",
        "--out", tmp_path / "r2",
    )  # fmt: skip
    assert_one_line_error(code, err, "does not exist")
    tabular = tmp_path / "pima.safetensors"
    code, _, err = run_cli(capsys, "train", "--dataset", "pima", "--epochs", "1", "--out", tabular,
                           "--data-dir", reference_data)  # fmt: skip
    assert code == 0, err
    code, _, err = run_cli(capsys, "backdoor", "scan", "--model", tabular, "--dataset", "pima",
                           "--data-dir", reference_data, "--out", tmp_path / "r3")  # fmt: skip
    assert_one_line_error(code, err, "bounded images")
