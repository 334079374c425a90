from dataclasses import FrozenInstanceError, dataclass

import pytest
import torch

from trustlab.core.results import Result
from trustlab.models.evaluation import AccuracyResult, accuracy_from_predictions
from trustlab.models.training import TrainingResult


@dataclass(frozen=True)
class _Nested(Result):
    kind = "test_nested"
    inner: AccuracyResult
    curve: tuple[float, ...]
    extra: dict


def _accuracy() -> AccuracyResult:
    return accuracy_from_predictions(
        torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), ("x", "y"), dataset="d", split="s"
    )


def test_json_round_trip_including_nesting_and_non_finite_floats():
    original = _Nested(inner=_accuracy(), curve=(0.5, float("inf"), float("-inf")), extra={"a": (1, 2), "b": None})
    text = original.to_json()
    assert "Infinity" not in text and "NaN" not in text  # strict JSON
    back = Result.from_json(text)
    assert back == original and isinstance(back.inner, AccuracyResult)
    nan = Result.from_json(_Nested(inner=_accuracy(), curve=(float("nan"),), extra={}).to_json())
    assert nan.curve[0] != nan.curve[0]


def test_training_result_round_trip():
    result = TrainingResult(
        architecture="mlp",
        dataset="d",
        examples=3,
        epochs=1,
        batch_size=2,
        learning_rate=0.1,
        weight_decay=0.0,
        seed=0,
        augment_shift=0,
        loss=(0.3,),
        accuracy=(1.0,),
        seconds=0.1,
    )
    assert Result.from_dict(result.to_dict()) == result


def test_results_are_frozen_and_reject_non_json_values():
    result = _accuracy()
    with pytest.raises(FrozenInstanceError):
        result.accuracy = 1.0
    bad = _Nested(inner=result, curve=torch.tensor([1.0]), extra={})
    with pytest.raises(TypeError, match="test_nested.curve: Tensor is not JSON-native"):
        bad.to_dict()


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown result kind 'nope'"):
        Result.from_dict({"kind": "nope"})


def test_reading_results_does_not_depend_on_earlier_imports(tmp_path):
    import subprocess
    import sys

    from trustlab.report.run import RunDirectory

    run = RunDirectory(tmp_path)
    run.add("acc", _accuracy())
    code = f"from trustlab.report.run import read_results; print(type(read_results({str(tmp_path)!r})['acc']).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "AccuracyResult", out.stderr
