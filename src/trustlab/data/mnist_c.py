"""MNIST-C (Mu & Gilmer, 2019): the benchmark's 15 corruptions, batched, seeded, at its fixed severities.

Every corruption takes a batch ``x`` of MNIST digits, shape (N, 1, 28, 28), floating point in [0, 1]
(trustlab's pixel space; MNIST-C works on 0-255 images, divided by 255 here), and returns a new tensor
of the same shape, dtype and device in [0, 1]. ``x`` is never modified. The work is batched torch over
the whole batch (conv2d, grid_sample, gather, cumulative scans); no Python loop runs per pixel or per
image.

Parameters follow MNIST-C's reference code (github.com/google-research/mnist-c, ``corruptions.py``),
which calls each corruption with one fixed severity (its function's default). Corruptions that have
a severity in MNIST-C accept ``severity=1..5`` (default: MNIST-C's); the others have none.

Randomness. Each image draws from its own stream, keyed by ``(seed, corruption, start + i)`` for the
i-th image of the batch: the random numbers of images ``64k .. 64k+63`` come from one generator (NumPy's
PCG64; torch's for the normals of spatter) seeded by a hash of ``(seed, corruption, k)``. So the same
seed gives the same output, and the output does not depend on how a set is split into batches:
``f(x[a:b], seed=s, start=a)`` equals ``f(x, seed=s)[a:b]``. Per-pixel noise fields use uniforms of
16-bit resolution (four per 64-bit draw; probabilities are off by less than 2e-5), per-image parameters
float64 uniforms. The parameters drawn (angles, signs, line rows) are returned by
:func:`drawn_parameters`. Same seed, same numbers with the same NumPy and torch versions on CPU.

Per corruption: MNIST-C's parameters (its severity) -> how this implementation matches them.

* shot_noise (sev 5): ``poisson(3 x) / 3``, clipped -> exact in distribution: the Poisson count by
  inverse CDF from one uniform per pixel; black stays black.
* impulse_noise (sev 4): scikit-image ``random_noise(mode="s&p", amount=0.17)`` -> exact: each pixel is
  replaced with probability 0.17, by 1 or 0 with equal odds.
* glass_blur (sev 1): Gaussian sigma 0.7, cast to uint8, two sweeps (rows and columns 27 down to 2) of
  random swaps with a neighbour at ``randint(-1, 1)`` (-1 or 0) in x and y, Gaussian again -> exact in
  distribution, quirks included: ``skimage.filters.gaussian(..., multichannel=True)`` on a 2-D image
  blurs vertically only, and the swaps only reach up and left. The sequential sweeps run as a
  vectorised scan per row (52 steps per batch instead of 1,352 swaps per image).
* motion_blur (sev 1): ImageMagick ``MotionBlurImage`` radius 10, sigma 3, angle ~ U(-45, 45) degrees
  -> exact up to ImageMagick's 8-bit output: its one-sided kernel of 2 ceil(radius) + 1 = 21 taps with
  weights ``exp(-i^2 / (2 sigma^2))`` at offsets ``ceil(i (cos a, sin a) - 0.5)``, edge pixels repeated
  beyond the border (its default virtual pixels); 21 per-image gathers instead of a convolution.
* shear (sev 2): scikit-image ``AffineTransform(shear=+-0.4)`` kept centred on (13.5, 13.5), ``warp``
  bilinear, zero fill -> exact. MNIST-C's scikit-image (< 0.19) maps (x, y) to (x - sin(c) y, cos(c) y);
  newer versions use ``tan(c)`` and no ``cos(c)`` and would give other images.
* scale (sev 3): zoom 1/0.7 about the centre, so the ink shrinks to 70% -> exact; no randomness.
* rotate (sev 2): +-0.4 rad (22.9 degrees) about the centre -> exact; positive = counter-clockwise.
* brightness (sev 5): HSV value + 0.5 via grey -> RGB -> HSV -> RGB -> grey -> exact: for grey pixels
  (hue and saturation 0) the round trip is ``min(x + 0.5, 1)``; no randomness.
* translate (sev 3): +-3 px in x and in y, independent random signs -> exact (zero fill).
* stripe: invert columns 0-6 and 21-27 -> exact; no randomness.
* fog (sev 5): ``(x + 3 plasma) max(x) / (max(x) + 3)``, plasma = a 256x256 diamond-square fractal
  (wibble decay 1.4) normalised to [0, 1] and cropped to its top-left 28x28 -> exact in distribution:
  the same fractal on the whole 256x256 map (65,535 uniforms per image), batched.
* spatter (sev 4): N(0.65, 0.3) noise, Gaussian sigma 1, ``> 0.65``, Gaussian sigma 1.5, ``>= 0.8`` ->
  the image fades to grey 63/255 there -> exact in distribution (SciPy's kernel radius
  ``int(4 sigma + 0.5)``, edge mode "nearest" as scikit-image uses).
* dotted_line: a line from (column 0, row r0) to (column 27, row r1), r0, r1 ~ U{0..26}, ink
  ``log(1 - d / 2.3) + 1`` at vertical distance d, only column pairs 2-3, 6-7, ..., 26 kept -> exact
  (column 27 stays blank, as in MNIST-C).
* zigzag: arms of 2 px along a line from (column 2, row r0 ~ U{0..26}) to column 25 sloping by
  U{-5..4} rows, drawn as 7 such lines -> exact, including MNIST-C's odd last end point.
* canny_edges: scikit-image ``feature.canny`` with its defaults (sigma 1, thresholds 0.1 and 0.2) ->
  exact up to float rounding: Gaussian with zero padding divided by the blurred all-ones image, Sobel,
  scikit-image's bilinear non-maximum suppression, 8-connected hysteresis by repeated dilation.

MNIST-C stores its images as uint8; the functions here return unrounded floats, and
:func:`mnist_c_set` rounds to 8 bits as MNIST-C does. Where a result is "exact in distribution" the
random numbers differ from MNIST-C's (NumPy's global generator), so individual images differ, not the
process. Glass blur accepts severity 1 only: at MNIST-C's severities 2-5 neighbours to the right and
below enter the swaps, which the row scan does not cover.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trustlab.core.exceptions import InputError
from trustlab.core.files import atomic_write_bytes
from trustlab.core.progress import progress
from trustlab.data.corruptions import (
    BOUNDS_TOLERANCE,
    _affine_warp,  # affine_warp without re-checking images checked here
    _compute_dtype,
    about_centre,
    check_images,
    correlation_matrix,
    gaussian_filter,
    shift_each,
    truncated_gaussian_kernel,
)
from trustlab.data.paths import default_cache_dir

SIZE = 28
RNG_BLOCK = 64  # images per random-number block (one torch generator each)
CACHE_FORMAT = 1  # bump when any corruption's output changes, so old caches are not reused

# MNIST-C's parameter lists (index = severity - 1) and the severity it uses.
SHOT_NOISE_PHOTONS = (60, 25, 12, 5, 3)
IMPULSE_NOISE_AMOUNT = (0.03, 0.06, 0.09, 0.17, 0.27)
GLASS_BLUR = (0.7, 1, 2)  # severity 1: sigma, max_delta, iterations (the only one implemented)
MOTION_BLUR = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))  # radius, sigma (ImageMagick)
MOTION_BLUR_ANGLE = 45.0  # angle ~ U(-45, 45) degrees
SHEAR = (0.2, 0.4, 0.6, 0.8, 1.0)  # radians, random sign
ROTATE = (0.2, 0.4, 0.6, 0.8, 1.0)  # radians, random sign
SCALE = (0.9, 0.8, 0.7, 0.6, 0.5)  # the ink is shrunk by this factor (MNIST-C's zoom is 1 / factor)
BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)
TRANSLATE = (1, 2, 3, 4, 5)  # pixels, random sign per axis
FOG = ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))  # strength, wibble decay
FOG_MAP_SIZE = 256
FOG_CHUNK = 16  # maps built at once
SPATTER = (  # loc, scale, sigma, threshold, sigma2, mud flag (unused by MNIST-C's code)
    (0.65, 0.3, 4, 0.69, 0.6, 0),
    (0.65, 0.3, 3, 0.68, 0.6, 0),
    (0.65, 0.3, 2, 0.68, 0.5, 0),
    (0.65, 0.3, 1, 0.65, 1.5, 1),
    (0.67, 0.4, 1, 0.65, 1.5, 1),
)
SPATTER_MASK_THRESHOLD = 0.8
SPATTER_MUD = 63 / 255
STRIPE_COLUMNS = 7  # columns 0-6 and 21-27 are inverted
LINE_HALF_WIDTH = 2.3  # ink = log(1 - d / 2.3) + 1 at vertical distance d from the line
ZIGZAG_ARM = 2.0  # a, b: length and height of the zigzag's arms
ZIGZAG_COLUMNS = (2, 25)
CANNY_SIGMA = 1.0
CANNY_THRESHOLDS = (0.1, 0.2)

DEFAULT_SEVERITY: dict[str, int | None] = {
    "shot_noise": 5,
    "impulse_noise": 4,
    "glass_blur": 1,
    "motion_blur": 1,
    "shear": 2,
    "scale": 3,
    "rotate": 2,
    "brightness": 5,
    "translate": 3,
    "stripe": None,
    "fog": 5,
    "spatter": 4,
    "dotted_line": None,
    "zigzag": None,
    "canny_edges": None,
}
NAMES = tuple(DEFAULT_SEVERITY)

ERR_UNKNOWN = "unknown MNIST-C corruption {name!r}; expected one of: {known}"
ERR_SHAPE = "x must have shape (N, 1, 28, 28) (MNIST-C corrupts 28x28 greyscale digits), got shape {shape}"


# ---------------------------------------------------------------- validation ----------------------------------


def _check_x(x: object) -> torch.Tensor:
    """``x`` if it is a finite floating (N, 1, 28, 28) tensor in [0, 1], else a one-line InputError.

    One pass (min and max) for valid input; :func:`check_images` words the error otherwise."""
    fast = isinstance(x, torch.Tensor) and x.ndim == 4 and torch.is_floating_point(x) and x.numel() > 0
    if fast:
        lo, hi = (float(v) for v in torch.aminmax(x))
        fast = -BOUNDS_TOLERANCE <= lo and hi <= 1.0 + BOUNDS_TOLERANCE  # False for NaN and infinities
    if not fast:
        x = check_images(x)
    if tuple(x.shape[1:]) != (1, SIZE, SIZE):
        raise InputError(ERR_SHAPE.format(shape=tuple(x.shape)))
    return x


def _check_int(value: object, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum or value >= 2**62:
        raise InputError(f"{name} must be an integer in [{minimum}, 2**62), got {value}")
    return value


def _check_severity(name: str, severity: object, allowed: Sequence[int] = (1, 2, 3, 4, 5)) -> int:
    if severity is None:
        severity = DEFAULT_SEVERITY[name]
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) or int(severity) not in allowed:
        raise InputError(
            f"severity of {name} must be one of {', '.join(map(str, allowed))} "
            f"(MNIST-C uses {DEFAULT_SEVERITY[name]}), got {severity!r}"
        )
    return int(severity)


def _finish(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return out.clamp(0.0, 1.0).to(like.dtype)


# ---------------------------------------------------------------- random numbers ------------------------------


def _block_seed(seed: int, stream: str, block: int) -> int:
    digest = hashlib.blake2b(f"trustlab.mnist_c:{seed}:{stream}:{block}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _draw(seed: int, stream: str, n: int, start: int, shape: tuple[int, ...], kind: str = "uniform") -> torch.Tensor:
    """Random numbers (n, *shape) for images ``start .. start + n - 1``, on the CPU.

    Image k's numbers are row ``k % RNG_BLOCK`` of a (RNG_BLOCK, *shape) draw from a generator (NumPy's
    PCG64; torch's for normals) seeded by a hash of ``(seed, stream, k // RNG_BLOCK)``, so they do not
    depend on the batch the image is in.
    ``kind``: "uniform" (float64 in [0, 1), for per-image parameters), "fine" (float32 uniforms in [0, 1) of
    16-bit resolution, ``v / 65536``: cheap enough for per-pixel noise fields, 4 per 64-bit draw) or
    "normal" (float32 standard normals).
    """
    count = math.prod(shape)
    out = np.empty((n, count), dtype=np.float64 if kind == "uniform" else np.float32)
    first, last = start // RNG_BLOCK, (start + n - 1) // RNG_BLOCK
    for block in range(first, last + 1) if n else ():
        rng = np.random.Generator(np.random.PCG64(_block_seed(seed, stream, block)))
        lo, hi = max(start, block * RNG_BLOCK), min(start + n, (block + 1) * RNG_BLOCK)
        rows, dest = slice(lo - block * RNG_BLOCK, hi - block * RNG_BLOCK), out[lo - start : hi - start]
        if kind == "uniform":
            dest[:] = rng.random((RNG_BLOCK, count))[rows]
        elif kind == "normal":  # torch's normal sampler is about twice as fast as NumPy's here
            generator = torch.Generator().manual_seed(_block_seed(seed, stream, block) >> 1)
            dest[:] = torch.randn((RNG_BLOCK, count), generator=generator).numpy()[rows]
        else:  # four 16-bit levels per 64-bit draw, little-endian on every platform
            words = rng.integers(0, 2**64, size=-(-RNG_BLOCK * count // 4), dtype=np.uint64).astype("<u8", copy=False)
            levels = words.view("<u2")[: RNG_BLOCK * count].reshape(RNG_BLOCK, count)
            np.multiply(levels[rows], np.float32(2.0**-16), out=dest)
    return torch.from_numpy(out).reshape(n, *shape)


def _sign(u: torch.Tensor) -> torch.Tensor:
    """MNIST-C's ``np.random.choice([-1, 1])``: -1 or +1 with equal odds."""
    return torch.where(u < 0.5, -1.0, 1.0).to(torch.float64)


def _parameters(name: str, n: int, seed: int, start: int, severity: int | None) -> dict[str, torch.Tensor]:
    if name == "motion_blur":
        u = _draw(seed, name, n, start, (1,))[:, 0]
        return {"angle_degrees": MOTION_BLUR_ANGLE * (2.0 * u - 1.0)}
    if name in ("shear", "rotate"):
        u = _draw(seed, name, n, start, (1,))[:, 0]
        magnitude = (SHEAR if name == "shear" else ROTATE)[severity - 1]
        return {"shear" if name == "shear" else "angle": magnitude * _sign(u)}
    if name == "translate":
        u = _draw(seed, name, n, start, (2,))
        pixels = TRANSLATE[severity - 1]
        return {"shift_x": pixels * _sign(u[:, 0]), "shift_y": pixels * _sign(u[:, 1])}
    if name in ("dotted_line", "zigzag"):
        u = _draw(seed, name, n, start, (2,))
        r0 = torch.floor(27 * u[:, 0]).to(torch.int64)  # np.random.randint(0, 27)
        if name == "dotted_line":
            return {"r0": r0, "r1": torch.floor(27 * u[:, 1]).to(torch.int64)}
        return {"r0": r0, "r1": r0 + torch.floor(10 * u[:, 1]).to(torch.int64) - 5}  # + randint(-5, 5)
    return {}


def drawn_parameters(
    name: str, n: int, *, seed: int, start: int = 0, severity: int | None = None
) -> dict[str, torch.Tensor]:
    """The per-image parameters corruption ``name`` draws for images ``start .. start + n - 1``.

    motion_blur: ``angle_degrees`` (direction of the blur kernel, x right, y down); shear: ``shear``
    (signed radians); rotate: ``angle`` (signed radians, positive = counter-clockwise as displayed);
    translate: ``shift_x``, ``shift_y`` (pixels the digit moves right and down); dotted_line and zigzag:
    ``r0``, ``r1`` (rows of the line at its first and last column). Corruptions whose randomness is a
    per-pixel noise field (shot, impulse, glass blur, fog, spatter) or that have none return ``{}``.
    """
    name = _check_name(name)
    n = _check_int(n, "n")
    seed, start = _check_int(seed, "seed"), _check_int(start, "start")
    severity = _check_severity(name, severity) if DEFAULT_SEVERITY[name] is not None else None
    return _parameters(name, n, seed, start, severity)


# ---------------------------------------------------------------- noise -------------------------------------


def shot_noise(x: torch.Tensor, *, seed: int, severity: int = 5, start: int = 0) -> torch.Tensor:
    """Photon noise: ``min(Poisson(x * c), c) / c`` with c = 60, 25, 12, 5, 3 photons (MNIST-C: c = 3).

    Each pixel's Poisson count comes from one uniform by inverse CDF, so black stays black and a pixel
    of value 1 keeps its value with probability P(Poisson(3) >= 3) = 0.577 at severity 5.
    """
    x = _check_x(x)
    seed, start = _check_int(seed, "seed"), _check_int(start, "start")
    photons = SHOT_NOISE_PHOTONS[_check_severity("shot_noise", severity) - 1]
    u = _draw(seed, "shot_noise", x.shape[0], start, (1, SIZE, SIZE), "fine").to(x.device)
    dtype = _compute_dtype(x)
    flat = x.reshape(-1).to(dtype)
    ink = flat.nonzero().squeeze(1)  # Poisson(0) = 0: black pixels stay black
    lam, u = flat[ink] * photons, u.reshape(-1)[ink].to(dtype)
    term = torch.exp(-lam)  # P(K = k), from k = 0
    cdf = term.clone()
    count = (u > cdf).to(dtype)
    for k in range(1, photons):  # count = min(K, photons) = #{k < photons: u > P(K <= k)}
        term = term * lam / k
        cdf += term
        count += u > cdf
    out = torch.zeros_like(flat)
    out[ink] = count / photons  # in [0, 1] by construction
    return out.reshape(x.shape).to(x.dtype)


def impulse_noise(x: torch.Tensor, *, seed: int, severity: int = 4, start: int = 0) -> torch.Tensor:
    """Salt and pepper: each pixel is replaced with probability 0.03 ... 0.27 (MNIST-C: 0.17), by 1 or 0
    with equal odds (scikit-image's ``random_noise(mode="s&p")``)."""
    x = _check_x(x)
    seed, start = _check_int(seed, "seed"), _check_int(start, "start")
    amount = IMPULSE_NOISE_AMOUNT[_check_severity("impulse_noise", severity) - 1]
    u = _draw(seed, "impulse_noise", x.shape[0], start, (1, SIZE, SIZE), "fine").to(x.device)
    # one uniform per pixel: replaced if u < amount, by salt if u < amount / 2 (half of those)
    salt = (u < amount / 2).to(x.dtype)
    return torch.where(u < amount, salt, x)


# ---------------------------------------------------------------- glass blur --------------------------------

_NOOP, _LEFT, _UP, _DIAG = 0, 1, 2, 3


def _glass_moves(u: torch.Tensor) -> torch.Tensor:
    """Swap kinds from uniforms (N, I, 26, 26, 3) for rows/columns visited 27 .. 2 -> (N, I, 26, 28) int64.

    Row index r of the result is image row 27 - r; columns are image columns, 0 and 1 never visited.
    MNIST-C swaps with probability 1/2, with dx, dy = ``randint(-1, 1)``, i.e. -1 or 0 each.
    """
    swap, left, up = u[..., 0] < 0.5, u[..., 1] < 0.5, u[..., 2] < 0.5
    kind = (left.to(torch.int64) + 2 * up.to(torch.int64)) * swap  # _LEFT = 1, _UP = 2, _DIAG = 3
    kind = kind.flip(-1)  # visiting order 27 .. 2 -> image columns 2 .. 27
    return F.pad(kind, (2, 0), value=_NOOP)


def _glass_row(cur: torch.Tensor, up: torch.Tensor, kind: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One right-to-left sweep of swaps along a row: returns the row's final values and the row above.

    ``cur`` and ``up`` (N, 28) are the row and the row above before the sweep, ``kind`` (N, 28) the swap
    kind at each column. A value carried left by a chain of LEFT swaps is found by a reverse cumulative
    minimum, so the sequential sweep becomes a handful of vectorised operations.
    """
    n, w = cur.shape
    cols = torch.arange(w, device=cur.device).expand(n, w)
    nxt = F.pad(kind[:, 1:], (0, 1), value=_NOOP)  # kind at column w + 1 (visited just before w)
    stop = torch.where(nxt != _LEFT, cols, w)
    source = stop.flip(1).cummin(1).values.flip(1)  # the column whose value arrives at w when w is visited
    carry = cur.gather(1, source)
    carry_next = F.pad(carry[:, 1:], (0, 1))
    up_now = torch.where(nxt == _DIAG, carry_next, up)  # (h-1, w) after column w+1's swap
    final = torch.where(
        kind == _LEFT,
        F.pad(cur[:, :-1], (1, 0)),
        torch.where(kind == _UP, up_now, torch.where(kind == _DIAG, F.pad(up[:, :-1], (1, 0)), carry)),
    )
    up_new = torch.where(kind == _UP, carry, up_now)
    return final, up_new


def _glass_shuffle(img: torch.Tensor, moves: torch.Tensor) -> torch.Tensor:
    """MNIST-C's local pixel shuffle of (N, 28, 28) images for swap kinds ``moves`` (N, I, 26, 28)."""
    rows = list(img.unbind(1))
    for sweep in range(moves.shape[1]):
        for h in range(SIZE - 1, 1, -1):
            rows[h], rows[h - 1] = _glass_row(rows[h], rows[h - 1], moves[:, sweep, SIZE - 1 - h])
    return torch.stack(rows, 1)


def glass_blur(x: torch.Tensor, *, seed: int, severity: int = 1, start: int = 0) -> torch.Tensor:
    """Vertical Gaussian (sigma 0.7), 8-bit truncation, two sweeps of random swaps of each pixel with its
    upper, left or upper-left neighbour (rows and columns 27 down to 2), vertical Gaussian again.

    MNIST-C (severity 1 only here) blurs with ``skimage.filters.gaussian(..., multichannel=True)`` on a
    2-D image, which treats columns as colour channels and so blurs along the vertical axis only.
    """
    x = _check_x(x)
    seed, start = _check_int(seed, "seed"), _check_int(start, "start")
    _check_severity("glass_blur", severity, allowed=(1,))
    sigma, _, sweeps = GLASS_BLUR
    n = x.shape[0]
    blurred = gaussian_filter(x.to(torch.float64), sigma, dims=(-2,))
    levels = torch.floor(blurred * 255).clamp(0, 255)[:, 0]  # np.uint8(... * 255) truncates
    u = _draw(seed, "glass_blur", n, start, (sweeps, SIZE - 2, SIZE - 2, 3), "fine")
    levels = _glass_shuffle(levels, _glass_moves(u).to(x.device))
    out = gaussian_filter((levels / 255.0)[:, None], sigma, dims=(-2,))
    return _finish(out, x)


# ---------------------------------------------------------------- motion blur -------------------------------


def motion_blur(x: torch.Tensor, *, seed: int, severity: int = 1, start: int = 0) -> torch.Tensor:
    """ImageMagick's motion blur (radius 10, sigma 3 at MNIST-C's severity 1) at an angle ~ U(-45, 45) deg.

    Output pixel p is ``sum_i k_i x(p + round(i * (cos a, sin a)))`` for i = 0 .. 2*ceil(radius), with
    ``k_i`` proportional to ``exp(-i^2 / (2 sigma^2))``: a one-sided streak, beyond the border the edge
    pixel repeats (ImageMagick's default virtual pixels).
    """
    x = _check_x(x)
    seed, start = _check_int(seed, "seed"), _check_int(start, "start")
    severity = _check_severity("motion_blur", severity)
    radius, sigma = MOTION_BLUR[severity - 1]
    n = x.shape[0]
    angle = torch.deg2rad(_parameters("motion_blur", n, seed, start, severity)["angle_degrees"])
    taps = torch.arange(2 * math.ceil(radius) + 1, dtype=torch.float64)
    weights = torch.exp(-(taps**2) / (2.0 * sigma**2))
    weights = (weights / weights.sum()).tolist()
    # ImageMagick rounds offsets with ceil(v - 0.5)
    dx = torch.ceil(taps * torch.cos(angle)[:, None] - 0.5).to(torch.int64)  # (N, taps)
    dy = torch.ceil(taps * torch.sin(angle)[:, None] - 0.5).to(torch.int64)
    grid = torch.arange(SIZE)
    rows = (grid[None, None, :] + dy[:, :, None]).clamp(0, SIZE - 1).to(x.device)  # (N, taps, 28)
    cols = (grid[None, None, :] + dx[:, :, None]).clamp(0, SIZE - 1).to(x.device)
    flat = x.reshape(n, SIZE * SIZE).to(_compute_dtype(x))
    out = torch.zeros_like(flat)
    for t, weight in enumerate(weights):
        index = (rows[:, t, :, None] * SIZE + cols[:, t, None, :]).reshape(n, SIZE * SIZE)
        out += weight * flat.gather(1, index)
    return _finish(out.reshape(x.shape), x)


# ---------------------------------------------------------------- affine ------------------------------------


def _warp(x: torch.Tensor, linear: torch.Tensor) -> torch.Tensor:
    return _affine_warp(x, about_centre(linear, SIZE, SIZE).to(x.device))


def shear(x: torch.Tensor, *, seed: int, severity: int = 2, start: int = 0) -> torch.Tensor:
    """Horizontal shear by +-0.2 ... 1.0 rad (MNIST-C: 0.4) about the centre, random sign; bilinear, zero fill.

    As MNIST-C's scikit-image (< 0.19) defined it, output pixel (x, y) reads the input at
    ``(x - sin(c) y, cos(c) y)`` (centred coordinates, column first).
    """
    x = _check_x(x)
    seed, start = _check_int(seed, "seed"), _check_int(start, "start")
    severity = _check_severity("shear", severity)
    c = _parameters("shear", x.shape[0], seed, start, severity)["shear"]
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    linear = torch.stack((torch.stack((one, -torch.sin(c)), -1), torch.stack((zero, torch.cos(c)), -1)), -2)
    return _warp(x, linear)


def rotate(x: torch.Tensor, *, seed: int, severity: int = 2, start: int = 0) -> torch.Tensor:
    """Rotation by +-0.2 ... 1.0 rad (MNIST-C: 0.4 rad = 22.9 deg) about the centre, random sign;
    bilinear, zero fill. A positive angle turns the digit counter-clockwise as displayed."""
    x = _check_x(x)
    seed, start = _check_int(seed, "seed"), _check_int(start, "start")
    severity = _check_severity("rotate", severity)
    c = _parameters("rotate", x.shape[0], seed, start, severity)["angle"]
    cos, sin = torch.cos(c), torch.sin(c)
    linear = torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1)), -2)
    return _warp(x, linear)


def scale(x: torch.Tensor, *, seed: int = 0, severity: int = 3, start: int = 0) -> torch.Tensor:
    """Shrink the digit about the centre by 0.9 ... 0.5 (MNIST-C: 0.7, a zoom of 1/0.7); bilinear, zero
    fill. No randomness: ``seed`` and ``start`` are accepted for a uniform signature and ignored."""
    x = _check_x(x)
    _check_int(seed, "seed")
    _check_int(start, "start")
    factor = SCALE[_check_severity("scale", severity) - 1]
    linear = (torch.eye(2, dtype=torch.float64) / factor).expand(x.shape[0], 2, 2)
    return _warp(x, linear)


def translate(x: torch.Tensor, *, seed: int, severity: int = 3, start: int = 0) -> torch.Tensor:
    """Shift by +-1 ... 5 px (MNIST-C: 3) horizontally and vertically, independent random signs; zero fill.

    The shifts are whole pixels, so the bilinear warp MNIST-C uses copies pixels exactly: done here as
    one gather over the batch, not a resampling."""
    x = _check_x(x)
    seed, start = _check_int(seed, "seed"), _check_int(start, "start")
    severity = _check_severity("translate", severity)
    p = _parameters("translate", x.shape[0], seed, start, severity)
    return shift_each(x, p["shift_x"].to(torch.int64), p["shift_y"].to(torch.int64))


# ---------------------------------------------------------------- intensity ---------------------------------


def brightness(x: torch.Tensor, *, seed: int = 0, severity: int = 5, start: int = 0) -> torch.Tensor:
    """Raise the HSV value by 0.1 ... 0.5 (MNIST-C: 0.5). For grey pixels (hue and saturation 0) the
    grey -> RGB -> HSV -> RGB -> grey round trip reduces to ``min(x + c, 1)``. No randomness."""
    x = _check_x(x)
    _check_int(seed, "seed")
    _check_int(start, "start")
    return _finish(x + BRIGHTNESS[_check_severity("brightness", severity) - 1], x)


def stripe(x: torch.Tensor, *, seed: int = 0, start: int = 0) -> torch.Tensor:
    """Invert the 7 leftmost and 7 rightmost columns (``1 - x``). No randomness."""
    x = _check_x(x)
    _check_int(seed, "seed")
    _check_int(start, "start")
    scale, offset = _stripe_affine(x.dtype, x.device)
    return torch.addcmul(offset, x, scale)  # x, or 1 - x in the stripes: one fused pass over the batch


@functools.cache
def _stripe_affine(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per column (1, 1, 1, 28): the factor (-1 in the stripes, else 1) and the offset (1 in the stripes)."""
    stripes = torch.zeros(1, 1, 1, SIZE, dtype=torch.bool)
    stripes[..., :STRIPE_COLUMNS] = True
    stripes[..., SIZE - STRIPE_COLUMNS :] = True
    scale = torch.where(stripes, -1.0, 1.0).to(dtype=dtype, device=device)
    return scale, stripes.to(dtype=dtype, device=device)


# ---------------------------------------------------------------- fog ---------------------------------------


def _plasma(noise: torch.Tensor, decay: float, size: int = FOG_MAP_SIZE, crop: int = SIZE) -> torch.Tensor:
    """Top-left ``crop`` x ``crop`` of diamond-square height maps (size x size) normalised to [0, 1] over
    the whole map, from uniforms ``noise`` (B, size**2 - 1).

    The algorithm of MNIST-C's ``plasma_fractal``: periodic neighbours, new values ``mean + w * U(-w, w)``
    with ``w`` starting at 100 and divided by ``decay`` per level. Each level keeps its grid dense, (B, k, k)
    corners -> centres, then the diamonds in the corners' rows and in the centres' rows, interleaved into
    the (B, 2k, 2k) corners of the next level. Uniforms are used level by level in that order, row-major.
    """
    b = noise.shape[0]
    corners = torch.zeros(b, 1, 1, dtype=noise.dtype, device=noise.device)
    wibble, used, k = 100.0, 0, 1

    def wibbled(total: torch.Tensor) -> torch.Tensor:
        nonlocal used
        u = noise[:, used : used + k * k].reshape(b, k, k)
        used += k * k
        return total.mul_(0.25).add_(u, alpha=2.0 * wibble * wibble).sub_(wibble * wibble)

    while True:
        total = corners + corners.roll(-1, 1)
        centres = wibbled(total + total.roll(-1, 2))
        across = wibbled((centres + centres.roll(1, 1)) + (corners + corners.roll(-1, 2)))  # corner rows
        down = wibbled((centres + centres.roll(1, 2)) + (corners + corners.roll(-1, 1)))  # centre rows
        wibble /= decay
        if 2 * k == size:
            break
        top, bottom = torch.stack((corners, across), -1), torch.stack((down, centres), -1)
        corners = torch.stack((top, bottom), -3).reshape(b, 2 * k, 2 * k)
        k *= 2
    parts = (corners, across, down, centres)
    low = torch.stack([p.amin((1, 2)) for p in parts]).amin(0)[:, None, None]
    high = torch.stack([p.amax((1, 2)) for p in parts]).amax(0)[:, None, None]
    half = (crop + 1) // 2
    top = torch.stack((corners[:, :half, :half], across[:, :half, :half]), -1)
    bottom = torch.stack((down[:, :half, :half], centres[:, :half, :half]), -1)
    out = torch.stack((top, bottom), -3).reshape(b, 2 * half, 2 * half)[:, :crop, :crop]
    return (out - low) / (high - low)


def fog(x: torch.Tensor, *, seed: int, severity: int = 5, start: int = 0) -> torch.Tensor:
    """Add a diamond-square fractal (256x256 map, top-left 28x28 used) of strength 1.5 ... 3 (MNIST-C: 3,
    decay 1.4), then rescale: ``(x + t * plasma) * max(x) / (max(x) + t)``.

    Each image needs a 256x256 map and 65,535 random numbers; maps are built 16 at a time, which keeps
    them in cache and bounds memory.
    """
    x = _check_x(x)
    seed, start = _check_int(seed, "seed"), _check_int(start, "start")
    strength, decay = FOG[_check_severity("fog", severity) - 1]
    n = x.shape[0]
    plasma = torch.empty(n, 1, SIZE, SIZE, dtype=torch.float32)
    for lo in range(0, n, RNG_BLOCK):
        hi = min(n, lo + RNG_BLOCK)
        noise = _draw(seed, "fog", hi - lo, start + lo, (FOG_MAP_SIZE**2 - 1,), "fine")
        for sub in range(0, hi - lo, FOG_CHUNK):
            plasma[lo + sub : lo + sub + FOG_CHUNK, 0] = _plasma(noise[sub : sub + FOG_CHUNK], decay)
    dtype = _compute_dtype(x)
    xc = x.to(dtype)
    peak = xc.amax((1, 2, 3), keepdim=True)
    out = (xc + strength * plasma.to(device=x.device, dtype=dtype)) * peak / (peak + strength)
    return _finish(out, x)


# ---------------------------------------------------------------- spatter -----------------------------------


def spatter(x: torch.Tensor, *, seed: int, severity: int = 4, start: int = 0) -> torch.Tensor:
    """Mud splashes: Gaussian noise N(0.65, 0.3) blurred (sigma 1), thresholded at 0.65, the mask blurred
    (sigma 1.5) and kept where >= 0.8; there the image fades to grey 63/255 (MNIST-C's severity 4)."""
    x = _check_x(x)
    seed, start = _check_int(seed, "seed"), _check_int(start, "start")
    loc, spread, sigma, threshold, sigma2, _ = SPATTER[_check_severity("spatter", severity) - 1]
    dtype = _compute_dtype(x)
    z = _draw(seed, "spatter", x.shape[0], start, (1, SIZE, SIZE), "normal").to(device=x.device, dtype=dtype)
    # blur(loc + spread z) = loc + spread blur(z): the kernel sums to 1 and the border repeats edge pixels
    wet = gaussian_filter(z, sigma) > (threshold - loc) / spread
    mask = gaussian_filter(wet.to(dtype), sigma2)
    xc = x.to(dtype)
    out = torch.where(mask >= SPATTER_MASK_THRESHOLD, xc + mask * (SPATTER_MUD - xc), xc)
    return _finish(out, x)


# ---------------------------------------------------------------- lines -------------------------------------


def _line_from_points(c0: torch.Tensor, r0: torch.Tensor, c1: torch.Tensor, r1: torch.Tensor) -> torch.Tensor:
    """Ink of MNIST-C's ``line_from_points`` for end points of any broadcastable shape S -> S + (28, 28).

    Ink ``log(1 - d / 2.3) + 1`` (clipped to [0, 1]) at vertical distance d from the line through the
    points, kept in columns floor(c0) <= c < ceil(c1); nothing for a vertical segment (c0 == c1).
    """
    c0, r0, c1, r1 = torch.broadcast_tensors(*(torch.as_tensor(v, dtype=torch.float64) for v in (c0, r0, c1, r1)))
    grid = torch.arange(SIZE, dtype=torch.float64)
    vertical = c1 == c0
    slope = (r1 - r0) / torch.where(vertical, 1.0, c1 - c0)
    at_column = slope[..., None] * (grid - c0[..., None]) + r0[..., None]  # S + (28 columns,)
    distance = (grid[:, None] - at_column[..., None, :]).abs().clamp(0.0, LINE_HALF_WIDTH - 1e-10)
    ink = (torch.log(1.0 - distance / LINE_HALF_WIDTH) + 1.0).clamp(0.0, 1.0)
    columns = (grid >= torch.floor(c0)[..., None]) & (grid < torch.ceil(c1)[..., None]) & ~vertical[..., None]
    return ink * columns[..., None, :]


@functools.cache
def _dotted_lines() -> torch.Tensor:
    """(27, 27, 28, 28) float32: the dotted line for every (r0, r1), computed once."""
    rows = torch.arange(27, dtype=torch.float64)
    ink = _line_from_points(torch.tensor(0.0), rows[:, None], torch.tensor(float(SIZE - 1)), rows[None, :])
    dots = (torch.arange(SIZE) // 2) % 2 == 1  # MNIST-C blanks column pairs 0-1, 4-5, ...
    return (ink * dots).to(torch.float32)


def dotted_line(x: torch.Tensor, *, seed: int, start: int = 0) -> torch.Tensor:
    """Add a dotted line from (column 0, row r0) to (column 27, row r1), r0, r1 ~ U{0..26}: ink in column
    pairs 2-3, 6-7, ..., 26 (column 27 is blank, as in MNIST-C)."""
    x = _check_x(x)
    seed, start = _check_int(seed, "seed"), _check_int(start, "start")
    p = _parameters("dotted_line", x.shape[0], seed, start, None)
    ink = _dotted_lines()[p["r0"], p["r1"]][:, None]
    return _finish(x + ink.to(device=x.device, dtype=x.dtype), x)


def _zigzag_points(slope_rows: int) -> list[tuple[float, float]]:
    """End points (column, row offset from r0) of MNIST-C's zigzag for a line sloping ``slope_rows`` rows
    over columns 2 .. 25 (a few floats, computed once per slope)."""
    c0, c1 = ZIGZAG_COLUMNS
    theta = math.atan(slope_rows / (c1 - c0))
    length = (c1 - c0) / math.cos(theta)
    arm = ZIGZAG_ARM
    points = [(0.0, 0.0)]
    height = 0.0
    for i in range(int((length - arm) // (2 * arm)) + 1):
        height = (-1) ** i * arm
        points.append(((2 * i + 1) * arm, height))
    last = (2 * arm) * (length // (2 * arm))
    if length != last:
        points.append((length, height / (2 * (length - last))))  # MNIST-C's closing point, kept as is
    cos, sin = math.cos(theta), math.sin(theta)
    return [(c * cos - r * sin + c0, c * sin + r * cos) for c, r in points]


_ZIGZAG_SLOPES = tuple(range(-5, 5))  # r1 - r0 = np.random.randint(-5, 5)


@functools.cache
def _zigzags() -> torch.Tensor:
    """(27, 10, 28, 28) float32: the zigzag's ink for every start row r0 and slope r1 - r0 = -5 .. 4,
    computed once. Slopes with fewer end points are padded with empty (vertical) segments."""
    tables = [_zigzag_points(k) for k in _ZIGZAG_SLOPES]
    count = max(len(t) for t in tables) - 1
    segments = torch.zeros(len(tables), count, 4, dtype=torch.float64)  # c0, r0 offset, c1, r1 offset
    for i, points in enumerate(tables):
        for k in range(len(points) - 1):
            segments[i, k] = torch.tensor((*points[k], *points[k + 1]), dtype=torch.float64)
    r0 = torch.arange(27, dtype=torch.float64)[:, None, None]
    ink = _line_from_points(segments[..., 0], segments[..., 1] + r0, segments[..., 2], segments[..., 3] + r0)
    return ink.sum(2).to(torch.float32)  # MNIST-C clips after each segment; with ink >= 0 that is one clip


def zigzag(x: torch.Tensor, *, seed: int, start: int = 0) -> torch.Tensor:
    """Add MNIST-C's zigzag: arms of 2 px (length and height) along a line from (column 2, row r0),
    r0 ~ U{0..26}, to column 25, sloping by r1 - r0 ~ U{-5..4} rows."""
    x = _check_x(x)
    seed, start = _check_int(seed, "seed"), _check_int(start, "start")
    p = _parameters("zigzag", x.shape[0], seed, start, None)
    ink = _zigzags()[p["r0"], p["r1"] - p["r0"] - _ZIGZAG_SLOPES[0]][:, None]
    return _finish(x + ink.to(device=x.device, dtype=x.dtype), x)


# ---------------------------------------------------------------- canny -------------------------------------


@functools.cache
def _canny_matrices() -> tuple[torch.Tensor, torch.Tensor]:
    """(28, 28) float64 matrices ``A = D G'`` and ``B = S G'`` such that the row and column Sobel gradients
    of scikit-image's smoothed image are ``A X B.T`` and ``B X A.T``.

    G' is the zero-padded Gaussian (sigma 1, radius 4) with each row divided by its sum: the blur of an
    all-ones image is the outer product of those sums, so skimage's bleed-over correction
    ``G X G.T / (G 1 1.T G.T)`` is ``G' X G'.T``. D and S are SciPy's Sobel derivative [-1, 0, 1] and
    smoothing [1, 2, 1] with its "reflect" border (the edge pixel repeated).
    """
    blur = correlation_matrix(SIZE, truncated_gaussian_kernel(CANNY_SIGMA), "zeros")
    blur = blur / blur.sum(1, keepdim=True)
    derivative = correlation_matrix(SIZE, torch.tensor([-1.0, 0.0, 1.0]), "replicate")
    smoothing = correlation_matrix(SIZE, torch.tensor([1.0, 2.0, 1.0]), "replicate")
    return derivative @ blur, smoothing @ blur


def _nonmax_suppression(
    isobel: torch.Tensor, jsobel: torch.Tensor, magnitude: torch.Tensor, low: float
) -> torch.Tensor:
    """scikit-image's bilinear non-maximum suppression with its low threshold: True where the magnitude
    is >= ``low`` and at least both values interpolated along the gradient direction; borders False.

    Only the candidates (interior pixels with magnitude >= ``low``, a few percent of an MNIST digit) are
    examined, through their flat indices.
    """
    n, c, h, w = magnitude.shape
    candidate = magnitude >= low
    candidate[..., :1, :] = candidate[..., -1:, :] = False
    candidate[..., :, :1] = candidate[..., :, -1:] = False
    index = candidate.reshape(-1).nonzero().squeeze(1)
    flat_m = magnitude.reshape(-1)
    m, i, j = flat_m[index], isobel.reshape(-1)[index], jsobel.reshape(-1)[index]
    ai, aj = i.abs(), j.abs()
    same_sign = (i > 0) == (j > 0)
    steep, flat = ai > aj, ai < aj  # same signs: steep uses rows; opposite signs: flat uses columns
    rows_first = torch.where(same_sign, steep, ~flat)
    weight = torch.where(rows_first, aj, ai) / torch.where(rows_first, ai, aj)
    step = torch.where(rows_first, w, 1)  # the neighbour straight along the major axis, as a flat offset
    diag1 = torch.where(same_sign, w + 1, 1 - w)  # the diagonal neighbour on the "+" side
    near1 = torch.where(same_sign, step, torch.where(rows_first, -w, 1))
    n11, n12 = flat_m[index + near1], flat_m[index + diag1]
    n21, n22 = flat_m[index - near1], flat_m[index - diag1]  # the opposite side
    keep = ((n12 * weight + n11 * (1.0 - weight)) <= m) & ((n22 * weight + n21 * (1.0 - weight)) <= m)
    out = torch.zeros(n * c * h * w, dtype=torch.bool, device=magnitude.device)
    out[index[keep]] = True
    return out.reshape(magnitude.shape)


def _hysteresis(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Pixels of ``low`` 8-connected (within ``low``) to a pixel of ``high``, by repeated 3x3 dilation of
    the images that have pixels in ``low`` but not in ``high``."""
    high = high & low
    todo = (low & ~high).flatten(1).any(1).nonzero().squeeze(1)
    if todo.numel() == 0:
        return high
    weak, edges = low[todo], high[todo]
    while True:
        grown = weak & (F.max_pool2d(edges.to(torch.float32), 3, stride=1, padding=1) > 0)
        if torch.equal(grown, edges):
            break
        edges = grown
    out = high.clone()
    out[todo] = edges
    return out


def canny_edges(x: torch.Tensor, *, seed: int = 0, start: int = 0) -> torch.Tensor:
    """scikit-image's ``feature.canny`` with its defaults: 0/1 edge maps. No randomness.

    Gaussian (sigma 1, radius 4) with zero padding, divided by the blurred all-ones image (skimage's
    bleed-over correction); Sobel gradients; bilinear non-maximum suppression; hysteresis between
    0.1 and 0.2 of the gradient magnitude with 8-connected linking. Computed in float32 (float64 for
    float64 input). Sums are ordered differently from SciPy's, so where two gradient magnitudes tie
    exactly (perfectly symmetric synthetic shapes) the edge can fall on the other pixel; on MNIST
    digits the output equals scikit-image's pixel for pixel.
    """
    x = _check_x(x)
    _check_int(seed, "seed")
    _check_int(start, "start")
    dtype = _compute_dtype(x)
    image = x.to(dtype)
    along, across = (m.to(device=x.device, dtype=dtype) for m in _canny_matrices())
    isobel = along @ image @ across.T
    jsobel = across @ image @ along.T
    magnitude = torch.sqrt(isobel * isobel + jsobel * jsobel)
    low_t, high_t = CANNY_THRESHOLDS
    local = _nonmax_suppression(isobel, jsobel, magnitude, low_t)
    edges = _hysteresis(local, local & (magnitude >= high_t))
    return edges.to(x.dtype)


# ---------------------------------------------------------------- registry ----------------------------------

CORRUPTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "shear": shear,
    "scale": scale,
    "rotate": rotate,
    "brightness": brightness,
    "translate": translate,
    "stripe": stripe,
    "fog": fog,
    "spatter": spatter,
    "dotted_line": dotted_line,
    "zigzag": zigzag,
    "canny_edges": canny_edges,
}

RANDOM = frozenset(NAMES) - {"scale", "brightness", "stripe", "canny_edges"}


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in CORRUPTIONS:
        raise InputError(ERR_UNKNOWN.format(name=name, known=", ".join(NAMES)))
    return name


def corrupt(x: torch.Tensor, name: str, *, seed: int, start: int = 0, severity: int | None = None) -> torch.Tensor:
    """Apply MNIST-C corruption ``name`` to ``x`` (N, 1, 28, 28) in [0, 1].

    ``severity`` (1-5) only for corruptions that have one in MNIST-C; None means MNIST-C's. ``start``
    is the index of ``x[0]`` in the whole set (see the module docstring on randomness).
    """
    fn = CORRUPTIONS[_check_name(name)]
    if severity is None:
        return fn(x, seed=seed, start=start)
    if DEFAULT_SEVERITY[name] is None:
        raise InputError(f"{name} has no severity in MNIST-C; leave severity=None")
    return fn(x, seed=seed, start=start, severity=severity)


# ---------------------------------------------------------------- the data set ------------------------------


@dataclass(frozen=True)
class MnistC:
    """A corrupted test set: one (N, 1, 28, 28) float32 tensor per corruption, rounded to 8 bits as
    MNIST-C's files are, the labels, and where it was cached."""

    images: dict[str, torch.Tensor]
    labels: torch.Tensor
    seed: int
    fingerprint: str
    path: Path | None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def default_mnist_c_cache() -> Path:
    """``$XDG_CACHE_HOME/trustlab/mnist_c`` (default ``~/.cache/trustlab/mnist_c``)."""
    return default_cache_dir().parent / "mnist_c"


def _fingerprint(images: torch.Tensor, labels: torch.Tensor, seed: int, names: list[str]) -> str:
    source = hashlib.sha256()
    source.update(images.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    source.update(labels.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
    key = {
        "format": CACHE_FORMAT,
        "torch": torch.__version__.split("+")[0],
        "numpy": np.__version__,
        "seed": seed,
        "corruptions": {n: DEFAULT_SEVERITY[n] for n in names},
        "source_sha256": source.hexdigest(),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _read_cache(path: Path, fingerprint: str, names: list[str], n: int) -> dict[str, torch.Tensor] | None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            if (handle.metadata() or {}).get("fingerprint") != fingerprint:
                return None
            stored = {name: handle.get_tensor(name) for name in names}
    except (OSError, SafetensorError, KeyError, ValueError):
        return None
    if any(t.dtype != torch.uint8 or tuple(t.shape) != (n, 1, SIZE, SIZE) for t in stored.values()):
        return None
    return stored


def mnist_c_set(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    seed: int = 0,
    corruptions: Sequence[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
    batch_size: int = 1000,
    show_progress: bool = True,
) -> MnistC:
    """An MNIST-C-like test set built from ``images`` (N, 1, 28, 28) in [0, 1] and their ``labels``.

    Every corruption (default: all 15, in MNIST-C's order) is applied at MNIST-C's severity with
    ``seed``, in batches of ``batch_size`` (which does not change the result), and rounded to 8 bits.
    With ``cache`` the result is stored as one safetensors file (a uint8 tensor per corruption) in
    ``cache_dir`` (default ``$XDG_CACHE_HOME/trustlab/mnist_c``), named by a fingerprint of the seed,
    the corruptions and the sha256 of the source images and labels, and read back on the next call.
    """
    from safetensors.torch import save

    images = _check_x(images)
    if not isinstance(labels, torch.Tensor) or labels.shape != (images.shape[0],):
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise InputError(f"labels must be a tensor of shape ({images.shape[0]},), one per image, got {got}")
    seed = _check_int(seed, "seed")
    batch_size = _check_int(batch_size, "batch_size", minimum=1)
    if corruptions is None:
        names = list(NAMES)
    else:
        if isinstance(corruptions, str):
            corruptions = [corruptions]
        wanted = {_check_name(name) for name in corruptions}
        names = [name for name in NAMES if name in wanted]
    fingerprint = _fingerprint(images, labels, seed, names)
    path = None
    if cache:
        path = Path(cache_dir if cache_dir is not None else default_mnist_c_cache()).expanduser()
        path = path / f"mnist_c-{fingerprint[:20]}.safetensors"
        stored = _read_cache(path, fingerprint, names, images.shape[0]) if path.is_file() else None
        if stored is not None:
            out = {name: stored[name].to(torch.float32) / 255.0 for name in names}
            return MnistC(out, labels.clone(), seed, fingerprint, path)
    steps = [(name, lo) for name in names for lo in range(0, images.shape[0], batch_size)]
    by_name: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    for name, lo in progress(steps, desc="MNIST-C", enabled=show_progress, unit="batch"):
        batch = corrupt(images[lo : lo + batch_size], name, seed=seed, start=lo)
        by_name[name].append(torch.round(batch.to(torch.float32) * 255.0).to(torch.uint8).cpu())
    empty = torch.empty(0, 1, SIZE, SIZE, dtype=torch.uint8)
    stored = {name: torch.cat(parts) if parts else empty for name, parts in by_name.items()}
    if path is not None:
        metadata = {"fingerprint": fingerprint, "seed": str(seed), "corruptions": ",".join(names)}
        atomic_write_bytes(path, save({k: v.contiguous() for k, v in stored.items()}, metadata=metadata))
    out = {name: stored[name].to(torch.float32) / 255.0 for name in names}
    return MnistC(out, labels.clone(), seed, fingerprint, path)


__all__ = [
    "CORRUPTIONS",
    "DEFAULT_SEVERITY",
    "NAMES",
    "MnistC",
    "brightness",
    "canny_edges",
    "corrupt",
    "default_mnist_c_cache",
    "dotted_line",
    "drawn_parameters",
    "fog",
    "glass_blur",
    "impulse_noise",
    "mnist_c_set",
    "motion_blur",
    "rotate",
    "scale",
    "shear",
    "shot_noise",
    "spatter",
    "stripe",
    "translate",
    "zigzag",
]
