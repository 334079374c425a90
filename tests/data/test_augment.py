import pytest
import torch

from trustlab.core.exceptions import InputError
from trustlab.data.augment import Augmentation, elastic_deform, gaussian_noise, random_rotate, rotation_matrices
from trustlab.data.corruptions import affine_warp


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _digits(n=8, seed=0):
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 6:22, 12:16] = torch.rand(n, 1, 16, 4, generator=_gen(seed)) * 0.5 + 0.5
    return x


def test_rotation_by_90_degrees_is_rot90_counter_clockwise():
    x = torch.rand(3, 1, 28, 28, generator=_gen())
    turned = affine_warp(x, rotation_matrices(torch.full((3,), 90.0), 28, 28))
    assert torch.allclose(turned, torch.rot90(x, 1, dims=(2, 3)), atol=1e-5)


def test_rotation_round_trips_in_the_middle_of_the_image():
    x = _digits()
    there = affine_warp(x, rotation_matrices(torch.full((8,), 12.0), 28, 28))
    back = affine_warp(there, rotation_matrices(torch.full((8,), -12.0), 28, 28))
    # bilinear resampling twice blurs strokes a little; the mass stays where it was
    assert torch.allclose(back.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)), rtol=0.05)
    assert (back - x).abs().mean() < 0.05


def test_random_rotation_draws_a_different_angle_per_image_within_the_bound():
    x = _digits(1).expand(64, 1, 28, 28).contiguous()
    out = random_rotate(x, 15.0, _gen())
    assert len({round(float(v), 4) for v in out.sum(dim=(1, 2, 3))}) > 1 or not torch.equal(out[0], out[1])
    # the vertical bar's column spread grows with the angle: 15 degrees keeps it narrow
    cols = (out[:, 0] > 0.3).any(dim=1).sum(dim=1)
    assert int(cols.max()) <= 4 + 2 * 5


def test_elastic_with_zero_alpha_is_the_identity_and_keeps_values_in_bounds():
    x = _digits()
    assert torch.allclose(elastic_deform(x, 0.0, 4.0, _gen()), x, atol=1e-6)
    out = elastic_deform(x, 34.0, 4.0, _gen())
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert (out - x).abs().sum() > 1.0


def test_noise_stays_in_bounds_and_changes_the_image():
    x = _digits()
    out = gaussian_noise(x, 0.3, _gen())
    assert float(out.min()) >= 0 and float(out.max()) <= 1 and not torch.equal(out, x)


def test_augmentation_is_deterministic_given_the_generator_and_honours_other_bounds():
    spec = Augmentation(shift=2, rotate_degrees=15, elastic_alpha=34, noise_sigma=0.3)
    x = _digits()
    assert torch.equal(spec(x, _gen(3)), spec(x, _gen(3)))
    assert not torch.equal(spec(x, _gen(3)), spec(x, _gen(4)))
    shifted = x * 2 - 1  # images in [-1, 1]
    out = spec(shifted, _gen(3), bounds=(-1.0, 1.0))
    assert float(out.min()) >= -1 and float(out.max()) <= 1
    assert float(out.min()) == -1.0  # the background stays at the lower bound where nothing moved in


def test_augmentation_off_is_inactive_and_described():
    assert not Augmentation().active and Augmentation().describe() == "none"
    assert "rotation up to 15 degrees" in Augmentation(rotate_degrees=15).describe()


@pytest.mark.parametrize(
    "kwargs",
    [{"shift": -1}, {"shift": 1.5}, {"rotate_degrees": -3}, {"noise_sigma": float("nan")}, {"elastic_sigma": 0}],
)
def test_bad_augmentation_settings_are_one_line_errors(kwargs):
    with pytest.raises(InputError) as info:
        Augmentation(**kwargs)
    assert "\n" not in str(info.value)


def test_fixed_noise_is_exactly_sigma_and_unclipped():
    """Randomised smoothing's training noise: x + sigma * N(0, 1) for every pixel, the draws the
    generator gives, nothing clipped (the per-image sigma draw is skipped)."""
    x = torch.full((64, 1, 28, 28), 0.5)
    noisy = Augmentation(noise_sigma=0.25, noise_fixed=True)(x, torch.Generator().manual_seed(3))
    expected = x + 0.25 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    assert torch.equal(noisy, expected)
    assert noisy.min() < 0 and noisy.max() > 1 and abs(float((noisy - x).std()) - 0.25) < 0.005
    assert Augmentation(noise_sigma=0.25, noise_fixed=True).describe() == "Gaussian noise sigma 0.25 (fixed, unclipped)"
