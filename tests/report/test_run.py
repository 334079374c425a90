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
