"""Repair: unlearning and pruning remove a hand-built backdoor from a copy, keep accuracy, and
the repaired model is written as a new artefact that loads back."""

from __future__ import annotations

import pytest
import torch

from backdoor_helpers import CLASSES, clean_inputs, prototype_model
from trustlab.backdoor import CleanseSettings, neural_cleanse, patch_trigger, prune, unlearn
from trustlab.backdoor.checks import run_backdoor_repair, run_backdoor_scan
from trustlab.core.exceptions import InputError
from trustlab.data.dataset import Dataset, DatasetMetadata
from trustlab.models import load_model
from trustlab.report.run import RunDirectory

KEY = patch_trigger((1, 8, 8), size=1, position=(0, 0))  # the true trigger: the key pixel lit


def _data(n: int = 600, held_out: bool = False) -> Dataset:
    """``n`` clean examples; ``held_out``: ``n`` others, drawn after them (same prototypes)."""
    x, y = clean_inputs(2 * n if held_out else n)
    x, y = (x[n:], y[n:]) if held_out else (x, y)
    names = tuple(str(k) for k in range(CLASSES))
    return Dataset("toy", "train", x, y, names, (0.0, 1.0), DatasetMetadata("test", "none", "toy"))


@pytest.fixture(scope="module")
def scanned():
    model = prototype_model(backdoor=3, scale=0.1)  # weights fine-tuning can move
    scan = neural_cleanse(model, _data().x[:96], settings=CleanseSettings(epochs=60), show_progress=False)
    mask = torch.tensor(scan.masks[3])
    assert mask[0, 0] == mask.max() and scan.mean_norms[3] < 2  # the key pixel, reversed
    return model, scan


def test_unlearning_removes_the_backdoor_from_a_copy(scanned):
    model, scan = scanned
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    repaired, result = unlearn(
        model, _data(), [(scan.trigger(3), 3)], epochs=10, learning_rate=0.01, true_trigger=(KEY, 3),
        evaluation=_data(300, held_out=True), show_progress=False,
    )  # fmt: skip
    assert result.asr_true_before == 1.0 and result.asr_true_after < 0.05
    assert result.asr_reversed_after < result.asr_reversed_before
    assert result.accuracy_after >= result.accuracy_before - 0.01
    assert result.repair_examples == 60 and result.stamped_examples == 30 and result.evaluation_examples == 300
    for key, value in model.module.state_dict().items():  # the user's model is untouched
        assert torch.equal(value, before[key])
    assert repaired.module is not model.module


def test_pruning_cuts_the_key_feature(scanned):
    model, scan = scanned
    repaired, result = prune(model, _data(), [(scan.trigger(3), 3)], true_trigger=(KEY, 3))
    assert result.pruned == 1 and result.features == 64
    assert result.asr_true_after == 0.0 and result.accuracy_after == result.accuracy_before
    assert repaired.module.linear.weight[:, 0].abs().sum() == 0  # the key pixel's column
    assert model.module.linear.weight[3, 0] > 0  # not in the user's model
    assert [s.neurons for s in result.pruning_curve] == [0, 1]


def test_repair_check_writes_a_model_that_loads_back(tmp_path, scanned):
    model, _ = scanned
    run = RunDirectory(tmp_path / "run", command=["test"])
    scan = run_backdoor_scan(run, model, _data(), examples=96, settings=CleanseSettings(epochs=60))
    result = run_backdoor_repair(run, model, _data(), scan, out=tmp_path / "fixed.pt2", method="pruning", targets=[3])
    assert result.artefact == str(tmp_path / "fixed.pt2") and set(run.results) >= {
        "backdoor-scan-toy", "backdoor-repair-pruning"
    }  # fmt: skip
    again = load_model(tmp_path / "fixed.pt2")
    x = KEY.stamp(_data().x[:50])
    assert (again.predict(x) != 3).float().mean() > (model.predict(x) != 3).float().mean()


def test_repair_refuses_what_it_cannot_do(scanned):
    model, scan = scanned
    with pytest.raises(InputError, match="no trigger to remove"):
        unlearn(model, _data(), [], show_progress=False)
    one_class = _data().subset(torch.nonzero(_data().y == 0).flatten())
    with pytest.raises(InputError, match="at least two classes"):
        unlearn(model, one_class, [(scan.trigger(3), 3)], show_progress=False)
    with pytest.raises(InputError, match="share"):
        unlearn(model, _data(), [(scan.trigger(3), 3)], share=1.5, show_progress=False)


def test_repair_section_shows_the_results_numbers(scanned):
    from trustlab.capabilities import load_views
    from trustlab.core import format as fmt
    from trustlab.core.views import render_sections

    model, scan = scanned
    _, result = prune(model, _data(), [(scan.trigger(3), 3)], true_trigger=(KEY, 3))
    load_views()
    (section,) = render_sections({"repair": result})
    rows = section.tables[0].rows
    assert rows[0][1:] == [fmt.pct(result.accuracy_before), fmt.pct(result.accuracy_after)]
    assert rows[2][1:] == [fmt.pct(result.asr_true_before), fmt.pct(result.asr_true_after)]
    assert f"Cut {result.pruned:,} of {result.features:,}" in section.paragraphs[0]
    assert section.figures  # the pruning curve
