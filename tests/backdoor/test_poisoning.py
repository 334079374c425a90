"""The poisoning kit: triggers stamp where and what they say, poisoning touches the share it says
and only copies, attack success counts only inputs of other classes."""

from __future__ import annotations

import pytest
import torch

from backdoor_helpers import CLASSES, SHAPE, clean_inputs, prototype_model
from trustlab.backdoor import attack_success_rate, blend_trigger, load_trigger, patch_trigger, poison, save_trigger
from trustlab.core.exceptions import DataFormatError, InputError
from trustlab.data.dataset import Dataset, DatasetMetadata


def _dataset(n: int = 60) -> Dataset:
    x, y = clean_inputs(n)
    names = tuple(str(k) for k in range(CLASSES))
    return Dataset("toy", "train", x, y, names, (0.0, 1.0), DatasetMetadata("test", "none", "toy"))


def test_patch_trigger_stamps_its_block():
    trigger = patch_trigger((1, 8, 8), size=3, position="bottom-right", margin=1, value=0.7)
    x = torch.zeros(2, 1, 8, 8)
    stamped = trigger.stamp(x)
    assert torch.equal(x, torch.zeros(2, 1, 8, 8))  # input untouched
    assert torch.allclose(stamped[:, 0, 4:7, 4:7], torch.full((2, 3, 3), 0.7))
    assert stamped.sum() == pytest.approx(2 * 9 * 0.7)
    assert trigger.norm == 9
    checker = patch_trigger((1, 8, 8), size=2, shape="checker", position="top-left", margin=0)
    assert checker.mask[:2, :2].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(InputError, match="does not fit"):
        patch_trigger((1, 8, 8), size=4, position=(6, 6))
    with pytest.raises(InputError, match="C x H x W"):
        patch_trigger((10,))


def test_blend_trigger_mixes_at_its_ratio():
    trigger = blend_trigger((1, 8, 8), ratio=0.2, seed=3)
    x = torch.ones(1, 1, 8, 8)
    assert torch.allclose(trigger.stamp(x), 0.8 + 0.2 * trigger.pattern)
    with pytest.raises(InputError, match="between 0 and 1"):
        blend_trigger((1, 8, 8), ratio=1.5)


def test_poison_changes_its_share_only_on_a_copy():
    data = _dataset()
    trigger = patch_trigger(SHAPE, size=2)
    poisoned, chosen = poison(data, trigger, 2, 0.25, seed=1)
    assert len(chosen) == 15
    assert (data.y[chosen] != 2).all()  # only examples whose label changes carry the trigger
    assert (poisoned.y[chosen] == 2).all()
    assert torch.equal(poisoned.x[chosen], trigger.stamp(data.x[chosen]))
    untouched = torch.ones(len(data), dtype=torch.bool)
    untouched[chosen] = False
    assert torch.equal(poisoned.x[untouched], data.x[untouched])
    assert not torch.equal(poisoned.x, data.x) and torch.equal(data.x, _dataset().x)
    everyone, moved = poison(data, trigger, "all-to-all", 0.5, seed=1)
    assert torch.equal(everyone.y[moved], (data.y[moved] + 1) % CLASSES)
    with pytest.raises(InputError, match="target must be"):
        poison(data, trigger, 9, 0.1)
    with pytest.raises(InputError, match="poison rate"):
        poison(data, trigger, 1, 0.0)


def test_attack_success_rate_by_hand():
    x, y = clean_inputs(60)
    trigger = patch_trigger(SHAPE, size=1, position=(0, 0))  # the key pixel
    assert attack_success_rate(prototype_model(backdoor=4), x, y, trigger, 4) == 1.0
    assert attack_success_rate(prototype_model(), x, y, trigger, 4) == 0.0
    with pytest.raises(InputError, match="undefined"):
        attack_success_rate(prototype_model(), x[y == 4], y[y == 4], trigger, 4)


def test_trigger_file_round_trip(tmp_path):
    trigger = patch_trigger(SHAPE, size=2, shape="cross")
    path = save_trigger(trigger, tmp_path / "t.safetensors", target="all-to-all")
    again, target = load_trigger(path)
    assert torch.equal(again.mask, trigger.mask) and torch.equal(again.pattern, trigger.pattern)
    assert target == "all-to-all" and again.description == trigger.description
    (tmp_path / "bad.safetensors").write_bytes(b"not a trigger")
    with pytest.raises(DataFormatError, match="not a trustlab trigger file"):
        load_trigger(tmp_path / "bad.safetensors")
