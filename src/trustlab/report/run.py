"""A run directory: ``results.json``, ``manifest.json``, ``figures/``, ``checkpoints/``, ``report.html``.

Every file is written atomically, so a killed run leaves the previous complete version of each
file. Reopening an existing directory keeps its results, which is how a run resumes: completed
checks stay, and a long check picks up from its checkpoint.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from trustlab._version import __version__
from trustlab.capabilities import load_views
from trustlab.core.batching import BatchCheckpoint
from trustlab.core.exceptions import RunDirectoryError
from trustlab.core.files import atomic_write_json
from trustlab.core.results import Result

RESULTS_FILE = "results.json"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.html"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_results(path: str | Path) -> dict[str, Result]:
    """Load ``results.json`` (a run directory or the file itself) into named results."""
    path = Path(path)
    file = path / RESULTS_FILE if path.is_dir() else path
    if not file.is_file():
        raise RunDirectoryError(f"no {RESULTS_FILE} in {path}; run a check first (e.g. trustlab evaluate)")
    load_views()  # registers every result kind before decoding
    try:
        payload = json.loads(file.read_text())
        return {name: Result.from_dict(data) for name, data in payload["results"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise RunDirectoryError(f"{file} is not a trustlab results file ({exc})") from None


class RunDirectory:
    """One audit's folder. Results are saved as soon as they are added."""

    def __init__(self, path: str | Path, *, seed: int | None = None, command: list[str] | None = None) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise RunDirectoryError(f"run directory {self.path} exists and is not a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        self.results: dict[str, Result] = read_results(self.path) if (self.path / RESULTS_FILE).is_file() else {}
        manifest_file = self.path / MANIFEST_FILE
        self.manifest: dict[str, Any] = (
            json.loads(manifest_file.read_text())
            if manifest_file.is_file()
            else {
                "created": _now(),
                "model": {},
                "data": {},
                "timings": {},
            }
        )
        self.manifest.update(
            {
                "trustlab": __version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
                "platform": platform.platform(),
                "seed": seed if seed is not None else self.manifest.get("seed"),
                "command": command if command is not None else self.manifest.get("command", sys.argv),
            }
        )
        self.write_manifest()

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    def add(self, name: str, result: Result) -> Result:
        self.results[name] = result
        payload = {"trustlab": __version__, "results": {k: v.to_dict() for k, v in self.results.items()}}
        atomic_write_json(self.path / RESULTS_FILE, payload)
        return result

    def describe_model(self, classifier: Any, *, source: str) -> None:
        """Record the audited model. One run directory audits one model: results of another
        model's weights already here would mix into its report, so that is refused."""
        digest = classifier.weights_sha256()
        previous = self.manifest.get("model", {}).get("weights_sha256")
        if previous and previous != digest and self.results:
            raise RunDirectoryError(
                f"run directory {self.path} holds results for another model (weights sha256 "
                f"{previous[:12]}...); use a new --out for this one"
            )
        self.manifest["model"] = {"source": source, "architecture": classifier.architecture, "weights_sha256": digest}
        self.write_manifest()

    def describe_data(self, dataset: Any) -> None:
        self.manifest["data"][f"{dataset.name}/{dataset.split}"] = {
            "sha256": dataset.sha256,
            "examples": len(dataset),
            "files": [f.to_dict() for f in dataset.metadata.files],
        }
        self.write_manifest()

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.manifest["timings"][name] = round(time.perf_counter() - start, 3)
            self.write_manifest()

    def checkpoint(self, name: str, fingerprint: dict[str, Any]) -> BatchCheckpoint:
        return BatchCheckpoint(self.path / "checkpoints" / name, fingerprint=fingerprint)

    def write_manifest(self) -> None:
        self.manifest["updated"] = _now()
        atomic_write_json(self.path / MANIFEST_FILE, self.manifest)
