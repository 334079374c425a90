"""Figure helpers every view uses (matplotlib, Agg backend): PNG bytes, panel grids, image grids.

Every figure has labelled axes with units; PNGs carry no timestamp so identical results give
identical files. Capability-specific figures live in each capability's ``figures`` module.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def to_png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes (no timestamp, so identical figures give identical bytes); closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def finite_or(values: np.ndarray, fill: float) -> np.ndarray:
    """``values`` with non-finite entries (censored, missing) replaced by ``fill`` for drawing."""
    return np.where(np.isfinite(values), values, fill)


def class_ticks(ax: plt.Axes, names: Sequence[str], offset: int = 0) -> None:
    """Class names on the x axis, turned upright when they are longer than 3 characters."""
    ax.set_xticks(range(offset, len(names) + offset), names, rotation=90 if max(map(len, names)) > 3 else 0)


def panel_grid(count: int, columns: int = 3, size: tuple[float, float] = (3.6, 2.6)):
    """A figure with ``count`` panels, ``columns`` per row; unused panels hidden."""
    rows = max(1, -(-count // columns))
    columns = min(columns, count)
    fig, axes = plt.subplots(rows, columns, figsize=(size[0] * columns, size[1] * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def finish_panels(fig: plt.Figure, first: plt.Axes, title: str) -> bytes:
    """One legend (the first panel's) under the grid, a title above it."""
    handles, labels = first.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=7, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return to_png(fig)


def show_image(ax: plt.Axes, image, *, kind: str = "image", title: str = "") -> None:
    """Draw an input ("image": grey, 0-1), a signed map ("signed": red-blue, symmetric about 0) or
    a non-negative map ("unsigned": 0 to its own maximum)."""
    values = np.asarray(image, dtype=float)
    if kind == "signed":
        bound = float(np.abs(values).max()) or 1.0
        ax.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound)
    elif kind == "unsigned":
        ax.imshow(values, cmap="Reds", vmin=0.0, vmax=float(values.max()) or 1.0)
    else:
        ax.imshow(values, cmap="gray", vmin=0.0, vmax=max(1.0, float(values.max())))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def image_grid_figure(
    rows: Sequence[Sequence],
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    kinds: Sequence[str],
    title: str,
) -> bytes:
    """Rows of images; column j drawn as ``kinds[j]`` (see :func:`show_image`): signed maps in red
    (pushes towards the class) and blue (against it), each map scaled to its own largest |value|."""
    n_rows, n_cols = len(rows), len(column_labels)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.15 * n_cols + 0.6, 1.15 * n_rows + 0.6), squeeze=False)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            show_image(axes[i][j], image, kind=kinds[j], title=column_labels[j] if i == 0 else "")
        axes[i][0].set_ylabel(row_labels[i], fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return to_png(fig)
