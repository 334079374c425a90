from __future__ import annotations

import math

import pytest
import torch

from trustlab.core.exceptions import InputError
from trustlab.data.corruptions import (
    BLUR_SIGMA,
    CORRUPTION_DESCRIPTIONS,
    CORRUPTIONS,
    gaussian_blur,
    gaussian_kernel,
    invert,
    rotate,
    shift,
)


def _rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------- rotate ----------------------


def test_quarter_turn_of_a_hand_made_pattern_is_counter_clockwise():
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 0, 2] = 1.0  # top-right
    x[0, 0, 1, 2] = 0.5  # middle-right
    out = rotate(x, 90)
    expected = torch.zeros(3, 3)
    expected[0, 0] = 1.0  # top-right -> top-left
    expected[0, 1] = 0.5  # middle-right -> top-middle
    assert torch.allclose(out[0, 0], expected, atol=1e-6)


@pytest.mark.parametrize("size", [5, 6, 28])
def test_rotate_quarter_turns_match_rot90_for_odd_and_even_sizes(size):
    x = _rand(3, 2, size, size)
    assert torch.allclose(rotate(x, 90), torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5)
    assert torch.allclose(rotate(x, -90), torch.rot90(x, -1, dims=(-2, -1)), atol=1e-5)
    assert torch.allclose(rotate(x, 180), torch.flip(x, dims=(-2, -1)), atol=1e-5)
    four = x
    for _ in range(4):
        four = rotate(four, 90)
    assert torch.allclose(four, x, atol=1e-5)
    assert torch.allclose(rotate(x, 360), x, atol=1e-5)


def test_rotate_non_square_keeps_pixel_geometry():
    # 5 x 7, centre (2, 3): out[r, c] = in[c - 1, 5 - r] inside, zero where the source is outside.
    x = _rand(1, 1, 5, 7)
    out = rotate(x, 90)[0, 0]
    expected = torch.zeros(5, 7)
    for r in range(5):
        for c in range(1, 6):
            expected[r, c] = x[0, 0, c - 1, 5 - r]
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(rotate(x, 180), torch.flip(x, dims=(-2, -1)), atol=1e-5)


def test_rotating_a_centred_disk_leaves_it_nearly_unchanged():
    r = torch.arange(29, dtype=torch.float32) - 14
    disk = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 4.0**2))[None, None]
    for degrees in (17.0, 45.0, 123.0):
        assert torch.allclose(rotate(disk, degrees), disk, atol=0.02)


# ---------------------------------------------------------------- invert ----------------------


def test_invert_values_and_involution():
    x = torch.tensor([0.0, 0.25, 1.0]).reshape(1, 1, 1, 3)
    assert invert(x).flatten().tolist() == [1.0, 0.75, 0.0]
    y = _rand(4, 1, 8, 8)
    assert torch.allclose(invert(invert(y)), y, atol=1e-7)


# ---------------------------------------------------------------- blur ------------------------


def test_kernel_radius_and_normalisation():
    assert gaussian_kernel(2.0).numel() == 2 * 6 + 1
    assert gaussian_kernel(0.5).numel() == 2 * 2 + 1
    assert gaussian_kernel(0.0).tolist() == [1.0]
    assert math.isclose(float(gaussian_kernel(1.3).sum()), 1.0, rel_tol=1e-6)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_blur_of_an_interior_impulse_keeps_mass_centre_and_variance(sigma):
    size, centre = 41, 20
    x = torch.zeros(1, 1, size, size, dtype=torch.float64)
    x[0, 0, centre, centre] = 1.0
    out = gaussian_blur(x, sigma)[0, 0]
    assert out.dtype == torch.float64
    assert math.isclose(float(out.sum()), 1.0, rel_tol=1e-9)
    offsets = torch.arange(size, dtype=torch.float64) - centre
    rows, cols = out.sum(1), out.sum(0)
    assert abs(float((rows * offsets).sum())) < 1e-9 and abs(float((cols * offsets).sum())) < 1e-9
    # truncation at 3 sigma removes 2.7% of a Gaussian's variance
    for marginal in (rows, cols):
        assert float((marginal * offsets**2).sum()) == pytest.approx(sigma**2, rel=0.04)
    # separable: the 2-D response is the outer product of the 1-D kernel
    k = gaussian_kernel(sigma, dtype=torch.float64)
    r = (k.numel() - 1) // 2
    assert torch.allclose(out[centre - r : centre + r + 1, centre - r : centre + r + 1], torch.outer(k, k))


def test_blur_padding_modes():
    flat = torch.full((1, 1, 16, 16), 0.6)
    assert torch.allclose(gaussian_blur(flat, 1.5, padding="replicate"), flat, atol=1e-6)
    assert torch.allclose(gaussian_blur(flat, 1.5, padding="reflect"), flat, atol=1e-6)
    zeros = gaussian_blur(flat, 1.5)
    assert float(zeros[0, 0, 0, 0]) < 0.6 * 0.6 and float(zeros[0, 0, 8, 8]) == pytest.approx(0.6, abs=1e-5)
    with pytest.raises(InputError, match="reflect padding"):
        gaussian_blur(flat, 6.0, padding="reflect")  # radius 18 >= 16
    with pytest.raises(InputError, match="padding must be one of zeros, replicate, reflect, got 'wrap'"):
        gaussian_blur(flat, 1.0, padding="wrap")
    x = _rand(2, 1, 6, 6)
    assert torch.equal(gaussian_blur(x, 0.0), x)


# ---------------------------------------------------------------- shift -----------------------


def test_shift_hand_case():
    x = torch.zeros(1, 1, 4, 5)
    x[0, 0, 1, 1] = 1.0
    out = shift(x, 2, 1)  # 2 right, 1 down
    assert torch.nonzero(out[0, 0]).tolist() == [[2, 3]]


@pytest.mark.parametrize("dx, dy", [(3, 2), (-2, 1), (0, -4), (-5, -3), (0, 0)])
def test_shift_matches_roll_with_the_wrapped_part_zeroed(dx, dy):
    x = _rand(2, 3, 8, 9)
    expected = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    if dy > 0:
        expected[..., :dy, :] = 0
    elif dy < 0:
        expected[..., dy:, :] = 0
    if dx > 0:
        expected[..., :, :dx] = 0
    elif dx < 0:
        expected[..., :, dx:] = 0
    assert torch.equal(shift(x, dx, dy), expected)


def test_shift_past_the_frame_is_blank():
    x = _rand(2, 1, 6, 6)
    assert not shift(x, 6, 0).any() and not shift(x, 0, -7).any()


# ---------------------------------------------------------------- defaults and checks ---------


def test_default_corruptions_keep_shape_dtype_bounds_and_inputs():
    x = _rand(5, 1, 28, 28)
    original = x.clone()
    assert set(CORRUPTIONS) == set(CORRUPTION_DESCRIPTIONS) == {"rotate90", "invert", "blur", "shift"}
    for name, corrupt in CORRUPTIONS.items():
        out = corrupt(x)
        assert out.shape == x.shape and out.dtype == x.dtype, name
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0, name
        assert out.data_ptr() != x.data_ptr() and not torch.equal(out, x), name
        assert torch.equal(x, original), name
    assert torch.equal(CORRUPTIONS["blur"](x), gaussian_blur(x, BLUR_SIGMA))
    assert torch.equal(CORRUPTIONS["shift"](x), shift(x, 8, 8))
    assert CORRUPTIONS["rotate90"](_rand(2, 1, 28, 28, dtype=torch.float64)).dtype == torch.float64


def test_empty_batches_pass_through():
    x = torch.zeros(0, 1, 28, 28)
    for corrupt in CORRUPTIONS.values():
        assert corrupt(x).shape == (0, 1, 28, 28)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x: gaussian_blur(x, float("nan")), "sigma must be finite, got nan"),
        (lambda x: gaussian_blur(x, -1.0), "sigma must be >= 0, got -1"),
        (lambda x: gaussian_blur(x, True), "sigma must be a real number, got bool"),
        (lambda x: rotate(x, float("inf")), "degrees must be finite"),
        (lambda x: rotate(x, "90"), "degrees must be a real number, got str"),
        (lambda x: shift(x, 1.5, 0), "dx must be an integer number of pixels, got float 1.5"),
        (lambda x: shift(x, 0, None), "dy must be an integer number of pixels"),
        (lambda x: invert(x[0]), r"x must have shape \(N, C, H, W\), got shape \(1, 4, 4\)"),
        (lambda x: invert(x * 2), r"x must lie in \[0, 1\], found values in \[0, 2\]"),
        (lambda x: invert((x * 255).to(torch.uint8)), "x must be a floating point tensor"),
        (lambda x: invert(x.numpy()), "x must be a torch tensor"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(call, message):
    x = torch.linspace(0, 1, 16).reshape(1, 1, 4, 4)
    with pytest.raises(InputError, match=message) as info:
        call(x)
    assert "\n" not in str(info.value)


def test_nan_images_are_refused():
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 1] = float("nan")
    with pytest.raises(InputError, match="x must be finite, found 1 NaN"):
        rotate(x, 90)
