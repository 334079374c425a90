"""Helpers shared by the benchmark scripts: logging, peer imports, the machine's state."""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def peer(module: str) -> Any:
    """Import a peer library; ImportError propagates and becomes a "not installed" row."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(module)


def fmt_busy(busy: float | None) -> str:
    return "unknown" if busy is None else f"{100 * busy:.0f}%"


def environment(threads: int, peers: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """Versions (trustlab, torch, numpy and the ``peers``: (distribution, module) pairs), machine, threads."""
    versions = {}
    for name, module in (("torch", "torch"), ("numpy", "numpy"), ("trustlab", "trustlab"), *peers):
        try:
            versions[name] = getattr(peer(module), "__version__", "?")
        except ImportError:
            versions[name] = "not installed"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "versions": versions,
    }


def other_cpu_load(seconds: float = 1.0) -> float | None:
    """Share of CPU time spent busy (by anything else) while this process sleeps ``seconds``."""

    def snapshot() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields[:8]), idle

    try:
        total0, idle0 = snapshot()
        time.sleep(seconds)
        total1, idle1 = snapshot()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return round(1 - (idle1 - idle0) / total, 3) if total > 0 else None


def default_data_dir() -> str:
    return os.environ.get("TRUSTLAB_DATA") or str(REPO.parent / "shared" / "data")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
