"""Where trustlab looks for data files.

Order: an explicit ``root`` argument, then the ``TRUSTLAB_DATA`` environment variable, then a
per-user cache directory (``$XDG_CACHE_HOME/trustlab/data``, by default ``~/.cache/trustlab/data``).
Each data set lives in a sub-folder named after it (``<root>/mnist/...``).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_DATA = "TRUSTLAB_DATA"
ENV_OFFLINE = "TRUSTLAB_OFFLINE"


def default_cache_dir() -> Path:
    """The per-user cache for data files: ``$XDG_CACHE_HOME/trustlab/data`` (default ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "trustlab" / "data"


def resolve_data_dir(root: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Return the data directory and where the choice came from ("argument", env var, "cache")."""
    if root is not None:
        return Path(root).expanduser(), "argument"
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser(), f"${ENV_DATA}"
    return default_cache_dir(), "user cache"


def offline() -> bool:
    """True when downloads are switched off (``TRUSTLAB_OFFLINE=1``)."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}
