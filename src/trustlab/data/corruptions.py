"""Image corruptions that turn in-distribution images into out-of-distribution test inputs.

Every function takes a batch ``x`` of shape (N, C, H, W) in [0, 1] (pixel space), returns a
new tensor of the same shape, dtype and device, clamped to [0, 1], and never modifies ``x``.
All work is batched torch (``affine_grid``/``grid_sample``, ``conv2d``, slicing), so a whole
test set is corrupted in a few calls. Image convention: row 0 is the top, column 0 the left.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from trustlab.core.exceptions import InputError

BOUNDS_TOLERANCE = 1e-6

# Defaults of the corruptions used for OOD evaluation of 28x28 MNIST digits.
ROTATE_DEGREES = 90.0
BLUR_SIGMA = 2.0  # kernel radius 6 px: strokes (2-3 px wide) smear into a faint blob
SHIFT_PIXELS = (8, 8)  # right, down: MNIST digits sit in the central 20x20 box, so 4 of its
# 20 rows and columns leave the frame and the digit ends up in the bottom-right corner

PADDING_MODES = ("zeros", "replicate", "reflect")


def check_images(x: object, name: str = "x") -> torch.Tensor:
    """Refuse anything but a finite floating (N, C, H, W) tensor within [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise InputError(f"{name} must have shape (N, C, H, W), got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise InputError(f"{name} must be a floating point tensor in [0, 1], got dtype {x.dtype}")
    if x.numel():
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise InputError(f"{name} must be finite, found {bad} NaN or infinite values")
        lo, hi = float(x.min()), float(x.max())
        if lo < -BOUNDS_TOLERANCE or hi > 1.0 + BOUNDS_TOLERANCE:
            raise InputError(f"{name} must lie in [0, 1], found values in [{lo:.4g}, {hi:.4g}]")
    return x


def _check_real(value: object, name: str, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InputError(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise InputError(f"{name} must be >= {minimum:g}, got {value:g}")
    return value


def _check_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be an integer number of pixels, got {type(value).__name__} {value!r}")
    return int(value)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _finish(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return out.clamp_(0.0, 1.0).to(like.dtype)


def _cos_sin(degrees: float) -> tuple[float, float]:
    """cos and sin of ``degrees``, exact for multiples of 90 so quarter turns move pixels exactly."""
    if degrees % 90.0 == 0.0:
        return ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[int(degrees // 90.0) % 4]
    rad = math.radians(degrees)
    return math.cos(rad), math.sin(rad)


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate every image by ``degrees`` counter-clockwise (as displayed) about its centre.

    Bilinear sampling, zero fill outside the source image, same H x W as the input (corners of
    non-square images are cut). 90 degrees equals ``torch.rot90(x, 1, dims=(-2, -1))`` on square
    images of odd or even size. Rotation is done in pixel units, so non-square images are not
    sheared.
    """
    x = check_images(x)
    degrees = _check_real(degrees, "degrees")
    n, _, h, w = x.shape
    if n == 0:
        return x.clone()
    c, s = _cos_sin(degrees)
    # Output pixel (u, v) (centred pixel units, v down) samples the source at
    # (c*u - s*v, s*u + c*v); affine_grid works in coordinates normalised by W/2 and H/2.
    dtype = _compute_dtype(x)
    theta = torch.tensor([[c, -s * h / w, 0.0], [s * w / h, c, 0.0]], dtype=dtype, device=x.device)
    grid = F.affine_grid(theta.expand(n, 2, 3), [n, x.shape[1], h, w], align_corners=False)
    out = F.grid_sample(x.to(dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return _finish(out, x)


def invert(x: torch.Tensor) -> torch.Tensor:
    """Photographic negative ``1 - x``: white digits on black become black digits on white."""
    x = check_images(x)
    return _finish(1.0 - x, x)


def gaussian_kernel(sigma: float, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian of radius ``ceil(3 sigma)`` sampled at integer offsets (sums to 1)."""
    sigma = _check_real(sigma, "sigma", minimum=0.0)
    radius = math.ceil(3.0 * sigma)
    if radius == 0:
        return torch.ones(1, dtype=dtype)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype)


def gaussian_blur(x: torch.Tensor, sigma: float, *, padding: str = "zeros") -> torch.Tensor:
    """Blur with a separable Gaussian of standard deviation ``sigma`` pixels (radius ceil(3 sigma)).

    ``padding`` says what lies beyond the border: "zeros" (default: for MNIST-like images the
    black background continues, so ink blurred past the border is lost and nothing bright is
    invented), "replicate" (edge pixels repeat) or "reflect" (needs radius < H and W).
    ``sigma = 0`` returns a copy.
    """
    x = check_images(x)
    if padding not in PADDING_MODES:
        raise InputError(f"padding must be one of {', '.join(PADDING_MODES)}, got {padding!r}")
    dtype = _compute_dtype(x)
    kernel = gaussian_kernel(sigma, dtype=dtype).to(x.device)
    radius = (kernel.numel() - 1) // 2
    n, c, h, w = x.shape
    if radius == 0 or x.numel() == 0:
        return x.clone()
    if padding == "reflect" and radius >= min(h, w):
        raise InputError(
            f"sigma={sigma:g} needs a kernel radius of {radius} px, too large for reflect padding of "
            f"{h}x{w} images (radius must be < {min(h, w)}); use padding='zeros' or 'replicate'"
        )
    mode = "constant" if padding == "zeros" else padding
    flat = x.to(dtype).reshape(n * c, 1, h, w)
    flat = F.pad(flat, (radius, radius, radius, radius), mode=mode)
    flat = F.conv2d(flat, kernel.reshape(1, 1, 1, -1))  # along rows (width)
    flat = F.conv2d(flat, kernel.reshape(1, 1, -1, 1))  # along columns (height)
    return _finish(flat.reshape(n, c, h, w), x)


def shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Translate by whole pixels, ``dx`` to the right and ``dy`` down (negative: left / up).

    Pixels moved out of the frame are dropped and the uncovered area is zero (black); a shift
    of at least the image size leaves an all-zero image.
    """
    x = check_images(x)
    dx, dy = _check_int(dx, "dx"), _check_int(dy, "dy")
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        ..., max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def shift_each(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Move each image (N, C, H, W) by its own whole-pixel offset, ``dx[i]`` right and ``dy[i]`` down
    (integer tensors of length N; negative: left / up), uncovered pixels set to ``fill``: one gather
    over the batch. Inputs are not checked (callers have)."""
    n, c, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h, 1) - dy.to(x.device).view(n, 1, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w) - dx.to(x.device).view(n, 1, 1)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    index = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).view(n, 1, h * w).expand(n, c, h * w)
    moved = x.reshape(n, c, h * w).gather(2, index).view(n, c, h, w)
    return torch.where(inside.unsqueeze(1), moved, fill)


def about_centre(linear: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(N, 2, 3) maps for :func:`affine_warp` from (N, 2, 2) linear parts (column, row coordinates),
    translated so that the image centre ((w - 1) / 2, (h - 1) / 2) stays where it is."""
    centre = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], dtype=linear.dtype, device=linear.device)
    offset = centre - linear @ centre
    return torch.cat((linear, offset[..., None]), dim=-1)


CORRUPTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "rotate90": partial(rotate, degrees=ROTATE_DEGREES),
    "invert": invert,
    "blur": partial(gaussian_blur, sigma=BLUR_SIGMA),
    "shift": partial(shift, dx=SHIFT_PIXELS[0], dy=SHIFT_PIXELS[1]),
}

CORRUPTION_DESCRIPTIONS: dict[str, str] = {
    "rotate90": f"rotated {ROTATE_DEGREES:g} degrees counter-clockwise about the centre (bilinear, zero fill)",
    "invert": "inverted (1 - x): dark strokes on a white background",
    "blur": f"blurred by a Gaussian of sigma {BLUR_SIGMA:g} px (radius {math.ceil(3 * BLUR_SIGMA)} px, zero padding)",
    "shift": (
        f"shifted {SHIFT_PIXELS[0]} px right and {SHIFT_PIXELS[1]} px down with zero fill: a centred 28x28 "
        "digit loses its bottom and right edges (about 29% of MNIST's ink)"
    ),
}


# ---------------------------------------------------------------- helpers for per-image warps and filters -----


def affine_warp(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Resample every image through an affine map from output to input pixel coordinates.

    ``matrix`` is (2, 3) or (N, 2, 3) (one per image): output pixel (col, row) takes the input value at
    ``matrix @ (col, row, 1)``, with pixel centres at integer coordinates, column first (the
    ``inverse_map`` convention of scikit-image's ``warp``). Bilinear sampling; samples that fall off the
    image see zeros (black), like ``warp(..., order=1, mode="constant", cval=0)``. Same shape, dtype and
    device as ``x``, clamped to [0, 1].
    """
    x = check_images(x)
    if not isinstance(matrix, torch.Tensor) or not torch.is_floating_point(matrix):
        raise InputError(f"matrix must be a floating point tensor of shape (2, 3) or (N, 2, 3), got {type(matrix)}")
    n, c, h, w = x.shape
    if matrix.shape == (2, 3):
        matrix = matrix.expand(n, 2, 3)
    if matrix.shape != (n, 2, 3):
        raise InputError(f"matrix must have shape (2, 3) or ({n}, 2, 3) for {n} images, got {tuple(matrix.shape)}")
    return _affine_warp(x, matrix)


def _affine_warp(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """:func:`affine_warp` on inputs already checked (``matrix`` of shape (N, 2, 3))."""
    n, c, h, w = x.shape
    if n == 0:
        return x.clone()
    dtype = _compute_dtype(x)
    # grid_sample (align_corners=False) puts pixel centre k of a side of length L at (2k + 1) / L - 1: with
    # D = diag(W, H), pixel maps p_in = A p_out + t become g_in = D^-1 A D g_out + D^-1 (A (D - 1) 1 + 2t + 1) - 1
    matrix = matrix.to(device=x.device, dtype=torch.float64)
    linear, t = matrix[:, :, :2], matrix[:, :, 2]
    size = torch.tensor([w, h], dtype=torch.float64, device=x.device)
    theta_linear = (linear * size[None, None, :] / size[None, :, None]).to(dtype)
    theta_offset = (((linear @ (size - 1.0)) + 2.0 * t + 1.0) / size - 1.0).to(dtype)
    gx = (2.0 * torch.arange(w, dtype=dtype, device=x.device) + 1.0) / w - 1.0
    gy = (2.0 * torch.arange(h, dtype=dtype, device=x.device) + 1.0) / h - 1.0
    # (N, H, W, 2) by one broadcast add of the row part (N, H, 1, 2) and the column part (N, 1, W, 2)
    rows = gy[None, :, None, None] * theta_linear[:, None, None, :, 1] + theta_offset[:, None, None, :]
    cols = gx[None, None, :, None] * theta_linear[:, None, None, :, 0]
    grid = rows + cols
    out = F.grid_sample(x.to(dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return _finish(out, x)


def truncated_gaussian_kernel(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """SciPy's 1-D Gaussian (float64, sums to 1): radius ``int(truncate * sigma + 0.5)``."""
    sigma = _check_real(sigma, "sigma", minimum=0.0)
    radius = int(_check_real(truncate, "truncate", minimum=0.0) * sigma + 0.5)
    if radius == 0:
        return torch.ones(1, dtype=torch.float64)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def correlation_matrix(size: int, kernel: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """(size, size) float64 matrix M such that ``M @ v`` is ``v`` (length ``size``) correlated with the
    odd-length 1-D ``kernel``, the border handled as ``padding`` says: "zeros", "replicate" (SciPy's
    "nearest") or "reflect" (SciPy's "mirror"). ``M @ X @ M.T`` filters both axes of a square image."""
    if padding not in PADDING_MODES:
        raise InputError(f"padding must be one of {', '.join(PADDING_MODES)}, got {padding!r}")
    kernel = torch.as_tensor(kernel, dtype=torch.float64).reshape(-1)
    if kernel.numel() % 2 != 1:
        raise InputError(f"kernel must have an odd length, got {kernel.numel()}")
    radius = (kernel.numel() - 1) // 2
    rows = torch.arange(size).repeat_interleave(kernel.numel())
    cols = (torch.arange(size)[:, None] + torch.arange(-radius, radius + 1)[None, :]).reshape(-1)
    weights = kernel.repeat(size)
    if padding == "replicate":
        cols = cols.clamp(0, size - 1)
    elif padding == "reflect":
        period = 2 * (size - 1)
        cols = cols.remainder(period) if size > 1 else torch.zeros_like(cols)
        cols = torch.where(cols >= size, period - cols, cols)
    else:
        inside = (cols >= 0) & (cols < size)
        rows, cols, weights = rows[inside], cols[inside], weights[inside]
    matrix = torch.zeros(size, size, dtype=torch.float64)
    matrix.index_put_((rows, cols), weights, accumulate=True)
    return matrix


def gaussian_filter(
    x: torch.Tensor,
    sigma: float,
    *,
    truncate: float = 4.0,
    padding: str = "replicate",
    dims: tuple[int, ...] = (-2, -1),
) -> torch.Tensor:
    """Separable Gaussian blur with SciPy's conventions (``scipy.ndimage.gaussian_filter``).

    The kernel radius is ``int(truncate * sigma + 0.5)`` (SciPy's rule, not :func:`gaussian_blur`'s
    ``ceil(3 sigma)``). ``padding``: "replicate" (SciPy's ``mode="nearest"``, scikit-image's default),
    "zeros" (``mode="constant"``, cval 0) or "reflect" (``mode="mirror"``). ``dims`` says which image axes
    are blurred: -2 (vertically), -1 (horizontally) or both (default). The blur along an axis of length
    L is one batched product with an L x L band matrix that holds the border rule, which is fast for
    small images such as MNIST's 28 x 28. Values are not clamped (a blur of data in [0, 1] stays in
    [0, 1]); float64 is kept, other floating types are computed in float32 and cast back.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not torch.is_floating_point(x):
        raise InputError(f"x must be a floating point tensor of shape (N, C, H, W), got {getattr(x, 'shape', x)!r}")
    sigma = _check_real(sigma, "sigma", minimum=0.0)
    truncate = _check_real(truncate, "truncate", minimum=0.0)
    if padding not in PADDING_MODES:
        raise InputError(f"padding must be one of {', '.join(PADDING_MODES)}, got {padding!r}")
    if not dims or any(d not in (-2, -1) for d in dims):
        raise InputError(f"dims must be a non-empty subset of (-2, -1), got {dims!r}")
    kernel = truncated_gaussian_kernel(sigma, truncate)
    if kernel.numel() == 1 or x.numel() == 0:
        return x.clone()
    dtype = _compute_dtype(x)
    n, c, h, w = x.shape
    out = x.to(dtype).reshape(n * c, h, w)
    if -2 in dims:  # (M X) = (X^T M^T)^T: a right product is one plain matrix multiply
        m = correlation_matrix(h, kernel, padding).to(device=x.device, dtype=dtype)
        out = (out.transpose(1, 2) @ m.T).transpose(1, 2)
    if -1 in dims:
        out = out @ correlation_matrix(w, kernel, padding).to(device=x.device, dtype=dtype).T
    return out.reshape(n, c, h, w).to(x.dtype)
