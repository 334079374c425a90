"""Normalisation a model file does not record: mean=/std= in Python, --mean/--std on the command line,
and a note when neither the file nor the user says."""

import pytest
import torch

from cli_helpers import run_cli
from trustlab.models import load_model, load_reference_model
from trustlab.models.artefacts import normalisation_note
from trustlab.models.reference import MNIST_MEAN, open_classifier

NOTE = "note: no normalisation recorded for sd.pt; inputs are passed as they are (use --mean/--std)"


@pytest.fixture(scope="module")
def state_dict_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sd") / "sd.pt"
    torch.save(load_reference_model().module.state_dict(), path)
    return path


def _evaluate(capsys, tmp_path, model, *extra):
    code, out, err = run_cli(
        capsys, "evaluate", "--model", model, *extra, "--dataset", "mnist", "--split", "sample", "--out", tmp_path
    )
    assert code == 0, err
    return out, err


def test_state_dict_with_mean_and_std_matches_the_reference(capsys, tmp_path, state_dict_file):
    reference, _ = _evaluate(capsys, tmp_path / "ref", "mnist_cnn")
    assert reference.startswith("accuracy 98.80% on mnist/sample")
    out, err = _evaluate(
        capsys, tmp_path / "sd", state_dict_file, "--arch", "mnist_cnn", "--mean", "0.1307", "--std", "0.3081"
    )
    assert out.startswith("accuracy 98.80% on mnist/sample") and err == ""


def test_without_normalisation_a_note_says_so(capsys, tmp_path, state_dict_file):
    out, err = _evaluate(capsys, tmp_path / "raw", state_dict_file, "--arch", "mnist_cnn")
    assert out.startswith("accuracy 98.40% on mnist/sample")  # the bug this option fixes
    assert err.strip().splitlines() == [NOTE]


def test_bad_values_are_refused_on_one_line(capsys, tmp_path, state_dict_file):
    code, _, err = run_cli(
        capsys, "evaluate", "--model", state_dict_file, "--arch", "mnist_cnn", "--std", "0.3,-1",
        "--dataset", "mnist", "--split", "sample", "--out", tmp_path,
    )  # fmt: skip
    assert code == 2 and "every std must be positive" in err
    code, _, err = run_cli(
        capsys, "evaluate", "--model", "mnist_cnn", "--mean", "a,b", "--dataset", "mnist", "--out", tmp_path
    )
    assert code == 2 and "expected comma-separated numbers" in err


def test_python_keywords(state_dict_file):
    plain = load_model(state_dict_file, architecture="mnist_cnn", input_shape=(1, 28, 28))
    assert not plain.normalisation_recorded and normalisation_note(plain, "sd.pt") == NOTE
    given = load_model(state_dict_file, architecture="mnist_cnn", input_shape=(1, 28, 28), mean=0.1307, std=0.3081)
    assert given.normalisation_recorded and normalisation_note(given, "sd.pt") is None
    assert given.describe()["mean"] == pytest.approx([0.1307]) and given.describe()["std"] == pytest.approx([0.3081])
    reference = load_reference_model()
    assert normalisation_note(reference, "mnist_cnn") is None  # artefacts record theirs
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(given.logits(x), reference.logits(x))
    opened, source = open_classifier(str(state_dict_file), arch="mnist_cnn", input_shape=(1, 28, 28), mean=0.1307)
    assert opened.mean.flatten().tolist() == pytest.approx([0.1307]) and opened.std is None
    assert source == str(state_dict_file)
    overridden, _ = open_classifier("mnist_cnn", mean=0.5, std=0.25)  # overrides a recorded normalisation
    assert overridden.mean.item() == 0.5 and overridden.std.item() == 0.25
    per_channel = load_model(state_dict_file, architecture="mnist_cnn", input_shape=(1, 28, 28), mean=[MNIST_MEAN])
    assert per_channel.mean.shape == (1, 1, 1) and per_channel.std is None
    assert per_channel.normalisation_recorded  # the user said: the mean, and no std
