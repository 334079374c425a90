"""trustlab: audit a trained classifier and report how far to trust it.

The public API is re-exported lazily so ``import trustlab`` stays fast and optional
dependencies are only imported when used.
"""

from __future__ import annotations

from trustlab._version import __version__
from trustlab.core.lazy import lazy_exports

_EXPORTS = {
    "load_dataset": "trustlab.data",
    "list_datasets": "trustlab.data",
    "Dataset": "trustlab.data",
    "Classifier": "trustlab.models",
    "BlackBoxClassifier": "trustlab.models",
    "build_architecture": "trustlab.models",
    "load_model": "trustlab.models",
    "save_model": "trustlab.models",
    "load_reference_model": "trustlab.models",
    "train": "trustlab.models",
    "evaluate": "trustlab.models.evaluation",
    "RunDirectory": "trustlab.report.run",
    "write_report": "trustlab.report.html",
    "GuardedClassifier": "trustlab.ood.guard",
    "load_reference_detector": "trustlab.ood.reference",
    "TrustlabError": "trustlab.core.exceptions",
    "tune_allocator": "trustlab.core.allocator",
    "prepare": "trustlab.audit.runner",
    "run_audit": "trustlab.audit.runner",
}

__all__ = ["__version__", *_EXPORTS]
__getattr__, _ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(__all__)
