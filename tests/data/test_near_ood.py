import pytest
import torch

from trustlab.core.exceptions import InputError
from trustlab.data import load_dataset
from trustlab.data.near_ood import (
    FLIP_MIRROR_CLASSES,
    FLIP_TURN_CLASSES,
    NEAR_OOD_NAMES,
    centre_by_mass,
    glyph_prototypes,
    near_ood_set,
    stroke_width,
)
from trustlab.data.ood_sets import OOD_FAMILIES, OOD_SET_NAMES, ood_suite


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("mnist", "sample")
    return data.x, data.y


@pytest.mark.parametrize("name", NEAR_OOD_NAMES)
def test_every_family_is_deterministic_in_bounds_and_mnist_shaped(name, digits):
    x, y = digits
    a = near_ood_set(name, 40, seed=3, digits=x, labels=y)
    b = near_ood_set(name, 40, seed=3, digits=x, labels=y)
    c = near_ood_set(name, 40, seed=4, digits=x, labels=y)
    assert a.shape == (40, 1, 28, 28) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert (a.sum(dim=(1, 2, 3)) > 0).all()  # never an empty image
    # white strokes on black centred like MNIST: the centre of mass within 1.5 px of the middle
    grid = torch.arange(28, dtype=torch.float32)
    mass = a.sum(dim=(1, 2, 3))
    rows = (a.sum(dim=(1, 3)) * grid).sum(1) / mass
    cols = (a.sum(dim=(1, 2)) * grid).sum(1) / mass
    assert (rows - 13.5).abs().max() < 1.5 and (cols - 13.5).abs().max() < 1.5


def test_centre_by_mass_moves_a_dot_to_the_middle():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 3, 20] = 1.0
    out = centre_by_mass(x)
    row, col = (out[0, 0] == 1).nonzero()[0].tolist()
    assert out.sum() == 1 and row in (13, 14) and col in (13, 14)  # the middle of 28 px is 13.5


def test_flipped_digits_are_mirrors_or_turns_of_classes_that_make_no_digit(digits):
    x, y = digits
    out = near_ood_set("near_flipped", 60, seed=0, digits=x, labels=y)
    mirrors = x.flip(-1)
    turns = x.flip(-1).flip(-2)
    for image in out:
        mirror_of = [i for i in range(len(x)) if torch.equal(mirrors[i], image)]
        turn_of = [i for i in range(len(x)) if torch.equal(turns[i], image)]
        assert any(int(y[i]) in FLIP_MIRROR_CLASSES for i in mirror_of) or any(
            int(y[i]) in FLIP_TURN_CLASSES for i in turn_of
        )


def test_overlays_are_the_maximum_of_two_digits_of_different_classes(digits):
    x, y = digits
    out = near_ood_set("near_overlays", 30, seed=0, digits=x, labels=y)
    # every overlay is at least as bright as some digit everywhere and brighter than any one digit somewhere
    for image in out:
        under = (x <= image + 1e-7).all(dim=(1, 2, 3)).nonzero().squeeze(1)
        assert len(under) >= 2 and len(set(int(v) for v in y[under])) >= 2


def test_letters_and_symbols_are_drawn_at_mnists_pen_width(digits):
    x, _ = digits
    mnist = float(stroke_width(x).mean())
    for kind in ("letters", "symbols"):
        prototypes = glyph_prototypes(kind)
        assert len(prototypes) >= 200
        assert abs(float(stroke_width(prototypes).mean()) - mnist) < 0.6


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"name": "near_emoji", "n": 5}, "unknown near-OOD set"),
        ({"name": "near_strokes", "n": 0}, "positive integer"),
        ({"name": "near_flipped", "n": 5}, "held-out digits"),
    ],
)
def test_bad_requests_are_one_line_errors(kwargs, needle):
    with pytest.raises(InputError, match=needle) as info:
        near_ood_set(kwargs.pop("name"), **kwargs)
    assert "\n" not in str(info.value)


def test_digit_families_need_labels(digits):
    x, _ = digits
    with pytest.raises(InputError, match="labels"):
        near_ood_set("near_overlays", 5, digits=x)


def test_suite_groups_every_set_into_a_family_and_builds_near_sets_with_labels(digits):
    x, y = digits
    assert set(OOD_FAMILIES) == set(OOD_SET_NAMES)
    near = [n for n in NEAR_OOD_NAMES]
    with_labels = ood_suite(x, n=20, include=near, labels=y)
    assert list(with_labels) == near and all(len(s) == 20 for s in with_labels.values())
    without = ood_suite(x, n=20, include=["near_strokes", "near_letters"])
    assert list(without) == ["near_strokes", "near_letters"]
    with pytest.raises(InputError, match="labelled digits"):
        ood_suite(x, n=20, include=["near_flipped"])
