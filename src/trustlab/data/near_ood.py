"""Near out-of-distribution sets for an MNIST model: inputs drawn with strokes like handwritten digits
that are not digits.

Far-OOD sets (noise, photos, decorated letters) differ from digits in texture or brightness; a
detector can catch them without knowing what a digit is. These do not: every image is white pen
strokes of MNIST's width on black, centred like MNIST, so only the *shape* tells. Six families,
each deterministic given ``seed`` (and the digits it starts from):

* ``near_flipped``: test digits mirrored left-right (classes 2, 3, 4, 5, 6, 7, 9) or turned upside
  down (2, 3, 4, 5, 7); the classes whose mirror or turn is a digit (0, 1, 8; 6 <-> 9) are left out;
* ``near_overlays``: two test digits of different classes overlaid (pixel-wise maximum);
* ``near_fragments``: one half of a test digit other than 1 (the part above, below, left or right of
  its centre of mass), scaled and centred as MNIST's digits were;
* ``near_strokes``: one to three random quadratic Bezier pen strokes, 1.8-3.2 px wide, scaled and centred;
* ``near_letters``: uppercase Latin letters that do not look like digits (not B, G, I, O, Q, S, Z)
  from the 21 text fonts that ship with matplotlib;
* ``near_symbols``: ASCII symbols (+ = # % & @ ? ! $ * < > { } ~) from its 16 DejaVu and STIX fonts.

Glyphs are rendered with Pillow, white on black, thinned or thickened (3 x 3 erosion or dilation at
the rendering size) to MNIST's mean pen width (about 2.3 px), then prepared as MNIST's digits were:
the bounding box scaled (aspect kept) to fit 20 x 20 and placed in 28 x 28 with its centre of mass in the middle;
each drawn glyph then gets its own small random rotation (up to 12 degrees), shear (up to 0.2) and
scale (0.9-1.1), vectorised over the batch.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from trustlab.core.exceptions import InputError
from trustlab.data.corruptions import _affine_warp, about_centre, check_images, shift_each

SIZE, BOX = 28, 20
FLIP_MIRROR_CLASSES = (2, 3, 4, 5, 6, 7, 9)
FLIP_TURN_CLASSES = (2, 3, 4, 5, 7)
LETTERS = "ACDEFHJKLMNPRTUVWXY"  # no B G I O Q S Z: too like 8 6 1 0 0 5 2
SYMBOLS = "+=#%&@?!$*<>{}~"
TEXT_FONTS = (
    *(f"DejaVuSans{s}.ttf" for s in ("", "-Bold", "-Oblique", "-BoldOblique")),
    *(f"DejaVuSansMono{s}.ttf" for s in ("", "-Bold", "-Oblique", "-BoldOblique")),
    *(f"DejaVuSerif{s}.ttf" for s in ("", "-Bold", "-Italic", "-BoldItalic")),
    *(f"STIXGeneral{s}.ttf" for s in ("", "Bol", "Italic", "BolIta")),
)
TEX_FONTS = ("cmr10.ttf", "cmss10.ttf", "cmti10.ttf", "cmtt10.ttf", "cmb10.ttf")  # letters only
RENDER_SIZE, CANVAS = 56, 96
MNIST_PEN = 2.3  # mean stroke width of MNIST's test digits in px (ink area over half its boundary): 2.27
MAX_MORPH_STEPS = 12
MAX_UPSCALE = 1.6
MIN_FRAGMENT_INK = 0.4  # a fragment keeps at least this share of its digit's ink
JITTER_DEGREES, JITTER_SHEAR, JITTER_SCALE = 12.0, 0.2, 0.1
PEN_WIDTH = (1.8, 3.2)
CURVE_POINTS = 48

NEAR_OOD_DESCRIPTIONS: dict[str, str] = {
    "near_flipped": "test digits mirrored (2-7, 9) or turned upside down (2-5, 7): digit strokes, no digit",
    "near_overlays": "two test digits of different classes overlaid (pixel-wise maximum)",
    "near_fragments": "the half of a test digit above, below, left or right of its centre of mass, re-centred",
    "near_strokes": "one to three random smooth pen strokes of MNIST's width",
    "near_letters": "uppercase letters unlike digits from matplotlib's 21 text fonts, prepared like MNIST",
    "near_symbols": "ASCII symbols (+ = # % & @ ? ...) from matplotlib's DejaVu and STIX fonts, prepared like MNIST",
}
NEAR_OOD_NAMES: tuple[str, ...] = tuple(NEAR_OOD_DESCRIPTIONS)
NEEDS_DIGITS = ("near_flipped", "near_overlays", "near_fragments")
NEEDS_LABELS = NEEDS_DIGITS
FRAGMENT_CLASSES = (0, 2, 3, 4, 5, 6, 7, 8, 9)  # half a 1 is a 1


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- MNIST-style preparation -------
def centre_by_mass(x: torch.Tensor) -> torch.Tensor:
    """Move each image (N, 1, H, W) by whole pixels so its centre of mass lands in the middle (MNIST's
    rule); ink shifted past the border is lost, empty images stay empty."""
    _, _, h, w = x.shape
    mass = x.sum(dim=(1, 2, 3)).clamp_min(1e-12)
    rows = (x.sum(dim=(1, 3)) * torch.arange(h, dtype=x.dtype)).sum(1) / mass
    cols = (x.sum(dim=(1, 2)) * torch.arange(w, dtype=x.dtype)).sum(1) / mass
    dy = torch.round((h - 1) / 2 - rows).to(torch.int64)
    dx = torch.round((w - 1) / 2 - cols).to(torch.int64)
    return shift_each(x, dx, dy)


def _pen_width(glyph: np.ndarray, width: float = MNIST_PEN) -> np.ndarray:
    """A binary glyph (H, W bool) eroded or dilated (3 x 3 steps) until its mean stroke width is the
    one ``width`` px would be once its longer side is scaled to 20 px (MNIST's strokes: about 2.3 px)."""
    rows, cols = np.nonzero(glyph)
    target = width * max(np.ptp(rows) + 1, np.ptp(cols) + 1) / BOX
    ink = torch.from_numpy(glyph.astype(np.float32))[None, None]
    for _ in range(MAX_MORPH_STEPS):
        current = float(stroke_width(ink, 0.5)[0])
        if abs(current - target) <= 1.0:
            break
        grown = F.max_pool2d(ink, 3, stride=1, padding=1) if current < target else -F.max_pool2d(-ink, 3, 1, 1)
        if grown.sum() == 0:
            break
        ink = grown
    return ink[0, 0].numpy() > 0.5


def _mnist_box(glyph: np.ndarray) -> np.ndarray | None:
    """A rendered glyph (H, W uint8, ink high) at MNIST's pen width, cropped to its bounding box and
    resized (aspect kept, antialiased) so its longer side is 20 px, pasted top-left in a 28 x 28 float
    array; None if empty."""
    from PIL import Image

    binary = glyph >= 128
    if not binary.any():
        return None
    binary = _pen_width(binary)
    rows, cols = np.nonzero(binary)
    crop = binary[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].astype(np.uint8) * 255
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[: small.shape[0], : small.shape[1]] = np.clip(small, 0.0, 1.0)
    return out


def _font_path(name: str) -> str:
    import matplotlib

    return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf", name)


@lru_cache(maxsize=2)
def glyph_prototypes(kind: str) -> torch.Tensor:
    """Every (character, font) of ``kind`` ("letters" or "symbols") rendered and prepared like an
    MNIST digit: (P, 1, 28, 28) float32 in [0, 1]. Fonts that lack a character (it
    renders empty or as the same box as a missing glyph) are skipped."""
    from PIL import Image, ImageDraw, ImageFont

    chars, fonts = (LETTERS, TEXT_FONTS + TEX_FONTS) if kind == "letters" else (SYMBOLS, TEXT_FONTS)
    found = []
    for font_name in fonts:
        font = ImageFont.truetype(_font_path(font_name), RENDER_SIZE)
        missing = font.getmask("\ufffe").getbbox()  # what this font draws for a character it lacks
        for char in chars:
            drawn = font.getmask(char).getbbox()
            if drawn is None or drawn == missing:
                continue
            canvas = Image.new("L", (CANVAS, CANVAS), 0)
            ImageDraw.Draw(canvas).text((CANVAS // 2, CANVAS // 2), char, fill=255, font=font, anchor="mm")
            box = _mnist_box(np.asarray(canvas))
            if box is not None:
                found.append(box)
    return centre_by_mass(torch.from_numpy(np.stack(found)).unsqueeze(1))


def _jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image turned, sheared and scaled by its own small random amount about the centre."""
    n, _, h, w = x.shape
    u = torch.rand(n, 3, generator=generator, dtype=torch.float64) * 2.0 - 1.0
    theta = torch.deg2rad(u[:, 0] * JITTER_DEGREES)
    shear, scale = u[:, 1] * JITTER_SHEAR, 1.0 + u[:, 2] * JITTER_SCALE
    cos, sin = torch.cos(theta), torch.sin(theta)
    # output -> input map: undo scale, shear and turn (column, row coordinates about the centre)
    forward = (
        torch.stack([torch.stack([cos, -sin + shear * cos], -1), torch.stack([sin, cos + shear * sin], -1)], -2)
        * scale[:, None, None]
    )
    return _affine_warp(x, about_centre(torch.linalg.inv(forward), h, w))


def _drawn_glyphs(kind: str, n: int, seed: int) -> torch.Tensor:
    prototypes = glyph_prototypes(kind)
    generator = _generator(seed)
    pick = torch.randint(0, prototypes.shape[0], (n,), generator=generator)
    return _jitter(prototypes[pick], generator)


def fit_box(x: torch.Tensor, threshold: float = 0.05) -> torch.Tensor:
    """Scale each image (N, 1, 28, 28) about its ink's bounding box so the box's longer side is 20 px
    (MNIST's normalisation, bilinear; enlarged at most 1.6 times, beyond which strokes blur into
    blobs no pen draws), then centre it by mass. Empty images stay empty."""
    n = x.shape[0]
    ink = x[:, 0] > threshold
    any_rows, any_cols = ink.any(2), ink.any(1)
    index = torch.arange(SIZE, dtype=torch.float64)
    big = torch.tensor(1e9, dtype=torch.float64)
    top = torch.where(any_rows, index, big).amin(1)
    bottom = torch.where(any_rows, index, -big).amax(1)
    left = torch.where(any_cols, index, big).amin(1)
    right = torch.where(any_cols, index, -big).amax(1)
    empty = ~any_rows.any(1)
    side = torch.maximum(bottom - top, right - left) + 1.0
    scale = torch.where(empty, torch.ones_like(side), (BOX / side.clamp_min(1.0)).clamp_max(MAX_UPSCALE))
    centre_in = torch.stack([(left + right) / 2, (top + bottom) / 2], -1)
    centre_in = torch.where(empty[:, None], torch.full_like(centre_in, (SIZE - 1) / 2), centre_in)
    linear = torch.eye(2, dtype=torch.float64).expand(n, 2, 2) / scale.view(n, 1, 1)
    offset = centre_in - (linear @ torch.full((2,), (SIZE - 1) / 2, dtype=torch.float64))
    return centre_by_mass(_affine_warp(x, torch.cat([linear, offset[..., None]], -1)))


# ---------------------------------------------------------------- families from digits ----------
def _check_digits(x: torch.Tensor, y: torch.Tensor | None, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    x = check_images(x, "digits")
    if tuple(x.shape[1:]) != (1, SIZE, SIZE) or x.shape[0] == 0:
        raise InputError(f"{name} needs digits of shape (N >= 1, 1, 28, 28), got {tuple(x.shape)}")
    if name in NEEDS_LABELS:
        if y is None:
            raise InputError(f"{name} needs the digits' labels")
        y = torch.as_tensor(y).to(torch.int64).reshape(-1)
        if y.shape[0] != x.shape[0]:
            raise InputError(f"{name}: {y.shape[0]} labels for {x.shape[0]} digits")
    return x, y


def flipped(x: torch.Tensor, y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` digits of the classes whose mirror image (or upside-down turn) is no digit, flipped."""
    generator = _generator(seed)
    mirror = torch.isin(y, torch.tensor(FLIP_MIRROR_CLASSES))
    turn = torch.isin(y, torch.tensor(FLIP_TURN_CLASSES))
    if not turn.any():
        raise InputError("near_flipped needs digits of the classes 2, 3, 4, 5 or 7")
    use_turn = torch.rand(n, generator=generator) < 0.5
    pool_m, pool_t = mirror.nonzero().squeeze(1), turn.nonzero().squeeze(1)
    mirrored = x[pool_m[torch.randint(0, len(pool_m), (n,), generator=generator)]].flip(-1)
    turned = x[pool_t[torch.randint(0, len(pool_t), (n,), generator=generator)]].flip(-1).flip(-2)
    return torch.where(use_turn.view(n, 1, 1, 1), turned, mirrored)


def overlays(x: torch.Tensor, y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` overlays (pixel-wise maximum) of two digits of different classes."""
    generator = _generator(seed)
    if len(torch.unique(y)) < 2:
        raise InputError("near_overlays needs digits of at least two classes")
    first = torch.randint(0, len(y), (n,), generator=generator)
    second = torch.randint(0, len(y), (n,), generator=generator)
    for _ in range(64):  # redraw the partners of the same class (a handful of rounds suffice)
        same = y[first] == y[second]
        if not same.any():
            break
        second[same] = torch.randint(0, len(y), (int(same.sum()),), generator=generator)
    keep = y[first] != y[second]
    first, second = first[keep], second[keep]
    return torch.maximum(x[first], x[second])[:n]


def fragments(x: torch.Tensor, y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` halves of digits (above, below, left or right of the centre of mass, drawn among those
    holding at least 40% of the ink; never of a 1), scaled and centred like MNIST's digits."""
    generator = _generator(seed)
    pool = torch.isin(y, torch.tensor(FRAGMENT_CLASSES)).nonzero().squeeze(1)
    if not len(pool):
        raise InputError("near_fragments needs digits of classes other than 1")
    images = x[pool[torch.randint(0, len(pool), (n,), generator=generator)]]
    mass = images.sum(dim=(1, 2, 3)).clamp_min(1e-12)
    grid = torch.arange(SIZE, dtype=images.dtype)
    rows = (images.sum(dim=(1, 3)) * grid).sum(1) / mass
    cols = (images.sum(dim=(1, 2)) * grid).sum(1) / mass
    r, c = grid.view(1, SIZE, 1), grid.view(1, 1, SIZE)
    full = (n, SIZE, SIZE)
    halves = [r < rows.view(-1, 1, 1), r >= rows.view(-1, 1, 1), c < cols.view(-1, 1, 1), c >= cols.view(-1, 1, 1)]
    keep = torch.stack([half.expand(full) for half in halves], 1)
    share = (images[:, 0, None] * keep).sum(dim=(2, 3)) / mass[:, None]  # (n, 4) ink share of each half
    ok = share >= MIN_FRAGMENT_INK  # the larger of top and bottom always qualifies
    side = torch.where(ok, torch.rand(n, 4, generator=generator), -1.0).argmax(1)
    mask = keep[torch.arange(n), side].unsqueeze(1)
    return fit_box(images * mask)


# ---------------------------------------------------------------- random strokes ----------------
def strokes(n: int, seed: int, chunk: int = 256) -> torch.Tensor:
    """``n`` images of one to three quadratic Bezier pen strokes (control points inside the 20 x 20
    box), each of its own width in 1.8-3.2 px, anti-aliased by distance, re-centred."""
    generator = _generator(seed)
    count = torch.randint(1, 4, (n,), generator=generator)
    control = 4.0 + 19.0 * torch.rand(n, 3, 3, 2, generator=generator, dtype=torch.float64)  # (n, curve, point, xy)
    width = PEN_WIDTH[0] + (PEN_WIDTH[1] - PEN_WIDTH[0]) * torch.rand(n, generator=generator, dtype=torch.float64)
    t = torch.linspace(0.0, 1.0, CURVE_POINTS, dtype=torch.float64).view(1, 1, -1, 1)
    p0, p1, p2 = control[:, :, 0:1], control[:, :, 1:2], control[:, :, 2:3]
    points = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2  # (n, curve, CURVE_POINTS, 2)
    used = (torch.arange(3).view(1, 3) < count.view(n, 1)).view(n, 3, 1).expand(-1, -1, CURVE_POINTS)
    points = torch.where(used.unsqueeze(-1), points, torch.full_like(points, 1e6)).reshape(n, -1, 2)
    grid = torch.stack(torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="xy"), -1)
    pixels = grid.reshape(1, -1, 2).to(torch.float64)  # (1, 784, 2) as (column, row)
    out = torch.empty(n, SIZE * SIZE, dtype=torch.float64)
    for lo in range(0, n, chunk):
        distance = torch.cdist(pixels.expand(min(chunk, n - lo), -1, -1), points[lo : lo + chunk]).amin(-1)
        out[lo : lo + chunk] = (width[lo : lo + chunk, None] / 2 + 0.5 - distance).clamp(0.0, 1.0)
    return fit_box(out.view(n, 1, SIZE, SIZE).to(torch.float32))


# ---------------------------------------------------------------- the families ------------------
def near_ood_set(
    name: str, n: int, *, seed: int = 0, digits: torch.Tensor | None = None, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """``n`` images (float32, (n, 1, 28, 28) in [0, 1]) of the near-OOD family ``name`` (see the module
    docstring); ``digits``/``labels``: held-out test digits the flipped, overlay and fragment
    families start from, with their labels."""
    if name not in NEAR_OOD_DESCRIPTIONS:
        raise InputError(f"unknown near-OOD set {name!r}; expected one of: {', '.join(NEAR_OOD_NAMES)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"n must be a positive integer, got {n!r}")
    if name in NEEDS_DIGITS:
        if digits is None:
            raise InputError(f"{name} is built from held-out digits: pass digits (and labels)")
        digits, labels = _check_digits(digits, labels, name)
    if name == "near_flipped":
        out = flipped(digits, labels, n, seed)
    elif name == "near_overlays":
        out = overlays(digits, labels, n, seed)
    elif name == "near_fragments":
        out = fragments(digits, labels, n, seed)
    elif name == "near_strokes":
        out = strokes(n, seed)
    else:
        out = _drawn_glyphs(name.removeprefix("near_"), n, seed)
    return out.to(torch.float32).clamp_(0.0, 1.0).contiguous()


def outlier_families(spec: str) -> tuple[str, ...]:
    """``"all"`` or comma-separated family names (``flipped``, ``near_flipped``, ...) -> set names."""
    if spec.strip() == "all":
        return NEAR_OOD_NAMES
    names = tuple(f"near_{part.strip().removeprefix('near_')}" for part in spec.split(",") if part.strip())
    unknown = [n for n in names if n not in NEAR_OOD_DESCRIPTIONS]
    if unknown or not names:
        known = ", ".join(n.removeprefix("near_") for n in NEAR_OOD_NAMES)
        raise InputError(
            f"unknown outlier family {unknown[0] if unknown else spec!r}; expected 'all' or some of: {known}"
        )
    return names


def synthetic_outliers(
    digits: torch.Tensor, labels: torch.Tensor, n: int, *, families: tuple[str, ...] | None = None, seed: int = 0
) -> torch.Tensor:
    """``n`` near-OOD images for outlier exposure, split evenly over ``families`` (default all six),
    built from ``digits`` (training digits, never the test ones an evaluation uses) with ``seed``.
    Letters and symbols come from the same fonts as their test families: leave a family out here to
    measure a model on it honestly."""
    families = tuple(NEAR_OOD_NAMES if families is None else families)
    if not families:
        raise InputError("synthetic_outliers needs at least one near-OOD family")
    share = [n // len(families) + (1 if i < n % len(families) else 0) for i in range(len(families))]
    parts = [
        near_ood_set(name, count, seed=seed + 1000 * k, digits=digits, labels=labels)
        for k, (name, count) in enumerate(zip(families, share))
        if count
    ]
    return torch.cat(parts)


def stroke_width(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """A rough mean pen width per image in pixels: ink area over skeleton length, estimated as ink
    pixels over half the ink boundary pixels (for a long stroke of width w: area L w, boundary 2 L)."""
    ink = (x > threshold).to(torch.float32)
    inner = -F.max_pool2d(-ink, 3, stride=1, padding=1)
    boundary = (ink - inner).sum(dim=(1, 2, 3))
    return ink.sum(dim=(1, 2, 3)) / (boundary / 2).clamp_min(1.0)


__all__ = [
    "NEAR_OOD_DESCRIPTIONS",
    "NEAR_OOD_NAMES",
    "centre_by_mass",
    "glyph_prototypes",
    "near_ood_set",
    "synthetic_outliers",
]
