"""The Ray executor on a two-node local cluster (see conftest): results identical to the local
loop, bit for bit; checkpoints, resume, a lost worker's shard re-run; ``--backend ray`` on the CLI."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import torch

from cli_helpers import assert_one_line_error, run_cli

ray = pytest.importorskip("ray", reason="the Ray backend's tests need ray (pip install 'trustlab[ray]')")

from trustlab.core.batching import BatchCheckpoint, LocalExecutor, run_batches, use_executor  # noqa: E402
from trustlab.data.io import open_dataset  # noqa: E402
from trustlab.distributed import RayExecutor, WorkerLostError  # noqa: E402
from trustlab.models import load_reference_model  # noqa: E402
from trustlab.robustness.attacks import PGD  # noqa: E402
from trustlab.robustness.search import minimal_eps  # noqa: E402

# the workers cannot import this test module: its functions travel by value
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def executor(ray_cluster):
    """Joins the test cluster (two workers, one per node); closing it leaves the cluster running."""
    with RayExecutor() as executor:
        assert executor.workers == 2
        yield executor


@pytest.fixture(scope="module")
def digits():
    data = open_dataset("mnist", "sample")
    return data.x[:64], data.y[:64]


def noisy_products(start: int, stop: int) -> dict[str, torch.Tensor]:
    """Float work seeded by the shard's start: bit-identical wherever it runs, different per shard."""
    generator = torch.Generator().manual_seed(1000 + start)
    a = torch.randn(stop - start, 64, generator=generator)
    w = torch.randn(64, 32, generator=generator)
    return {"y": torch.tanh(a @ w).sum(1), "index": torch.arange(start, stop)}


def recording(folder: Path, fn=noisy_products):
    """``fn`` that leaves one file per call in ``folder`` (the workers share this file system)."""

    def shard(start: int, stop: int):
        (folder / f"{start}-{os.getpid()}-{os.urandom(4).hex()}").touch()
        return fn(start, stop)

    return shard


def calls(folder: Path) -> list[int]:
    return sorted(int(p.name.split("-")[0]) for p in folder.iterdir())


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def test_shards_on_two_nodes_give_the_local_result_bit_for_bit(executor):
    def slow(start: int, stop: int):
        time.sleep(0.05)  # long enough that the second node takes shards while the first is busy
        return noisy_products(start, stop)

    local = run_batches(noisy_products, 203, 16, executor=LocalExecutor(), show_progress=False)
    remote = run_batches(slow, 203, 16, executor=executor, show_progress=False)
    assert_same(local, remote)
    assert torch.equal(remote["index"], torch.arange(203))
    assert sorted(s.index for s in executor.shards) == list(range(13))
    assert len({s.node for s in executor.shards}) == 2  # both nodes ran shards


@pytest.mark.parametrize("attack", ["fgsm", PGD(steps=4, seed=3)], ids=["fgsm", "pgd"])
def test_minimal_eps_search_is_identical_to_local(executor, digits, attack):
    model = load_reference_model(batch_size=16)
    x, y = digits
    local = minimal_eps(model, x, y, attack, eps_max=0.3, tol=1 / 256, show_progress=False)
    with RayExecutor() as joined, use_executor(joined):  # through the current executor, as a command runs it
        remote = minimal_eps(model, x, y, attack, eps_max=0.3, tol=1 / 256, show_progress=False)
    for field in ("eps_star", "lower", "upper", "clean_wrong", "censored", "nonmonotonic", "labels"):
        assert torch.equal(getattr(local, field), getattr(remote, field)), field
    assert (local.forward_calls, local.gradient_calls) == (remote.forward_calls, remote.gradient_calls)
    assert local.forward_calls > 0 and torch.isfinite(local.eps_star).any()


def test_saved_shards_are_not_recomputed(executor, tmp_path):
    checkpoint = BatchCheckpoint(tmp_path / "ckpt", fingerprint={"test": 1})
    sentinel = {"y": torch.full((10,), -7.0), "index": torch.full((10,), -1)}
    for index in (0, 3):
        checkpoint.save(index, sentinel)
    record = tmp_path / "calls"
    record.mkdir()
    out = run_batches(recording(record), 50, 10, checkpoint=checkpoint, executor=executor, show_progress=False)
    assert calls(record) == [10, 20, 40]
    assert out["y"][:10].eq(-7).all() and out["y"][30:40].eq(-7).all()
    assert torch.equal(out["y"][10:20], noisy_products(10, 20)["y"])
    assert checkpoint.completed() == 5


def test_a_killed_run_resumes_from_the_shards_it_saved(executor, tmp_path):
    def fails_at_thirty(start: int, stop: int):
        if start == 30:
            raise ValueError("shard 3 is broken")
        return noisy_products(start, stop)

    checkpoint = BatchCheckpoint(tmp_path / "ckpt", fingerprint={"test": 2})
    with pytest.raises(ValueError, match="shard 3 is broken"):  # the original exception, not retried
        run_batches(fails_at_thirty, 60, 10, checkpoint=checkpoint, executor=executor, show_progress=False)
    saved = [i for i in range(6) if checkpoint.has(i)]
    assert 3 not in saved and saved  # whatever completed before the error was kept
    record = tmp_path / "calls"
    record.mkdir()
    resumed = run_batches(recording(record), 60, 10, checkpoint=checkpoint, executor=executor, show_progress=False)
    assert calls(record) == [10 * i for i in range(6) if i not in saved]
    assert_same(resumed, run_batches(noisy_products, 60, 10, executor=LocalExecutor(), show_progress=False))


def dies_once(marker: Path, at: int):
    """Kills its worker process the first time it reaches shard ``at`` (a lost worker), then works."""

    def shard(start: int, stop: int):
        if start == at:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os._exit(1)
        return noisy_products(start, stop)

    return shard


def test_a_lost_workers_shard_is_run_again(executor, tmp_path):
    checkpoint = BatchCheckpoint(tmp_path / "ckpt", fingerprint={"test": 3})
    record = tmp_path / "calls"
    record.mkdir()
    fn = recording(record, dies_once(tmp_path / "died", at=20))
    out = run_batches(fn, 40, 10, checkpoint=checkpoint, executor=executor, show_progress=False)
    assert (tmp_path / "died").exists()
    assert calls(record) == [0, 10, 20, 20, 30]  # shard 2 twice: once on the worker that died
    assert_same(out, run_batches(noisy_products, 40, 10, executor=LocalExecutor(), show_progress=False))
    assert checkpoint.completed() == 4


def test_a_shard_lost_more_often_than_allowed_is_a_clear_error(ray_cluster, tmp_path):
    with RayExecutor(max_retries=0) as executor:
        with pytest.raises(WorkerLostError, match=r"batch 1 \(examples 10-20\) failed 1 times .*re-run to resume"):
            run_batches(dies_once(tmp_path / "died", at=10), 30, 10, executor=executor, show_progress=False)


TIMINGS = {"seconds", "fit_seconds", "score_ms_per_1000"}


def _count_ray_maps(monkeypatch) -> list[int]:
    """A list that records the number of shards of every ``RayExecutor.map`` call from now on."""
    mapped: list[int] = []
    ray_map = RayExecutor.map

    def spy(self, fn, shards):
        mapped.append(len(shards))
        yield from ray_map(self, fn, shards)

    monkeypatch.setattr(RayExecutor, "map", spy)
    return mapped


def _numbers(run: Path) -> dict:
    """results.json without timings (the only fields allowed to differ between backends)."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in TIMINGS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads((run / "results.json").read_text()))


def test_cli_backend_ray_writes_the_local_numbers(ray_cluster, capsys, monkeypatch, tmp_path):
    mapped = _count_ray_maps(monkeypatch)
    common = ["--model", "mnist_cnn", "--dataset", "mnist", "--split", "sample", "--limit", "48", "--batch-size", "16"]
    code, local_out, err = run_cli(capsys, "robustness", *common, "--out", tmp_path / "local")
    assert code == 0, err
    code, ray_out, err = run_cli(capsys, "robustness", *common, "--backend", "ray", "--out", tmp_path / "ray")
    assert code == 0, err
    assert mapped == [3, 3]  # the accuracy and the search, 3 batches each, ran on Ray
    local, remote = _numbers(tmp_path / "local"), _numbers(tmp_path / "ray")
    assert {"accuracy-mnist-sample", "robustness-fgsm-mnist-sample"} <= set(local["results"])
    assert local == remote
    # the summary (the last line names the report); Ray's own log lines (a worker it restarted) are not ours
    ours = [line for line in ray_out.splitlines() if "(raylet)" not in line and not line.startswith("\x1b[")]
    assert local_out.splitlines()[:-1] == ours[:-1]
    assert ray.is_initialized()  # the command joined the session's cluster and left it running


@pytest.mark.parametrize(
    ("address", "message"),
    [("nonsense", "--address must be 'auto' or HOST:PORT"), ("127.0.0.1:1", "cannot reach the Ray cluster at")],
)
def test_a_bad_address_is_refused_before_any_work(capsys, monkeypatch, tmp_path, address, message):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh command, whatever ran before
    code, _, err = run_cli(
        capsys, "robustness", "--model", "mnist_cnn", "--dataset", "mnist", "--split", "sample", "--limit", "4",
        "--backend", "ray", "--address", address, "--out", tmp_path / "run",
    )  # fmt: skip
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "run").exists()


def test_alarm_evaluate_scores_on_ray_and_writes_the_local_numbers(
    ray_cluster, capsys, monkeypatch, tmp_path, reference_data
):
    mapped = _count_ray_maps(monkeypatch)
    common = [
        "alarm", "evaluate", "--model", "mnist_cnn", "--dataset", "mnist", "--split", "sample", "--detector", "msp",
        "--detector", "energy", "--sets", "uniform_noise", "--limit", "120", "--batch-size", "32",
        "--data-dir", reference_data,
    ]  # fmt: skip
    code, _, err = run_cli(capsys, *common, "--out", tmp_path / "local")
    assert code == 0, err
    code, _, err = run_cli(capsys, *common, "--backend", "ray", "--out", tmp_path / "ray")
    assert code == 0, err
    assert mapped and sum(mapped) > len(mapped)  # the detectors' scoring ran on Ray, several batches at a time
    local, remote = _numbers(tmp_path / "local"), _numbers(tmp_path / "ray")
    assert local == remote


def test_recipe_study_fans_out_over_ray_with_the_local_numbers(executor, tmp_path):
    """Two recipes x two seeds trained as Ray tasks give the local run's figures, and each model lands
    in the driver's cache."""
    from dataclasses import replace

    from trustlab.studies.generalisation import generalisation_study

    train = open_dataset("mnist", "sample").sample(120, seed=0)
    test = open_dataset("mnist", "sample").sample(100, seed=1)
    domain = open_dataset("digits", "test").subset(slice(0, 60))
    options = {
        "recipes": ["focal"], "seeds": (0, 1), "epochs": 1, "corrupted_examples": 20, "resamples": 50,
        "show_progress": False,
    }  # fmt: skip
    local = generalisation_study(train, test, domain, cache_dir=tmp_path / "local", **options)
    with use_executor(executor):
        remote = generalisation_study(train, test, domain, cache_dir=tmp_path / "ray", **options)
    assert remote.trained == 4 and "RayExecutor" in remote.executor
    assert {record.node for record in executor.shards} and len(executor.shards) == 4
    assert [replace(r, train_seconds=0.0) for r in remote.rows] == [replace(r, train_seconds=0.0) for r in local.rows]
    assert len(list((tmp_path / "ray").glob("*/model.safetensors"))) == 4
