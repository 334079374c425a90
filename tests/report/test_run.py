import json
import os

import pytest
import torch

from trustlab.core.exceptions import RunDirectoryError
from trustlab.core.files import atomic_write_text
from trustlab.data import load_dataset
from trustlab.models.evaluation import evaluate
from trustlab.report.run import RunDirectory, read_results


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    atomic_write_text(target, "old")

    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new and longer")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["results.json"]  # no temp files left behind


def test_run_directory_persists_results_and_manifest(tmp_path, tiny_cnn):
    data = load_dataset("mnist", "sample").subset(slice(0, 64))
    run = RunDirectory(tmp_path / "run", seed=7, command=["trustlab", "evaluate"])
    run.describe_model(tiny_cnn, source="tiny")
    run.describe_data(data)
    with run.timed("accuracy"):
        result = evaluate(tiny_cnn, data, show_progress=False)
    run.add("accuracy", result)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["seed"] == 7 and manifest["command"] == ["trustlab", "evaluate"]
    assert manifest["torch"] == torch.__version__ and manifest["trustlab"]
    assert manifest["model"]["weights_sha256"] == tiny_cnn.weights_sha256()
    assert manifest["data"]["mnist/sample"]["sha256"] == data.sha256
    assert manifest["timings"]["accuracy"] >= 0
    assert read_results(tmp_path / "run") == {"accuracy": result}
    reopened = RunDirectory(tmp_path / "run")
    assert reopened.results == {"accuracy": result} and reopened.manifest["seed"] == 7


class Killed(Exception):
    """Stands in for the process being killed mid-batch."""


def test_killed_evaluation_resumes_from_the_last_completed_batch(tmp_path, tiny_cnn):
    data = load_dataset("mnist", "sample").subset(slice(0, 100))
    expected = evaluate(tiny_cnn, data, batch_size=20, show_progress=False)
    calls = []
    dying = True
    original = tiny_cnn.forward

    def dying_forward(x):
        calls.append(len(x))
        if len(calls) == 3 and dying:
            raise Killed  # killed during the third batch
        return original(x)

    run = RunDirectory(tmp_path / "run")
    fingerprint = {"model": tiny_cnn.weights_sha256(), "data": data.sha256, "batch_size": 20}
    tiny_cnn.forward = dying_forward
    with pytest.raises(Killed):
        evaluate(tiny_cnn, data, batch_size=20, checkpoint=run.checkpoint("acc", fingerprint), show_progress=False)
    assert run.checkpoint("acc", fingerprint).completed() == 2
    calls.clear()
    dying = False
    resumed = evaluate(
        tiny_cnn, data, batch_size=20, checkpoint=run.checkpoint("acc", fingerprint), show_progress=False
    )
    assert calls == [20, 20, 20]  # only the three batches that had not completed
    assert resumed == expected


def test_resume_with_other_inputs_is_refused(tmp_path):
    run = RunDirectory(tmp_path)
    run.checkpoint("acc", {"model": "a", "data": "x"})
    with pytest.raises(RunDirectoryError, match="made with different model"):
        run.checkpoint("acc", {"model": "b", "data": "x"})


def test_read_results_errors(tmp_path):
    with pytest.raises(RunDirectoryError, match="no results.json"):
        read_results(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(RunDirectoryError, match="not a trustlab results file"):
        read_results(tmp_path)


def test_one_run_directory_audits_one_model(tmp_path, tiny_cnn):
    from trustlab.models import load_reference_model

    run = RunDirectory(tmp_path)
    run.describe_model(tiny_cnn, source="tiny")
    run.add("accuracy", evaluate(tiny_cnn, load_dataset("mnist", "sample").subset(slice(0, 10)), show_progress=False))
    run.describe_model(tiny_cnn, source="tiny again")  # same weights: fine
    with pytest.raises(RunDirectoryError, match="holds results for another model"):
        run.describe_model(load_reference_model(), source="reference")


def test_a_run_that_failed_before_any_result_does_not_claim_its_folder(tmp_path, tiny_cnn):
    """The model card is written before the evaluation; an evaluation that then fails (here:
    killed mid-way, leaving a checkpoint made with that model) must not keep the folder."""
    from trustlab.models import load_reference_model
    from trustlab.models.checks import run_accuracy

    data = load_dataset("mnist", "sample").subset(slice(0, 40))
    reference = load_reference_model()
    original = reference.forward
    calls = []

    def dying_forward(x):
        calls.append(len(x))
        if len(calls) == 2:
            raise Killed
        return original(x)

    reference.forward = dying_forward
    with pytest.raises(Killed):
        run_accuracy(RunDirectory(tmp_path, command=["trustlab", "evaluate", "reference"]), reference, data,
                     source="reference", batch_size=20)  # fmt: skip
    assert set(read_results(tmp_path)) == {"model_card"} and (tmp_path / "checkpoints").is_dir()
    run = RunDirectory(tmp_path, command=["trustlab", "evaluate", "tiny"])
    result = run_accuracy(run, tiny_cnn, data, source="tiny", batch_size=20)  # another model: taken over
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["model"] == {
        "source": "tiny",
        "architecture": "mnist_cnn",
        "weights_sha256": tiny_cnn.weights_sha256(),
    }
    results = read_results(tmp_path)
    assert results["model_card"].weights_sha256 == tiny_cnn.weights_sha256()
    assert results[f"accuracy-{data.name}-{data.split}"] == result
    assert result == evaluate(tiny_cnn, data, show_progress=False)  # nothing of the other model's batches
    with pytest.raises(RunDirectoryError, match=r"holds results for another model \(weights sha256 .*accuracy-mnist"):
        RunDirectory(tmp_path).describe_model(reference, source="reference")  # now it holds a result


def test_a_failed_checks_record_does_not_claim_the_folder(tmp_path, tiny_cnn):
    from trustlab.audit.plan import CheckFailure
    from trustlab.models import load_reference_model

    run = RunDirectory(tmp_path)
    run.describe_model(tiny_cnn, source="tiny")
    run.add("failed-alarm", CheckFailure("alarm", "OOD alarm", "InputError", "too few examples", True, ""))
    run.describe_model(load_reference_model(), source="reference")  # nothing was measured: taken over
    assert run.results == {} and read_results(tmp_path) == {}
    run.add("accuracy", evaluate(tiny_cnn, load_dataset("mnist", "sample").subset(slice(0, 10)), show_progress=False))
    with pytest.raises(RunDirectoryError, match="holds results for another model"):
        run.describe_model(tiny_cnn, source="tiny")


def test_every_command_that_wrote_into_a_run_is_kept(tmp_path):
    RunDirectory(tmp_path, command=["trustlab", "evaluate", "--model", "a"])
    RunDirectory(tmp_path)  # a reader: records no command
    RunDirectory(tmp_path, command=["trustlab", "robustness", "--model", "a"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [c["command"] for c in manifest["commands"]] == [
        ["trustlab", "evaluate", "--model", "a"],
        ["trustlab", "robustness", "--model", "a"],
    ]
    assert all(c["time"].endswith("+00:00") for c in manifest["commands"])
    assert manifest["command"] == ["trustlab", "robustness", "--model", "a"]  # the latest, as before


def test_a_manifest_from_before_the_command_list_keeps_its_command(tmp_path):
    legacy = {"created": "2024-01-01T00:00:00+00:00", "updated": "2024-01-02T00:00:00+00:00", "model": {},
              "data": {}, "timings": {}, "command": ["trustlab", "demo"]}  # fmt: skip
    (tmp_path / "manifest.json").write_text(json.dumps(legacy))
    run = RunDirectory(tmp_path, command=["trustlab", "report"])
    assert run.manifest["commands"] == [
        {"command": ["trustlab", "demo"], "time": "2024-01-02T00:00:00+00:00"},
        {"command": ["trustlab", "report"], "time": run.manifest["commands"][1]["time"]},
    ]
