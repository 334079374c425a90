"""A run directory: ``results.json``, ``manifest.json``, ``figures/``, ``checkpoints/``, ``report.html``.

Every file is written atomically, so a killed run leaves the previous complete version of each
file. Reopening an existing directory keeps its results, which is how a run resumes: completed
checks stay, and a long check picks up from its checkpoint.
"""

from __future__ import annotations

import json
import platform
import shutil
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
CHECKPOINTS = "checkpoints"
ERR_OTHER_MODEL = (
    "run directory {path} holds results for another model (weights sha256 {previous}...): {names}; "
    "use a new --out for this one"
)


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
        """Open (or create) the run directory at ``path``. ``command`` is the command line writing
        into it: the manifest keeps every one (``commands``: command and time, oldest first) and
        the latest as ``command``. Without ``command`` a new directory records ``sys.argv``, and
        reopening an existing one records nothing (a reader, not a writer)."""
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
        fresh = "command" not in self.manifest
        commands = self.manifest.get("commands")
        if commands is None:  # a manifest written before every command was kept
            previous = self.manifest.get("command")
            stamp = self.manifest.get("updated", self.manifest.get("created"))
            commands = [] if previous is None else [{"command": previous, "time": stamp}]
        if command is None and fresh:
            command = list(sys.argv)
        if command is not None:
            commands.append({"command": list(command), "time": _now()})
        self.manifest.update(
            {
                "trustlab": __version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
                "platform": platform.platform(),
                "seed": seed if seed is not None else self.manifest.get("seed"),
                "command": list(command) if command is not None else self.manifest.get("command"),
                "commands": commands,
            }
        )
        self.write_manifest()

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    def add(self, name: str, result: Result) -> Result:
        self.results[name] = result
        self._write_results()
        return result

    def _write_results(self) -> None:
        payload = {"trustlab": __version__, "results": {k: v.to_dict() for k, v in self.results.items()}}
        atomic_write_json(self.path / RESULTS_FILE, payload)

    def describe_model(self, classifier: Any, *, source: str) -> None:
        """Record the audited model. One run directory audits one model: results of another
        model's weights already here would mix into its report, so that is refused.

        A directory whose earlier run failed before any result (nothing in ``results.json``
        but results that measure nothing, ``measures_model`` False: the model's card, a failed check) is not
        claimed: it is taken over, what its run left (that card, checkpoints made with the other
        model) is removed and the manifest's model entry is replaced."""
        digest = classifier.weights_sha256()
        previous = self.manifest.get("model", {}).get("weights_sha256")
        if previous and previous != digest:
            audited = sorted(name for name, r in self.results.items() if r.measures_model)
            if audited:
                names = ", ".join(audited[:5]) + (f" and {len(audited) - 5} more" if len(audited) > 5 else "")
                raise RunDirectoryError(ERR_OTHER_MODEL.format(path=self.path, previous=previous[:12], names=names))
            self._forget_model()
        self.manifest["model"] = {"source": source, "architecture": classifier.architecture, "weights_sha256": digest}
        self.write_manifest()

    def _forget_model(self) -> None:
        """Drop what belonged to the previous model of a run that measured nothing."""
        stale = [name for name, r in self.results.items() if not r.measures_model]
        for name in stale:
            del self.results[name]
        if stale:
            self._write_results()
        shutil.rmtree(self.path / CHECKPOINTS, ignore_errors=True)

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
        return BatchCheckpoint(self.path / CHECKPOINTS / name, fingerprint=fingerprint)

    def write_manifest(self) -> None:
        self.manifest["updated"] = _now()
        atomic_write_json(self.path / MANIFEST_FILE, self.manifest)
