from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from trustlab.core.exceptions import InputError
from trustlab.data import load_dataset
from trustlab.data import mnist_c as mc
from trustlab.data.corruptions import affine_warp, gaussian_filter
from trustlab.data.corruptions import rotate as rotate_by

RANDOM = sorted(mc.RANDOM)
pytestmark = pytest.mark.usefixtures("one_thread")  # two spinning threads crawl on a loaded 2-core machine


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """70 MNIST test digits (the packaged sample): more than one 64-image random-number block."""
    return load_dataset("mnist", "sample").x[:70].clone()


def _skimage():
    return pytest.importorskip("skimage")


def _ink_centre(x: torch.Tensor) -> torch.Tensor:
    """(N, 2) centre of mass (column, row) of each image."""
    grid = torch.arange(28, dtype=torch.float64)
    img = x[:, 0].double()
    mass = img.sum((1, 2))
    return torch.stack(((img.sum(1) * grid).sum(1) / mass, (img.sum(2) * grid).sum(1) / mass), 1)


# ---------------------------------------------------------------- every corruption ----------------------------


@pytest.mark.parametrize("name", mc.NAMES)
def test_shape_dtype_bounds_kept_and_input_untouched(name, digits):
    for dtype in (torch.float32, torch.float64):
        x = digits[:8].to(dtype)
        before = x.clone()
        out = mc.corrupt(x, name, seed=1)
        assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        assert torch.equal(x, before)
        assert not torch.equal(out, x), f"{name} left the digits unchanged"


@pytest.mark.parametrize("name", mc.NAMES)
def test_same_seed_same_output_and_another_seed_another_where_random(name, digits):
    x = digits[:16]
    a, b = mc.corrupt(x, name, seed=3), mc.corrupt(x, name, seed=3)
    assert torch.equal(a, b)
    other = mc.corrupt(x, name, seed=4)
    if name in mc.RANDOM:
        assert not torch.equal(a, other)
    else:
        assert torch.equal(a, other)


@pytest.mark.parametrize("name", RANDOM)
def test_output_does_not_depend_on_batch_splitting(name, digits):
    whole = mc.corrupt(digits, name, seed=7)
    parts = [mc.corrupt(digits[lo:hi], name, seed=7, start=lo) for lo, hi in ((0, 5), (5, 63), (63, 70))]
    assert torch.equal(torch.cat(parts), whole)


def test_empty_batch():
    x = torch.zeros(0, 1, 28, 28)
    for name in mc.NAMES:
        assert mc.corrupt(x, name, seed=0).shape == (0, 1, 28, 28)


# ---------------------------------------------------------------- bad input ---------------------------------


def _one_line_error(fn, match: str) -> str:
    with pytest.raises(InputError, match=match) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_corruption_lists_the_known_ones(digits):
    message = _one_line_error(lambda: mc.corrupt(digits, "snow", seed=0), "unknown MNIST-C corruption 'snow'")
    assert all(name in message for name in mc.NAMES)
    _one_line_error(lambda: mc.drawn_parameters("fog2", 3, seed=0), "expected one of")


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.zeros(2, 1, 32, 32), r"shape \(N, 1, 28, 28\)"),
        (torch.zeros(2, 3, 28, 28), r"shape \(N, 1, 28, 28\)"),
        (torch.zeros(1, 28, 28), r"shape \(N, C, H, W\)"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "floating point"),
        (torch.full((2, 1, 28, 28), 255.0), r"\[0, 1\]"),
        (torch.full((2, 1, 28, 28), float("nan")), "finite"),
        (np.zeros((2, 1, 28, 28)), "torch tensor"),
    ],
)
def test_bad_images_are_one_line_input_errors(x, match):
    for name in ("rotate", "fog", "canny_edges"):
        _one_line_error(lambda name=name: mc.corrupt(x, name, seed=0), match)


def test_bad_seed_start_and_severity(digits):
    x = digits[:2]
    _one_line_error(lambda: mc.rotate(x, seed=-1), "seed must be an integer")
    _one_line_error(lambda: mc.rotate(x, seed=True), "seed must be an integer")
    _one_line_error(lambda: mc.rotate(x, seed=0, start=1.5), "start must be an integer")
    _one_line_error(lambda: mc.rotate(x, seed=0, severity=6), r"severity of rotate must be one of 1, 2, 3, 4, 5")
    _one_line_error(lambda: mc.glass_blur(x, seed=0, severity=2), "severity of glass_blur must be one of 1")
    _one_line_error(lambda: mc.corrupt(x, "stripe", seed=0, severity=1), "stripe has no severity")


# ---------------------------------------------------------------- noise -------------------------------------


def test_shot_noise_on_white_follows_poisson_of_three_photons():
    out = mc.shot_noise(torch.ones(100, 1, 28, 28), seed=0)
    values, counts = torch.unique(out, return_counts=True)
    assert torch.allclose(values, torch.tensor([0.0, 1 / 3, 2 / 3, 1.0]))
    pmf = [math.exp(-3) * 3**k / math.factorial(k) for k in range(3)]
    expected = [*pmf, 1 - sum(pmf)]  # P(K >= 3) = 0.577: the share of pixels left unchanged
    assert np.allclose(counts.numpy() / out.numel(), expected, atol=0.01)
    assert torch.equal(mc.shot_noise(torch.zeros(3, 1, 28, 28), seed=0), torch.zeros(3, 1, 28, 28))


def test_shot_noise_severity_one_keeps_the_mean():
    out = mc.shot_noise(torch.full((20, 1, 28, 28), 0.25), seed=0, severity=1)  # Poisson(15) / 60
    assert abs(float(out.mean()) - 0.25) < 0.005
    assert 0.05 < float(out.std()) < 0.08  # sqrt(15) / 60 = 0.065


def test_impulse_noise_replaces_seventeen_percent_by_salt_or_pepper():
    x = torch.full((100, 1, 28, 28), 0.5)
    out = mc.impulse_noise(x, seed=0)
    changed = out != x
    assert abs(float(changed.float().mean()) - 0.17) < 0.005
    assert abs(float((out == 1).float().mean()) - 0.085) < 0.005
    assert torch.all((out[changed] == 0) | (out[changed] == 1))


# ---------------------------------------------------------------- glass blur --------------------------------


def test_glass_shuffle_scan_equals_mnist_c_sequential_swaps():
    gen = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (3, 28, 28), generator=gen).double()
    u = torch.rand(3, 2, 26, 26, 3, generator=gen)
    ours = mc._glass_shuffle(img.clone(), mc._glass_moves(u))
    for n in range(3):
        ref = img[n].numpy().copy()
        for sweep in range(2):
            for h in range(27, 1, -1):
                for w in range(27, 1, -1):
                    swap, left, up = (u[n, sweep, 27 - h, 27 - w] < 0.5).tolist()
                    if swap:
                        hp, wp = h - up, w - left
                        ref[h, w], ref[hp, wp] = ref[hp, wp], ref[h, w]
        assert np.array_equal(ours[n].numpy(), ref)


def test_glass_blur_hand_computed_on_a_constant_image():
    # vertical blur keeps a constant, uint8 truncation gives floor(127.5) = 127, swaps move equal values
    out = mc.glass_blur(torch.full((2, 1, 28, 28), 0.5), seed=0)
    assert torch.allclose(out, torch.full_like(out, 127 / 255), atol=1e-6)


def test_glass_blur_only_moves_ink_locally(digits):
    out = mc.glass_blur(digits, seed=0)
    assert torch.allclose(out.sum((1, 2, 3)), digits.sum((1, 2, 3)), rtol=0.03)
    assert (_ink_centre(out) - _ink_centre(digits)).abs().max() < 1.0


# ---------------------------------------------------------------- motion blur -------------------------------


def test_motion_blur_matches_imagemagick_kernel_per_pixel(digits):
    x = digits[:2].double()
    angles = mc.drawn_parameters("motion_blur", 2, seed=5)["angle_degrees"]
    ours = mc.motion_blur(x, seed=5)
    weights = np.exp(-(np.arange(21) ** 2) / 18.0)
    weights /= weights.sum()
    for n in range(2):
        a = math.radians(float(angles[n]))
        offsets = [(math.ceil(i * math.sin(a) - 0.5), math.ceil(i * math.cos(a) - 0.5)) for i in range(21)]
        img, ref = x[n, 0].numpy(), np.zeros((28, 28))
        for i, (dy, dx) in enumerate(offsets):
            rows = np.clip(np.arange(28) + dy, 0, 27)
            cols = np.clip(np.arange(28) + dx, 0, 27)
            ref += weights[i] * img[np.ix_(rows, cols)]
        assert np.allclose(ours[n, 0].numpy(), ref, atol=1e-12)


def test_motion_blur_keeps_a_constant_and_smears_a_dot_along_the_angle():
    assert torch.allclose(mc.motion_blur(torch.full((3, 1, 28, 28), 0.4), seed=0), torch.tensor(0.4))
    dot = torch.zeros(4, 1, 28, 28)
    dot[:, 0, 14, 14] = 1.0
    out = mc.motion_blur(dot, seed=2)
    angles = torch.deg2rad(mc.drawn_parameters("motion_blur", 4, seed=2)["angle_degrees"])
    assert torch.all(angles.abs() <= math.pi / 4)
    centre = _ink_centre(out)  # the streak trails behind the dot: opposite to (cos a, sin a)
    direction = torch.stack((torch.cos(angles), torch.sin(angles)), 1)
    assert torch.all(((centre - 14.0) * direction).sum(1) < -0.5)


# ---------------------------------------------------------------- affine ------------------------------------


def _skimage_warp(img: np.ndarray, linear: np.ndarray) -> np.ndarray:
    transform = _skimage().transform
    offset = 13.5 - linear @ np.array([13.5, 13.5])
    matrix = np.vstack([np.hstack([linear, offset[:, None]]), [0, 0, 1]])
    return np.clip(transform.warp(img, inverse_map=transform.AffineTransform(matrix=matrix)), 0, 1)


@pytest.mark.parametrize("name", ["shear", "rotate", "scale"])
def test_affine_corruptions_match_skimage_warp_with_mnist_c_matrices(name, digits):
    x = digits[:6].double()
    ours = mc.corrupt(x, name, seed=2)
    params = mc.drawn_parameters(name, 6, seed=2)
    for n in range(6):
        if name == "shear":
            c = float(params["shear"][n])
            linear = np.array([[1.0, -math.sin(c)], [0.0, math.cos(c)]])  # scikit-image < 0.19
        elif name == "rotate":
            c = float(params["angle"][n])
            linear = np.array([[math.cos(c), -math.sin(c)], [math.sin(c), math.cos(c)]])
        else:
            linear = np.eye(2) / 0.7
        assert np.allclose(ours[n, 0].numpy(), _skimage_warp(x[n, 0].numpy(), linear), atol=1e-9)


def test_drawn_parameters_take_mnist_c_values():
    n = 256
    rot = mc.drawn_parameters("rotate", n, seed=0)["angle"]
    assert set(rot.tolist()) == {-0.4, 0.4} and 0.35 < float((rot > 0).double().mean()) < 0.65
    assert set(mc.drawn_parameters("shear", n, seed=0)["shear"].tolist()) == {-0.4, 0.4}
    shift = mc.drawn_parameters("translate", n, seed=0)
    assert set(shift["shift_x"].tolist()) == set(shift["shift_y"].tolist()) == {-3.0, 3.0}
    angles = mc.drawn_parameters("motion_blur", n, seed=0)["angle_degrees"]
    assert angles.abs().max() < 45 and angles.min() < -35 and angles.max() > 35
    dotted = mc.drawn_parameters("dotted_line", n, seed=0)
    assert set(dotted["r0"].tolist()) <= set(range(27)) and len(set(dotted["r1"].tolist())) > 20
    zig = mc.drawn_parameters("zigzag", n, seed=0)
    assert set((zig["r1"] - zig["r0"]).tolist()) == set(range(-5, 5))
    assert mc.drawn_parameters("fog", 3, seed=0) == {} and mc.drawn_parameters("scale", 3, seed=0) == {}
    assert torch.equal(mc.drawn_parameters("rotate", 10, seed=0, start=5)["angle"], rot[5:15])


def test_rotate_by_the_drawn_angle_round_trips(digits):
    x = digits[:8]
    out = mc.rotate(x, seed=1)
    angles = mc.drawn_parameters("rotate", 8, seed=1)["angle"]
    for n in range(8):
        expected = rotate_by(x[n : n + 1], math.degrees(float(angles[n])))  # counter-clockwise, trustlab's rotate
        assert torch.allclose(out[n : n + 1], expected, atol=1e-5)
        back = rotate_by(out[n : n + 1], -math.degrees(float(angles[n])))
        assert (back - x[n : n + 1]).abs().mean() < 0.03  # two bilinear resamplings blur a little
        assert (out[n : n + 1] - x[n : n + 1]).abs().mean() > 0.05


def test_translate_moves_the_centre_of_mass_by_the_drawn_shift(digits):
    out = mc.translate(digits, seed=3)
    p = mc.drawn_parameters("translate", 70, seed=3)
    inner = digits.clone()
    inner[..., 3:-3, 3:-3] = 0
    keep = inner.sum((1, 2, 3)) == 0  # digits with no ink within 3 px of the border lose none
    assert int(keep.sum()) > 40
    moved = _ink_centre(out[keep]) - _ink_centre(digits[keep])
    assert torch.allclose(moved, torch.stack((p["shift_x"], p["shift_y"]), 1)[keep], atol=1e-4)
    assert torch.allclose(out[keep].sum((1, 2, 3)), digits[keep].sum((1, 2, 3)), atol=1e-3)


def test_scale_shrinks_the_ink_to_seventy_percent(digits):
    x = digits[:20].double()
    out = mc.scale(x)
    grid = torch.arange(28, dtype=torch.float64)

    def spread(img: torch.Tensor) -> torch.Tensor:
        mass = img.sum((1, 2))
        col = (img.sum(1) * grid).sum(1) / mass
        var = (img.sum(1) * (grid - col[:, None]) ** 2).sum(1) / mass
        return var.sqrt()

    ratio = spread(out[:, 0]) / spread(x[:, 0])
    assert torch.all((ratio > 0.66) & (ratio < 0.76))
    mass_ratio = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert torch.allclose(mass_ratio, torch.full_like(mass_ratio, 0.49), atol=0.03)  # area 0.7^2


def test_shear_tilts_a_vertical_line_by_sin_of_the_angle():
    line = torch.zeros(6, 1, 28, 28)
    line[..., 10:18, 12] = 1.0
    out = mc.shear(line, seed=0)
    c = mc.drawn_parameters("shear", 6, seed=0)["shear"]
    grid = torch.arange(28, dtype=torch.float64)
    for n in range(6):
        for row in (12, 15):  # rows whose source row, 13.5 + cos(c) (row - 13.5), is on the line
            img = out[n, 0, row].double()
            col = float((img * grid).sum() / img.sum())
            assert abs(col - (12 + math.sin(float(c[n])) * (row - 13.5))) < 1e-4


def test_affine_warp_helper_checks_its_matrix(digits):
    _one_line_error(lambda: affine_warp(digits[:2], torch.zeros(3, 2, 3)), "matrix must have shape")
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert torch.allclose(affine_warp(digits[:2], identity), digits[:2], atol=1e-6)


# ---------------------------------------------------------------- intensity ---------------------------------


def test_brightness_hand_computed():
    x = torch.tensor([0.0, 0.3, 0.5, 0.7, 1.0]).repeat(28 * 28 // 5 + 1)[: 28 * 28].reshape(1, 1, 28, 28)
    out = mc.brightness(x)
    assert torch.allclose(out, (x + 0.5).clamp(max=1.0))
    assert torch.allclose(mc.brightness(torch.full((1, 1, 28, 28), 0.3), severity=1), torch.tensor(0.4))


def test_brightness_matches_skimage_hsv_round_trip(digits):
    color = _skimage().color
    x = digits[:3].double()
    out = mc.brightness(x)
    for n in range(3):
        hsv = color.rgb2hsv(color.gray2rgb(x[n, 0].numpy()))
        hsv[..., 2] = np.clip(hsv[..., 2] + 0.5, 0, 1)
        assert np.allclose(out[n, 0].numpy(), color.rgb2gray(color.hsv2rgb(hsv)), atol=1e-12)


def test_stripe_inverts_the_outer_seven_columns(digits):
    x = digits[:4]
    out = mc.stripe(x)
    assert torch.equal(out[..., :7], 1 - x[..., :7]) and torch.equal(out[..., 21:], 1 - x[..., 21:])
    assert torch.equal(out[..., 7:21], x[..., 7:21])
    assert torch.allclose(mc.stripe(out), x)


# ---------------------------------------------------------------- fog and spatter ---------------------------


def _plasma_reference(noise: np.ndarray, decay: float, size: int = 256) -> np.ndarray:
    """MNIST-C's diamond-square on a strided 256x256 array, consuming ``noise`` level by level."""
    grid, step, wibble, used = np.zeros((size, size)), size, 100.0, 0

    def wibbled(total):
        nonlocal used
        u = noise[used : used + total.size].reshape(total.shape)
        used += total.size
        return total / 4 + wibble * (-wibble + 2 * wibble * u)

    while step >= 2:
        half = step // 2
        corners = grid[::step, ::step]
        total = corners + np.roll(corners, -1, axis=0)
        total += np.roll(total, -1, axis=1)
        grid[half::step, half::step] = wibbled(total)
        centres, corners = grid[half::step, half::step], grid[::step, ::step]
        grid[::step, half::step] = wibbled(centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, 1))
        grid[half::step, ::step] = wibbled(centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, 0))
        step //= 2
        wibble /= decay
    grid -= grid.min()
    return grid / grid.max()


def test_plasma_matches_mnist_c_diamond_square():
    noise = torch.rand(2, 256 * 256 - 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours = mc._plasma(noise, 1.4)
    for n in range(2):
        assert np.allclose(ours[n].numpy(), _plasma_reference(noise[n].numpy(), 1.4)[:28, :28], atol=1e-12)


def test_fog_hand_computed_cases_and_background(digits):
    assert torch.equal(mc.fog(torch.zeros(2, 1, 28, 28), seed=0), torch.zeros(2, 1, 28, 28))  # max(x) = 0
    x = digits[:8]
    out = mc.fog(x, seed=0)
    background = x == 0
    assert float(out[background].mean()) > 0.1  # fog lights the black background
    peak = x.amax((1, 2, 3), keepdim=True)
    assert torch.all(out <= peak + 1e-6)  # (x + 3 p) max / (max + 3) <= max
    plasma = mc._plasma(mc._draw(0, "fog", 8, 0, (256 * 256 - 1,), "fine"), 1.4)[:, None]
    assert torch.allclose(out, (x + 3 * plasma) * peak / (peak + 3), atol=1e-5)


def test_spatter_matches_scipy_pipeline_on_the_same_noise(digits):
    x = digits[:6].double()
    out = mc.spatter(x, seed=2)
    z = mc._draw(2, "spatter", 6, 0, (1, 28, 28), "normal").double().numpy()
    for n in range(6):
        liquid = ndimage.gaussian_filter(0.65 + 0.3 * z[n, 0], 1, mode="nearest")
        mask = ndimage.gaussian_filter((liquid > 0.65).astype(float), 1.5, mode="nearest")
        mask[mask < 0.8] = 0
        ref = np.clip(x[n, 0].numpy() * (1 - mask) + 63 / 255 * mask, 0, 1)
        assert np.allclose(out[n, 0].numpy(), ref, atol=1e-9)


def test_spatter_puts_grey_mud_on_the_background():
    out = mc.spatter(torch.zeros(200, 1, 28, 28), seed=0)
    mud = out > 0
    assert 0.10 < float(mud.float().mean()) < 0.17  # ~13.5% of pixels at MNIST-C's severity 4
    assert float(out.max()) <= 63 / 255 + 1e-6 and float(out[mud].min()) >= 0.8 * 63 / 255 - 1e-6


# ---------------------------------------------------------------- lines -------------------------------------


def _line_reference(c0, r0, c1, r1) -> np.ndarray:
    if c1 == c0:
        return np.zeros((28, 28))
    cc, rr = np.meshgrid(np.arange(28.0), np.arange(28.0), sparse=True)
    dist = np.clip(np.abs(rr - ((r1 - r0) / (c1 - c0) * (cc - c0) + r0)), 0, 2.3 - 1e-10)
    ink = np.clip(np.log(1 - dist / 2.3) + 1, 0, 1)
    ink[:, : int(np.floor(c0))] = 0
    ink[:, int(np.ceil(c1)) :] = 0
    return ink


def test_dotted_line_matches_mnist_c_line_and_gaps(digits):
    x = digits[:10].double()
    out = mc.dotted_line(x, seed=4)
    p = mc.drawn_parameters("dotted_line", 10, seed=4)
    for n in range(10):
        ink = _line_reference(0, int(p["r0"][n]), 27, int(p["r1"][n]))
        ink[:, (np.arange(28) // 2) % 2 == 0] = 0
        assert np.allclose(out[n, 0].numpy(), np.clip(x[n, 0].numpy() + ink, 0, 1), atol=1e-6)
    gaps = (torch.arange(28) // 2) % 2 == 0
    assert torch.equal(out[..., gaps], x[..., gaps]) and torch.equal(out[..., 27], x[..., 27])
    assert torch.all(out >= x) and torch.all(out.sum((1, 2, 3)) > x.sum((1, 2, 3)) + 5)


def test_zigzag_matches_mnist_c_end_points(digits):
    x = digits[:10].double()
    out = mc.zigzag(x, seed=4)
    p = mc.drawn_parameters("zigzag", 10, seed=4)
    for n in range(10):
        r0, r1 = int(p["r0"][n]), int(p["r1"][n])
        theta = math.atan((r1 - r0) / 23)
        length = 23 / math.cos(theta)
        points = [(0.0, 0.0)] + [((2 * i + 1) * 2.0, (-1) ** i * 2.0) for i in range(6)]
        points.append((length, points[-1][1] / (2 * (length - 4 * (length // 4)))))
        cos, sin = math.cos(theta), math.sin(theta)
        ends = [(c * cos - r * sin + 2, c * sin + r * cos + r0) for c, r in points]
        ref = x[n, 0].numpy()
        for (ca, ra), (cb, rb) in zip(ends, ends[1:]):
            ref = np.clip(ref + _line_reference(ca, ra, cb, rb), 0, 1)
        assert np.allclose(out[n, 0].numpy(), ref, atol=1e-6)
    assert torch.all(out >= x) and torch.all(out.sum((1, 2, 3)) > x.sum((1, 2, 3)) + 10)


# ---------------------------------------------------------------- canny -------------------------------------


def test_canny_edges_match_skimage_pixel_for_pixel(digits):
    feature = _skimage().feature
    x = digits[:20].double()
    out = mc.canny_edges(x)
    ref = np.stack([feature.canny(img) for img in x[:, 0].numpy()])
    assert np.array_equal(out[:, 0].numpy().astype(bool), ref)
    assert torch.equal(mc.canny_edges(x.float()), out.float())


def test_canny_edges_of_a_square_are_its_thin_outline():
    x = torch.zeros(1, 1, 28, 28)
    x[..., 8:20, 8:20] = 1.0
    out = mc.canny_edges(x)[0, 0]
    assert set(out.unique().tolist()) == {0.0, 1.0}
    near = torch.zeros(28, 28, dtype=torch.bool)
    near[6:22, 6:22] = True
    near[10:18, 10:18] = False  # the square's border, +-2 px
    assert float(out[~near].sum()) == 0
    assert 44 <= float(out.sum()) <= 64  # about one pixel wide around a 12 x 12 square (ties may double it)
    assert float(out[10:18].sum(1).max()) <= 4  # side rows cross the outline only at the left and right edges


def test_canny_edges_are_sparse_binary_on_digits(digits):
    out = mc.canny_edges(digits)
    assert torch.all((out == 0) | (out == 1))
    share = float(out.mean())
    assert 0.05 < share < 0.2


# ---------------------------------------------------------------- helpers -----------------------------------


@pytest.mark.parametrize("padding, mode", [("replicate", "nearest"), ("zeros", "constant"), ("reflect", "mirror")])
def test_gaussian_filter_matches_scipy(padding, mode):
    x = torch.rand(2, 2, 28, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for sigma in (0.7, 1.5, 9.0):
        ours = gaussian_filter(x, sigma, padding=padding).numpy()
        assert np.allclose(ours, ndimage.gaussian_filter(x.numpy(), (0, 0, sigma, sigma), mode=mode), atol=1e-12)
    vertical = gaussian_filter(x, 0.7, padding=padding, dims=(-2,)).numpy()
    assert np.allclose(vertical, ndimage.gaussian_filter(x.numpy(), (0, 0, 0.7, 0), mode=mode), atol=1e-12)
    _one_line_error(lambda: gaussian_filter(x, 1.0, dims=(0,)), "dims must be")


# ---------------------------------------------------------------- the data set ------------------------------


def test_mnist_c_set_builds_caches_and_reads_back(digits, tmp_path, monkeypatch):
    labels = torch.arange(70) % 10
    names = ["stripe", "rotate", "fog"]
    built = mc.mnist_c_set(digits, labels, seed=5, corruptions=names, cache_dir=tmp_path, batch_size=32)
    assert list(built.images) == ["rotate", "stripe", "fog"]  # MNIST-C's order
    assert built.path is not None and built.path.is_file() and built.path.parent == tmp_path
    for name in names:
        expected = torch.round(mc.corrupt(digits, name, seed=5) * 255) / 255  # 8 bits, like MNIST-C's files
        assert torch.allclose(built.images[name], expected, atol=1e-6)
    assert torch.equal(built.labels, labels) and len(built) == 70

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed instead of reading the cache")

    with monkeypatch.context() as patch:
        patch.setattr(mc, "corrupt", refuse)
        again = mc.mnist_c_set(digits, labels, seed=5, corruptions=names[::-1], cache_dir=tmp_path)
    assert again.fingerprint == built.fingerprint
    assert all(torch.equal(again.images[k], built.images[k]) for k in names)
    other = mc.mnist_c_set(digits, labels, seed=6, corruptions=["rotate"], cache_dir=tmp_path, show_progress=False)
    assert other.fingerprint != built.fingerprint and other.path != built.path

    built.path.write_bytes(b"not a safetensors file")
    rebuilt = mc.mnist_c_set(digits, labels, seed=5, corruptions=names, cache_dir=tmp_path)
    assert torch.equal(rebuilt.images["fog"], built.images["fog"])


def test_mnist_c_set_bad_input(digits, tmp_path):
    labels = torch.zeros(70, dtype=torch.int64)
    _one_line_error(lambda: mc.mnist_c_set(digits, labels[:5], cache_dir=tmp_path), "labels must be a tensor")
    _one_line_error(lambda: mc.mnist_c_set(digits, labels, corruptions=["snow"], cache=False), "unknown MNIST-C")
    nocache = mc.mnist_c_set(digits[:3], labels[:3], corruptions="stripe", cache=False)
    assert nocache.path is None and list(nocache.images) == ["stripe"]
