"""MNIST-C benchmark: trustlab's batched corruptions (``trustlab.data.mnist_c``) against per-image
re-implementations of MNIST-C's reference approach, on the same MNIST test images.

MNIST-C's reference code (github.com/google-research/mnist-c, ``corruptions.py``) corrupts one PIL
image at a time with NumPy, SciPy, scikit-image, OpenCV and ImageMagick (Wand) calls. The reference
rows here redo that per-image approach with the libraries installed in this environment (NumPy, SciPy,
scikit-image; written for this benchmark, same calls and parameters): each gets a uint8 28x28 array,
as ``np.array(pil_image)`` gives, and returns float32 0-255. ImageMagick is not installed, so motion
blur's reference cannot run; its row reports a per-image NumPy port of ImageMagick's kernel as a
stand-in (marked as such). Glass blur's reference (a Python loop over 1,352 pixel swaps per image) is
timed on a subset and scaled.

Besides time, each row checks fidelity on the same images:

* deterministic corruptions (scale, brightness, stripe, canny edges): max |trustlab - reference| (0-1
  units; for canny edges, the number of disagreeing pixels, float32 and float64 inputs);
* corruptions with per-image parameters (shear, rotate, translate, dotted line, zigzag, motion blur
  stand-in): the reference run with the parameters trustlab drew, max |difference|;
* noise fields (shot, impulse, glass blur, fog, spatter): different random numbers, so the mean pixel
  value and the mean |corrupted - clean| of both sets side by side.

Also writes ``results/mnist_c_examples.png``: 8 test digits, clean and under the 15 corruptions.

    python benchmarks/mnist_c.py [--data-dir DIR] [--n 1000] [--repeats 3] [--threads 1] [--quick]

Runs in the project's .venv (scikit-image is needed for the reference rows; a missing library gives a
"not run" row). Writes benchmarks/results/mnist_c.json and .md (``mnist_c-quick.*`` with --quick).
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, default_data_dir, environment, fmt_busy, log, other_cpu_load  # noqa: E402

from trustlab.core.files import atomic_write_json, atomic_write_text  # noqa: E402
from trustlab.data import (
    load_dataset,  # noqa: E402
    mnist_c,  # noqa: E402
)

RESULTS = REPO / "benchmarks" / "results"
GLASS_REFERENCE_IMAGES = 100  # the reference's per-pixel Python loop: ~25 ms per image
SEED = 0

# ---------------------------------------------------------------- reference approach, per image ----------
# Each function corrupts one uint8 28x28 image the way MNIST-C's corruptions.py does, with the same
# library calls and parameters (written for this benchmark). ``params`` replays trustlab's draws where the
# corruption has per-image parameters; without it the global NumPy generator draws them, as MNIST-C does.


def _sk() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module("skimage")


def ref_shot_noise(img: np.ndarray, params: dict | None = None) -> np.ndarray:
    c = mnist_c.SHOT_NOISE_PHOTONS[4]
    x = np.array(img) / 255.0
    return (np.clip(np.random.poisson(x * c) / float(c), 0, 1) * 255).astype(np.float32)


def ref_impulse_noise(img: np.ndarray, params: dict | None = None) -> np.ndarray:
    from skimage.util import random_noise

    x = random_noise(np.array(img) / 255.0, mode="s&p", amount=mnist_c.IMPULSE_NOISE_AMOUNT[3])
    return (np.clip(x, 0, 1) * 255).astype(np.float32)


def ref_glass_blur(img: np.ndarray, params: dict | None = None) -> np.ndarray:
    from skimage.filters import gaussian

    sigma, delta, iterations = mnist_c.GLASS_BLUR
    # multichannel=True in MNIST-C's scikit-image; channel_axis=-1 is today's spelling (vertical blur only)
    x = np.uint8(gaussian(np.array(img) / 255.0, sigma=sigma, channel_axis=-1) * 255)
    for _ in range(iterations):
        for h in range(28 - delta, delta, -1):
            for w in range(28 - delta, delta, -1):
                if np.random.choice([True, False], 1)[0]:
                    dx, dy = np.random.randint(-delta, delta, size=(2,))
                    hp, wp = h + dy, w + dx
                    x[h, w], x[hp, wp] = x[hp, wp], x[h, w]
    return (np.clip(gaussian(x / 255.0, sigma=sigma, channel_axis=-1), 0, 1) * 255).astype(np.float32)


def standin_motion_blur(img: np.ndarray, params: dict | None = None) -> np.ndarray:
    """Not the reference (ImageMagick): a per-image NumPy port of MotionBlurImage's kernel."""
    radius, sigma = mnist_c.MOTION_BLUR[0]
    angle = params["angle_degrees"] if params else np.random.uniform(-45, 45)
    width = 2 * math.ceil(radius) + 1
    i = np.arange(width)
    k = np.exp(-(i**2) / (2.0 * sigma**2))
    k /= k.sum()
    a = math.radians(angle)
    ox = np.ceil(i * math.cos(a) - 0.5).astype(int)
    oy = np.ceil(i * math.sin(a) - 0.5).astype(int)
    grid = np.arange(28)
    rows = np.clip(grid[None, :, None] + oy[:, None, None], 0, 27)
    cols = np.clip(grid[None, None, :] + ox[:, None, None], 0, 27)
    x = np.array(img) / 255.0
    out = (k[:, None, None] * x[rows, cols]).sum(0)
    return (np.clip(out, 0, 1) * 255).astype(np.float32)


def _warp(img: np.ndarray, linear: np.ndarray) -> np.ndarray:
    from skimage import transform

    offset = 13.5 - linear @ np.array([13.5, 13.5])
    matrix = np.vstack([np.hstack([linear, offset[:, None]]), [0.0, 0.0, 1.0]])
    x = transform.warp(np.array(img) / 255.0, inverse_map=transform.AffineTransform(matrix=matrix))
    return (np.clip(x, 0, 1) * 255).astype(np.float32)


def ref_shear(img: np.ndarray, params: dict | None = None) -> np.ndarray:
    # MNIST-C's skimage (< 0.19) built AffineTransform(shear=c) as [[1, -sin c], [0, cos c]]; today's
    # skimage means [[1, -tan c], [0, 1]] by it, so the matrix is passed explicitly.
    c = params["shear"] if params else mnist_c.SHEAR[1] * np.random.choice([-1, 1], 1)[0]
    return _warp(img, np.array([[1.0, -math.sin(c)], [0.0, math.cos(c)]]))


def ref_scale(img: np.ndarray, params: dict | None = None) -> np.ndarray:
    return _warp(img, np.eye(2) / mnist_c.SCALE[2])


def ref_rotate(img: np.ndarray, params: dict | None = None) -> np.ndarray:
    c = params["angle"] if params else mnist_c.ROTATE[1] * np.random.choice([-1, 1], 1)[0]
    return _warp(img, np.array([[math.cos(c), -math.sin(c)], [math.sin(c), math.cos(c)]]))


def ref_translate(img: np.ndarray, params: dict | None = None) -> np.ndarray:
    from skimage import transform

    if params:
        dx, dy = -params["shift_x"], -params["shift_y"]
    else:
        bit = np.random.choice([-1, 1], 2)
        dx, dy = mnist_c.TRANSLATE[2] * bit[0], mnist_c.TRANSLATE[2] * bit[1]
    x = transform.warp(np.array(img) / 255.0, inverse_map=transform.AffineTransform(translation=[dx, dy]))
    return (np.clip(x, 0, 1) * 255).astype(np.float32)


def ref_brightness(img: np.ndarray, params: dict | None = None) -> np.ndarray:
    from skimage import color

    x = color.rgb2hsv(color.gray2rgb(np.array(img) / 255.0))
    x[:, :, 2] = np.clip(x[:, :, 2] + mnist_c.BRIGHTNESS[4], 0, 1)
    x = color.rgb2gray(color.hsv2rgb(x))
    return (np.clip(x, 0, 1) * 255).astype(np.float32)


def ref_stripe(img: np.ndarray, params: dict | None = None) -> np.ndarray:
    x = np.array(img).astype(np.float32)
    x[:, :7] = 255.0 - x[:, :7]
    x[:, 21:] = 255.0 - x[:, 21:]
    return x


def _plasma(size: int = 256, decay: float = 3.0) -> np.ndarray:
    grid = np.zeros((size, size))
    step, wibble = size, 100.0

    def wibbled(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * np.random.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0:size:step, 0:size:step]
        total = corners + np.roll(corners, -1, axis=0)
        total += np.roll(total, -1, axis=1)
        grid[half:size:step, half:size:step] = wibbled(total)
        centres, corners = grid[half:size:step, half:size:step], grid[0:size:step, 0:size:step]
        grid[0:size:step, half:size:step] = wibbled(
            (centres + np.roll(centres, 1, axis=0)) + (corners + np.roll(corners, -1, axis=1))
        )
        grid[half:size:step, 0:size:step] = wibbled(
            (centres + np.roll(centres, 1, axis=1)) + (corners + np.roll(corners, -1, axis=0))
        )
        step //= 2
        wibble /= decay
    grid -= grid.min()
    return grid / grid.max()


def ref_fog(img: np.ndarray, params: dict | None = None) -> np.ndarray:
    strength, decay = mnist_c.FOG[4]
    x = np.array(img) / 255.0
    peak = x.max()
    x = x + strength * _plasma(decay=decay)[:28, :28]
    return (np.clip(x * peak / (peak + strength), 0, 1) * 255).astype(np.float32)


def ref_spatter(img: np.ndarray, params: dict | None = None) -> np.ndarray:
    from skimage.filters import gaussian

    loc, spread, sigma, threshold, sigma2, _ = mnist_c.SPATTER[3]
    x = np.array(img, dtype=np.float32) / 255.0
    liquid = gaussian(np.random.normal(size=x.shape, loc=loc, scale=spread), sigma=sigma)
    liquid[liquid < threshold] = 0
    mask = gaussian(np.where(liquid > threshold, 1, 0).astype(np.float32), sigma=sigma2)
    mask[mask < 0.8] = 0
    x = x * (1 - mask) + 63 / 255.0 * np.ones_like(x) * mask
    return np.clip(x, 0, 1) * 255


def _line(c0: float, r0: float, c1: float, r1: float) -> np.ndarray:
    if c1 == c0:
        return np.zeros((28, 28))
    cc, rr = np.meshgrid(np.linspace(0, 27, 28), np.linspace(0, 27, 28), sparse=True)
    slope = (r1 - r0) / (c1 - c0)
    dist = np.clip(np.abs(rr - (slope * (cc - c0) + r0)), 0, 2.3 - 1e-10)
    ink = np.clip(np.log(1 - dist / 2.3) + 1, 0, 1)
    ink[:, : int(np.floor(c0))] = 0
    ink[:, int(np.ceil(c1)) :] = 0
    return ink


def ref_dotted_line(img: np.ndarray, params: dict | None = None) -> np.ndarray:
    x = np.array(img) / 255.0
    r0, r1 = (params["r0"], params["r1"]) if params else np.random.randint(0, 27, size=2)
    ink = _line(0, r0, 27, r1)
    for start in range(0, 28, 4):
        ink[:, start : start + 2] = 0
    return (np.clip(x + ink, 0, 1) * 255).astype(np.float32)


def ref_zigzag(img: np.ndarray, params: dict | None = None) -> np.ndarray:
    x = np.array(img) / 255.0
    arm, (c0, c1) = 2.0, (2, 25)
    if params:
        r0, r1 = params["r0"], params["r1"]
    else:
        r0 = np.random.randint(0, 27)
        r1 = r0 + np.random.randint(-5, 5)
    theta = np.arctan((r1 - r0) / (c1 - c0))
    length = (c1 - c0) / np.cos(theta)
    points, height = [(0.0, 0.0)], 0.0
    for i in range(int((length - arm) // (2 * arm)) + 1):
        height = (-1) ** i * arm
        points.append(((2 * i + 1) * arm, height))
    last = (2 * arm) * (length // (2 * arm))
    if length != last:
        points.append((length, height / (2 * (length - last))))
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cs, rs = rot.dot(np.array(points).T)
    cs, rs = cs + c0, rs + r0
    for i in range(1, len(cs)):
        x = np.clip(x + _line(cs[i - 1], rs[i - 1], cs[i], rs[i]), 0, 1)
    return (x * 255).astype(np.float32)


def ref_canny_edges(img: np.ndarray, params: dict | None = None) -> np.ndarray:
    from skimage import feature

    return feature.canny(np.array(img) / 255.0).astype(np.float32) * 255


REFERENCES = {
    "shot_noise": ("np.random.poisson", ref_shot_noise),
    "impulse_noise": ("skimage.util.random_noise(s&p)", ref_impulse_noise),
    "glass_blur": ("skimage gaussian + per-pixel Python swaps", ref_glass_blur),
    "motion_blur": ("ImageMagick via Wand (not installed)", standin_motion_blur),
    "shear": ("skimage.transform.warp", ref_shear),
    "scale": ("skimage.transform.warp", ref_scale),
    "rotate": ("skimage.transform.warp", ref_rotate),
    "brightness": ("skimage.color gray->rgb->hsv->rgb->gray", ref_brightness),
    "translate": ("skimage.transform.warp", ref_translate),
    "stripe": ("NumPy slices", ref_stripe),
    "fog": ("NumPy diamond-square 256x256", ref_fog),
    "spatter": ("np.random.normal + skimage gaussian x2", ref_spatter),
    "dotted_line": ("NumPy line_from_points", ref_dotted_line),
    "zigzag": ("NumPy line_from_points x7", ref_zigzag),
    "canny_edges": ("skimage.feature.canny", ref_canny_edges),
}
DETERMINISTIC = ("scale", "brightness", "stripe", "canny_edges")
REPLAYED = ("shear", "rotate", "translate", "dotted_line", "zigzag", "motion_blur")


# ---------------------------------------------------------------- measurement ---------------------------------


def _time_ours(name: str, x: torch.Tensor, repeats: int) -> tuple[float, torch.Tensor]:
    best, out = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = mnist_c.corrupt(x, name, seed=SEED)
        best = min(best, time.perf_counter() - start)
    return best, out


def _run_reference(fn, images: np.ndarray, params: list[dict] | None = None) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = np.stack([fn(img, None if params is None else params[i]) for i, img in enumerate(images)])
    return time.perf_counter() - start, out / 255.0


def _params_list(name: str, n: int) -> list[dict]:
    drawn = mnist_c.drawn_parameters(name, n, seed=SEED)
    return [{k: v[i].item() for k, v in drawn.items()} for i in range(n)]


def measure(name: str, x: torch.Tensor, images: np.ndarray, repeats: int) -> dict[str, Any]:
    n = x.shape[0]
    ours_s, ours = _time_ours(name, x, repeats)
    label, fn = REFERENCES[name]
    row: dict[str, Any] = {"corruption": name, "n": n, "trustlab_s": ours_s, "reference": label}
    try:
        _sk()
    except ImportError:
        row.update(reference_s=None, note="not run: scikit-image is not installed")
        return row
    np.random.seed(SEED)
    subset = min(n, GLASS_REFERENCE_IMAGES) if name == "glass_blur" else n
    timings = []
    for _ in range(1 if name == "glass_blur" else repeats):
        seconds, ref = _run_reference(fn, images[:subset])
        timings.append(seconds)
    ref_s = min(timings) * n / subset
    clean = x[:subset, 0].double().numpy()
    ours_np = ours[:subset, 0].double().numpy()
    if name == "motion_blur":
        row.update(reference_s=None, standin_s=ref_s, standin="per-image NumPy port of ImageMagick's kernel")
        row["note"] = "reference not run: needs ImageMagick (Wand); ratio against the NumPy stand-in"
        row["ratio_vs_standin"] = ref_s / ours_s
    else:
        row.update(reference_s=ref_s, ratio=ref_s / ours_s)
        if subset < n:
            row["note"] = f"reference timed on {subset} images and scaled to {n}"
    if name in DETERMINISTIC:
        if name == "canny_edges":
            exact = mnist_c.canny_edges(x.double())[:, 0].numpy()
            row["fidelity"] = {
                "disagreeing_pixels_float32": int((ours_np != ref).sum()),
                "disagreeing_pixels_float64": int((exact != ref).sum()),
                "edge_pixels": int(ref.sum()),
            }
        else:
            exact = mnist_c.corrupt(x.double(), name, seed=SEED)[:, 0].numpy()
            row["fidelity"] = {"max_abs_diff_float64": float(np.abs(exact - ref).max())}
    elif name in REPLAYED:
        _, replay = _run_reference(fn, images[:subset], _params_list(name, subset))
        exact = mnist_c.corrupt(x.double(), name, seed=SEED)[:, 0].numpy()
        row["fidelity"] = {"max_abs_diff_same_parameters_float64": float(np.abs(exact - replay).max())}
    else:
        row["fidelity"] = {
            "mean_pixel_trustlab": float(ours_np.mean()),
            "mean_pixel_reference": float(ref.mean()),
            "mean_abs_change_trustlab": float(np.abs(ours_np - clean).mean()),
            "mean_abs_change_reference": float(np.abs(ref - clean).mean()),
        }
    return row


# ---------------------------------------------------------------- outputs -------------------------------------


def examples_png(x: torch.Tensor, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["clean", *mnist_c.NAMES]
    images = [x] + [mnist_c.corrupt(x, name, seed=SEED) for name in mnist_c.NAMES]
    fig, axes = plt.subplots(x.shape[0], len(columns), figsize=(len(columns) * 0.95, x.shape[0] * 1.0 + 0.6))
    for col, (title, batch) in enumerate(zip(columns, images)):
        for row in range(x.shape[0]):
            ax = axes[row, col]
            ax.imshow(batch[row, 0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title.replace("_", "\n"), fontsize=8)
    fig.suptitle(f"MNIST-C corruptions (trustlab.data.mnist_c, seed {SEED}): 8 MNIST test digits, 28 x 28 px")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt_s(value: float | None) -> str:
    return "not run" if value is None else f"{value:.3f}"


def _fidelity_text(f: dict[str, Any]) -> str:
    if "edge_pixels" in f:
        return (
            f"{f['disagreeing_pixels_float32']} (float32) / {f['disagreeing_pixels_float64']} (float64) "
            f"of {f['edge_pixels']:,} edge pixels differ"
        )
    if "max_abs_diff_float64" in f:
        return f"max abs diff {f['max_abs_diff_float64']:.1e}"
    if "max_abs_diff_same_parameters_float64" in f:
        return f"same parameters: max abs diff {f['max_abs_diff_same_parameters_float64']:.1e}"
    return (
        f"mean pixel {f['mean_pixel_trustlab']:.4f} vs {f['mean_pixel_reference']:.4f}; "
        f"mean abs change {f['mean_abs_change_trustlab']:.4f} vs {f['mean_abs_change_reference']:.4f}"
    )


def markdown(payload: dict[str, Any]) -> str:
    rows = payload["rows"]
    env = payload["environment"]
    lines = [
        "# MNIST-C corruptions: trustlab (batched) vs MNIST-C's per-image approach",
        "",
        f"Run {payload['ran_at']}; {payload['n']:,} MNIST test images (the first of the test split); "
        f"torch threads {env['torch_threads']}; other CPU load before the run {fmt_busy(payload['cpu_busy'])}; "
        f"load average {payload['load_average']}. trustlab: best of {payload['repeats']} calls on the whole "
        "batch (includes input validation). Reference: the same library calls as MNIST-C's corruptions.py, "
        "one image at a time (uint8 28x28 in, as np.array(PIL image)), best of the same number of passes "
        "(glass blur: one pass on a subset, scaled).",
        "",
        "| corruption | trustlab s | reference s | reference x trustlab | reference | fidelity on the same images |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("reference_s") is not None:
            ratio = f"{r['ratio']:.1f}x"
        elif r.get("standin_s") is not None:
            ratio = f"not run ({r['ratio_vs_standin']:.1f}x vs stand-in, {r['standin_s']:.3f} s)"
        else:
            ratio = "not run"
        note = f" ({r['note']})" if r.get("note") else ""
        fidelity = _fidelity_text(r["fidelity"]) if r.get("fidelity") else ""
        lines.append(
            f"| {r['corruption']} | {r['trustlab_s']:.4f} | {_fmt_s(r.get('reference_s'))} | {ratio} | "
            f"{r['reference']}{note} | {fidelity} |"
        )
    total_ours = sum(r["trustlab_s"] for r in rows)
    lines += [
        "",
        f"All 15 corruptions on {payload['n']:,} images: {total_ours:.2f} s with trustlab.",
        "",
        "Fidelity columns: deterministic corruptions compare outputs directly (0-1 units, float64 input); "
        "corruptions with per-image parameters replay trustlab's drawn parameters through the reference; "
        "noise fields draw other random numbers, so only statistics can agree. "
        "Motion blur's reference needs ImageMagick (Wand), which is not installed: its row times a "
        "per-image NumPy port of ImageMagick's MotionBlurImage kernel instead, and checks trustlab "
        "against it with the same angles.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + f"; Python {env['python']}.",
        "",
        "![examples](mnist_c_examples.png)",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=default_data_dir())
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the references use one core)")
    parser.add_argument("--only", action="append", choices=mnist_c.NAMES, help="corruption to run (repeatable)")
    parser.add_argument("--quick", action="store_true", help="200 images, 1 repeat, -quick output files")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = 200, 1
    torch.set_num_threads(args.threads)
    busy = other_cpu_load()
    if busy is not None and busy > 0.25:
        log(f"warning: the CPUs were {fmt_busy(busy)} busy with other work; timings will be noisy")
    test = load_dataset("mnist", "test", root=args.data_dir)
    x = test.x[: args.n].contiguous()
    images = np.round(x[:, 0].numpy() * 255).astype(np.uint8)
    rows = []
    for name in args.only or mnist_c.NAMES:
        log(f"{name} ...")
        row = measure(name, x, images, args.repeats)
        rows.append(row)
        ref = row.get("reference_s")
        log(
            f"  trustlab {row['trustlab_s']:.4f} s, reference {_fmt_s(ref)} s"
            + (f", ratio {row['ratio']:.1f}x" if ref else "")
        )
    payload = {
        "ran_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "n": args.n,
        "repeats": args.repeats,
        "seed": SEED,
        "cpu_busy": busy,
        "load_average": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "environment": environment(args.threads, (("scikit-image", "skimage"), ("scipy", "scipy"))),
        "rows": rows,
    }
    stem = "mnist_c-quick" if args.quick else "mnist_c"
    atomic_write_json(RESULTS / f"{stem}.json", payload)
    atomic_write_text(RESULTS / f"{stem}.md", markdown(payload))
    if not args.quick:
        examples_png(test.x[:8], RESULTS / "mnist_c_examples.png")
    print(markdown(payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
