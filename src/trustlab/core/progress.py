"""Progress bars (tqdm) that every long loop uses, silenced globally by ``--quiet``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence (or restore) every progress bar, for ``--quiet``."""
    global _quiet
    _quiet = bool(quiet)


def progress(
    iterable: Iterable[T], *, desc: str, total: int | None = None, enabled: bool = True, unit: str = "it"
) -> tqdm:
    """Wrap ``iterable`` in a progress bar unless disabled here or globally quiet."""
    return tqdm(
        iterable, desc=desc, total=total, unit=unit, disable=_quiet or not enabled, leave=False, dynamic_ncols=True
    )
