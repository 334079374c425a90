"""The second digit domain: upsampling 8x8 digits to MNIST's convention, zero-shot accuracy of the
reference model, fine-tuning a copy (never the original), the bootstrap interval, JSON round trip
and the report section's numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trustlab.capabilities import load_views
from trustlab.core import format as fmt
from trustlab.core.exceptions import InputError
from trustlab.core.results import Result
from trustlab.core.stats import wilson_interval
from trustlab.core.views import render_sections, summary_lines
from trustlab.data import load_dataset
from trustlab.models import Classifier, load_reference_model
from trustlab.shift import TransferResult, TransferRow, domain_transfer, upsample_digits
from trustlab.shift.domain import few_shot_indices, last_linear, seeds_by_examples_interval


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """The module trains small models (see ``one_thread``)."""


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


def _tiny(seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))
    return Classifier(module, input_shape=(1, 28, 28), num_classes=10, bounds=(0.0, 1.0))


def test_upsample_shape_range_and_border(digits):
    train, _ = digits
    assert tuple(train.x.shape[1:]) == (1, 8, 8) and float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0
    up = upsample_digits(train.subset(slice(0, 20)))
    assert tuple(up.x.shape) == (20, 1, 28, 28) and up.x.dtype == torch.float32
    assert float(up.x.min()) >= 0.0 and float(up.x.max()) <= 1.0 and up.bounds == (0.0, 1.0)
    assert torch.equal(up.y, train.y[:20])
    border = torch.ones(28, 28, dtype=torch.bool)
    border[4:24, 4:24] = False
    assert float(up.x[:, 0][:, border].abs().max()) == 0.0  # MNIST's 4-pixel black border
    # a white frame fills the 20x20 box exactly; one lit pixel at the frame's centre lands at the image's centre
    full = upsample_digits(torch.ones(1, 8, 8))[0, 0]
    assert torch.allclose(full[4:24, 4:24], torch.ones(20, 20)) and full.sum() == pytest.approx(400.0)
    dot = torch.zeros(1, 1, 8, 8)
    dot[..., 3:5, 3:5] = 1.0
    image = upsample_digits(dot)[0, 0]
    grid = torch.arange(28, dtype=torch.float32)
    assert float((image.sum(1) * grid).sum() / image.sum()) == pytest.approx(13.5, abs=1e-4)
    assert float((image.sum(0) * grid).sum() / image.sum()) == pytest.approx(13.5, abs=1e-4)
    # white digit on black, like MNIST: the ink is high, the background 0
    assert float(up.x[:, 0, 14, 2].abs().max()) == 0.0 and float(up.x.mean()) < 0.3


def test_upsample_rejects_other_shapes_and_ranges():
    with pytest.raises(InputError, match="8 x 8"):
        upsample_digits(torch.zeros(2, 1, 28, 28))
    with pytest.raises(InputError, match="values in"):
        upsample_digits(torch.full((2, 8, 8), 16.0))  # raw UCI counts, not scaled


def test_zero_shot_of_the_reference_model_is_above_chance(digits):
    _, test = digits
    result = domain_transfer(
        load_reference_model(), "mnist_cnn", test, test.subset(slice(0, 120)), shots=(), show_progress=False
    )
    zero = result.zero_shot
    assert zero.mode == "zero-shot" and zero.examples == 120 and len(result.rows) == 1
    assert zero.accuracy > 0.5  # chance is 0.1
    assert zero.interval == wilson_interval(zero.correct[0], 120)


def test_fine_tuning_improves_a_copy_and_leaves_the_original_alone(digits):
    train, test = digits
    model = _tiny()
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    result = domain_transfer(
        model, "tiny", train, test.subset(slice(0, 150)), shots=(20,), modes=("last_layer", "full"), seeds=(0, 1),
        epochs=15, batch_size=20, learning_rate=1e-2, resamples=200, show_progress=False,
    )  # fmt: skip
    after = model.module.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in model.module.parameters())
    zero = result.zero_shot.accuracy
    for mode in ("last_layer", "full"):
        row = result.row(20, mode)
        assert row.train_examples == 200 and row.seeds == (0, 1) and len(row.correct) == 2
        assert row.accuracy > zero + 0.3, (mode, row.accuracy, zero)
        assert row.accuracy_low <= row.accuracy <= row.accuracy_high
    assert result.row(20, "full").accuracy > result.row(20, "last_layer").accuracy - 0.2


def test_last_layer_mode_changes_only_the_last_linear(digits):
    from trustlab.shift.domain import fine_tune_copy

    train, _ = digits
    up = upsample_digits(train.subset(slice(0, 60)))
    model = _tiny()
    tuned = fine_tune_copy(model, up.x, up.y, mode="last_layer", seed=0, epochs=2, batch_size=20, learning_rate=1e-2)
    old, new = model.module.state_dict(), tuned.module.state_dict()
    assert torch.equal(old["1.weight"], new["1.weight"]) and not torch.equal(old["3.weight"], new["3.weight"])
    assert last_linear(tuned.module) is tuned.module[3]


def test_few_shot_indices_draw_per_class():
    labels = torch.arange(10).repeat(30)
    index = few_shot_indices(labels, 5, 0, 10)
    assert torch.equal(torch.bincount(labels[index], minlength=10), torch.full((10,), 5))
    assert not torch.equal(index, few_shot_indices(labels, 5, 1, 10))
    assert torch.equal(index, few_shot_indices(labels, 5, 0, 10))
    assert few_shot_indices(labels, None, 0, 10).numel() == 300


def test_seeds_by_examples_interval():
    assert seeds_by_examples_interval(np.ones((3, 50))) == (1.0, 1.0)
    rng = np.random.default_rng(0)
    matrix = rng.random((3, 400)) < 0.8
    low, high = seeds_by_examples_interval(matrix, resamples=500)
    assert low < matrix.mean() < high and high - low < 0.1
    # seeds that disagree widen the interval beyond the examples' alone
    spread = np.stack([rng.random(400) < p for p in (0.6, 0.8, 0.95)])
    wide = seeds_by_examples_interval(spread, resamples=500)
    assert wide[1] - wide[0] > high - low


def test_options_are_validated(digits):
    train, test = digits
    with pytest.raises(InputError, match="modes"):
        domain_transfer(_tiny(), "tiny", train, test, modes=("head",), show_progress=False)
    with pytest.raises(InputError, match="shots"):
        domain_transfer(_tiny(), "tiny", train, test, shots=(0,), show_progress=False)


def _stub() -> TransferResult:
    rows = (
        TransferRow(0, "zero-shot", (), 0, 200, (150,), 0.69, 0.80, 0.1),
        TransferRow(10, "last_layer", (0, 1), 100, 200, (180, 184), 0.88, 0.94, 1.0),
        TransferRow(10, "full", (0, 1), 100, 200, (186, 190), 0.91, 0.96, 1.0),
        TransferRow(None, "full", (0, 1), 1347, 200, (196, 198), 0.97, 0.995, 9.0),
    )
    return TransferResult(
        model="mnist_cnn", source="MNIST", target="digits test split, 8x8 upsampled to 28x28", rows=rows,
        epochs=10, batch_size=32, learning_rate=1e-3, resamples=1000, seconds=11.0,
    )  # fmt: skip


def test_json_round_trip():
    result = _stub()
    again = Result.from_json(result.to_json())
    assert again == result and isinstance(again.rows[1], TransferRow) and again.rows[3].shots is None


def test_section_shows_the_results_numbers():
    load_views()
    result = _stub()
    assert result.best is result.rows[3] and result.gain == pytest.approx(100 * (394 / 400 - 0.75))
    (section,) = render_sections({"transfer": result})
    (table,) = section.tables
    assert [r[4] for r in table.rows] == [
        f"{fmt.pct(r.accuracy)} ({fmt.pct_interval(r.interval)})" for r in result.rows
    ]
    assert table.rows[0][5] == fmt.pct(0.75) and table.rows[1][5] == f"{fmt.pct(0.9)}, {fmt.pct(0.92)}"
    assert [r[1] for r in table.rows] == ["0", "10", "10", "all (134.7 on average)"]
    headline = str(section.paragraphs[0])
    assert fmt.pct(0.75) in headline and fmt.pct(394 / 400) in headline and f"{result.gain:.1f} points" in headline
    assert len(section.figures) == 1 and section.figures[0].png.startswith(b"\x89PNG")
    assert summary_lines([result]) == [headline]
