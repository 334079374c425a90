"""The executor seam in ``trustlab.core.batching``, without Ray: order, checkpoints, counters,
the current executor, and the CLI's backend options."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest
import torch

from cli_helpers import assert_one_line_error, run_cli
from trustlab.core.batching import (
    BatchCheckpoint,
    Executor,
    LocalExecutor,
    add_counts,
    closure_counters,
    counter_values,
    current_executor,
    run_batches,
    use_executor,
)


def squares(calls: list[int] | None = None):
    def fn(start: int, stop: int) -> dict[str, torch.Tensor]:
        if calls is not None:
            calls.append(start)
        index = torch.arange(start, stop)
        return {"square": index**2, "odd": index % 2 == 1}

    return fn


class Reversed(Executor):
    """Finishes the shards last-first, as a remote executor may."""

    def map(self, fn, shards):
        for shard in reversed(shards):
            yield shard.index, fn(shard.start, shard.stop)


class Twice(Executor):
    def map(self, fn, shards):
        for shard in shards:
            yield shard.index, fn(shard.start, shard.stop)
            yield shard.index, fn(shard.start, shard.stop)


class Forgets(Executor):
    def map(self, fn, shards):
        yield shards[0].index, fn(shards[0].start, shards[0].stop)


def test_concatenation_is_in_batch_order_whatever_the_completion_order(tmp_path):
    expected = torch.arange(10) ** 2
    checkpoint = BatchCheckpoint(tmp_path / "ckpt", fingerprint={"f": 1})
    out = run_batches(squares(), 10, 3, checkpoint=checkpoint, executor=Reversed(), show_progress=False)
    assert torch.equal(out["square"], expected)
    assert torch.equal(out["odd"], torch.arange(10) % 2 == 1)
    assert checkpoint.completed() == 4  # every shard saved as it arrived
    assert torch.equal(checkpoint.load(3)["square"], torch.tensor([81]))


def test_saved_batches_are_not_handed_to_the_executor(tmp_path):
    checkpoint = BatchCheckpoint(tmp_path / "ckpt", fingerprint={"f": 1})
    checkpoint.save(1, {"square": torch.full((3,), -1), "odd": torch.zeros(3, dtype=torch.bool)})
    calls: list[int] = []
    out = run_batches(squares(calls), 10, 3, checkpoint=checkpoint, executor=Reversed(), show_progress=False)
    assert sorted(calls) == [0, 6, 9]
    assert out["square"][3:6].tolist() == [-1, -1, -1]  # loaded, not recomputed
    assert out["square"][6:].tolist() == [36, 49, 64, 81]


def test_an_executor_breaking_the_contract_is_an_error():
    with pytest.raises(RuntimeError, match="came twice"):
        run_batches(squares(), 6, 3, executor=Twice(), show_progress=False)
    with pytest.raises(RuntimeError, match=r"never returned batches \[1\]"):
        run_batches(squares(), 6, 3, executor=Forgets(), show_progress=False)


def test_use_executor_sets_the_current_one_and_restores_it():
    calls: list[int] = []
    assert isinstance(current_executor(), LocalExecutor)
    with use_executor(Reversed()) as executor:
        assert current_executor() is executor
        run_batches(squares(calls), 9, 3, show_progress=False)
        with use_executor(LocalExecutor()):
            run_batches(squares(calls), 9, 3, show_progress=False)
    assert calls == [6, 3, 0, 0, 3, 6]
    assert isinstance(current_executor(), LocalExecutor)
    with pytest.raises(TypeError, match="expected an Executor"):
        with use_executor("ray"):
            pass


def test_an_error_in_a_shard_keeps_the_batches_saved_before_it(tmp_path):
    def fails_at_six(start: int, stop: int):
        if start == 6:
            raise ValueError("boom")
        return squares()(start, stop)

    checkpoint = BatchCheckpoint(tmp_path / "ckpt", fingerprint={"f": 1})
    with pytest.raises(ValueError, match="boom"):
        run_batches(fails_at_six, 10, 3, checkpoint=checkpoint, show_progress=False)
    assert [checkpoint.has(i) for i in range(4)] == [True, True, False, False]


@dataclass
class Calls:
    forward: int = 0
    gradient: int = 0


@dataclass
class Settings:
    name: str = "x"
    steps: int = 3


def test_closure_counters_are_the_int_dataclasses_a_function_closes_over():
    calls, settings, plain = Calls(), Settings(), 5

    def fn(start: int, stop: int):
        calls.forward += stop - start + settings.steps + plain
        return {}

    assert closure_counters(fn) == [calls]  # Settings has a str field: not a counter
    assert closure_counters(len) == []
    before = counter_values([calls])
    fn(0, 4)
    assert counter_values([calls]) == [[12, 0]] and before == [[0, 0]]
    add_counts([calls], [[3, 2]])
    assert (calls.forward, calls.gradient) == (15, 2)


def test_backend_local_takes_no_ray_options(capsys, tmp_path):
    code, _, err = run_cli(
        capsys, "robustness", "--model", "mnist_cnn", "--dataset", "mnist", "--split", "sample", "--limit", "4",
        "--address", "auto", "--out", tmp_path / "run",
    )  # fmt: skip
    assert_one_line_error(code, err, "--address is only used with --backend ray")


def test_backend_ray_without_ray_is_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is absent
    code, _, err = run_cli(
        capsys, "robustness", "--model", "mnist_cnn", "--dataset", "mnist", "--split", "sample", "--limit", "4",
        "--backend", "ray", "--out", tmp_path / "run",
    )  # fmt: skip
    assert_one_line_error(code, err, "needs Ray, which is not installed", "pip install 'trustlab[ray]'")
    assert not (tmp_path / "run").exists()  # refused before any work


@pytest.mark.parametrize("command", [("audit",), ("robustness",), ("alarm", "evaluate")])
def test_the_backend_options_are_on_every_command_that_batches(capsys, command):
    code, out, _ = run_cli(capsys, *command, "--help")
    assert code == 0
    assert "--backend [local|ray]" in out and "--address" in out and "--workers" in out
